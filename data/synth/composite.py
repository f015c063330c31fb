"""Generated food items composited onto real photos, with exact masks.

A detector trained on synthetic scenes alone learns that "looks like a real photo" means
"background". Here the same procedural items (and unlabelled look-alikes from
:mod:`detseg.data.synth.distractors`) are pasted into real photos and matched to each photo: lit by
its own low-frequency brightness and exposure, tinted by its colour cast, shadowed away from
its brighter side, softened to its sharpness (:func:`fine_detail`) and noised at its noise
level (:func:`noise_sigma`), so realness stops being a cue. Masks stay exact: the visible
pixels of each pasted item after occlusion, whatever the photo.

Example:
    >>> import numpy as np
    >>> from detseg.data.synth.composite import render_on_photo
    >>> photo = np.full((300, 400, 3), 120, np.uint8)
    >>> scene = render_on_photo(np.random.default_rng(0), photo, 256)
    >>> scene.image.shape, scene.masks.shape[1:]
    ((192, 256, 3), (192, 256))
"""

from __future__ import annotations

import cv2
import numpy as np

from detseg.data.synth.distractors import COOKIE_VARIANTS, DISTRACTORS
from detseg.data.synth.food_items import DRAWERS
from detseg.data.synth.scene import Placed, Scene, place_items
from detseg.data.synth.textures import per_pixel

MAX_ITEMS = 12
MAX_DISTRACTORS = 6
MIN_LIGHT_SLOPE = 0.1  # brightness change across the photo, relative to its mean, that shows where the light is
BLUR_SIGMAS = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0)  # the pasted items' softening is picked from these
FLAT_FRACTION = 0.3  # noise is measured on this flattest share of a photo (its texture and edges are not noise)


