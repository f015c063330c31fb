"""Atomic file writes: write to a temporary name in the same folder, then rename.

An interrupted run therefore never leaves a half-written file behind under the
final name.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

TEMP_TAG = "detseg-"  # every temporary detseg writes is named ``.NAME.detseg-XXXX.part``: clean-ups match only these


def temp_name(path: Path, suffix: str = ".part") -> Path:
    """``path``'s temporary sibling while it is written: ``.NAME.detseg-PID.part`` (this process's own)."""
    return path.with_name(f".{path.name}.{TEMP_TAG}{os.getpid()}{suffix}")


def is_detseg_temp(path: Path) -> bool:
    """Whether ``path`` is named as detseg names its temporaries (so a clean-up may remove it)."""
    return path.name.startswith(".") and f".{TEMP_TAG}" in path.name and path.name.endswith((".part", ".part.mp4"))


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically, creating parent folders. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{TEMP_TAG}", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give what a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask, read once (reading it means setting it, so not on every write)."""
    mask = os.umask(0o022)  # the only portable way to read it; set straight back
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = None) -> Path:
    """Serialise ``obj`` as JSON (stable key order as given) and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, separators=(",", ":") if indent is None else None))


def place_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Put a copy of ``src`` at ``dst``, atomically. Returns ``dst``.

    A copy, never a hard link: ``src`` is a user's file (a photo, a dataset image), and editing a
    hard-linked dataset image would edit the original too. ``src`` is never touched: when ``dst``
    already is ``src`` (the same file, e.g. converting a dataset into its own folder) nothing happens.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dst)
    tmp.unlink(missing_ok=True)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
