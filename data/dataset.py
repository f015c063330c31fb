"""One in-memory model of an instance dataset, whatever format it came in.

Example:
    >>> from detseg.data.io import load_dataset
    >>> ds = load_dataset("data/samples")            # doctest: +SKIP
    >>> print(ds.summary_table())                    # doctest: +SKIP
    >>> dets = ds.detections(ds.splits["val"][0])    # sv.Detections with masks   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from detseg.data.polygons import clip_polygon, coco_segmentation_to_mask, polygons_to_mask
from detseg.errors import DatasetError
from detseg.keys import CLASS_NAME

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class Annotation:
    """One instance.

    Attributes:
        class_id: index into :attr:`Dataset.names`.
        xyxy: ``(4,)`` float box in pixels.
        polygons: list of ``(K, 2)`` float polygons in pixels (empty for a box-only label).
        rle: a COCO RLE dict when the source gave the mask as RLE (exact), else None.
        iscrowd: COCO's ``iscrowd``: a region of many instances, which COCO evaluation ignores (a
            detection there is neither right nor wrong) and YOLO training leaves out, as ultralytics'
            ``convert_coco`` does.
    """

    class_id: int
    xyxy: np.ndarray
    polygons: list = field(default_factory=list)
    rle: dict | None = None
    iscrowd: bool = False

    @property
    def has_mask(self) -> bool:
        return bool(self.polygons) or self.rle is not None

    def mask(self, height: int, width: int) -> np.ndarray:
        """The instance mask (H, W) bool: the RLE if given, else the rasterised polygons, else the box."""
        if self.rle is not None:
            return coco_segmentation_to_mask(self.rle, height, width)
        if self.polygons:
            return polygons_to_mask(self.polygons, height, width)
        m = np.zeros((height, width), bool)
        x0, y0, x1, y1 = np.round(self.xyxy).astype(int)
        m[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
        return m


@dataclass
class ImageRecord:
    """One image and its instances. ``path`` is absolute; ``image_id`` is its COCO id (the source's
    for COCO datasets, 1-based position for YOLO ones)."""

    path: Path
    width: int
    height: int
    annotations: list[Annotation] = field(default_factory=list)
    image_id: int | None = None


@dataclass
class Dataset:
    """Splits of image records plus class names; loaded by :func:`load_dataset`.

    ``category_ids``: a COCO source's category ids, one per name (class id ``k`` is ``category_ids[k]``), so
    what detseg writes of it in COCO keeps the source's ids; None (YOLO): ids 1, 2, 3, ...
    """

    names: list[str]
    splits: dict[str, list[ImageRecord]]
    source: Path
    format: str
    category_ids: list[int] | None = None

    def coco_category_ids(self) -> list[int]:
        """The COCO category id of each class id: the source's, or 1, 2, 3, ..."""
        return list(self.category_ids) if self.category_ids else list(range(1, len(self.names) + 1))

    def check_unique_file_names(self) -> None:
        """Raise a DatasetError if two images of one split share a file name (a split read from several
        folders may): written into one ``images/<split>/`` folder, one would replace the other."""
        for split, records in self.splits.items():
            seen: dict[str, Path] = {}
            for r in records:
                if r.path.name in seen:
                    raise DatasetError(f"{split} has two images named {r.path.name} ({seen[r.path.name]} and "
                                       f"{r.path}); one folder cannot hold both: rename one first", self.source)
                seen[r.path.name] = r.path

    def summary(self) -> dict:
        """Per split: images, images without objects, instances per class."""
        out = {}
        for split, records in self.splits.items():
            counts = np.zeros(len(self.names), int)
            for r in records:
                for a in r.annotations:
                    counts[a.class_id] += 1
            out[split] = {
                "images": len(records),
                "background_images": sum(1 for r in records if not r.annotations),
                "instances": {n: int(c) for n, c in zip(self.names, counts)},
            }
        return out

    def summary_table(self) -> str:
        """A plain-text table of :meth:`summary`, one row per split."""
        summary = self.summary()
        width = max([len(n) for n in self.names] + [8])
        shown = self.names if len(self.names) <= 12 else self.names[:12]
        head = (f"{'split':<6} {'images':>7} {'empty':>6} {'instances':>9}  "
                + " ".join(f"{n[:width]:>{width}}" for n in shown))
        lines = [f"{self.format} dataset {self.source} ({len(self.names)} classes)", head]
        for split, s in summary.items():
            inst = s["instances"]
            lines.append(f"{split:<6} {s['images']:>7} {s['background_images']:>6} {sum(inst.values()):>9}  "
                         + " ".join(f"{inst[n]:>{width}}" for n in shown))
        if len(self.names) > len(shown):
            lines.append(f"(first {len(shown)} of {len(self.names)} classes shown)")
        return "\n".join(lines)

    def detections(self, record: ImageRecord, masks: bool = True):
        """Ground truth of one image as ``sv.Detections`` (xyxy, class_id, class_name[, mask])."""
        import supervision as sv

        if not record.annotations:
            dets = sv.Detections.empty()
            dets.data[CLASS_NAME] = np.array([], dtype=str)
            return dets
        xyxy = np.stack([a.xyxy for a in record.annotations]).astype(np.float32)
        class_id = np.array([a.class_id for a in record.annotations], dtype=int)
        mask = None
        if masks:
            mask = np.stack([a.mask(record.height, record.width) for a in record.annotations])
        return sv.Detections(xyxy=xyxy, class_id=class_id, mask=mask,
                             data={CLASS_NAME: np.array([self.names[c] for c in class_id])})

    def as_supervision(self, split: str, masks: bool = True):
        """The split as a ``supervision.DetectionDataset`` (images loaded lazily by path)."""
        import supervision as sv

        records = self.splits[split]
        annotations = {str(r.path): self.detections(r, masks=masks) for r in records}
        return sv.DetectionDataset(classes=list(self.names), images=[str(r.path) for r in records],
                                   annotations=annotations)


