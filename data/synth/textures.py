"""Procedural surfaces and lighting for the synthetic food generator.

Every function takes a ``numpy.random.Generator`` and returns ``float32`` BGR images
in ``[0, 255]`` of shape ``(H, W, 3)`` (or ``(H, W)`` for scalar fields), so that the
same generator state always gives the same pixels.
"""

from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``cell`` pixels wide. Shape (h, w)."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal_noise(
    rng: np.random.Generator, h: int, w: int, cells: tuple[float, ...] = (96, 24, 6), decay: float = 0.5
) -> np.ndarray:
    """Sum of value-noise octaves, normalised to mean 0 and roughly unit range. Shape (h, w)."""
    if not cells:
        raise ValueError("fractal_noise needs at least one octave (cells)")
    out = None
    amp, total = 1.0, 0.0
    for cell in cells:  # out = sum(amp * (octave - 0.5)), in place
        octave = value_noise(rng, h, w, cell)
        octave -= 0.5
        if amp != 1.0:
            octave *= amp
        if out is None:
            out = octave
        else:
            out += octave
        total += amp
        amp *= decay
    out /= total
    out *= 2.0
    return out


def per_pixel(field: np.ndarray) -> np.ndarray:
    """A scalar field ``(H, W)`` or ``(H, W, 1)`` repeated into a contiguous ``(H, W, 3)`` array, same dtype.

    Why: numpy broadcasts ``image * field[..., None]`` with an inner loop of 3 elements, ~10x slower
    than a product of two contiguous arrays; ``image * per_pixel(field)`` gives the same bits.
    """
    field = field.reshape(field.shape[:2])
    if field.dtype == np.float32:
        return cv2.cvtColor(field, cv2.COLOR_GRAY2BGR)
    return cv2.merge([field, field, field])


def per_channel(colour, w: int) -> np.ndarray:
    """A BGR triple ``(3,)`` repeated along a row: ``(w, 3)``, same dtype (for the reason of :func:`per_pixel`)."""
    return np.tile(np.asarray(colour), (w, 1))


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend of two BGR colours; ``t`` (H, W) in [0, 1] -> (H, W, 3)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    out = per_pixel(t)  # a + (b - a) * t, computed in place
    out *= per_channel(b - a, t.shape[1])
    out += per_channel(a, t.shape[1])
    return out


