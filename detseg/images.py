"""Reading images robustly and bringing any pixel format to the one every step takes: uint8 BGR.

Example:
    >>> import numpy as np
    >>> from detseg.images import to_bgr8
    >>> to_bgr8(np.zeros((4, 5), np.uint16)).shape   # 16-bit grayscale -> 8-bit BGR
    (4, 5, 3)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from detseg.errors import ImageReadError, InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 150_000_000  # 150 MP: 450 MB as uint8 BGR, before any model runs


def image_key(image: np.ndarray) -> str:
    """Content hash of an image array (shape, dtype and bytes): equal pixels, equal key."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Grayscale, BGR, BGRA, 16-bit or float [0, 1] -> ``(H, W, 3)`` uint8 BGR.

    Raises:
        InputError: not an array, empty, or a channel count other than 1, 3 or 4.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        finite = image[np.isfinite(image)]
        if finite.size and (finite.max() > 1 or finite.min() < 0):
            raise InputError(f"a float image must hold values in [0, 1], got {finite.min():g}..{finite.max():g}; "
                             "for 0..255 values pass image.astype(np.uint8)")
        image = (np.nan_to_num(image, nan=0.0) * 255 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"image dtype must be uint8, uint16 or float, got {image.dtype}")
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def as_bgr8(image) -> np.ndarray:
    """What ultralytics' ``model(x)`` takes, as ``(H, W, 3)`` uint8 BGR: a path (str or ``os.PathLike``,
    read with :func:`read_image`), a ``PIL.Image`` (RGB, as PIL holds it; converted), or an array
    (BGR, as OpenCV reads it; see :func:`to_bgr8`).

    Raises:
        ImageReadError: a path that cannot be read as an image. InputError: any other type or shape.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    from PIL import Image

    if isinstance(image, Image.Image):
        rgb = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
        return to_bgr8(cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR))
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a path, a PIL image or a numpy array, got {type(image).__name__}")
    return to_bgr8(image)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 BGR, applying its EXIF orientation.

    Grayscale, RGBA, 16-bit and float files holding values in [0, 1] are converted. Raises
    ``ImageReadError`` naming the file when it is missing, empty, truncated, corrupt, not an image,
    larger than :data:`MAX_PIXELS` (from its header), or of pixels with no 8-bit reading (float
    outside [0, 1], as HDR images hold; signed or 32-bit integers): convert those to 8-bit first.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    _check_size(path)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read ({e.strerror or e})") from None
    # IMREAD_UNCHANGED keeps 16-bit depth and alpha, but ignores EXIF orientation: apply it ourselves
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    try:
        image = to_bgr8(image)
    except InputError:  # to_bgr8 speaks to a caller holding an array; this is a file: say which, and what to do
        raise ImageReadError(_not_8bit(path, image)) from None
    return _apply_exif_orientation(path, image)


def open_pil(path):
    """``PIL.Image.open`` as Pillow ships it.

    Importing ultralytics replaces ``PIL.Image.open`` with a version that, on a file Pillow
    cannot identify, tries to pip-install a HEIF plugin: a library must never install packages
    during a run, so detseg's own reads go around that patch.
    """
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)(path)


def _not_8bit(path: Path, image: np.ndarray) -> str:
    """Why a decoded file has no 8-bit reading, naming it and saying what to do (one line)."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    advice = "convert it to an ordinary 8-bit image (e.g. an 8-bit PNG or JPEG{}) and pass that file"
    if channels not in (1, 3, 4):
        return f"{path}: {channels} channels, which detseg does not read (1, 3 or 4): " + advice.format("")
    if image.dtype.kind == "f":
        finite = image[np.isfinite(image)]
        values = f" with values {finite.min():g} to {finite.max():g}" if finite.size else ""
        return (f"{path}: {image.dtype.itemsize * 8}-bit float pixels{values}, where detseg reads floats in [0, 1] "
                "only (an HDR image?): " + advice.format("; tone-map an HDR image first"))
    kind = "signed integer" if image.dtype.kind == "i" else "integer"
    return f"{path}: {image.dtype.itemsize * 8}-bit {kind} pixels, which detseg does not read: " + advice.format("")


def _check_size(path: Path) -> None:
    """Refuse images whose decoded pixels would not fit in memory (read from the header only)."""
    size = _declared_size(path)
    if size is None:  # not something Pillow reads: OpenCV decides
        return
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageReadError(f"{path}: its header declares {w}x{h} pixels ({w * h / 1e6:,.0f} MP), more than this "
                             f"reader takes ({MAX_PIXELS / 1e6:.0f} MP = {MAX_PIXELS:,} pixels); resize it first")


def _declared_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` as the file's header declares it, or None when Pillow cannot identify the file."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_pil(path) as im:
                return im.size
    except Image.DecompressionBombError as e:  # past Pillow's own limit (which may be set below ours)
        size = _header_size(path)
        if size is None:
            raise ImageReadError(f"{path}: {e}") from None
        return size
    except Exception:
        return None


def _header_size(path: Path) -> tuple[int, int] | None:
    """The declared size of a file Pillow's ``open`` refuses as a decompression bomb: what ``Image.open`` does
    (each format plugin that accepts the file's first bytes parses its header; nothing is decoded), without
    the bomb check that refused it. None when no plugin reads the header."""
    from PIL import Image

    Image.init()
    with open(path, "rb") as fp:
        prefix = fp.read(16)
        for fmt in list(Image.ID):
            factory, accept = Image.OPEN[fmt]
            try:
                accepted = not accept or accept(prefix)
                if accepted and not isinstance(accepted, str):
                    fp.seek(0)
                    return tuple(factory(fp, str(path)).size)
            except Exception:  # not this format
                continue
    return None


def shown_size(im) -> tuple[int, int]:
    """``(width, height)`` of an open PIL image, not yet loaded, as :func:`read_image` returns it: EXIF
    orientations 5-8 (a quarter turn, as phone cameras write portrait photos) swap the stored width and height,
    as ultralytics' ``exif_size`` does for its labels. A TIFF's are read from its tags (Pillow reports its size
    already turned, and ``load()`` drops the orientation tag)."""
    w, h = im.size
    if im.format == "TIFF":  # Pillow (>= 10) reports a TIFF's size already turned, and drops the tag once loaded
        tags = im.tag_v2
        if 0x0112 not in tags:
            return w, h
        w, h, orientation = tags.get(256, w), tags.get(257, h), tags[0x0112]  # the stored width and height
    else:
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:  # no or broken EXIF: the pixels as stored
            orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _apply_exif_orientation(path: Path, image: np.ndarray) -> np.ndarray:
    # OpenCV's TIFF decoder already applies the orientation tag; JPEG, WebP and PNG it leaves to us
    if path.suffix.lower() not in (".jpg", ".jpeg", ".webp", ".png"):
        return image
    try:
        with open_pil(path) as im:
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # no or broken EXIF: keep the pixels as stored
        return image
    ops = {
        2: lambda x: cv2.flip(x, 1),
        3: lambda x: cv2.rotate(x, cv2.ROTATE_180),
        4: lambda x: cv2.flip(x, 0),
        5: lambda x: cv2.flip(cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE), 1),
        6: lambda x: cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE),
        7: lambda x: cv2.flip(cv2.rotate(x, cv2.ROTATE_90_COUNTERCLOCKWISE), 1),
        8: lambda x: cv2.rotate(x, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(image)) if op else image
