"""Segmenters: boxes in, one mask per box out (SAM family, GrabCut, the box itself).

Every segmenter honours one interface::

    masks, scores = seg.predict_masks(image_bgr, boxes_xyxy)   # aligned 1:1 with the boxes
    detections = seg(image_bgr, detections)                     # same rows, .mask + data[MASK_SCORE]

Imports are lazy so that ``import segmenter`` does not import torch.
"""

from __future__ import annotations

__all__ = ["SamSegmenter", "GrabCutSegmenter", "BoxSegmenter", "EllipseSegmenter"]


def __getattr__(name):
    if name == "SamSegmenter":
        from detseg.segmenter.sam import SamSegmenter

        return SamSegmenter
    if name == "GrabCutSegmenter":
        from detseg.segmenter.grabcut import GrabCutSegmenter

        return GrabCutSegmenter
    if name in ("BoxSegmenter", "EllipseSegmenter"):
        from detseg.segmenter import box

        return getattr(box, name)
    raise AttributeError(f"module 'segmenter' has no attribute {name!r}")
