"""Procedural croissants, cookies and cupcakes.

Each ``draw_*`` function renders one item, upright, into its own small canvas and
returns ``(colour, alpha)``: ``colour`` float32 BGR ``(h, w, 3)`` in [0, 255] and
``alpha`` float32 ``(h, w)`` in [0, 1] (anti-aliased edge). The caller rotates,
shadows and composites it; the instance mask is ``alpha >= 0.5`` after occlusion.
"""

from __future__ import annotations

import cv2
import numpy as np

from detseg.data.synth.textures import fractal_noise, per_channel, per_pixel

_AA = cv2.LINE_AA
_SUB = 4  # sub-pixel bits for anti-aliased cv2 drawing
_ONE = 1 << _SUB


def _pts(points: np.ndarray) -> np.ndarray:
    """Float (K, 2) points -> int32 fixed-point points for cv2 drawing with ``shift=_SUB``."""
    return np.round(np.asarray(points) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(canvas: np.ndarray, points: np.ndarray, value) -> None:
    cv2.fillPoly(canvas, [_pts(points)], value, _AA, _SUB)


def _ellipse(canvas, center, axes, angle_deg, value, thickness=-1) -> None:
    c = (int(round(center[0] * _ONE)), int(round(center[1] * _ONE)))
    a = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(canvas, c, a, float(angle_deg), 0, 360, value, thickness, _AA, _SUB)


def _wobbly_outline(rng, cx, cy, rx, ry, roughness, n=96) -> np.ndarray:
    """Closed outline of a blob: an ellipse with low-frequency bumps. (n, 2) float."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 7):
        r += roughness * rng.normal(0, 1 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r += roughness * 0.15 * rng.normal(0, 1, n)
    return np.stack([cx + rx * r * np.cos(theta), cy + ry * r * np.sin(theta)], 1)


def _layer(colour: np.ndarray, alpha: np.ndarray, layer_alpha: np.ndarray, layer_colour) -> np.ndarray:
    """Paint a layer over ``colour`` and merge its alpha (in place), inside the layer's bounding box only.

    Outside that box the layer's alpha is 0 and the full-canvas blend would leave every value
    as it is (x * 1 + 0), so the result is the same to the bit at the cost of the box; dtype
    promotion (a float64 layer colour turns the canvas float64) is kept too.
    ``layer_colour``: an (h, w, 3) array, or a callable ``(rows, cols) -> colour`` of the box.

    Returns:
        The canvas: ``colour`` itself, or a promoted copy.
    """
    rows = np.flatnonzero(layer_alpha.any(1))
    if len(rows) == 0:
        return colour
    cols = np.flatnonzero(layer_alpha.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = layer_alpha[box]
    top = layer_colour(*box) if callable(layer_colour) else layer_colour[box]
    blended = colour[box] * per_pixel(1 - a) + top * per_pixel(a)
    if blended.dtype != colour.dtype:
        colour = colour.astype(blended.dtype)
    colour[box] = blended
    np.maximum(alpha[box], layer_alpha[box], out=alpha[box])
    return colour


def _speckle(rng, h, w, strength) -> np.ndarray:
    noise = fractal_noise(rng, h, w, (max(4.0, w / 6), max(2.0, w / 25), 1.5))
    noise *= strength
    noise += 1
    return noise


def draw_cookie(rng: np.random.Generator, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A round, irregular cookie about ``size`` pixels across, with cracks and chips."""
    aspect = rng.uniform(0.85, 1.0)
    w = int(size * 1.15) + 4
    h = int(size * aspect * 1.15) + 4
    cx, cy, rx, ry = w / 2, h / 2, size / 2, size * aspect / 2
    alpha = np.zeros((h, w), np.float32)
    _fill(alpha, _wobbly_outline(rng, cx, cy, rx, ry, rng.uniform(0.02, 0.08)), 1.0)

    kind = rng.random()
    if kind < 0.6:  # golden butter cookie
        base = np.array([70, 150, 205], np.float32) + rng.uniform(-25, 20, 3)
    elif kind < 0.85:  # double chocolate
        base = np.array([35, 55, 85], np.float32) + rng.uniform(-10, 15, 3)
    else:  # oat / ginger
        base = np.array([60, 110, 160], np.float32) + rng.uniform(-15, 15, 3)
    # browner baked rim, light dome from the top-left
    dist = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3) / max(rx, 1)
    rim = np.clip(dist * 3.5, 0, 1)
    ys, xs = (g.astype(np.float32) for g in np.ogrid[0:h, 0:w])
    dome = 1 + 0.12 * (-(xs - cx) / rx - (ys - cy) / ry) * 0.5
    tone = (0.72 + 0.28 * rim) * dome * _speckle(rng, h, w, 0.18)
    colour = per_channel(base, w) * per_pixel(tone)

    # cracks: short random walks, darker than the dough (all drawn, then one multiply)
    cracks = np.zeros((h, w), np.float32)
    n_cracks = int(rng.integers(0, 6)) if size > 30 else 0
    for _ in range(n_cracks):
        p = np.array([cx, cy]) + rng.normal(0, 0.35, 2) * [rx, ry]
        pts = [p.copy()]
        direction = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(3, 7)):
            direction += rng.normal(0, 0.6)
            p = p + size * rng.uniform(0.04, 0.09) * np.array([np.cos(direction), np.sin(direction)])
            pts.append(p.copy())
        cv2.polylines(cracks, [_pts(np.array(pts))], False, 1.0, max(1, int(size / 80)), _AA, _SUB)
    if n_cracks:  # with no crack the factor is exactly 1 everywhere
        colour *= per_pixel(1 - 0.45 * cracks * rim)

    # chips: dark chocolate on light dough, white chocolate on dark dough; opaque, drawn in place
    chip = np.array([25, 35, 55], np.float32) if base.mean() > 80 else np.array([200, 225, 235], np.float32)
    n_chips = int(rng.integers(0, 4) + size * size / 900 * rng.uniform(0.5, 1.5)) if size > 16 else 0
    for _ in range(min(n_chips, 30)):
        r = rng.uniform(0.04, 0.09) * size
        p = np.array([cx, cy]) + rng.uniform(-0.75, 0.75, 2) * [rx - r, ry - r]
        outline = _wobbly_outline(rng, p[0], p[1], r, r * rng.uniform(0.6, 1), 0.2, n=9)
        _fill(colour, outline, (chip * rng.uniform(0.8, 1.2)).tolist())
        _ellipse(colour, p - r * 0.3, (r * 0.25, r * 0.18), 0, (chip * 1.6 + 40).tolist())
    return np.clip(colour, 0, 255), alpha


