"""Weight-free baselines: the box itself, and the ellipse inscribed in it, as the mask.

``BoxSegmenter`` is the lower bound every report shows; ``EllipseSegmenter`` is the
"free" shape prior any real segmenter must beat.
"""

from __future__ import annotations

import numpy as np

from detseg.segmenter.base import BoxPromptSegmenter, assemble_masks, check_boxes, check_image, wants_compact


def pixel_span(lo: float, hi: float, limit: int) -> tuple[int, int]:
    """Pixels whose centres lie inside [lo, hi): the COCO-convention rasterisation of a box edge."""
    a = int(np.clip(np.ceil(lo - 0.5), 0, limit))
    b = int(np.clip(np.ceil(hi - 0.5), 0, limit))
    return a, max(a, b)


def box_pixels(box, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Rows ``[ya, yb)`` and columns ``[xa, xb)`` of the pixels inside an xyxy box, or None if none."""
    x0, y0, x1, y1 = (float(v) for v in box)
    ya, yb = pixel_span(y0, y1, shape[0])
    xa, xb = pixel_span(x0, x1, shape[1])
    return (ya, yb, xa, xb) if yb > ya and xb > xa else None


def box_crop(box, shape: tuple[int, int]):
    """The box as a crop: ``(ones, (y0, x0))`` or ``(None, None)`` when it covers no pixel centre."""
    span = box_pixels(box, shape)
    if span is None:
        return None, None
    ya, yb, xa, xb = span
    return np.ones((yb - ya, xb - xa), bool), (ya, xa)


def ellipse_crop(box, shape: tuple[int, int]):
    """The ellipse inscribed in an xyxy box, as a crop of its box: ``(mask, (y0, x0))`` or ``(None, None)``."""
    span = box_pixels(box, shape)
    if span is None:
        return None, None
    ya, yb, xa, xb = span
    x0, y0, x1, y1 = (float(v) for v in box)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    ry, rx = max((y1 - y0) / 2, 1e-6), max((x1 - x0) / 2, 1e-6)
    ys = (np.arange(ya, yb) + 0.5 - cy) / ry
    xs = (np.arange(xa, xb) + 0.5 - cx) / rx
    return ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0, (ya, xa)


def ellipse_mask(box, shape: tuple[int, int]) -> np.ndarray:
    """The inscribed ellipse as a full ``(H, W)`` bool mask."""
    out = np.zeros(shape, bool)
    crop, corner = ellipse_crop(box, shape)
    if crop is not None:
        out[corner[0]:corner[0] + crop.shape[0], corner[1]:corner[1] + crop.shape[1]] = crop
    return out


class _ShapeSegmenter(BoxPromptSegmenter):
    """A mask computed from the box alone; ``output`` as in :func:`segmenter.base.wants_compact`."""

    crop_fn = staticmethod(box_crop)

    def __init__(self, output: str = "auto"):
        self.output = output

    def predict_masks(self, image: np.ndarray, boxes):
        """Masks ``(N, H, W)`` bool (or CompactMask for large frames) and scores ``(N,)``: 1.0, 0.0 for empty."""
        check_image(image)
        shape = image.shape[:2]
        clipped, valid = check_boxes(boxes, shape)
        crops = [self.crop_fn(b, shape) for b in clipped]
        scores = np.array([c[0] is not None for c in crops], np.float32)
        return assemble_masks(crops, range(len(crops)), len(crops), shape, wants_compact(self.output, shape)), scores


class BoxSegmenter(_ShapeSegmenter):
    """The box as the mask: the lower bound."""

    crop_fn = staticmethod(box_crop)


class EllipseSegmenter(_ShapeSegmenter):
    """The ellipse inscribed in each box as the mask: the free shape prior."""

    crop_fn = staticmethod(ellipse_crop)
