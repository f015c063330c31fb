"""A :class:`~detseg.pipeline.Pipeline` from names: a detector and the ``--segmenter`` spec that says what
segments its boxes, ``"detector"`` (:data:`OWN_MASKS`) being a -seg detector's own masks
(:class:`~detseg.detectors.yolo_seg.DetectorMasks`).

Example:
    >>> from detseg.detectors import YoloDetector                                          # doctest: +SKIP
    >>> pipe, note = build_pipeline(YoloDetector("runs/student/weights/best.pt").load(), "detector")  # doctest: +SKIP
"""

from __future__ import annotations

from detseg.detectors.yolo import YoloDetector
from detseg.detectors.yolo_seg import DetectorMasks, YoloSegModel
from detseg.errors import InputError
from detseg.segmenter.factory import SamOptions, build_segmenter

OWN_MASKS = "detector"  # the segmenter spec (``--segmenter detector``) for a -seg detector's own masks
OWN_MASKS_NOTE = "segmenter: the detector's own masks (a -seg model)"


def uses_own_masks(segmenter: str, detector: YoloDetector, sam: SamOptions | None = None) -> bool:
    """Whether ``segmenter`` (a ``--segmenter`` spec) is ``"detector"``, a -seg detector's own masks. Only
    when named: ``"auto"`` stays SAM (or GrabCut) whatever the detector, SAM's masks being this project's point.

    Raises:
        InputError: ``"detector"`` with a detect-only model, or with SAM-only options.
    """
    if segmenter != OWN_MASKS:
        return False
    if detector.task != "segment":
        raise InputError(f"--segmenter {OWN_MASKS} uses a -seg detector's own masks, but {detector.weights} is a "
                         "detect model: pass a SAM checkpoint, grabcut, box or ellipse")
    changed = (sam or SamOptions()).changed()
    if changed:
        name, value = changed[0]
        raise InputError(f"{name} {value!r} is for SAM segmenters; the detector's own masks take no {name}")
    return True


def build_pipeline(detector: YoloDetector, segmenter: str = "auto", device: str = "auto",
                   sam: SamOptions | None = None):
    """A :class:`~detseg.pipeline.Pipeline` of ``detector`` and the segmenter ``segmenter`` names, and a one-line
    note of what was chosen.

    ``segmenter`` is what :func:`~detseg.segmenter.factory.build_segmenter` takes, or ``"detector"``: a -seg
    detector's own masks (:class:`~detseg.detectors.yolo_seg.DetectorMasks`; the note of any other choice for a
    -seg detector says so).

    Raises:
        InputError, WeightsError: as :func:`uses_own_masks` and ``build_segmenter``.
    """
    from detseg.pipeline.core import Pipeline

    if uses_own_masks(segmenter, detector, sam):
        model = YoloSegModel.from_detector(detector)
        return Pipeline(model, DetectorMasks(model)), OWN_MASKS_NOTE
    seg, note = build_segmenter(segmenter, device, sam)
    return Pipeline(detector, seg), segmenter_note(note, detector)


def segmenter_note(note: str, detector: YoloDetector) -> str:
    """``note`` (what segments the boxes) plus, for a -seg ``detector``, that ``--segmenter detector`` would keep
    its own masks: they are never used silently, but a user who meant them should learn of the option."""
    if detector.task == "segment":
        return f"{note} (the detector is a -seg model: --segmenter {OWN_MASKS} keeps its own masks)"
    return note
