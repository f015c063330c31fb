"""Weight-free baselines: the box itself, and the ellipse inscribed in it, as the mask.

``BoxSegmenter`` is the lower bound every report shows; ``EllipseSegmenter`` is the
"free" shape prior any real segmenter must beat.
"""

from __future__ import annotations

import numpy as np

from segmenter.base import BoxPromptSegmenter, check_boxes, check_image


def _pixel_span(lo: float, hi: float, limit: int) -> tuple[int, int]:
    """Pixels whose centres lie inside [lo, hi): the COCO-convention rasterisation of a box edge."""
    a = int(np.clip(np.ceil(lo - 0.5), 0, limit))
    b = int(np.clip(np.ceil(hi - 0.5), 0, limit))
    return a, max(a, b)


class BoxSegmenter(BoxPromptSegmenter):
    """The box as the mask (score 1.0). Dense ``(N, H, W)`` bool output."""

    def predict_masks(self, image: np.ndarray, boxes):
        """Masks ``(N, H, W)`` bool filling each clipped box, and scores ``(N,)`` (1.0, 0.0 for empty boxes)."""
        check_image(image)
        clipped, valid = check_boxes(boxes, image.shape[:2])
        h, w = image.shape[:2]
        masks = np.zeros((len(clipped), h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(clipped):
            ya, yb = _pixel_span(y0, y1, h)
            xa, xb = _pixel_span(x0, x1, w)
            masks[i, ya:yb, xa:xb] = True
        return masks, valid.astype(np.float32)


def ellipse_mask(box, shape: tuple[int, int]) -> np.ndarray:
    """The ellipse inscribed in an xyxy box, rasterised at pixel centres. (H, W) bool."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = shape
    ya, yb = _pixel_span(y0, y1, h)
    xa, xb = _pixel_span(x0, x1, w)
    out = np.zeros(shape, bool)
    if yb <= ya or xb <= xa:
        return out
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, max((y1 - y0) / 2, 1e-6), max((x1 - x0) / 2, 1e-6)
    ys = (np.arange(ya, yb) + 0.5 - cy) / ry
    xs = (np.arange(xa, xb) + 0.5 - cx) / rx
    out[ya:yb, xa:xb] = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0
    return out


class EllipseSegmenter(BoxPromptSegmenter):
    """The ellipse inscribed in each box as the mask (score 1.0). Dense ``(N, H, W)`` bool."""

    def predict_masks(self, image: np.ndarray, boxes):
        check_image(image)
        clipped, valid = check_boxes(boxes, image.shape[:2])
        masks = np.stack([ellipse_mask(b, image.shape[:2]) for b in clipped]) if len(clipped) else \
            np.zeros((0, *image.shape[:2]), bool)
        return masks, valid.astype(np.float32)

