"""Inputs of a run, resolved once: an image, a folder (recursive), a glob, a video file, or a list
of paths / arrays.

:func:`resolve_source` turns a source into a :class:`Source` (its kind, its files, a unique
output name per file, the video's properties); :meth:`Source.items` then yields
:class:`SourceItem` lazily. An unreadable image becomes an item with ``error`` set so a
folder run can go on past it.

Example:
    >>> from detseg.pipeline.sources import resolve_source   # doctest: +SKIP
    >>> src = resolve_source("photos/")
    >>> src.kind, len(src.files), src.names[src.files[0]]
    ('folder', 12, 'kitchen__IMG_0001')
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detseg.errors import DetsegError, InputError
from detseg.images import read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
_NOT_INPUTS = (".txt", ".json", ".yaml", ".yml", ".md", ".csv")  # files a folder of photos often holds

#: The longest output name, in UTF-8 bytes. Every file detseg writes for an input is ``NAME`` plus an
#: extension of at most 5 bytes (``.json``), written through a temporary ``.NAME.EXT.detseg-XXXX.part``
#: (XXXX: a pid or 8 random characters): 1 + 200 + 5 + 8 + 10 + 9 (``.part.mp4``) = 233 bytes at most,
#: within the 255-byte file name limit of common file systems, with room to spare.
MAX_FPS = 240  # a video rate above this is a container's guess, not a frame rate
MAX_NAME_BYTES = 200
_HASH_CHARS = 8  # hex digits of the SHA-1 that ends a shortened name
_FRAME_DIGITS = 12  # room kept after a video's name for "_" and its frame number


@dataclass
class SourceItem:
    """One input: ``index`` counts inputs from 0; ``frame`` is a video frame's own number (else None)."""

    index: int
    path: str
    image: np.ndarray | None
    error: str = ""
    seconds: float = 0.0
    frame: int | None = None
    name: str = ""


@dataclass
class VideoProperties:
    fps: float
    width: int
    height: int
    frames: int  # as the container announces it (0 when it does not say)


@dataclass
class Source:
    """A resolved source.

    Attributes:
        kind: ``"image"``, ``"folder"``, ``"glob"``, ``"video"`` or ``"arrays"``.
        files: the input files in order (the video file for a video; empty for arrays).
        root: the folder output names are relative to: a folder, a glob's matches' common folder (None for
            arrays and videos).
        names: ``str(file) -> output name``: a flat stem, unique within the run (case-insensitively)
            and at most :data:`MAX_NAME_BYTES` long (see :func:`unique_names`).
        video: fps, size and announced frame count of a video.
        arrays: the images of an ``"arrays"`` source (paths of a list go to ``files``).
        warnings: things the user should know (skipped links, ...).
        positions: for ``"arrays"``, each item's place in the list the user gave (a repeated path is run once,
            so an array keeps the name ``array_{place}`` it had in that list); empty: ``0, 1, 2, ...``.
        pattern: a glob's pattern, made absolute (what ``--resume`` compares of it).
    """

    kind: str
    files: list[Path] = field(default_factory=list)
    root: Path | None = None
    names: dict[str, str] = field(default_factory=dict)
    video: VideoProperties | None = None
    arrays: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    pattern: str | None = None

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    def record(self) -> dict:
        """What ``run.json`` says of the source: ``{"kind", "path", "files"}`` (JSON, absolute path).

        ``path`` is the folder, the glob pattern (absolute), the file (an image or a video) or None (arrays).
        ``--resume`` compares ``kind`` and ``path`` only: files added since are simply new inputs.
        """
        if self.kind == "glob" and self.pattern is not None:
            path = self.pattern
        elif self.kind in ("folder", "glob") and self.root is not None:
            path = str(Path(self.root).resolve())
        elif self.files and self.kind in ("image", "video"):
            path = str(Path(self.files[0]).resolve())
        else:
            path = None
        return {"kind": self.kind, "path": path, "files": len(self.files) if self.kind != "arrays" else
                len(self.arrays)}

    def name_of(self, item: SourceItem) -> str:
        """The output name of an item: unique per input file, per video frame, per array."""
        if self.is_video:
            return f"{fit_name(Path(item.path).stem, MAX_NAME_BYTES - _FRAME_DIGITS)}_{item.frame:06d}"
        if not item.path:
            return f"array_{item.index:06d}"
        return self.names[item.path]

    def items(self, stride: int = 1, max_frames: int | None = None, only: set[str] | None = None
              ) -> Iterator[SourceItem]:
        """Items in order; ``only`` keeps the files whose ``str(path)`` is in it (what ``--resume`` left)."""
        if stride < 1:
            raise InputError(f"stride must be >= 1, got {stride}")
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames must be >= 1, got {max_frames}")
        if self.is_video:
            yield from iter_video(self.files[0], stride, max_frames, self.video)
            return
        if self.kind == "arrays":
            for i, item in zip(self.positions or range(len(self.arrays)), self.arrays):
                if isinstance(item, np.ndarray):
                    yield SourceItem(i, "", item, name=f"array_{i:06d}")
                elif item is None:
                    yield SourceItem(i, "", None, "input is None, expected an image array or a path",
                                     name=f"array_{i:06d}")
                elif isinstance(item, (str, os.PathLike)):
                    yield _read_item(i, Path(item), self.names[str(Path(item))])
                else:  # a PIL image is converted where every input is (batching); anything else fails there
                    yield SourceItem(i, "", item, name=f"array_{i:06d}")
            return
        for i, path in enumerate(self.files):
            if only is None or str(path) in only:
                yield _read_item(i, path, self.names[str(path)])


