"""What every segmenter shares: input checks and the ``__call__`` over ``predict_masks``.

A segmenter knows nothing of classes: it maps boxes to masks, one per box, in order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import supervision as sv

from detseg.errors import InputError
from detseg.keys import MASK_CANDIDATE_SCORES, MASK_CANDIDATES, MASK_SCORE

COMPACT_FROM_PIXELS = 2**20  # "auto" output: sv.CompactMask from ~1 megapixel up


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an image: ``uint8`` array of shape ``(H, W, 3)``, BGR, H and W >= 1.

    Raises:
        InputError: showing the expected and the actual type, dtype and shape.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array (H, W, 3) uint8 BGR, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1 or image.dtype != np.uint8:
        raise InputError(f"image must be (H, W, 3) uint8 BGR, got shape {image.shape} dtype {image.dtype}; "
                         "detseg.images.to_bgr8 converts grayscale, RGBA, 16-bit and float images")
    return image


def check_boxes(boxes, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``xyxy`` pixel boxes and clip them to the image.

    Args:
        boxes: array-like of shape ``(N, 4)`` (``(4,)`` is taken as one box).
        image_shape: ``(H, W)``.

    Returns:
        ``(clipped, valid)``: float32 ``(N, 4)`` boxes clipped to ``[0, W] x [0, H]`` and a
        bool ``(N,)`` that is False for boxes of zero area after clipping (they get empty masks).

    Raises:
        InputError: wrong shape, NaN/inf, or an inverted box (x2 < x1 or y2 < y1).
    """
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):  # ragged rows ([[1, 2, 3, 4], [5, 6]]) or non-numbers
        raise InputError("boxes must be an (N, 4) array of numbers in xyxy pixels: rows of 4 numbers each") from None
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"boxes must have shape (N, 4) in xyxy pixels, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(1))
        raise InputError(f"box(es) at index {bad.tolist()} contain NaN or inf")
    inverted = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if inverted.any():
        i = int(np.flatnonzero(inverted)[0])
        raise InputError(f"box {i} {arr[i].tolist()} is inverted: expected xyxy with x2 >= x1 and y2 >= y1")
    h, w = image_shape
    clipped = arr.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    valid = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped.astype(np.float32), valid


def empty_masks(n: int, image_shape: tuple[int, int], compact: bool):
    """``n`` all-False masks, dense ``(n, H, W)`` or as an ``sv.CompactMask``."""
    if compact:
        from supervision.detection.compact_mask import CompactMask

        tiny = CompactMask.from_dense(np.zeros((n, 1, 1), bool), np.zeros((n, 4), np.float32), (1, 1))
        return tiny.with_offset(0, 0, tuple(image_shape))
    return np.zeros((n, *image_shape), bool)


def wants_compact(output: str, shape: tuple[int, int]) -> bool:
    """``output`` is "dense", "compact" or "auto" (compact from ~1 megapixel up)."""
    if output not in ("auto", "compact", "dense"):
        raise InputError(f"output must be 'auto', 'compact' or 'dense', got {output!r}")
    return output == "compact" or (output == "auto" and shape[0] * shape[1] >= COMPACT_FROM_PIXELS)


def assemble_masks(crops, rows, total: int, shape: tuple[int, int], compact: bool):
    """Place per-mask crops at their rows: dense ``(total, H, W)`` bool or an ``sv.CompactMask``.

    Args:
        crops: ``(crop, (y0, x0))`` pairs, ``crop`` a bool array or None for an empty mask.
        rows: the output row of each crop; rows not listed stay empty.
        total: number of masks.
        shape: ``(H, W)`` of the image.
        compact: CompactMask (memory ~ mask area) instead of dense (memory ~ total x H x W).
    """
    if not compact:
        out = np.zeros((total, *shape), bool)
        for row, (crop, corner) in zip(rows, crops):
            if crop is not None:
                out[row, corner[0]:corner[0] + crop.shape[0], corner[1]:corner[1] + crop.shape[1]] = crop
        return out
    from supervision.detection.compact_mask import CompactMask

    if total == 0:
        return empty_masks(0, shape, True)
    parts = [None] * total
    for row, (crop, corner) in zip(rows, crops):
        if crop is not None and crop.any():
            ch, cw = crop.shape
            one = CompactMask.from_dense(crop[None], np.array([[0, 0, cw - 1, ch - 1]], np.float32), (ch, cw))
            parts[row] = one.with_offset(int(corner[1]), int(corner[0]), tuple(shape))
    blank = empty_masks(1, shape, True)
    return CompactMask.merge([p if p is not None else blank for p in parts])


def attach_masks(detections: sv.Detections, masks, scores: np.ndarray) -> sv.Detections:
    """The same rows, in the same order, with ``mask`` set and ``data["mask_score"]``."""
    data = {**detections.data, MASK_SCORE: np.asarray(scores, dtype=np.float32)}
    return dataclasses.replace(detections, mask=masks, data=data)


def attach_candidates(detections: sv.Detections, masks, scores: np.ndarray) -> sv.Detections:
    """``multimask="all"``: three candidate masks per box (box-major). ``mask`` gets the best of
    each three by predicted IoU, so rows stay one object each (compact when ``masks`` are); all three stay in
    ``data["mask_candidates"]`` ``(N, 3, H, W)`` bool, dense (3 full frames a box), and
    ``data["mask_candidate_scores"]`` ``(N, 3)``."""
    n = len(detections)
    scores = np.asarray(scores, np.float32).reshape(n, 3)
    dense = masks.to_dense() if hasattr(masks, "to_dense") else np.asarray(masks)
    dense = dense.reshape(n, 3, *dense.shape[1:])
    best = scores.argmax(1)
    chosen = masks[3 * np.arange(n) + best] if hasattr(masks, "to_dense") else dense[np.arange(n), best]
    out = attach_masks(detections, chosen, scores[np.arange(n), best])
    out.data[MASK_CANDIDATES], out.data[MASK_CANDIDATE_SCORES] = dense, scores
    return out


class BoxPromptSegmenter:
    """Implements the ``Segmenter`` interface's ``__call__`` on top of ``predict_masks``.

    Subclasses provide ``predict_masks(image, boxes) -> (masks, scores)``.
    """

    def predict_masks(self, image: np.ndarray, boxes: np.ndarray):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, image: np.ndarray, detections: sv.Detections) -> sv.Detections:
        """Segment every detection's box.

        Args:
            image: ``(H, W, 3)`` uint8 BGR.
            detections: boxes in ``xyxy`` pixels of that image (other fields are kept).

        Returns:
            The same rows in the same order with ``mask`` (one per row) and ``data["mask_score"]``.
        """
        check_image(image)
        if not isinstance(detections, sv.Detections):
            raise InputError(f"detections must be supervision.Detections, got {type(detections).__name__}")
        masks, scores = self.predict_masks(image, detections.xyxy)
        n = len(detections)
        if getattr(self, "multimask", "single") == "all" and len(masks) == 3 * n:
            return attach_candidates(detections, masks, scores)
        if len(masks) != n:
            raise RuntimeError(f"{type(self).__name__} returned {len(masks)} masks for {n} boxes")
        return attach_masks(detections, masks, scores)