def random_crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A random crop of 60-100% of the photo (its aspect kept), resized to ``size`` on the long
    side, maybe mirrored. The photo's own aspect and sharpness are kept: a crop is upscaled only
    as far as needed, so backgrounds are not softer than the pasted items."""
    h, w = photo.shape[:2]
    frac = rng.uniform(0.6, 1.0)
    ch, cw = min(h, max(8, int(h * frac))), min(w, max(8, int(w * frac)))  # a photo under 8 px: all of it
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    scale = size / max(ch, cw)
    new = (max(8, round(cw * scale)), max(8, round(ch * scale)))
    crop = cv2.resize(crop, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop[:, ::-1]) if rng.random() < 0.5 else crop


def photo_lighting(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """How a pasted item should be lit in this photo.

    Returns:
        ``(light, tint, light_dir)``: an ``(H, W)`` float32 field (the photo's own low-frequency
        brightness relative to its mean, partly applied, times its overall exposure), a
        per-channel float32 colour factor (the photo's colour cast, partly applied) and a
        unit ``(x, y)`` direction towards the light, for shadows: towards the photo's brighter
        side (within 30 degrees) where its brightness has a clear slope, random where it is flat.
    """
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    low = cv2.GaussianBlur(gray, (0, 0), max(h, w) / 12)
    mean = float(low.mean()) + 1e-3
    local = np.clip(low / mean, 0.5, 1.5) ** rng.uniform(0.4, 0.9)
    exposure = np.clip(mean / 125.0, 0.45, 1.4) ** rng.uniform(0.3, 0.7)
    light = (local * exposure).astype(np.float32)
    bgr = image.reshape(-1, 3).mean(0) + 1.0
    tint = ((bgr / bgr.mean()) ** rng.uniform(0.2, 0.6)).astype(np.float32)
    random_angle, jitter = rng.uniform(0, 2 * np.pi), rng.uniform(-np.pi / 6, np.pi / 6)  # drawn either way
    slope = brightness_slope(low)
    angle = np.arctan2(slope[1], slope[0]) + jitter if np.hypot(*slope) > MIN_LIGHT_SLOPE else random_angle
    return light, tint, (float(np.cos(angle)), float(np.sin(angle)))


def brightness_slope(low: np.ndarray) -> tuple[float, float]:
    """Least-squares plane through a brightness image.

    Args:
        low: ``(H, W)`` float32 brightness, usually heavily blurred.

    Returns:
        ``(x, y)``: the change in brightness across the whole width and height, relative to the
        mean brightness (0.2: 20% brighter at the right / bottom edge than at the left / top).
    """
    h, w = low.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = xs / max(w - 1, 1) - 0.5, ys / max(h - 1, 1) - 0.5  # -0.5 .. 0.5 across the frame
    centred = low - low.mean()
    mean = float(low.mean()) + 1e-3
    return (float((xs * centred).sum() / (xs * xs).sum()) / mean, float((ys * centred).sum() / (ys * ys).sum()) / mean)


def noise_sigma(image: np.ndarray) -> float:
    """The standard deviation of a photo's pixel noise, per channel.

    Immerkaer's estimator (1996, "Fast noise variance estimation": the mean absolute response to a
    Laplacian-difference kernel, which cancels smooth content), averaged over the flattest
    :data:`FLAT_FRACTION` of the photo only, flatness judged on a blurred copy (so that the choice
    does not depend on the noise itself): texture and edges, which the kernel does not cancel, are
    not counted as noise.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` image, any dtype.

    Returns:
        The noise's standard deviation in grey levels (0.0 for an image under 3x3 pixels).
    """
    channels = image.reshape(*image.shape[:2], -1).astype(np.float32)
    h, w = channels.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    kernel = np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])
    response = np.abs(cv2.filter2D(channels, -1, kernel, borderType=cv2.BORDER_REFLECT)).reshape(h, w, -1).mean(2)
    smooth = cv2.GaussianBlur(channels.reshape(h, w, -1).mean(2), (0, 0), 2.0)
    structure = np.hypot(cv2.Sobel(smooth, -1, 1, 0), cv2.Sobel(smooth, -1, 0, 1))
    flat = structure <= np.quantile(structure, FLAT_FRACTION)
    return float(np.sqrt(np.pi / 2) * response[flat].mean() / 6)


def fine_detail(image: np.ndarray, where: np.ndarray | None = None) -> float:
    """How sharp an image (region) is, independent of its contrast.

    Detail finer than 1 px (``image - blur(image, 1)``) over detail up to 3 px
    (``image - blur(image, 3)``), on the grey image: blur removes the first much faster than the
    second. It also depends on content (a busy pattern scores higher than a smooth disc at the same
    blur) and rises with noise, so compare like with like.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` BGR image, any dtype.
        where: optional ``(H, W)`` bool mask of the pixels to measure (default: all).

    Returns:
        The ratio, about 0.3-0.9 for photos; 0.0 for an empty ``where``.
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = gray.astype(np.float32)
    fine = np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 1.0))
    coarse = np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 3.0))
    if where is not None:
        fine, coarse = fine[where], coarse[where]
    return float(fine.sum() / (coarse.sum() + 1e-6))


