"""A scene's items placed on an image: the rendered photo record (:class:`Scene`) and the placing of items
with occlusion limits (:func:`place_items`), shared by the synthetic scenes (:mod:`detseg.data.synth.generate`) and
the composites on real photos (:mod:`detseg.data.synth.composite`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from detseg.data.synth.food_items import DRAWERS
from detseg.data.synth.textures import per_pixel

MIN_VISIBLE_FRACTION = 0.4  # an item may hide at most 60% of an earlier one
MIN_INSIDE_FRACTION = 0.5  # at least half of an item lies inside the frame


@dataclass
class Scene:
    """One rendered photo.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR, before JPEG compression.
        masks: ``(N, H, W)`` bool, the visible pixels of each instance after occlusion.
        class_ids: ``(N,)`` int, indices into :data:`data.food_items.CLASS_NAMES`.
        jpeg_quality: the quality the image should be saved with.
    """

    image: np.ndarray
    masks: np.ndarray
    class_ids: np.ndarray
    jpeg_quality: int = 90
    meta: dict = field(default_factory=dict)


def _rotate(colour: np.ndarray, alpha: np.ndarray, angle: float, margin: int):
    """Rotate an item canvas by ``angle`` degrees into a canvas that fits it plus ``margin``."""
    h, w = alpha.shape
    side = int(np.ceil(np.hypot(h, w))) + 2 * margin
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (side - w) / 2, (side - h) / 2
    colour = cv2.warpAffine(colour, m, (side, side), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(alpha, m, (side, side), flags=cv2.INTER_LINEAR)
    return colour, alpha


def _crop(alpha: np.ndarray, colour: np.ndarray, margin: int):
    """Trim empty borders of a rotated canvas, keeping ``margin`` pixels for the shadow."""
    ys, xs = np.nonzero(alpha > 0.01)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, alpha.shape[0])
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, alpha.shape[1])
    return colour[y0:y1, x0:x1], alpha[y0:y1, x0:x1]


@dataclass
class Placed:
    """What :func:`place_items` put down: per placed item (index k >= 1 in ``ids``) its visible
    pixel count, class id and region ``(y0, y1, x0, x1)``. Index 0 is a placeholder."""

    visible: list = field(default_factory=lambda: [0])
    full_area: list = field(default_factory=lambda: [0])
    classes: list = field(default_factory=lambda: [0])
    boxes: list = field(default_factory=lambda: [None])

    def masks(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, H, W)`` bool visible masks and ``(N,)`` class ids of the items still visible."""
        keep = [k for k in range(1, len(self.visible)) if self.visible[k] > 0]
        masks = np.zeros((len(keep), *ids.shape), bool)
        for row, k in enumerate(keep):
            y0, y1, x0, x1 = self.boxes[k]
            masks[row, y0:y1, x0:x1] = ids[y0:y1, x0:x1] == k
        return masks, np.array([self.classes[k] for k in keep], dtype=np.int64)


def place_items(rng, img, ids, light, light_dir, n_items, min_size, max_size, drawers=DRAWERS, upright=(2,),
                class_ids=None, placed=None, tint=None, label=True, coverage=None) -> Placed:
    """Draw ``n_items`` items from ``drawers`` into ``img`` (float32 BGR, in place) with soft shadows.

    Args:
        ids: ``(H, W)`` int16 instance map, updated in place when ``label`` (k = k-th labelled item).
        light, light_dir: the scene's lighting field and direction (items are lit by it).
        drawers: ``(rng, size) -> (colour, alpha)`` functions; ``upright`` lists those drawn
            with only a small tilt (cupcakes stand on their wrapper).
        class_ids: class id of each drawer (default: its index).
        placed: the record to extend (several calls build one scene).
        tint: optional per-channel colour factor for the items (a photo's colour cast).
        label: False draws unlabelled look-alikes: they cover the background only (placed
            before the labelled items, so they never hide a labelled one).
        coverage: optional ``(H, W)`` float32 map, updated in place to the highest alpha of any item
            drawn over each pixel (shadows not included).

    Returns:
        The :class:`Placed` record. An item that would hide more than 60% of an earlier one
        is moved (up to 6 tries) or skipped; fully hidden items are dropped by ``Placed.masks``.
    """
    h, w = ids.shape
    placed = placed if placed is not None else Placed()
    visible, full_area = placed.visible, placed.full_area
    for _ in range(n_items):
        cls = int(rng.integers(len(drawers)))
        size = float(np.exp(rng.uniform(np.log(min_size), np.log(max(max_size, min_size * 1.5)))))
        colour, alpha = drawers[cls](rng, size)
        if rng.random() < 0.5:  # random aspect
            fx, fy = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)
            new = (max(3, int(alpha.shape[1] * fx)), max(3, int(alpha.shape[0] * fy)))
            colour, alpha = cv2.resize(colour, new), cv2.resize(alpha, new)
        angle = rng.normal(0, 20) if cls in upright else rng.uniform(0, 360)
        margin = int(size * 0.1) + 3
        colour, alpha = _rotate(colour, alpha, angle, margin)
        colour, alpha = _crop(alpha, colour, margin)
        if tint is not None:
            colour *= tint
        ph, pw = alpha.shape
        item_mask = alpha >= 0.5
        item_area = int(item_mask.sum())
        if item_area == 0:
            continue

        for _attempt in range(6):
            y0 = int(rng.integers(-ph // 2, h - ph // 2))
            x0 = int(rng.integers(-pw // 2, w - pw // 2))
            fy0, fy1, fx0, fx1 = max(y0, 0), min(y0 + ph, h), max(x0, 0), min(x0 + pw, w)
            sub = item_mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
            inside = int(sub.sum())
            if inside < MIN_INSIDE_FRACTION * item_area or inside == 0:
                continue
            if not label:
                break
            covered = np.bincount(ids[fy0:fy1, fx0:fx1][sub], minlength=len(visible))
            after = np.asarray(visible) - covered
            if np.all(after[1:] >= MIN_VISIBLE_FRACTION * np.asarray(full_area[1:])):
                break
        else:
            continue  # no free spot: skip the item rather than bury another one

        region = (slice(fy0, fy1), slice(fx0, fx1))
        local = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
        # soft shadow cast away from the light
        shift = np.float32([[1, 0, -light_dir[0] * size * 0.06], [0, 1, -light_dir[1] * size * 0.06]])
        shadow = cv2.warpAffine(alpha, shift, (pw, ph))
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, size * 0.04))[local]
        a = per_pixel(alpha[local])
        patch = img[region]  # a view: img * (1 - 0.45 shadow) * (1 - a) + colour * light * a, in place
        patch *= per_pixel(1 - 0.45 * shadow)
        patch *= 1 - a
        lit = colour[local] * per_pixel(light[region])
        lit *= a
        patch += lit
        if coverage is not None:
            np.maximum(coverage[region], alpha[local], out=coverage[region])
        if not label:
            continue
        ids[region][sub] = len(visible)
        visible[:] = list(after) + [inside]
        full_area.append(inside)
        placed.classes.append(class_ids[cls] if class_ids is not None else cls)
        placed.boxes.append((fy0, fy1, fx0, fx1))
    return placed
