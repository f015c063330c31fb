"""Look-alike foods that are drawn but never labelled: bread rolls, buns, bagels, donuts,
muffins without a paper wrapper, cake slices, pies and eggs.

A detector trained only on croissants, cookies and cupcakes learns "round and golden-brown
means cookie"; these teach it where a croissant ends and a bread roll begins. Each
``draw_*`` has the signature of :data:`detseg.data.synth.food_items.DRAWERS`: ``(rng, size) ->
(colour, alpha)``, float32 BGR in [0, 255] and alpha in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from detseg.data.synth.food_items import _ellipse, _fill, _layer, _speckle, _wobbly_outline
from detseg.data.synth.textures import per_channel, per_pixel


def _canvas(size: float, aspect: float = 1.0):
    w, h = int(size * 1.15) + 6, int(size * aspect * 1.15) + 6
    return np.zeros((h, w), np.float32), w, h


def _dome_tone(h: int, w: int, cx: float, cy: float, rx: float, ry: float, strength: float) -> np.ndarray:
    """Shading of a domed surface lit from the top-left: lighter crown, darker base."""
    ys, xs = (g.astype(np.float32) for g in np.ogrid[0:h, 0:w])
    d = np.sqrt(((xs - cx) / max(rx, 1)) ** 2 + ((ys - cy) / max(ry, 1)) ** 2)
    crown = np.clip(1 - d, 0, 1)
    tilt = -(xs - cx) / max(rx, 1) - (ys - cy) / max(ry, 1)
    return (1 - strength + strength * crown**0.6) * (1 + 0.08 * tilt)


def draw_bread_roll(rng, size):
    """An oval bread roll: glossy crust, one to three score marks."""
    aspect = rng.uniform(0.55, 0.8)
    alpha, w, h = _canvas(size, aspect)
    cx, cy, rx, ry = w / 2, h / 2, size / 2, size * aspect / 2
    _fill(alpha, _wobbly_outline(rng, cx, cy, rx, ry, rng.uniform(0.02, 0.05)), 1.0)
    crust = np.array([45, 105, 175], np.float32) + rng.uniform(-25, 30, 3)
    colour = per_channel(crust, w) * per_pixel(_dome_tone(h, w, cx, cy, rx, ry, 0.45) * _speckle(rng, h, w, 0.1))
    for k in range(int(rng.integers(1, 4))):
        x = cx + (k - 1) * rx * 0.45 + rng.normal(0, rx * 0.05)
        _ellipse(colour, (x, cy), (rx * 0.08, ry * 0.7), rng.normal(20, 8), (crust * 1.35 + 25).tolist())
    return np.clip(colour, 0, 255), alpha


def draw_bun(rng, size):
    """A round burger bun, optionally with sesame seeds."""
    alpha, w, h = _canvas(size, rng.uniform(0.9, 1.0))
    cx, cy, rx, ry = w / 2, h / 2, size / 2, (h - 6) / 2.3
    _fill(alpha, _wobbly_outline(rng, cx, cy, rx, ry, 0.02), 1.0)
    crust = np.array([50, 120, 195], np.float32) + rng.uniform(-20, 20, 3)
    colour = per_channel(crust, w) * per_pixel(_dome_tone(h, w, cx, cy, rx, ry, 0.35))
    if rng.random() < 0.6:
        for _ in range(int(size * size / 60)):
            p = np.array([cx, cy]) + rng.uniform(-0.7, 0.7, 2) * [rx, ry]
            _ellipse(colour, p, (size * 0.018, size * 0.01), rng.uniform(0, 180), (190, 225, 240))
    return np.clip(colour, 0, 255), alpha


def _ring(rng, size, outer_colour, inner_ratio):
    alpha, w, h = _canvas(size, rng.uniform(0.85, 1.0))
    cx, cy, rx, ry = w / 2, h / 2, size / 2, (h - 6) / 2.3
    _fill(alpha, _wobbly_outline(rng, cx, cy, rx, ry, 0.015), 1.0)
    hole = np.zeros_like(alpha)
    _ellipse(hole, (cx, cy), (rx * inner_ratio, ry * inner_ratio), 0, 1.0)
    alpha *= 1 - hole
    ring_r = np.sqrt(((np.arange(w)[None] - cx) / rx) ** 2 + ((np.arange(h)[:, None] - cy) / ry) ** 2)
    mid = (1 + inner_ratio) / 2
    tube = np.clip(1 - np.abs(ring_r - mid) / ((1 - inner_ratio) / 2), 0, 1).astype(np.float32)
    colour = per_channel(outer_colour, w) * per_pixel((0.6 + 0.4 * tube**0.5) * _speckle(rng, h, w, 0.08))
    return colour, alpha, (w, h, cx, cy, rx, ry, inner_ratio, tube)


def draw_bagel(rng, size):
    """A bagel: a glossy brown ring, sometimes seeded."""
    crust = np.array([40, 95, 165], np.float32) + rng.uniform(-20, 25, 3)
    colour, alpha, (w, h, cx, cy, rx, ry, _, _) = _ring(rng, size, crust, rng.uniform(0.22, 0.32))
    if rng.random() < 0.5:
        for _ in range(int(size * size / 50)):
            p = np.array([cx, cy]) + rng.uniform(-0.9, 0.9, 2) * [rx, ry]
            _ellipse(colour, p, (size * 0.015, size * 0.008), rng.uniform(0, 180), (200, 220, 230))
    return np.clip(colour, 0, 255), alpha


_ICING = [(200, 170, 245), (40, 60, 100), (240, 245, 250), (120, 200, 250), (180, 120, 240)]


def draw_donut(rng, size):
    """A ring donut with icing and, half the time, sprinkles."""
    dough = np.array([60, 140, 210], np.float32) + rng.uniform(-20, 15, 3)
    colour, alpha, (w, h, cx, cy, rx, ry, inner, tube) = _ring(rng, size, dough, rng.uniform(0.25, 0.35))
    if rng.random() < 0.8:
        icing_a = np.zeros_like(alpha)
        _fill(icing_a, _wobbly_outline(rng, cx, cy, rx * 0.85, ry * 0.85, 0.06), 1.0)
        hole = np.zeros_like(alpha)
        _ellipse(hole, (cx, cy), (rx * (inner + 0.08), ry * (inner + 0.08)), 0, 1.0)
        icing_a *= 1 - hole
        icing = np.array(_ICING[rng.integers(len(_ICING))], np.float32)
        colour = _layer(colour, alpha.copy(), icing_a, per_channel(icing, w) * per_pixel(0.8 + 0.25 * tube))
        if rng.random() < 0.5:
            for _ in range(int(size * size / 40)):
                p = np.array([cx, cy]) + rng.uniform(-0.8, 0.8, 2) * [rx, ry]
                d = rng.normal(0, 1, 2)
                d = d / (np.linalg.norm(d) + 1e-6) * size * 0.025
                cv2.line(colour, tuple(int(v) for v in p - d), tuple(int(v) for v in p + d),
                         rng.uniform(40, 255, 3).tolist(), max(1, int(size / 70)), cv2.LINE_AA)
    return np.clip(colour, 0, 255), alpha


def draw_muffin(rng, size):
    """A muffin without a paper wrapper: a rough, cracked dome over a straight-sided base."""
    alpha, w, h = _canvas(size, rng.uniform(0.85, 1.05))
    cx = w / 2
    top = np.zeros_like(alpha)
    _fill(top, _wobbly_outline(rng, cx, h * 0.38, (w - 6) / 2, h * 0.3, 0.05), 1.0)
    base = np.zeros_like(alpha)
    bw = (w - 6) * rng.uniform(0.33, 0.4)
    _fill(base, np.array([[cx - bw, h * 0.45], [cx + bw, h * 0.45], [cx + bw * 0.85, h - 3], [cx - bw * 0.85, h - 3]]),
          1.0)
    crumb = np.array([55, 120, 185], np.float32) if rng.random() < 0.6 else np.array([35, 55, 85], np.float32)
    crumb = crumb + rng.uniform(-15, 15, 3)
    colour = per_channel(crumb * 0.85, w) * per_pixel(_speckle(rng, h, w, 0.15) * base)
    alpha = np.maximum(alpha, base)
    tone = _dome_tone(h, w, cx, h * 0.3, (w - 6) / 2, h * 0.3, 0.4) * _speckle(rng, h, w, 0.3)
    colour = _layer(colour, alpha, top, per_channel(crumb, w) * per_pixel(tone))
    return np.clip(colour, 0, 255), alpha


def draw_cake_slice(rng, size):
    """A wedge of layer cake seen from above at an angle: sponge and cream layers."""
    alpha, w, h = _canvas(size, rng.uniform(0.7, 0.9))
    tip = np.array([w * 0.08, h * rng.uniform(0.3, 0.7)])
    back_top, back_bot = np.array([w * 0.92, h * 0.1]), np.array([w * 0.92, h * 0.9])
    _fill(alpha, np.array([tip, back_top, back_bot]), 1.0)
    sponge = np.array([90, 170, 220], np.float32) if rng.random() < 0.6 else np.array([40, 55, 90], np.float32)
    cream = np.array([225, 235, 245], np.float32) if rng.random() < 0.7 else np.array([170, 140, 240], np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    bands = (np.sin(ys / max(h, 1) * np.pi * rng.integers(3, 6) * 2) > 0.55).astype(np.float32)
    colour = per_channel(sponge, w) * per_pixel(np.broadcast_to(1 - bands, (h, w)) * _speckle(rng, h, w, 0.12))
    colour += per_channel(cream, w) * per_pixel(np.broadcast_to(bands, (h, w)).copy())
    return np.clip(colour, 0, 255), alpha


def draw_pie(rng, size):
    """A round pie from above: crimped rim and a lattice or a plain golden top."""
    alpha, w, h = _canvas(size, rng.uniform(0.9, 1.0))
    cx, cy, rx, ry = w / 2, h / 2, size / 2, (h - 6) / 2.3
    theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    r = 1 + 0.04 * np.cos(theta * rng.integers(14, 24))
    _fill(alpha, np.stack([cx + rx * r * np.cos(theta), cy + ry * r * np.sin(theta)], 1), 1.0)
    crust = np.array([70, 150, 215], np.float32) + rng.uniform(-20, 20, 3)
    filling = np.array(rng.choice([(40, 40, 140), (60, 110, 200), (40, 60, 120), (90, 60, 150)]), np.float32)
    colour = per_channel(filling, w) * per_pixel(_speckle(rng, h, w, 0.2))
    inner = np.zeros_like(alpha)
    _ellipse(inner, (cx, cy), (rx * 0.82, ry * 0.82), 0, 1.0)
    crust_a = alpha * (1 - inner)
    if rng.random() < 0.6:  # lattice strips
        strips = np.zeros_like(alpha)
        step = max(3.0, size / rng.integers(5, 9))
        for k in np.arange(-rx, rx, step):
            cv2.line(strips, (int(cx + k), 0), (int(cx + k), h), 1.0, max(1, int(step * 0.35)))
            cv2.line(strips, (0, int(cy + k)), (w, int(cy + k)), 1.0, max(1, int(step * 0.35)))
        crust_a = np.maximum(crust_a, strips * inner)
    colour = _layer(colour, alpha.copy(), crust_a, per_channel(crust, w) * per_pixel(_speckle(rng, h, w, 0.12)))
    return np.clip(colour, 0, 255), alpha


def draw_egg(rng, size):
    """A whole egg: smooth, white or brown, slightly pointed at one end."""
    alpha, w, h = _canvas(size * 0.78, 1.3)
    cx, cy = w / 2, h / 2
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    rx, ry = (w - 6) / 2.3, (h - 6) / 2.3
    pointed = 1 + 0.12 * np.sin(theta)  # narrower at the top
    pts = np.stack([cx + rx * np.cos(theta) * np.where(np.sin(theta) < 0, 1 / pointed, 1), cy + ry * np.sin(theta)], 1)
    _fill(alpha, pts, 1.0)
    shell = np.array([225, 235, 240], np.float32) if rng.random() < 0.5 else np.array([110, 150, 200], np.float32)
    shell = shell + rng.uniform(-15, 10, 3)
    colour = per_channel(shell, w) * per_pixel(_dome_tone(h, w, cx, cy, rx, ry, 0.35) * _speckle(rng, h, w, 0.03))
    return np.clip(colour, 0, 255), alpha


DISTRACTORS = (draw_bread_roll, draw_bun, draw_bagel, draw_donut, draw_muffin, draw_cake_slice, draw_pie, draw_egg)
DISTRACTOR_NAMES = ("bread roll", "bun", "bagel", "donut", "muffin", "cake slice", "pie", "egg")


# ---------------------------------------------------------------- more cookie shapes (labelled)
# Shop biscuits that the round drop cookies of food_items do not cover. They are cookies
# (class 1) and are drawn only in photo composites, so the purely synthetic generator's
# output (and the datasets made with it) stays byte for byte the same.


def _docking_holes(colour, rng, cx, cy, rx, ry, size, shade):
    for gx in np.linspace(-0.55, 0.55, 4):
        for gy in np.linspace(-0.55, 0.55, 3 if ry < rx else 4):
            _ellipse(colour, (cx + gx * rx, cy + gy * ry), (size * 0.018, size * 0.018), 0, shade.tolist())


def draw_rect_biscuit(rng, size):
    """A rectangular shop biscuit (tea or "tennis" biscuit): rounded corners, docking holes, a rim."""
    aspect = rng.uniform(0.55, 0.85)
    alpha, w, h = _canvas(size, aspect)
    cx, cy, rx, ry = w / 2, h / 2, size / 2, size * aspect / 2
    r = size * rng.uniform(0.04, 0.12)
    box = np.zeros_like(alpha)
    cv2.rectangle(box, (int(cx - rx + r), int(cy - ry)), (int(cx + rx - r), int(cy + ry)), 1.0, -1)
    cv2.rectangle(box, (int(cx - rx), int(cy - ry + r)), (int(cx + rx), int(cy + ry - r)), 1.0, -1)
    for sx in (-1, 1):
        for sy in (-1, 1):
            _ellipse(box, (cx + sx * (rx - r), cy + sy * (ry - r)), (r, r), 0, 1.0)
    alpha = cv2.GaussianBlur(box, (3, 3), 0.6)
    base = np.array([85, 160, 215], np.float32) + rng.uniform(-30, 15, 3)
    rim = np.clip(cv2.distanceTransform((box > 0.5).astype(np.uint8), cv2.DIST_L2, 3) / max(size * 0.06, 1), 0, 1)
    colour = per_channel(base, w) * per_pixel((0.8 + 0.2 * rim) * _speckle(rng, h, w, 0.1))
    _docking_holes(colour, rng, cx, cy, rx, ry, size, base * 0.6)
    return np.clip(colour, 0, 255), alpha


def draw_marie_biscuit(rng, size):
    """A round, pale, flat biscuit with a scalloped edge, an embossed ring and docking holes."""
    alpha, w, h = _canvas(size, 1.0)
    cx, cy, rx = w / 2, h / 2, size / 2
    theta = np.linspace(0, 2 * np.pi, 160, endpoint=False)
    rr = rx * (1 + 0.025 * np.cos(theta * rng.integers(18, 40)))
    _fill(alpha, np.stack([cx + rr * np.cos(theta), cy + rr * np.sin(theta)], 1), 1.0)
    base = np.array([110, 175, 225], np.float32) + rng.uniform(-25, 10, 3)
    colour = per_channel(base, w) * per_pixel(_speckle(rng, h, w, 0.08))
    _ellipse(colour, (cx, cy), (rx * 0.82, rx * 0.82), 0, (base * 0.8).tolist(), max(1, int(size / 60)))
    _docking_holes(colour, rng, cx, cy, rx * 0.8, rx * 0.8, size, base * 0.62)
    return np.clip(colour, 0, 255), alpha


def draw_sandwich_cookie(rng, size):
    """A sandwich cookie: dark (or golden) embossed wafer; seen from the side, a cream layer shows."""
    side = rng.random() < 0.4
    alpha, w, h = _canvas(size, rng.uniform(0.35, 0.5) if side else 1.0)
    cx, cy, rx, ry = w / 2, h / 2, size / 2, (h - 6) / 2.3
    wafer = np.array([30, 35, 45], np.float32) if rng.random() < 0.6 else np.array([80, 160, 215], np.float32)
    wafer = wafer + rng.uniform(-10, 10, 3)
    if side:
        cv2.rectangle(alpha, (int(cx - rx), int(cy - ry)), (int(cx + rx), int(cy + ry)), 1.0, -1)
        colour = per_channel(wafer, w) * per_pixel(_speckle(rng, h, w, 0.1))
        cv2.rectangle(colour, (int(cx - rx * 0.97), int(cy - ry * 0.25)), (int(cx + rx * 0.97), int(cy + ry * 0.25)),
                      (225, 238, 245), -1)
        return np.clip(colour, 0, 255), alpha
    _ellipse(alpha, (cx, cy), (rx, ry), 0, 1.0)
    colour = per_channel(wafer, w) * per_pixel(_speckle(rng, h, w, 0.12))
    for k in range(int(rng.integers(6, 12))):  # embossed petals
        a = 2 * np.pi * k / 10
        _ellipse(colour, (cx + 0.55 * rx * np.cos(a), cy + 0.55 * ry * np.sin(a)), (rx * 0.15, ry * 0.07),
                 np.degrees(a), (wafer * 1.5 + 10).tolist(), max(1, int(size / 80)))
    _ellipse(colour, (cx, cy), (rx * 0.93, ry * 0.93), 0, (wafer * 1.4 + 8).tolist(), max(1, int(size / 70)))
    return np.clip(colour, 0, 255), alpha


COOKIE_VARIANTS = (draw_rect_biscuit, draw_marie_biscuit, draw_sandwich_cookie)
