"""Build a segmenter from a short spec (what ``detseg predict --segmenter`` and ``evaluate`` take).

Example:
    >>> from detseg.segmenter.factory import build_segmenter
    >>> segmenter, note = build_segmenter("grabcut")
    >>> note
    'segmenter: GrabCut (no weights)'
"""

from __future__ import annotations

from pathlib import Path

from detseg.errors import InputError, WeightsError

WEIGHT_FREE = ("grabcut", "box", "ellipse")
AUTO_SAM = "mobile_sam.pt"


def build_segmenter(spec: str = "auto", device: str = "auto", multimask: str = "single",
                    precision: str = "fp32") -> tuple[object, str]:
    """A segmenter from a spec, and a one-line note of what was chosen.

    Args:
        spec: ``"grabcut"``, ``"box"``, ``"ellipse"``, a SAM checkpoint path or name
            (``sam_b.pt``, ``sam2.1_t.pt``, ...), or ``"auto"``: ``mobile_sam.pt`` when it is in
            the working folder or downloadable, else GrabCut (the note says so).
        device, multimask, precision: passed to :class:`~detseg.segmenter.sam.SamSegmenter`.

    Returns:
        ``(segmenter, note)``; a SAM segmenter is already loaded, so a bad checkpoint fails here.

    Raises:
        WeightsError: the checkpoint is missing (and not downloadable) or unreadable. With
            ``"auto"``, a ``mobile_sam.pt`` that is present but unreadable (a half-finished
            download) is an error too, never a silent fall back.
    """
    from detseg.segmenter import BoxSegmenter, EllipseSegmenter, GrabCutSegmenter, SamSegmenter

    spec = (spec or "").strip()
    if spec in WEIGHT_FREE and multimask != "single":
        raise InputError(f"multimask {multimask!r} is for SAM segmenters; {spec} gives one mask per box")
    if spec in WEIGHT_FREE and precision != "fp32":
        raise InputError(f"precision {precision!r} is for SAM segmenters; {spec} has no model")
    if spec == "grabcut":
        return GrabCutSegmenter(), "segmenter: GrabCut (no weights)"
    if spec == "box":
        return BoxSegmenter(), "segmenter: the box as the mask"
    if spec == "ellipse":
        return EllipseSegmenter(), "segmenter: the ellipse inscribed in the box"
    if not spec:
        raise WeightsError("empty segmenter spec: pass auto, grabcut, box, ellipse or a SAM checkpoint")
    name = AUTO_SAM if spec == "auto" else spec
    sam = SamSegmenter(name, device=device, multimask=multimask, precision=precision)
    try:
        sam.load()
    except WeightsError:
        if spec != "auto" or Path(AUTO_SAM).exists():
            raise
        return GrabCutSegmenter(), (f"segmenter: GrabCut, because {AUTO_SAM} is neither here nor downloadable "
                                    "(pass --segmenter PATH for a SAM checkpoint)")
    return sam, f"segmenter: {sam.arch} from {name}"
