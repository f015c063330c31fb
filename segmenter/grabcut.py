"""GrabCut from each box, on a small crop around the box: weight-free and offline.

Why a crop: the colour models only need the object and a ring of its surroundings,
and a crop downscaled to ~160 px makes GrabCut many times faster than on the whole image
(and better: far-away clutter no longer pollutes the background model).

Initialisation: outside the box is sure background; inside, the inscribed ellipse is
probable foreground, the central ellipse of 70% of the box's width and height sure
foreground, and the box corners probable background (most objects are rounder than their
box, and a box prompt is centred on its object). A loose box can hold an object smaller
than that core: when the result presses against the core along much of its outline,
GrabCut runs again with a core of 30%. When GrabCut collapses (almost nothing or almost
the whole box, nothing beyond the forced core, or a shape that barely overlaps the
ellipse), the inscribed ellipse is returned instead.

Score: how well GrabCut's own two colour models (5-component Gaussian mixtures) tell the mask
from its surroundings. Each pixel of the crop gets the posterior ``p_fg = L_fg / (L_fg + L_bg)``;
the separation is the mean of ``p_fg`` over the mask and of ``1 - p_fg`` over the rest of the crop,
0.5 when the colours are indistinguishable and 1 when they never overlap; the score is that
mapped to [0, 1] (``2 * separation - 1``). The ellipse fallback scores 0: it is a guess, and
``--min-mask-score`` drops it at any positive threshold.

The defaults were tuned on the UJ Staple Pantry photos (every third photo first, then all;
see the README's figures): the large core with its loose-box retry, a wider background
ring (0.2 -> 0.3 of the box) and 2 iterations instead of 4 took mask AP from 0.599 to
0.623 at half the time per box (AP with every mask scored 1; ranked by this score, 0.648: docs/benchmarks.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from detseg.errors import InputError
from detseg.segmenter.base import BoxPromptSegmenter, assemble_masks, check_boxes, check_image, wants_compact
from detseg.segmenter.box import ellipse_mask
from detseg.segmenter.mask_ops import fill_holes, largest_component


class GrabCutSegmenter(BoxPromptSegmenter):
    """Box -> mask with OpenCV GrabCut on a downscaled crop around the box.

    Args:
        iterations: GrabCut iterations.
        margin: background ring around the box, as a fraction of the box's longer side.
        max_side: the crop is downscaled so that its longer side is at most this many pixels.
        min_fill, max_fill: a result covering less / more of the box than this is a collapse,
            replaced by the inscribed ellipse.
        min_grow: a result covering less than this fraction of the box outside the sure core is
            a collapse too (GrabCut found nothing beyond what it was told).
        core: the central ellipse of this fraction of the box is marked sure foreground (0: none).
        loose_core, max_hug: when the result presses against the sure core along more than
            ``max_hug`` of its outline (the box is loose, the object smaller than the core), GrabCut
            runs again with a core of ``loose_core``.
        min_prior_iou: a result whose IoU with the inscribed ellipse is below this is replaced by it.
        smooth: Gaussian sigma (pixels of the downscaled crop) smoothing the mask's outline.
        min_side: crops smaller than this are upscaled to it first (more pixels for the colour models).
        seed: OpenCV's RNG seed before each box (GrabCut's k-means init is random), for
            reproducible masks.
        output: "auto" (sv.CompactMask from ~1 megapixel up), "dense" or "compact".
    """

    def __init__(self, iterations: int = 2, margin: float = 0.3, max_side: int = 160,
                 min_fill: float = 0.25, max_fill: float = 0.98, core: float = 0.7, min_prior_iou: float = 0.3,
                 smooth: float = 1.5, min_side: int = 96, min_grow: float = 0.05, loose_core: float = 0.3,
                 max_hug: float = 0.25, seed: int = 0, output: str = "auto"):
        self.iterations = iterations
        self.margin = margin
        self.max_side = max_side
        self.min_fill = min_fill
        self.max_fill = max_fill
        self.core = core
        self.min_prior_iou = min_prior_iou
        self.smooth = smooth
        self.min_side = min_side
        self.min_grow = min_grow
        self.loose_core = loose_core
        self.max_hug = max_hug
        self.seed = seed
        self.output = output
        for name in ("margin", "min_fill", "max_fill", "core", "loose_core", "max_hug", "min_grow", "min_prior_iou"):
            value = getattr(self, name)
            if not 0 <= value <= (10 if name == "margin" else 1):
                raise InputError(f"GrabCutSegmenter: {name} must be in [0, {10 if name == 'margin' else 1}], "
                                 f"got {value}")
        if iterations < 1 or max_side < 8 or min_side < 8:
            raise InputError(f"GrabCutSegmenter: iterations >= 1 and max_side, min_side >= 8, got "
                             f"{iterations}, {max_side}, {min_side}")

    def segment_box(self, image: np.ndarray, box) -> tuple[np.ndarray, tuple[int, int], float]:
        """One box: ``(crop_mask, (y0, x0), score)``; score in [0, 1]: GrabCut's colour separation, 0 for the
        ellipse fallback (module docstring)."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in box)
        pad = self.margin * max(x1 - x0, y1 - y0) + 2
        cx0, cy0 = int(max(np.floor(x0 - pad), 0)), int(max(np.floor(y0 - pad), 0))
        cx1, cy1 = int(min(np.ceil(x1 + pad), w)), int(min(np.ceil(y1 + pad), h))
        crop = image[cy0:cy1, cx0:cx1]
        ch, cw = crop.shape[:2]
        local_box = (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)
        prior = ellipse_mask(local_box, (ch, cw))
        scale = min(1.0, self.max_side / max(ch, cw))
        if self.min_side and max(ch, cw) < self.min_side:
            scale = self.min_side / max(ch, cw)
        sh, sw = max(int(round(ch * scale)), 1), max(int(round(cw * scale)), 1)
        if scale != 1:
            small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        else:
            small = crop
        sbox = [v * (sw / cw if i % 2 == 0 else sh / ch) for i, v in enumerate(local_box)]

        inside = np.zeros((sh, sw), bool)
        ya, yb = int(np.floor(sbox[1])), int(np.ceil(sbox[3]))
        xa, xb = int(np.floor(sbox[0])), int(np.ceil(sbox[2]))
        inside[max(ya, 0):yb, max(xa, 0):xb] = True
        small_prior = ellipse_mask(sbox, (sh, sw))
        result, hugged, models = None, False, None
        if min(sh, sw) >= 4 and small_prior.any():
            result, hugged, models = self._grabcut(small, sbox, inside, small_prior, self.core)
            if hugged and 0 <= self.loose_core < self.core:  # a loose box: the core was too big
                result, _, models = self._grabcut(small, sbox, inside, small_prior, self.loose_core)
        if result is None:
            return prior, (cy0, cx0), 0.0
        score = colour_separation(small, result, *models)
        soft = result.astype(np.float32)
        if self.smooth > 0:
            soft = cv2.GaussianBlur(soft, (0, 0), self.smooth)
        if scale != 1:
            soft = cv2.resize(soft, (cw, ch), interpolation=cv2.INTER_LINEAR if scale < 1 else cv2.INTER_AREA)
        up = soft >= 0.5
        box_pixels = np.zeros((ch, cw), bool)
        box_pixels[max(int(np.ceil(local_box[1] - 0.5)), 0):int(np.ceil(local_box[3] - 0.5)),
                   max(int(np.ceil(local_box[0] - 0.5)), 0):int(np.ceil(local_box[2] - 0.5))] = True
        return up & box_pixels, (cy0, cx0), score

    def _grabcut(self, small, sbox, inside, prior, core_fraction: float):
        """GrabCut on the downscaled crop with a sure core of ``core_fraction``.

        Returns:
            ``(mask or None, hugged, (bgd_model, fgd_model) or None)``: the cleaned foreground (None when
            GrabCut collapsed), whether it presses against the sure core along more than ``max_hug`` of
            the core's outline (GrabCut would have cut inside the core), and GrabCut's colour models.
        """
        sh, sw = inside.shape
        gc = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        gc[inside] = cv2.GC_PR_BGD
        gc[prior] = cv2.GC_PR_FGD
        core = np.zeros((sh, sw), bool)
        if core_fraction > 0:
            cx, cy = (sbox[0] + sbox[2]) / 2, (sbox[1] + sbox[3]) / 2
            hw, hh = (sbox[2] - sbox[0]) * core_fraction / 2, (sbox[3] - sbox[1]) * core_fraction / 2
            core = ellipse_mask((cx - hw, cy - hh, cx + hw, cy + hh), (sh, sw))
            gc[core] = cv2.GC_FGD
        if not (gc == cv2.GC_BGD).any():
            return None, False, None
        cv2.setRNGSeed(self.seed)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(small, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate colour models (e.g. a flat crop): use the fallback
            return None, False, None
        fg = fill_holes(largest_component((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)))
        kernel = np.ones((3, 3), np.uint8)
        outline = core & ~cv2.erode(core.astype(np.uint8), kernel).astype(bool)
        near_background = cv2.dilate((~fg).astype(np.uint8), kernel).astype(bool)
        hugged = bool(outline.any()) and (outline & near_background).sum() / outline.sum() > self.max_hug
        fill = fg.sum() / max(int(inside.sum()), 1)
        prior_iou = (fg & prior).sum() / max((fg | prior).sum(), 1)
        grown = (fg & ~core).sum() / max((inside & ~core).sum(), 1)
        if self.min_fill <= fill <= self.max_fill and prior_iou >= self.min_prior_iou and grown >= self.min_grow:
            return fg, hugged, (bgd, fgd)
        return None, hugged, None

    def predict_masks(self, image: np.ndarray, boxes):
        """Masks ``(N, H, W)`` bool (CompactMask for large frames), one per box in order, and scores
        ``(N,)`` in [0, 1]: GrabCut's colour separation, 0.0 for the ellipse fallback and an empty box."""
        check_image(image)
        shape = image.shape[:2]
        clipped, valid = check_boxes(boxes, shape)
        crops = [(None, None)] * len(clipped)
        scores = np.zeros(len(clipped), np.float32)
        for i in np.flatnonzero(valid):
            crop, corner, scores[i] = self.segment_box(image, clipped[i])
            crops[i] = (crop, corner)
        return assemble_masks(crops, range(len(crops)), len(crops), shape, wants_compact(self.output, shape)), scores


def gmm_likelihood(pixels: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Likelihood of ``pixels`` ``(N, 3)`` float under an OpenCV GrabCut colour model ``(1, 65)`` float64.

    The model's layout (OpenCV's ``grabcut.cpp``): 5 component weights, 5 means of 3, 5 covariances of 3x3.
    Returns ``(N,)`` float64; a component with a singular covariance is skipped.
    """
    model = np.asarray(model, np.float64).ravel()
    weights, means, covs = model[:5], model[5:20].reshape(5, 3), model[20:65].reshape(5, 3, 3)
    out = np.zeros(len(pixels), np.float64)
    for w, mean, cov in zip(weights, means, covs):
        det = np.linalg.det(cov)
        if w <= 0 or det <= 1e-12:
            continue
        diff = pixels - mean
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
        out += w * np.exp(-0.5 * maha) / np.sqrt((2 * np.pi) ** 3 * det)
    return out


def colour_separation(image: np.ndarray, mask: np.ndarray, bgd_model: np.ndarray, fgd_model: np.ndarray) -> float:
    """``2 * separation - 1`` in [0, 1]: how well GrabCut's two colour models tell ``mask`` from the rest.

    Args:
        image: ``(H, W, 3)`` uint8, the (downscaled) crop GrabCut ran on, in the channel order it was given.
        mask: ``(H, W)`` bool, the foreground; every other pixel of the crop is background.
        bgd_model, fgd_model: GrabCut's models ``(1, 65)`` float64 after its iterations.
    """
    mask = np.asarray(mask, bool)
    if not mask.any() or mask.all():
        return 0.0
    pixels = image.reshape(-1, 3).astype(np.float64)
    fg, bg = gmm_likelihood(pixels, fgd_model), gmm_likelihood(pixels, bgd_model)
    p_fg = np.divide(fg, fg + bg, out=np.full_like(fg, 0.5), where=(fg + bg) > 0).reshape(mask.shape)
    separation = 0.5 * (p_fg[mask].mean() + (1.0 - p_fg[~mask]).mean())
    return float(np.clip(2.0 * separation - 1.0, 0.0, 1.0))
