"""Plain ``sv.Detections -> sv.Detections`` steps for a :class:`pipeline.Pipeline`.

Box steps run between detector and segmenter (fewer boxes, less SAM time); mask steps
run after the segmenter. Each is a small object whose constructor stores its settings.

Example:
    >>> from detseg.pipeline.steps import ClassFilter, MinConfidence, MinMaskArea
    >>> box_steps = [MinConfidence(0.3), ClassFilter(["cookie"])]
    >>> mask_steps = [MinMaskArea(50)]
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from detseg.errors import InputError
from detseg.keys import CLASS_NAME
from detseg.segmenter.mask_ops import fill_holes, largest_component


def _select(dets: sv.Detections, keep: np.ndarray) -> sv.Detections:
    return dets[np.flatnonzero(keep)]


class ClassFilter:
    """Keep only these classes (names matched against ``data["class_name"]``, ints against class_id)."""

    def __init__(self, classes):
        self.classes = classes

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        wanted = [self.classes] if isinstance(self.classes, (str, int)) else list(self.classes)
        names = {c for c in wanted if isinstance(c, str)}
        ids = {int(c) for c in wanted if not isinstance(c, str)}
        keep = np.zeros(len(dets), bool)
        if ids and dets.class_id is not None:
            keep |= np.isin(dets.class_id, list(ids))
        if names:
            keep |= np.isin(dets.data.get(CLASS_NAME, np.array([""] * len(dets))), list(names))
        return _select(dets, keep)


class MinConfidence:
    """Drop detections whose confidence is below ``threshold``."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        if dets.confidence is None:
            return dets
        return _select(dets, dets.confidence >= self.threshold)


class ClassAwareNMS:
    """Non-maximum suppression within each class (supervision's ``with_nms``); over all boxes when the
    detections carry no ``class_id`` (a class-agnostic detector), where supervision would raise."""

    def __init__(self, iou: float = 0.5):
        self.iou = iou

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        if len(dets) < 2 or dets.confidence is None:
            return dets
        return dets.with_nms(threshold=self.iou, class_agnostic=dets.class_id is None)


class MaxBoxes:
    """Keep the ``n`` most confident detections, in their original order."""

    def __init__(self, n: int):
        if n < 0:
            raise InputError(f"MaxBoxes needs n >= 0, got {n}")
        self.n = n

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        if len(dets) <= self.n:
            return dets
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        top = np.sort(np.argsort(-conf, kind="stable")[: self.n])
        return dets[top]


class MinBoxSize:
    """Drop boxes whose width or height is below ``pixels``."""

    def __init__(self, pixels: float):
        self.pixels = pixels

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        w = dets.xyxy[:, 2] - dets.xyxy[:, 0]
        h = dets.xyxy[:, 3] - dets.xyxy[:, 1]
        return _select(dets, (w >= self.pixels) & (h >= self.pixels))


def _map_masks(dets: sv.Detections, fn) -> sv.Detections:
    """Apply ``fn(mask (H, W) bool) -> mask`` to every mask, keeping dense or CompactMask storage.

    ``fn`` must be local (what it does to a mask depends on the mask's pixels and their background
    neighbours only, as filling holes and keeping the largest component do): a CompactMask's rows are
    processed as their stored crops with a one-pixel background border, never as full frames, so memory
    stays ~ mask area on a large photo.
    """
    from detseg.segmenter.base import assemble_masks

    if dets.mask is None or len(dets) == 0:
        return dets
    out = dets[np.arange(len(dets))]
    if isinstance(dets.mask, sv.CompactMask):
        crops = []
        for i in range(len(dets)):
            x0, y0 = (int(v) for v in dets.mask.offsets[i][:2])
            crops.append((fn(np.pad(dets.mask.crop(i), 1))[1:-1, 1:-1], (y0, x0)))
        out.mask = assemble_masks(crops, range(len(dets)), len(dets), tuple(dets.mask.shape[1:]), compact=True)
    else:
        out.mask = np.stack([fn(np.asarray(dets.mask[i])) for i in range(len(dets))])
    return out


class MinMaskArea:
    """Drop detections whose mask has fewer than ``pixels`` pixels."""

    def __init__(self, pixels: int):
        self.pixels = pixels

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        if dets.mask is None:
            return dets
        area = np.array([np.asarray(dets.mask[i]).sum() for i in range(len(dets))])
        return _select(dets, area >= self.pixels)


class FillHoles:
    """Fill the holes of every mask."""

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        return _map_masks(dets, fill_holes)


class LargestComponent:
    """Keep only the largest connected component of every mask."""

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        return _map_masks(dets, largest_component)