def draw_croissant(rng: np.random.Generator, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A crescent croissant about ``size`` pixels across, made of shaded, layered ridges."""
    spread = rng.uniform(0.9, 1.5)  # half-angle of the crescent, radians
    n_seg = int(rng.integers(5, 9))
    radius = size / (2 * np.sin(min(spread, 1.45)) + 0.9)
    thick = radius * rng.uniform(0.8, 1.1)
    w = int(size * 1.2) + 6
    h = int(radius * (1 + 0.2) + thick * 1.3) + 6
    cx, cy = w / 2, h / 2 + radius * 0.55 - thick * 0.1
    alpha = np.zeros((h, w), np.float32)
    colour = np.zeros((h, w, 3), np.float32)
    golden = np.array([40, 125, 205], np.float32) + rng.uniform(-15, 25, 3)
    brown = golden * rng.uniform(0.45, 0.6)

    ts = np.linspace(-1, 1, n_seg)
    order = np.argsort(-np.abs(ts))  # tips first, the fat middle ridge last (on top)
    for i in order:
        t = ts[i]
        ang = -np.pi / 2 + t * spread
        px, py = cx + radius * np.cos(ang), cy + radius * np.sin(ang)
        width = thick * (1 - 0.7 * abs(t) ** 1.3) / 2
        length = max(2.0, radius * spread * 2 / n_seg * 0.75 * (1 - 0.35 * abs(t)))
        angle_deg = np.degrees(ang)
        seg_alpha = np.zeros((h, w), np.float32)
        _ellipse(seg_alpha, (px, py), (width, length), angle_deg, 1.0)
        # concentric rings: darker at the seam, glazed and lighter at the crest
        seg_col = np.zeros((h, w, 3), np.float32)
        for k, frac in enumerate((1.0, 0.8, 0.6, 0.4, 0.22)):
            tone = brown + (golden - brown) * (k / 4) ** 0.8 * (1 - 0.25 * abs(t))
            _ellipse(seg_col, (px, py), (width * frac, length * frac), angle_deg, tone.tolist())
        colour = _layer(colour, alpha, seg_alpha, seg_col)
    colour *= per_pixel(_speckle(rng, h, w, 0.12))
    # glaze highlight along the top of the middle
    hl = np.zeros((h, w), np.float32)
    _ellipse(hl, (cx, cy - radius - thick * 0.1), (thick * 0.25, thick * 0.08), 0, 1.0)
    hl = cv2.GaussianBlur(hl, (0, 0), max(0.6, size / 90))
    colour += per_pixel(60 * (hl * alpha))
    return np.clip(colour, 0, 255), alpha


_FROSTING = [(200, 170, 245), (240, 245, 250), (60, 80, 120), (190, 225, 170), (230, 200, 160), (120, 80, 200)]
_WRAPPERS = [(235, 235, 240), (150, 140, 235), (220, 140, 60), (60, 60, 200), (80, 170, 215), (70, 100, 140)]


def draw_cupcake(rng: np.random.Generator, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A cupcake seen from the side: pleated wrapper, swirled frosting. ``size`` = height."""
    h = int(size) + 6
    w = int(size * rng.uniform(0.8, 1.0)) + 6
    cx = w / 2
    top_w, bot_w = (w - 6) * 0.42, (w - 6) * 0.32
    wrap_top, wrap_bot = h * 0.55, h - 3
    alpha = np.zeros((h, w), np.float32)
    colour = np.zeros((h, w, 3), np.float32)

    # wrapper: trapezoid with pleats that follow its taper
    quad = np.array([[cx - top_w, wrap_top], [cx + top_w, wrap_top], [cx + bot_w, wrap_bot], [cx - bot_w, wrap_bot]])
    wrap_a = np.zeros((h, w), np.float32)
    _fill(wrap_a, quad, 1.0)
    ys, xs = (g.astype(np.float32) for g in np.ogrid[0:h, 0:w])
    frac = np.clip((ys - wrap_top) / max(wrap_bot - wrap_top, 1), 0, 1)
    half = top_w + (bot_w - top_w) * frac
    u = (xs - cx) / np.maximum(half, 1)
    pleats = 0.5 + 0.5 * np.cos(u * np.pi * rng.integers(5, 10))
    side = 1 - 0.35 * u**2
    wrap_col = np.array(_WRAPPERS[rng.integers(len(_WRAPPERS))], np.float32) + rng.uniform(-15, 15, 3)
    colour += per_channel(wrap_col, w) * per_pixel((0.7 + 0.3 * pleats) * side) * per_pixel(wrap_a)
    alpha = np.maximum(alpha, wrap_a)

    # cake dome just above the wrapper
    dome_a = np.zeros((h, w), np.float32)
    _ellipse(dome_a, (cx, wrap_top), (top_w * 1.02, h * 0.08), 0, 1.0)
    cake = np.array([60, 120, 180], np.float32) if rng.random() < 0.6 else np.array([40, 60, 90], np.float32)
    colour = colour * per_pixel(1 - dome_a) + per_channel(cake, w) * per_pixel(dome_a)
    alpha = np.maximum(alpha, dome_a)

    # frosting: stacked tiers, each lighter on top with a dark crease below
    frost = np.array(_FROSTING[rng.integers(len(_FROSTING))], np.float32) + rng.uniform(-15, 15, 3)
    n_tiers = int(rng.integers(2, 5))
    base_y = wrap_top - h * 0.02
    tier_h = (wrap_top - h * 0.06) / (n_tiers + 0.6)
    for k in range(n_tiers + 1):
        frac_k = k / n_tiers
        rx = top_w * (1.12 - 0.85 * frac_k) if k < n_tiers else top_w * 0.18
        ry = tier_h * (0.75 if k < n_tiers else 0.9)
        y = base_y - k * tier_h * 0.95
        tier_a = np.zeros((h, w), np.float32)
        _ellipse(tier_a, (cx + rng.normal(0, rx * 0.04), y), (max(rx, 1), max(ry, 1)), rng.normal(0, 4), 1.0)
        shade = np.clip(1.05 - 0.35 * (ys - (y - ry)) / max(2 * ry, 1), 0.6, 1.1)  # (h, 1)
        colour = _layer(colour, alpha, tier_a,
                        lambda r, c: np.broadcast_to(frost * shade[r][..., None], (*tier_a[r, c].shape, 3)))
    # sprinkles
    if rng.random() < 0.5 and size > 24:
        for _ in range(int(rng.integers(5, 20))):
            p = np.array([cx + rng.uniform(-0.8, 0.8) * top_w, rng.uniform(0.12, 0.5) * h])
            if alpha[int(min(p[1], h - 1)), int(min(p[0], w - 1))] < 0.9:
                continue
            d = rng.normal(0, 1, 2)
            d = d / (np.linalg.norm(d) + 1e-6) * size * 0.03
            cv2.line(colour, tuple(_pts(p - d).ravel()), tuple(_pts(p + d).ravel()),
                     rng.uniform(40, 255, 3).tolist(), max(1, int(size / 60)), _AA, _SUB)
    colour *= per_pixel(_speckle(rng, h, w, 0.06))
    return np.clip(colour, 0, 255), alpha


DRAWERS = (draw_croissant, draw_cookie, draw_cupcake)  # index == class id of data/food.yaml
CLASS_NAMES = ("croissant", "cookie", "cupcake")
