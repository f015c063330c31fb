"""Build a segmenter from a short spec (what ``detseg predict --segmenter`` and ``evaluate`` take).

Example:
    >>> from detseg.segmenter.factory import build_segmenter
    >>> segmenter, note = build_segmenter("grabcut")
    >>> note
    'segmenter: GrabCut (no weights)'
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from detseg.errors import InputError, WeightsError

WEIGHT_FREE = ("grabcut", "box", "ellipse")
AUTO_SAM = "mobile_sam.pt"


@dataclass(frozen=True)
class SamOptions:
    """How a SAM segmenter runs: what ``detseg predict --multimask``, ``--precision`` and ``--sam-imgsz`` set.

    Weight-free segmenters and a -seg detector's own masks take none of these (see :meth:`changed`).

    Attributes:
        multimask: ``"single"``, ``"best"`` or ``"all"`` (:class:`~detseg.segmenter.sam.SamSegmenter`).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        imgsz: SAM's square input side (a multiple of 64 from 256); None: SAM's own, 1024.
    """

    multimask: str = "single"
    precision: str = "fp32"
    imgsz: int | None = None

    def changed(self) -> list[tuple[str, object]]:
        """``(name, value)`` of each option set away from its default, as a user would name it."""
        names = {"imgsz": "sam_imgsz"}
        return [(names.get(f.name, f.name), getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) != f.default]

    def segmenter_kwargs(self) -> dict:
        """The :class:`~detseg.segmenter.sam.SamSegmenter` arguments these options give."""
        kwargs = {"multimask": self.multimask, "precision": self.precision}
        return kwargs if self.imgsz is None else {**kwargs, "imgsz": self.imgsz}

    def size_note(self) -> str:
        """What a segmenter note adds for the input side: ``" at 512 px"``, or nothing at SAM's own."""
        return "" if self.imgsz is None else f" at {self.imgsz} px"


def build_segmenter(spec: str = "auto", device: str = "auto", sam: SamOptions | None = None) -> tuple[object, str]:
    """A segmenter from a spec, and a one-line note of what was chosen.

    Args:
        spec: ``"grabcut"``, ``"box"``, ``"ellipse"``, a SAM checkpoint path or name
            (``sam_b.pt``, ``sam2.1_t.pt``, ...), or ``"auto"``: ``mobile_sam.pt`` when it is in
            the working folder or downloadable, else GrabCut (the note says so).
        device: passed to :class:`~detseg.segmenter.sam.SamSegmenter`.
        sam: :class:`SamOptions` (default: SAM's defaults); refused with a weight-free ``spec``.

    Returns:
        ``(segmenter, note)``; a SAM segmenter is already loaded, so a bad checkpoint fails here.

    Raises:
        WeightsError: the checkpoint is missing (and not downloadable) or unreadable. With
            ``"auto"``, a ``mobile_sam.pt`` that is present but unreadable (a half-finished
            download) is an error too, never a silent fall back.
        InputError: ``sam`` options with a weight-free ``spec``, or with ``"auto"`` when it would fall back
            to GrabCut (which would ignore them).
    """
    from detseg.segmenter import BoxSegmenter, EllipseSegmenter, GrabCutSegmenter, SamSegmenter

    spec = (spec or "").strip()
    sam = sam or SamOptions()
    changed = sam.changed()
    if spec in WEIGHT_FREE and changed:
        name, value = changed[0]
        raise InputError(f"{name} {value!r} is for SAM segmenters; {spec} "
                         f"{'gives one mask per box' if name == 'multimask' else 'has no model'}")
    if spec == "grabcut":
        return GrabCutSegmenter(), "segmenter: GrabCut (no weights)"
    if spec == "box":
        return BoxSegmenter(), "segmenter: the box as the mask"
    if spec == "ellipse":
        return EllipseSegmenter(), "segmenter: the ellipse inscribed in the box"
    if not spec:
        raise WeightsError("empty segmenter spec: pass auto, grabcut, box, ellipse or a SAM checkpoint")
    name = AUTO_SAM if spec == "auto" else spec
    segmenter = SamSegmenter(name, device=device, **sam.segmenter_kwargs())
    try:
        segmenter.load()
    except WeightsError:
        if spec != "auto" or Path(AUTO_SAM).exists():
            raise
        if changed:  # GrabCut would silently ignore what the user asked SAM for
            name, value = changed[0]
            raise InputError(f"{name} {value!r} is for SAM segmenters, and {AUTO_SAM} is neither here nor "
                             "downloadable: pass --segmenter PATH for a SAM checkpoint") from None
        return GrabCutSegmenter(), (f"segmenter: GrabCut, because {AUTO_SAM} is neither here nor downloadable "
                                    "(pass --segmenter PATH for a SAM checkpoint)")
    return segmenter, f"segmenter: {segmenter.arch} from {name}{sam.size_note()}"
