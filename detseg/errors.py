"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class DetsegError(Exception):
    """Base class of every error caused by user input (not a bug)."""


class DatasetError(DetsegError, ValueError):
    """A dataset file is missing or malformed. The message names the file (and line)."""

    def __init__(self, message: str, path=None, line: int | None = None):
        where = f"{path}:{line}: " if path is not None and line is not None else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path, self.line = path, line


class ImageReadError(DetsegError, ValueError):
    """An image file could not be read or decoded."""


class WeightsError(DetsegError, ValueError):
    """A model weights file is missing, unreadable, of the wrong kind, or cannot be downloaded."""


class InputError(DetsegError, ValueError):
    """A bad argument value: a box, an image array, a class name, a source path."""