def _jitter(rng: np.random.Generator, bgr, amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(bgr, np.float32) + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def _coords(h: int, w: int, angle: float) -> np.ndarray:
    """Pixel coordinate along direction ``angle`` (radians). Shape (h, w)."""
    xs = np.arange(w, dtype=np.float32)[None, :] * np.float32(np.cos(angle))
    ys = np.arange(h, dtype=np.float32)[:, None] * np.float32(np.sin(angle))
    return xs + ys


def wood(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Planks with warped growth rings and fine grain."""
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.05)
    across = _coords(h, w, angle + np.pi / 2)
    warp = fractal_noise(rng, h, w, (160, 40))
    rings = 0.5 + 0.5 * np.sin(across * rng.uniform(0.05, 0.12) + warp * rng.uniform(4, 9))
    # fine grain: noise stretched along the planks
    if abs(np.cos(angle)) > 0.5:
        grain_shape = (max(2, h // 2), max(2, w // 60))
    else:
        grain_shape = (max(2, h // 60), max(2, w // 2))
    grain = cv2.resize(rng.random(grain_shape, dtype=np.float32), (w, h))
    plank = rng.uniform(90, 200)
    seams = (np.mod(across, plank) < 2.0).astype(np.float32)
    plank_id = np.floor(across / plank)
    plank_tone = 0.9 + 0.2 * np.sin(plank_id * 12.9898 + rng.uniform(0, 6))
    dark = _jitter(rng, rng.choice([(30, 60, 100), (40, 75, 120), (25, 45, 70), (60, 100, 150)]))
    light = np.clip(dark * rng.uniform(1.4, 1.9), 0, 255)
    t = np.clip(0.65 * rings + 0.35 * grain, 0, 1)
    img = _mix(dark, light, t)
    img *= per_pixel(plank_tone)
    img *= per_pixel(1.0 - 0.5 * seams)
    return img


def marble(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Light or dark stone with thin veins."""
    base = _jitter(rng, rng.choice([(228, 230, 232), (200, 205, 210), (60, 58, 55), (215, 222, 230)]), 10)
    vein_col = base * rng.uniform(0.45, 0.75) if base.mean() > 128 else np.clip(base * 2.8, 0, 255)
    turb = fractal_noise(rng, h, w, (200, 70, 20))
    x = _coords(h, w, rng.uniform(0, np.pi))
    veins = np.abs(np.sin(x * rng.uniform(0.01, 0.03) + turb * rng.uniform(5, 9)))
    t = np.exp(-veins * rng.uniform(12, 25))
    cloud = 0.08 * fractal_noise(rng, h, w, (120, 30))
    img = _mix(base, vein_col, t)
    img *= per_pixel(1 + cloud)
    return img


def cloth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gingham or plain linen with weave texture and soft folds."""
    c1 = _jitter(rng, rng.choice([(40, 40, 190), (160, 80, 30), (60, 140, 60), (90, 90, 90), (200, 200, 210)]))
    c2 = _jitter(rng, (235, 235, 235), 12)
    period = rng.uniform(18, 60)
    angle = rng.uniform(-0.3, 0.3)
    u = np.mod(_coords(h, w, angle), period) < period / 2
    v = np.mod(_coords(h, w, angle + np.pi / 2), period) < period / 2
    if rng.random() < 0.65:  # gingham: overlapping stripes give three tones
        t = (u.astype(np.float32) + v.astype(np.float32)) / 2
        img = _mix(c2, c1, t)
    else:  # plain linen
        img = np.broadcast_to(_mix(c2, c1, np.full((1, 1), rng.uniform(0.2, 0.9), np.float32)), (h, w, 3)).copy()
    weave = 1 + 0.06 * (rng.random((h, w), dtype=np.float32) - 0.5)
    folds = 1 + 0.12 * fractal_noise(rng, h, w, (180, 90))
    return img * per_pixel(weave * folds)


def tray(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Brushed metal baking tray or parchment paper."""
    if rng.random() < 0.5:
        base = _jitter(rng, (150, 150, 155), 20)
        brush = cv2.resize(rng.random((max(2, h), max(2, w // 40)), dtype=np.float32), (w, h))
        img = per_channel(base, w) * per_pixel(0.9 + 0.2 * brush)
    else:
        base = _jitter(rng, (190, 215, 230), 10)
        crease = np.abs(fractal_noise(rng, h, w, (150, 50)))
        img = per_channel(base, w) * per_pixel(1 - 0.12 * np.exp(-crease * 25))
    return img * per_pixel(1 + 0.05 * fractal_noise(rng, h, w, (60, 10)))


def plate(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A round plate with a shaded rim on top of another surface."""
    img = rng.choice([wood, cloth, marble])(rng, h, w)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    radius = rng.uniform(0.45, 0.75) * max(h, w)
    ys, xs = (g.astype(np.float32) for g in np.ogrid[0:h, 0:w])
    r = np.sqrt((xs - cx) ** 2 + ((ys - cy) * rng.uniform(1.0, 1.3)) ** 2) / radius
    col = _jitter(rng, rng.choice([(240, 240, 240), (215, 230, 240), (200, 170, 120), (60, 60, 60)]), 8)
    rim = np.clip((r - 0.78) / 0.22, 0, 1)
    shade = 1 - 0.25 * np.sin(rim * np.pi) + 0.05 * (1 - r)
    plate_img = per_channel(col, w) * per_pixel(shade)
    inside = np.clip((1 - r) * radius / 2.0, 0, 1)  # 2-px anti-aliased edge
    return per_pixel(inside) * plate_img + per_pixel(1 - inside) * img


BACKGROUNDS = {"wood": wood, "marble": marble, "cloth": cloth, "tray": tray, "plate": plate}


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random surface from :data:`BACKGROUNDS`. Returns float32 BGR (h, w, 3)."""
    name = rng.choice(sorted(BACKGROUNDS))
    return BACKGROUNDS[name](rng, h, w).astype(np.float32, copy=False)


def lighting(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Light gradient times vignette (h, w) float32, and the 2-D direction shadows fall in."""
    angle = rng.uniform(0, 2 * np.pi)
    grad = _coords(h, w, angle) / max(h, w)
    grad -= grad.mean()
    grad *= rng.uniform(0.05, 0.35)
    grad += 1
    ys, xs = np.ogrid[0:h, 0:w]
    dx2 = (xs / np.float32(w) - 0.5) ** 2  # float64, like the rest of the vignette
    dy2 = (ys / np.float32(h) - 0.5) ** 2
    strength, gain = rng.uniform(0.0, 0.35), rng.uniform(0.85, 1.15)
    # grad * (1 - strength * (dx2 + dy2) * 2) * gain, 64 rows at a time: float64 temporaries that
    # stay in cache instead of six full-frame ones (same operations, same bits)
    out = np.empty((h, w), np.float32)
    rows = np.empty((min(h, 64), w))
    for y0 in range(0, h, 64):
        block = rows[: min(64, h - y0)]
        np.add(dx2, dy2[y0 : y0 + 64], out=block)
        block *= 2
        block *= strength
        np.subtract(1, block, out=block)
        np.multiply(grad[y0 : y0 + 64], block, out=block)
        block *= gain
        out[y0 : y0 + 64] = block
    return out, (float(np.cos(angle)), float(np.sin(angle)))
