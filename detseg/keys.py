"""Names of the ``sv.Detections.data`` fields that detseg reads and writes.

Example:
    >>> from detseg.keys import CLASS_NAME, MASK_SCORE
    >>> detections.data[CLASS_NAME], detections.data[MASK_SCORE]   # doctest: +SKIP
"""

CLASS_NAME = "class_name"  #: the class of each row, as text; supervision's own ``CLASS_NAME_DATA_FIELD``
MASK_SCORE = "mask_score"  #: the segmenter's confidence in each row's mask (SAM's predicted IoU), float32
MASK_CANDIDATES = "mask_candidates"  #: ``multimask="all"``: SAM's three masks per row, ``(N, 3, H, W)`` bool
MASK_CANDIDATE_SCORES = "mask_candidate_scores"  #: their predicted IoU, ``(N, 3)`` float32


def class_key(name) -> str:
    """How two class names are compared where they come from different files (a detector's, a dataset's, a
    checkpoint's): case-insensitively, without surrounding spaces (``"Cookie "`` is ``"cookie"``)."""
    return str(name).strip().lower()