def split_name(name: str) -> str:
    """Normalise a split name ('valid' -> 'val'); unknown names pass through."""
    return SPLIT_ALIASES.get(name.lower(), name)


_CLIP_TOL = 1e-3  # pixels: coordinates this far past the border are rounding, clamped without counting


@dataclass
class ClipReport:
    """What :func:`clip_to_images` changed: instances clipped to their image, and dropped (wholly outside)."""

    clipped: int = 0
    dropped: int = 0
    examples: list = field(default_factory=list)  # a few "file: class" strings

    def __str__(self) -> str:
        text = f"clipped {self.clipped} box(es)/polygon(s) that extended past their image"
        if self.dropped:
            text += f" and dropped {self.dropped} lying wholly outside it"
        return text + (f" (e.g. {', '.join(self.examples)})" if self.examples else "")


def polygon_area(poly: np.ndarray) -> float:
    """Shoelace area of a pixel polygon ``(K, 2)``."""
    x, y = poly[:, 0].astype(np.float64), poly[:, 1].astype(np.float64)
    return abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2


def clip_annotation(a: Annotation, width: int, height: int) -> tuple[Annotation | None, bool]:
    """``a`` with its box and polygons clipped to ``[0, width] x [0, height]``, and whether that changed it
    (beyond rounding). None when nothing of it is inside. An RLE mask is the image's size: only its box
    is clipped."""
    x0, y0, x1, y1 = (float(v) for v in a.xyxy)
    outside = min(x0, y0) < -_CLIP_TOL or x1 > width + _CLIP_TOL or y1 > height + _CLIP_TOL
    polygons = a.polygons
    if a.polygons and a.rle is None:
        outside = outside or any((p < -_CLIP_TOL).any() or (p[:, 0] > width + _CLIP_TOL).any()
                                 or (p[:, 1] > height + _CLIP_TOL).any() for p in a.polygons)
        polygons = [clip_polygon(p, width, height) for p in a.polygons]
        polygons = [p for p in polygons if len(p) >= 3 and polygon_area(p) > 0]
        if not polygons:
            return None, True
        if outside:  # the box follows what is left of the outline
            pts = np.concatenate(polygons)
            x0, y0 = np.maximum(pts.min(0), 0)
            x1, y1 = np.minimum(pts.max(0), [width, height])
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if outside and (cx1 <= cx0 or cy1 <= cy0) and not a.has_mask:
        return None, True
    box = np.array([cx0, cy0, max(cx1, cx0), max(cy1, cy0)], np.float32)
    return replace(a, xyxy=box, polygons=polygons), outside


def clip_to_images(dataset: Dataset, examples: int = 3) -> tuple[Dataset, ClipReport]:
    """A copy of ``dataset`` whose boxes and polygons lie inside their images, and what was changed.

    What a converter writes must pass ``detseg data check``: YOLO labels are normalised to
    [0, 1], so a box reaching past the image (common in hand-made COCO files) is clipped, and an
    instance wholly outside it is dropped.
    """
    report = ClipReport()
    splits = {}
    for split, records in dataset.splits.items():
        splits[split] = []
        for r in records:
            anns = []
            for a in r.annotations:
                clipped, changed = clip_annotation(a, r.width, r.height)
                if changed:
                    if clipped is None:
                        report.dropped += 1
                    else:
                        report.clipped += 1
                    if len(report.examples) < examples:
                        report.examples.append(f"{r.path.name}: {dataset.names[a.class_id]}")
                if clipped is not None:
                    anns.append(clipped)
            splits[split].append(replace(r, annotations=anns))
    return replace(dataset, splits=splits), report
