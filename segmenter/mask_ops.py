"""Small mask clean-up operations on ``(H, W)`` bool masks."""

from __future__ import annotations

import cv2
import numpy as np


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions of a mask that do not touch the image border."""
    padded = np.ascontiguousarray(np.pad(mask.astype(np.uint8), 1))  # OpenCV needs C order (a crop may be F)
    cv2.floodFill(padded, None, (0, 0), 2)
    return mask.astype(bool) | (padded[1:-1, 1:-1] == 0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected component of a mask."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(mask, np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