def matching_blur(img: np.ndarray, pasted: np.ndarray, target: float,
                  noise: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Pick the blur that makes pasted pixels as sharp as the photo.

    Args:
        img: ``(H, W, 3)`` float32 BGR image holding the pasted items.
        pasted: ``(H, W)`` bool mask of the pasted pixels.
        target: the photo's :func:`fine_detail`, measured away from the pasted pixels.
        noise: optional ``(H, W)`` float32 noise that will be added to the pasted pixels after
            blurring (it adds fine detail too, so it is counted when comparing).

    Returns:
        ``(sigma, soft)``: the sigma from :data:`BLUR_SIGMAS` whose result is closest to ``target``,
        and ``img`` blurred with it (``(H, W, 3)`` float32).
    """
    # blurring and the grey conversion commute: compare on grey, blur the colour image once
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gaps = []
    for sigma in BLUR_SIGMAS:
        seen = cv2.GaussianBlur(gray, (0, 0), sigma)
        gaps.append(abs(fine_detail(seen if noise is None else seen + noise, pasted) - target))
    sigma = BLUR_SIGMAS[int(np.argmin(gaps))]
    return sigma, cv2.GaussianBlur(img, (0, 0), sigma)


def render_on_photo(rng: np.random.Generator, photo: np.ndarray, size: int = 640,
                    max_items: int = MAX_ITEMS, distractor_rate: float = 0.7, extra_drawers=()) -> Scene:
    """Composite generated items onto a crop of a real photo.

    Args:
        rng: the only source of randomness; the same state and photo give the same scene.
        photo: ``(H, W, 3)`` uint8 BGR real photo (the background).
        size: the output's long side in pixels (the photo's aspect is kept).
        max_items: at most this many labelled items (0 to ``max_items``; about one image in
            ten has none, only look-alikes, a hard negative).
        distractor_rate: probability that unlabelled look-alikes are drawn (1 to 6 of them).
        extra_drawers: ``(drawer, class_id)`` pairs drawn beside the procedural items, e.g. real
            cut-outs from :func:`detseg.data.synth.real_items.cutout_drawer`.

    Returns:
        A :class:`~detseg.data.synth.generate.Scene`: the image (before JPEG), exact visible masks and
        class ids of the labelled items only; ``meta["distractors"]`` counts the look-alikes.
    """
    base = random_crop(rng, photo, size)
    height, width = base.shape[:2]
    light, tint, light_dir = photo_lighting(rng, base)
    img = base.astype(np.float32)
    ids = np.zeros((height, width), np.int16)
    n_items = 0 if max_items < 1 or rng.random() < 0.1 else int(rng.integers(1, max_items + 1))
    n_distractors = int(rng.integers(1, MAX_DISTRACTORS + 1)) if rng.random() < distractor_rate else 0
    side = min(height, width)
    max_size = max(side * 0.6 / np.sqrt(max(1.0, (n_items + n_distractors) / 3)), 32.0)
    min_size = max(14.0, side * 0.06)
    # look-alikes first: they are background, so they may be covered but never cover a labelled item
    coverage = np.zeros((height, width), np.float32)  # every pasted item's alpha, look-alikes included
    place_items(rng, img, ids, light, light_dir, n_distractors, min_size, max_size, drawers=DISTRACTORS,
                upright=(4,), tint=tint, label=False, coverage=coverage)
    extra_drawers = tuple((d, 1) for d in COOKIE_VARIANTS) + tuple(extra_drawers)  # shop biscuits are cookies
    drawers = DRAWERS + tuple(d for d, _ in extra_drawers)
    class_ids = tuple(range(len(DRAWERS))) + tuple(c for _, c in extra_drawers)
    placed = place_items(rng, img, ids, light, light_dir, n_items, min_size, max_size, drawers=drawers,
                         class_ids=class_ids, tint=tint, placed=Placed(), coverage=coverage)

    # camera: the pasted items get the photo's own softness and noise (measured on the crop, which
    # already has them), then a light noise and one JPEG pass over all
    item_noise = rng.standard_normal((height, width), dtype=np.float32)
    frame_noise = rng.standard_normal((height, width), dtype=np.float32)
    frame_sigma = np.float32(rng.uniform(0.0, 1.5))
    pasted = coverage > 0  # the items' own pixels (alpha), not the shadows they cast on the photo
    if pasted.any():
        target = fine_detail(base, ~pasted) if (~pasted).any() else fine_detail(base)
        ys, xs = np.nonzero(pasted)  # blur only around what was pasted (6 candidate blurs)
        y0, y1 = max(0, ys.min() - 8), min(height, ys.max() + 9)
        x0, x1 = max(0, xs.min() - 8), min(width, xs.max() + 9)
        region, alpha = img[y0:y1, x0:x1], coverage[y0:y1, x0:x1]
        # the same noise in every channel, at the photo's per-channel level, on the items' pixels only
        grain = np.float32(noise_sigma(base)) * alpha * item_noise[y0:y1, x0:x1]
        _, soft = matching_blur(region, pasted[y0:y1, x0:x1], target, noise=grain)
        edge = cv2.dilate(pasted[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
        region += per_pixel(cv2.GaussianBlur(edge, (0, 0), 1.0)) * (soft - region)  # soft edges blend in
        region += per_pixel(grain)
    img += per_pixel(frame_sigma * frame_noise)
    image = np.clip(img, 0, 255, out=img).astype(np.uint8)
    masks, class_ids = placed.masks(ids)
    return Scene(image, masks, class_ids, jpeg_quality=int(rng.integers(60, 96)),
                 meta={"distractors": n_distractors})
