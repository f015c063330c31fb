"""Bilinear upsampling of SAM's 256x256 low-resolution logits, only where a mask can be positive.

Every output pixel is a convex combination of at most four low-resolution logits,
so it can be positive only if one of them is. A mask therefore only needs upsampling
inside the one-low-res-pixel dilation of its positive low-res region; everywhere
else it is False. The per-pixel arithmetic is the same whichever window is asked
for, so the windowed result equals the full-frame result bit for bit.

The sampling grid is ultralytics' (``ops.scale_masks`` with ``padding=False``): the
image content covers ``content = src * 256 / 1024 * gain`` low-res pixels from the
top-left corner, and output pixel ``x`` samples ``content * (x + 0.5) / W - 0.5``. Where the
content ends on a whole low-res pixel on both axes, ultralytics crops the logits to it before
interpolating, so the last output rows and columns take the content's edge, not the letterbox
padding beyond it; where it ends mid-pixel, it samples the whole logit map (border padding).
``Grid.build`` does the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Axis:
    """Sampling of one axis: output index -> (lo, hi, weight of hi)."""

    lo: np.ndarray  # (n_out,) int
    hi: np.ndarray  # (n_out,) int
    w_hi: np.ndarray  # (n_out,) float32

    @classmethod
    def build(cls, n_out: int, content: float, n_in: int) -> Axis:
        """``n_out`` output pixels over ``content`` input pixels; samples clamp to ``[0, n_in - 1]``."""
        src = (np.arange(n_out, dtype=np.float64) + 0.5) * (content / n_out) - 0.5
        src = np.clip(src, 0.0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return cls(lo, hi, (src - lo).astype(np.float32))

    def window(self, first_low: int, last_low: int) -> tuple[int, int]:
        """Output range [a, b) whose samples touch low-res indices in [first_low, last_low]."""
        touches = (self.hi >= first_low) & (self.lo <= last_low)
        idx = np.flatnonzero(touches)
        return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)


@dataclass(frozen=True)
class Grid:
    """The sampling grid of one image size: rows and columns."""

    rows: Axis
    cols: Axis
    shape: tuple[int, int]

    @classmethod
    def build(cls, src_shape: tuple[int, int], input_size: int = 1024, low_res: int = 256) -> Grid:
        h, w = src_shape
        gain = min(input_size / h, input_size / w)  # letterbox gain of the SAM input
        scale = low_res / input_size
        content_h = max(round(h * gain), 1) * scale
        content_w = max(round(w * gain), 1) * scale
        whole = abs(content_h - round(content_h)) + abs(content_w - round(content_w)) <= 1e-3  # scale_masks' test
        limit_h, limit_w = (max(round(content_h), 1), max(round(content_w), 1)) if whole else (low_res, low_res)
        return cls(Axis.build(h, content_h, limit_h), Axis.build(w, content_w, limit_w), (h, w))


def upsample_window(logits: np.ndarray, grid: Grid, window: tuple[int, int, int, int]) -> np.ndarray:
    """Bilinear logits of output rows ``[y0, y1)`` and columns ``[x0, x1)``. float32 (y1-y0, x1-x0)."""
    y0, y1, x0, x1 = window
    r, c = grid.rows, grid.cols
    lo, hi = r.lo[y0:y1], r.hi[y0:y1]
    # the horizontal pass once per low-res row (output rows repeat each ~4x), then rows gathered:
    # every output value comes from the same operands in the same order, so the bits are the same
    first = lo[0]
    rows = logits[first : hi[-1] + 1]
    wx = c.w_hi[None, x0:x1]
    across = rows[:, c.lo[x0:x1]] * (1 - wx) + rows[:, c.hi[x0:x1]] * wx
    wy = r.w_hi[y0:y1, None]
    return across[lo - first] * (1 - wy) + across[hi - first] * wy


def positive_window(logits: np.ndarray, grid: Grid, threshold: float = 0.0) -> tuple[int, int, int, int] | None:
    """Output window that can hold positive pixels, or None when no low-res logit exceeds ``threshold``."""
    pos = logits > threshold
    return window_of(pos.any(1), pos.any(0), grid)


def window_of(rows_any: np.ndarray, cols_any: np.ndarray, grid: Grid) -> tuple[int, int, int, int] | None:
    """:func:`positive_window` from which low-res rows and columns hold a positive logit."""
    rows = np.flatnonzero(rows_any)
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(cols_any)
    y0, y1 = grid.rows.window(rows[0], rows[-1])
    x0, x1 = grid.cols.window(cols[0], cols[-1])
    if y1 <= y0 or x1 <= x0:
        return None
    return y0, y1, x0, x1


def upsample_mask(logits: np.ndarray, grid: Grid, threshold: float = 0.0, band: int = 256):
    """Threshold-upsampled mask of one ``(L, L)`` logit map (``L = imgsz / 4``, 256 at SAM's 1024), cropped to
    where it can be positive.

    Rows are computed in bands of ``band`` so float temporaries stay small on huge frames;
    the per-pixel arithmetic does not depend on the band, so the result is the same.

    Returns:
        ``(crop, (y0, x0))``: bool crop and its top-left corner in the output image, or
        ``(None, None)`` for an empty mask.
    """
    window = positive_window(logits, grid, threshold)
    if window is None:
        return None, None
    y0, y1, x0, x1 = window
    crop = np.empty((y1 - y0, x1 - x0), bool)
    for a in range(y0, y1, band):
        b = min(a + band, y1)
        crop[a - y0:b - y0] = upsample_window(logits, grid, (a, b, x0, x1)) > threshold
    return crop, (y0, x0)


def upsample_full(logits: np.ndarray, grid: Grid) -> np.ndarray:
    """Reference: the whole frame, same arithmetic. float32 (H, W)."""
    return upsample_window(logits, grid, (0, grid.shape[0], 0, grid.shape[1]))


def upsample_masks_on_device(logits, grid: Grid, threshold: float = 0.0, max_elements: int = 2**24):
    """:func:`upsample_mask` for a batch of logits where they are (a GPU): same crops, same bits.

    The same gathers, products and sums as :func:`upsample_window`, as separate float32 torch
    ops (each exactly rounded, as numpy's), over whole frames: a GPU does not need the window
    trick, and only the bool crops cross to the host. Float work is done ``max_elements``
    output pixels at a time (masks x rows of a band), so its temporaries (about four float32
    arrays of that size: 256 MiB at the default 16 Mi) do not grow with the batch or the image;
    the thresholded frames are kept as bool, one byte per pixel per mask of a part.

    Args:
        logits: ``(n, L, L)`` float32 torch tensor (``L = imgsz / 4``), on any device.
        grid: the image's sampling grid.

    Yields:
        ``(crop, (y0, x0))`` per mask, in order, as :func:`upsample_mask` returns them
        (``(None, None)`` for an empty mask); crops are numpy bool arrays.
    """
    import torch

    h, w = grid.shape
    dev = logits.device
    r, c = grid.rows, grid.cols
    col_lo, col_hi = torch.as_tensor(c.lo, device=dev), torch.as_tensor(c.hi, device=dev)
    row_lo, row_hi = torch.as_tensor(r.lo, device=dev), torch.as_tensor(r.hi, device=dev)
    wx, wy = torch.as_tensor(c.w_hi, device=dev)[None, None], torch.as_tensor(r.w_hi, device=dev)[None, :, None]
    step = max(1, max_elements // (h * w))  # masks per part
    for start in range(0, len(logits), step):
        part = logits[start:start + step]
        low = part > threshold
        rows_any, cols_any = low.any(2).cpu().numpy(), low.any(1).cpu().numpy()
        across = part[:, :, col_lo] * (1 - wx) + part[:, :, col_hi] * wx  # (m, 256, W)
        full = torch.empty((len(part), h, w), dtype=torch.bool, device=dev)
        band = max(1, max_elements // (len(part) * w))  # rows per band
        for a in range(0, h, band):
            b = min(a + band, h)
            weight = wy[:, a:b]
            full[:, a:b] = (across[:, row_lo[a:b]] * (1 - weight) + across[:, row_hi[a:b]] * weight) > threshold
        for i in range(len(part)):
            window = window_of(rows_any[i], cols_any[i], grid)
            if window is None:
                yield None, None
                continue
            y0, y1, x0, x1 = window
            yield full[i, y0:y1, x0:x1].cpu().numpy(), (y0, x0)
