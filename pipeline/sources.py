"""Inputs of a run: an image, a folder (recursive), a glob, a video file, or a list of paths/arrays.

Each yields :class:`SourceItem` lazily; an unreadable image becomes an item with ``error``
set so a folder run can go on past it.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detseg.errors import ImageReadError, InputError
from detseg.images import IMAGE_SUFFIXES, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass
class SourceItem:
    index: int
    path: str
    image: np.ndarray | None
    error: str = ""
    seconds: float = 0.0


def is_video(path) -> bool:
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() in VIDEO_SUFFIXES


def list_files(source) -> list[Path]:
    """Files of a folder (recursively, images by extension plus anything else, so bad files get
    reported), a glob pattern, or one file. Raises InputError when nothing matches."""
    source = str(source)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        # other files are listed too: a folder run reports what it could not read
        others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES + (".txt", ".json",
                                                                                                  ".yaml", ".md")]
        if not images and not others:
            raise InputError(f"no images found in folder {source}")
        return sorted(images + others)
    if path.is_file():
        return [path]
    if any(ch in source for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"no files match {source!r}")
        return files
    raise InputError(f"source not found: {source} (expected an image, a folder, a glob or a video file)")


def iter_video(path: Path, stride: int = 1, max_frames: int | None = None) -> Iterator[SourceItem]:
    """Frames of a video, every ``stride``-th, at most ``max_frames``. Raises InputError if unreadable/empty."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"cannot open video {path} (missing, corrupt or unsupported codec)")
    try:
        ok, frame = cap.read()
        if not ok:
            raise InputError(f"video {path} has no readable frames")
        index, produced = 0, 0
        while ok:
            if index % stride == 0:
                yield SourceItem(index, f"{path}#{index}", frame)
                produced += 1
                if max_frames is not None and produced >= max_frames:
                    return
            ok, frame = cap.read()
            index += 1
    finally:
        cap.release()


def video_info(path: Path) -> dict:
    """fps, width, height and frame count of a video (fps 30 when the container does not say)."""
    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        return {"fps": fps if fps > 0 else 30.0, "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT))}
    finally:
        cap.release()


def _read_item(index: int, path: Path) -> SourceItem:
    t = time.perf_counter()
    try:
        image = read_image(path)
    except ImageReadError as e:
        return SourceItem(index, str(path), None, str(e))
    return SourceItem(index, str(path), image, "", time.perf_counter() - t)


def check_source(source) -> None:
    """Fail early, with one clear message, on a missing source or an unreadable/empty video."""
    if isinstance(source, (list, tuple, np.ndarray)):
        return
    if is_video(source):
        if not Path(source).is_file():
            raise InputError(f"video not found: {source}")
        next(iter_video(Path(source), 1, 1))  # raises InputError when unreadable or empty
        return
    list_files(source)


def iter_source(source, stride: int = 1, max_frames: int | None = None) -> Iterator[SourceItem]:
    """Items of any supported source, in order. See the module docstring."""
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    if isinstance(source, np.ndarray):
        source = [source]
    if isinstance(source, (list, tuple)):
        for i, item in enumerate(source):
            if isinstance(item, np.ndarray):
                yield SourceItem(i, "", item)
            else:
                yield _read_item(i, Path(item))
        return
    if is_video(source):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"video not found: {path}")
        yield from iter_video(path, stride, max_frames)
        return
    for i, path in enumerate(list_files(source)):
        yield _read_item(i, path)
