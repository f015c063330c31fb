"""Synthetic food videos with exact per-frame masks and track ids (ground truth for tracking).

Items of the photo generator (croissants, cookies, cupcakes) ride a conveyor across a
surface that is wider than the frame while the camera pans slowly: items enter on one
side, leave on the other, some start inside the frame, and their speeds differ by up to
+-35% so faster items overtake (and occlude) slower ones. Masks are exact: the pixels
with ``alpha >= 0.5`` of each item minus what items drawn later (on top) cover.

Written under ``DIR``::

    video.mp4           the frames (mp4v, BGR), frame numbers 1..N
    gt.txt              MOTChallenge ground truth: frame,id,x,y,w,h,1,class,visibility
                        (frame from 1; box = the visible pixels' extent, x y w h in pixels;
                        class = class id + 1 as COCO category ids; visibility = visible / full area)
    annotations.json    COCO with videos/frames as images (id = frame number, file_name = video.mp4,
                        "frame" = frame number), RLE masks and "track_id" per annotation
    summary.json        frames, size, fps, seed, distinct objects per class

An object is listed in a frame when at least :data:`MIN_VISIBLE_PIXELS` of it are visible.
Same seed and arguments, same bytes (``tests/data/synth/test_synth_video.py``).

Example:
    >>> from detseg.data.synth.synth_video import render_video_frames
    >>> clip = render_video_frames(frames=3, width=160, height=96, seed=1)
    >>> len(clip.frames), clip.frames[0].image.shape
    (3, (96, 160, 3))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detseg.atomic import atomic_write_json, atomic_write_text, temp_name
from detseg.data.polygons import mask_to_rle
from detseg.data.synth.food_items import CLASS_NAMES, DRAWERS
from detseg.data.synth.generate import coco_categories
from detseg.data.synth.scene import _crop, _rotate
from detseg.data.synth.textures import background, lighting, per_pixel
from detseg.video_writer import VideoWriter

MIN_VISIBLE_PIXELS = 30


@dataclass
class Sprite:
    """One item: its rendered canvas and its path across the world (float pixels per frame)."""

    track_id: int
    class_id: int
    colour: np.ndarray  # (h, w, 3) float32 BGR
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    x0: float  # world x of the canvas' left edge at frame 0
    y0: float
    vx: float  # pixels per frame
    vy: float
    full_area: int = 0


@dataclass
class VideoFrame:
    """One rendered frame: ``image`` (H, W, 3) uint8 BGR, ``masks`` (N, H, W) bool (visible pixels),
    ``track_ids`` (N,), ``class_ids`` (N,), ``visibility`` (N,) in (0, 1]."""

    image: np.ndarray
    masks: np.ndarray
    track_ids: np.ndarray
    class_ids: np.ndarray
    visibility: np.ndarray


@dataclass
class Clip:
    frames: list = field(default_factory=list)
    fps: float = 12.0
    classes: dict = field(default_factory=dict)  # track id -> class id


def _make_sprites(rng, n_items, frames, width, height, world_w, speed, size_range) -> list[Sprite]:
    sprites = []
    lanes = np.linspace(0.12, 0.88, 4) * height
    for k in range(n_items):
        cls = int(rng.integers(len(DRAWERS)))
        size = float(rng.uniform(*size_range))
        colour, alpha = DRAWERS[cls](rng, size)
        angle = rng.normal(0, 15) if cls == 2 else rng.uniform(0, 360)
        colour, alpha = _rotate(colour, alpha, angle, 2)
        colour, alpha = _crop(alpha, colour, 1)
        h, w = alpha.shape
        vx = speed * float(rng.uniform(0.65, 1.35))
        if k < n_items // 3:  # already on the belt when the video starts
            x0 = float(rng.uniform(0, max(width - w, 0)))  # an item wider than the frame starts at its edge
        else:  # enters from the left some time during the video
            x0 = -w - float(rng.uniform(0, max(1.0, vx * frames * 0.8)))
        y = float(lanes[k % len(lanes)] + rng.normal(0, height * 0.04) - h / 2)
        vy = float(rng.normal(0, 0.08))
        sprites.append(Sprite(k + 1, cls, colour.astype(np.float32), alpha.astype(np.float32), x0, y, vx, vy,
                              int((alpha >= 0.5).sum())))
    return sprites


def render_video_frames(frames: int = 60, width: int = 640, height: int = 384, seed: int = 0, fps: float = 12.0,
                        n_items: int | None = None, speed: float | None = None, pan: float | None = None,
                        size_range: tuple[float, float] = (60.0, 110.0), progress: bool = False) -> Clip:
    """Render a clip in memory (see the module docstring).

    Args:
        frames: number of frames.
        width, height: frame size in pixels.
        seed: the only source of randomness.
        fps: frames per second (stored in the clip).
        n_items: items over the whole video (default: about one per 6 frames, at least 4).
        speed: mean conveyor speed in pixels per frame (default: width / 90).
        pan: camera pan in pixels per frame (default: a random +-0.3 * speed).
        size_range: item sizes in pixels (the drawers' nominal size).

    Returns:
        A :class:`Clip` whose frames hold exact masks, track ids (from 1) and class ids.
    """
    rng = np.random.default_rng([seed, 2024])
    speed = width / 90 if speed is None else float(speed)
    pan = float(rng.uniform(-0.3, 0.3) * speed) if pan is None else float(pan)
    n_items = max(4, frames // 6) if n_items is None else int(n_items)
    world_w = width + int(abs(pan) * frames) + 2
    cam0 = 0.0 if pan >= 0 else float(world_w - width)
    surface = background(rng, height, world_w)
    light, _ = lighting(rng, height, world_w)
    surface *= per_pixel(light)
    sprites = _make_sprites(rng, n_items, frames, width, height, world_w, speed, size_range)
    for s in sprites:  # spawn positions are in frame coordinates at frame 0: move to world coordinates
        s.x0 += cam0
    clip = Clip(fps=fps, classes={s.track_id: s.class_id for s in sprites})
    noise_rng = np.random.default_rng([seed, 2025])
    for f in tqdm(range(frames), desc="synth-video", unit="frame", disable=not progress):
        cam = cam0 + pan * f
        cx = int(np.floor(cam))
        img = surface[:, cx:cx + width].copy()
        if img.shape[1] < width:
            img = np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), mode="edge")
        ids = np.zeros((height, width), np.int16)
        boxes = {}
        for s in sprites:  # later sprites are drawn on top
            x = int(round(s.x0 + s.vx * f - cam))
            y = int(round(s.y0 + s.vy * f))
            h, w = s.alpha.shape
            fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            local = (slice(fy0 - y, fy1 - y), slice(fx0 - x, fx1 - x))
            region = (slice(fy0, fy1), slice(fx0, fx1))
            a = s.alpha[local]
            patch = img[region]
            patch *= per_pixel(1 - 0.35 * a)  # a soft contact shadow under the item ...
            patch *= per_pixel(1 - a)
            patch += s.colour[local] * per_pixel(a * light[region[0], cx + fx0:cx + fx1])  # ... lit like the surface
            ids[region][a >= 0.5] = s.track_id
            boxes[s.track_id] = (fy0, fy1, fx0, fx1)
        img += per_pixel(np.float32(6.0) * (noise_rng.random((height, width), dtype=np.float32) - 0.5))
        image = np.clip(img, 0, 255).astype(np.uint8)
        rows = []
        for s in sprites:
            if s.track_id not in boxes:
                continue
            y0, y1, x0, x1 = boxes[s.track_id]
            m = np.zeros((height, width), bool)
            m[y0:y1, x0:x1] = ids[y0:y1, x0:x1] == s.track_id
            visible = int(m.sum())
            if visible >= MIN_VISIBLE_PIXELS:
                rows.append((m, s.track_id, s.class_id, visible / max(s.full_area, 1)))
        masks = np.stack([r[0] for r in rows]) if rows else np.zeros((0, height, width), bool)
        clip.frames.append(VideoFrame(image, masks, np.array([r[1] for r in rows], np.int64),
                                      np.array([r[2] for r in rows], np.int64),
                                      np.array([min(r[3], 1.0) for r in rows], np.float64)))
    return clip


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of a mask's pixels (x y the top-left pixel, w h in pixels)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])


def write_video(path: str | Path, images, fps: float) -> Path:
    """Write BGR frames to an mp4 (H.264, :class:`detseg.video_writer.VideoWriter`) under a temporary name,
    then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path, f".part{path.suffix}")
    with VideoWriter(tmp, fps) as writer:
        for image in images:
            writer.write(image)
    os.replace(tmp, path)
    return path


