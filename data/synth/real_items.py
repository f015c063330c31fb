"""Real items cut out of hand-labelled photos, to paste into composites beside the drawn ones.

The labels are boxes (COCO JSON, e.g. ``data/real/uj-train-cookies.json``: 231 real cookies
and biscuits in 23 of 29 UJ Staple Pantry training photos, boxed by eye). A cut-out is the
ellipse inscribed in a box, feathered by one pixel: cookies are round, and the pasted
alpha *is* the instance mask, so the composite's labels stay exact whatever the cut-out
holds. Boxes that touch the photo's border (cut-off items) are not used as cut-outs.

Example:
    >>> from detseg.data.synth.real_items import load_cutouts   # doctest: +SKIP
    >>> photos = "../shared/datasets/uj-staple-pantry-train-images/images"
    >>> cutouts = load_cutouts("data/real/uj-train-cookies.json", photos)
    >>> draw = cutout_drawer(cutouts["cookie"])
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from detseg.data.synth.food_items import _ellipse

MIN_SIDE = 24  # px: smaller boxes carry too little texture to paste


def load_box_labels(path: str | Path) -> dict[str, list[tuple[str, tuple[float, float, float, float]]]]:
    """``file name -> [(class name, (x0, y0, x1, y1)), ...]`` from a COCO JSON of boxes.

    Coordinates are fractions of the image's width and height (as in the JSON's ``images``),
    so they stay right on a resized copy of the photo.
    """
    coco = json.loads(Path(path).read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = {im["id"]: im for im in coco["images"]}
    labels: dict[str, list] = {im["file_name"]: [] for im in images.values()}
    for ann in coco["annotations"]:
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        W, H = im["width"], im["height"]
        labels[im["file_name"]].append((names[ann["category_id"]], (x / W, y / H, (x + w) / W, (y + h) / H)))
    return labels


def cutout(photo: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
    """The ellipse inscribed in ``box`` (x0, y0, x1, y1) of a BGR photo: ``(colour float32, alpha float32)``."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = photo[y0:y1, x0:x1].astype(np.float32)
    h, w = crop.shape[:2]
    alpha = np.zeros((h + 2, w + 2), np.float32)  # one pixel of margin for the feather
    _ellipse(alpha, ((w + 1) / 2, (h + 1) / 2), (w / 2, h / 2), 0, 1.0)
    colour = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    return colour, alpha


@lru_cache(maxsize=4)
def load_cutouts(labels_json: str | Path, images_dir: str | Path) -> dict[str, tuple]:
    """Cut-outs per class name of every labelled box that lies inside its photo and is >= MIN_SIDE px."""
    from detseg.images import read_image

    out: dict[str, list] = {}
    for name, boxes in sorted(load_box_labels(labels_json).items()):
        photo = read_image(Path(images_dir) / name)
        h, w = photo.shape[:2]
        for cls, box in boxes:
            x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
            if min(x1 - x0, y1 - y0) < MIN_SIDE or x0 <= 1 or y0 <= 1 or x1 >= w - 1 or y1 >= h - 1:
                continue
            out.setdefault(cls, []).append(cutout(photo, (x0, y0, x1, y1)))
    return {cls: tuple(items) for cls, items in out.items()}


def cutout_drawer(items):
    """A drawer ``(rng, size) -> (colour, alpha)`` that pastes a random cut-out scaled to ``size``."""
    if not items:
        raise ValueError("no cut-outs to draw from")

    def draw_real(rng: np.random.Generator, size: float):
        colour, alpha = items[int(rng.integers(len(items)))]
        scale = size / max(alpha.shape)
        new = (max(3, round(alpha.shape[1] * scale)), max(3, round(alpha.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        colour = cv2.resize(colour, new, interpolation=interp) * np.float32(rng.uniform(0.85, 1.15))
        return np.clip(colour, 0, 255), cv2.resize(alpha, new, interpolation=interp)

    return draw_real