def is_video(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() in VIDEO_SUFFIXES


def name_key(name: str) -> str:
    """What two output names are compared by: case-insensitively and Unicode-normalised, as a case-
    insensitive file system (macOS, Windows) compares them, so ``x`` and ``X`` count as one name."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def _encode(text: str) -> bytes:
    """``text`` as its file name's bytes (undecodable bytes of a POSIX name come back as they were)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate not from a file name: still counted, never raised
        return text.encode("utf-8", "surrogatepass")


def fit_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` if it is at most ``limit`` UTF-8 bytes; else its longest prefix (whole characters) that
    leaves room for ``_`` and the first 8 hex digits of the SHA-1 of the whole name, with them added:
    stable, and different for names that differ only past the cut."""
    data = _encode(name)
    if len(data) <= limit:
        return name
    digest = hashlib.sha1(data).hexdigest()[:_HASH_CHARS]
    budget, used, kept = limit - 1 - _HASH_CHARS, 0, []
    for ch in name:
        size = len(_encode(ch))
        if used + size > budget:
            break
        kept.append(ch)
        used += size
    return f"{''.join(kept)}_{digest}"


def relative_in(path: Path, root: Path) -> Path:
    """``path`` under ``root`` as found there (a file in a symlinked subfolder is ``sub/x.jpg``, not where the
    link points), else as resolved, else its base name."""
    for mine, base in ((Path(os.path.abspath(path)), Path(os.path.abspath(root))), (path.resolve(), root.resolve())):
        try:
            return mine.relative_to(base)
        except ValueError:
            pass
    return Path(path.name)


def unique_names(files: list[Path], root: Path | None, reserved=()) -> dict[str, str]:
    """``str(file) -> flat output name``, unique by construction (compared by :func:`name_key`, so
    case-insensitively) and at most :data:`MAX_NAME_BYTES` UTF-8 bytes (:func:`fit_name`).

    A file's name is its path relative to ``root`` (or to the files' common folder), ``/`` joined as
    ``__``, without the suffix (``kitchen/IMG_1.jpg`` -> ``kitchen__IMG_1``), wherever no other file
    (nor a name in ``reserved``) would get the same name. Files that would share one keep their
    lower-cased extension (``dup.jpg``, ``dup.png`` -> ``dup_jpg``, ``dup_png``), where that is
    unique and free; the rest (``x.jpg`` and ``x.JPG``; ``dup.jpg`` when ``dup_jpg.png`` exists) are
    numbered ``_1``, ``_2``, ... in the order of their relative paths, skipping names already given.
    The result depends on the set of files only, not on their order.
    """
    if root is None and files:
        root = Path(os.path.commonpath([str(f.parent.resolve()) for f in files]))
    entries = {}  # str(file) -> (sort key, stem, extension)
    for f in files:
        if str(f) in entries:
            continue
        rel = relative_in(f, root) if root is not None else Path(f.name)
        stem = "__".join(rel.with_suffix("").parts) or "_"
        entries[str(f)] = ((rel.as_posix(), str(f)), stem, rel.suffix.lstrip(".").lower())
    taken = {name_key(r) for r in reserved}
    names: dict[str, str] = {}

    def settle(keys: list[str], candidate) -> list[str]:
        """Give each file its candidate where no other file here has it and it is free; return the rest."""
        wanted = {k: fit_name(candidate(*entries[k][1:])) for k in keys}
        counts = Counter(name_key(n) for n in wanted.values())
        rest = [k for k in keys if counts[name_key(wanted[k])] > 1 or name_key(wanted[k]) in taken]
        settled = set(keys).difference(rest)
        for k in settled:
            names[k] = wanted[k]
        taken.update(name_key(wanted[k]) for k in settled)
        return rest

    rest = settle(list(entries), lambda stem, ext: stem)
    rest = settle(rest, lambda stem, ext: f"{stem}_{ext}" if ext else stem)
    for k in sorted(rest, key=lambda k: entries[k][0]):
        _, stem, ext = entries[k]
        base, n = (f"{stem}_{ext}" if ext else stem), 1
        while name_key(name := fit_name(f"{base}_{n}")) in taken:
            n += 1
        names[k] = name
        taken.add(name_key(name))
    return {str(f): names[str(f)] for f in files}


def _walk_files(folder: Path, warnings: list[str]) -> list[Path]:
    """Files under ``folder``, following symlinked folders once each (no loops), hidden files skipped."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=lambda e: warnings.append(
            f"skipped unreadable folder {e.filename}: {e.strerror}")):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            warnings.append(f"skipped {dirpath}: a link to a folder already read")
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not path.exists():
                warnings.append(f"skipped dangling link {path}")
                continue
            found.append(path)
    return sorted(found)


def _without_repeats(items: list) -> tuple[list[int], list[str]]:
    """A list source with each file once (the first time it is named; ``a.jpg``, ``./a.jpg`` and its absolute
    path are one file, whose outputs share one name): its outputs would otherwise be written over and listed
    twice. Arrays are kept as given. Returns the places of the items kept and a note for the summary (empty
    when none repeat)."""
    seen, kept, repeats = set(), [], []
    for place, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            key = os.path.realpath(item)
            if key in seen:
                repeats.append(str(item))
                continue
            seen.add(key)
        kept.append(place)
    if not repeats:
        return kept, []
    return kept, [f"{len(repeats)} repeated path{'s' if len(repeats) > 1 else ''} in the list run once "
                  f"(first: {repeats[0]})"]


def resolve_source(source) -> Source:
    """Resolve what the user gave, once, failing early with one clear message.

    Raises:
        InputError: nothing found, an unreadable or empty video, or an empty source string.
    """
    if isinstance(source, np.ndarray):
        source = [source]
    if isinstance(source, (list, tuple)):
        positions, warnings = _without_repeats(list(source))
        kept = [source[i] for i in positions]
        paths = [Path(p) for p in kept if isinstance(p, (str, os.PathLike))]
        arrays = [f"array_{i:06d}" for i, p in zip(positions, kept) if not isinstance(p, (str, os.PathLike))]
        return Source("arrays", arrays=kept, names=unique_names(paths, None, reserved=arrays), warnings=warnings,
                      positions=positions)
    text = str(source)
    if not text.strip():
        raise InputError("empty source: pass an image, a folder, a glob or a video file")
    path = Path(text)
    if is_video(text) and path.is_file():
        return Source("video", files=[path], video=_probe_video(path))
    if path.is_dir():
        warnings: list[str] = []
        files = _walk_files(path, warnings)
        inputs = [p for p in files if p.suffix.lower() not in _NOT_INPUTS]
        videos = [p for p in inputs if p.suffix.lower() in VIDEO_SUFFIXES]
        inputs = [p for p in inputs if p.suffix.lower() not in VIDEO_SUFFIXES]
        if videos:
            warnings.append(f"{len(videos)} video file(s) in the folder skipped (run each video on its own)")
        if not inputs:
            raise InputError(f"no images found in folder {text}")
        return Source("folder", files=inputs, root=path, names=unique_names(inputs, path), warnings=warnings)
    if path.is_file():
        return Source("image", files=[path], names=unique_names([path], path.parent))
    if any(ch in text for ch in "*?["):
        matches = sorted(set(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()),
                         key=lambda p: str(p))
        real, files = set(), []
        for p in matches:  # ** through a symlink loop finds the same file many times
            key = os.path.realpath(p)
            if key not in real:
                real.add(key)
                files.append(p)
        if not files:
            raise InputError(f"no files match {text!r}")
        if all(is_video(p) for p in files):
            raise InputError(f"{text!r} matches only videos: run each video on its own (detseg predict VIDEO)")
        root = Path(os.path.commonpath([str(f.parent.resolve()) for f in files]))
        return Source("glob", files=files, root=root, names=unique_names(files, root), pattern=os.path.abspath(text))
    if is_video(text):
        raise InputError(f"video not found: {text}")
    raise InputError(f"source not found: {text} (expected an image, a folder, a glob or a video file)")


def _probe_video(path: Path) -> VideoProperties:
    import cv2
    import supervision as sv

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened() or not cap.read()[0]:
            raise InputError(f"cannot read video {path} (missing, corrupt, empty or an unsupported codec)")
    finally:
        cap.release()
    info = sv.VideoInfo.from_video_path(str(path))
    # a container without an average rate (browser-recorded WebM) makes OpenCV report a guess such as 1000 fps
    # and a negative frame count: both are taken as unknown (30 fps, as when the container does not say)
    fps = info.fps if info.fps and 0 < info.fps <= MAX_FPS else 30.0
    return VideoProperties(float(fps), int(info.width), int(info.height), max(0, int(info.total_frames or 0)))


def video_info(path) -> dict:
    """fps, width, height and announced frame count of a video (fps 30 when the container does not say)."""
    v = _probe_video(Path(path))
    return {"fps": v.fps, "width": v.width, "height": v.height, "frames": v.frames}


def iter_video(path: Path, stride: int = 1, max_frames: int | None = None,
               properties: VideoProperties | None = None) -> Iterator[SourceItem]:
    """Frames of a video (supervision's frame generator), every ``stride``-th, at most ``max_frames``.

    A video that ends before the frame count its container announces yields a last item with
    ``error`` saying so (frames found vs announced), after its readable frames. The count is the container's
    estimate (often duration x fps), so a shortfall of up to 2 frames or 2% of it is taken as a rounding of
    that estimate, not as a truncated file.
    """
    import supervision as sv

    announced = properties.frames if properties else 0
    produced, last = 0, -1
    for k, frame in enumerate(sv.get_video_frames_generator(str(path), stride=stride)):
        last = k * stride
        yield SourceItem(produced, str(path), frame, frame=last)
        produced += 1
        if max_frames is not None and produced >= max_frames:
            return
    unread = announced - 1 - last  # frames after the last one read; up to stride - 1 are skipped by the stride
    if announced and unread > stride - 1 + max(2, math.ceil(0.02 * announced)):
        yield SourceItem(produced, str(path), None, f"video {path} ended after frame {last + 1} of the {announced} "
                         "its container announces (truncated?)", frame=last + 1)


def _read_item(index: int, path: Path, name: str) -> SourceItem:
    t = time.perf_counter()
    try:
        image = read_image(path)
    except (DetsegError, OSError) as e:  # an unreadable file must not stop a folder run
        message = str(e) if isinstance(e, DetsegError) else f"{path}: cannot read ({type(e).__name__}: {e})"
        return SourceItem(index, str(path), None, message, name=name)
    return SourceItem(index, str(path), image, "", time.perf_counter() - t, name=name)