def generate_video(out: str | Path, frames: int = 60, width: int = 640, height: int = 384, seed: int = 0,
                   fps: float = 12.0, progress: bool = True, **kwargs) -> dict:
    """Render a clip and write ``video.mp4``, ``gt.txt``, ``annotations.json``, ``summary.json`` under ``out``.

    Returns:
        The summary dict (also written as ``summary.json``).
    """
    if frames < 1 or width < 32 or height < 32:
        raise ValueError(f"need frames >= 1 and a frame of at least 32x32 pixels, got {frames} frames "
                         f"of {width}x{height}")
    out = Path(out)
    clip = render_video_frames(frames, width, height, seed, fps, progress=progress, **kwargs)
    write_video(out / "video.mp4", (f.image for f in clip.frames), fps)
    lines, images, anns = [], [], []
    seen: dict[int, int] = {}
    for n, frame in enumerate(clip.frames, start=1):
        images.append({"id": n, "file_name": "video.mp4", "frame": n, "video_id": 1, "width": width,
                       "height": height})
        for m, tid, cls, vis in zip(frame.masks, frame.track_ids, frame.class_ids, frame.visibility):
            x, y, w, h = mask_box(m)
            lines.append(f"{n},{tid},{x},{y},{w},{h},1,{cls + 1},{vis:.4f}")
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": int(cls) + 1, "track_id": int(tid),
                         "bbox": [float(x), float(y), float(w), float(h)], "area": int(m.sum()),
                         "segmentation": mask_to_rle(m), "iscrowd": 0, "visibility": round(float(vis), 4)})
            seen[int(tid)] = int(cls)
    atomic_write_text(out / "gt.txt", "\n".join(lines) + ("\n" if lines else ""))
    atomic_write_json(out / "annotations.json", {"videos": [{"id": 1, "file_name": "video.mp4", "fps": fps}],
                                                 "images": images, "annotations": anns,
                                                 "categories": coco_categories()})
    counts = {name: sum(1 for c in seen.values() if c == i) for i, name in enumerate(CLASS_NAMES)}
    summary = {"out": str(out), "frames": frames, "width": width, "height": height, "fps": fps, "seed": seed,
               "objects": len(seen), "objects_per_class": counts, "annotations": len(anns)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
