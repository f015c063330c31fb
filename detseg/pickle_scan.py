"""Refuse a weights file whose pickle would run code, before anything unpickles it.

An ultralytics ``.pt`` is a pickle: ``YOLO("x.pt")`` rebuilds the objects it names, so a crafted
file can run any command while it loads. Before detseg hands a file to ultralytics it lists the
globals the file's pickle imports, with torch's own scanner
(``torch.serialization.get_unsafe_globals_in_checkpoint``, which already leaves out what torch
itself loads safely), and refuses a file that names anything outside what ultralytics and torch
checkpoints contain: ultralytics and ``torch.nn`` classes (classes only, not functions such as
``ultralytics.utils.checks.check_requirements``) and a few plain containers. A file that is not a
torch zip archive (a raw or legacy pickle) is refused too: ultralytics writes zip archives.

The scan names what a file imports, not what it does with it: a file may *call* an allowed ultralytics class
(``DetectionModel(cfg)``, whose model builder evaluates the config's ``activation`` string) instead of rebuilding
a saved object. So detseg also loads ultralytics checkpoints in ultralytics' restricted mode
(:func:`restricted_loading`: ``torch.load(weights_only=True)`` with ultralytics' allow-list of model classes, and
models built without ``eval``), which refuses such a file.

``DETSEG_TRUST_WEIGHTS=1`` (what ``--trust-weights`` sets for the detseg process) skips both, for a file you made or
trust.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path

from detseg.errors import WeightsError

TRUST_ENV = "DETSEG_TRUST_WEIGHTS"
_CLASS_MODULES = ("ultralytics.", "torch.nn.modules.", "torch.nn.parameter", "torch.nn.utils.")
_EXACT = frozenset({
    "collections.OrderedDict", "collections.defaultdict", "builtins.set", "builtins.frozenset", "builtins.slice",
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.int", "builtins.float", "builtins.bool",
    "builtins.str", "builtins.bytes", "builtins.bytearray", "builtins.complex", "_codecs.encode",
    "types.SimpleNamespace", "argparse.Namespace", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path",
    "datetime.datetime", "datetime.date", "datetime.timedelta", "numpy.dtype", "numpy.ndarray",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar", "torch.Size", "torch.device", "torch.dtype", "torch.float16", "torch.float32",
    "torch.bfloat16", "torch.int64", "torch.uint8", "torch.bool",
})

# names older checkpoints use, which ultralytics' loader (``torch_safe_load``) maps to today's while it unpickles
# (yolov10n.pt, YOLOv9e, 8.0-era files): judged as what they load as
_LEGACY_ATTRIBUTES = {
    "ultralytics.nn.modules.block.Silence": "torch.nn.modules.linear.Identity",  # ultralytics: torch.nn.Identity
    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
}
_LEGACY_MODULES = {
    "ultralytics.yolo.utils.": "ultralytics.utils.",
    "ultralytics.yolo.v8.": "ultralytics.models.yolo.",
    "ultralytics.yolo.data.": "ultralytics.data.",
}


@contextlib.contextmanager
def restricted_loading():
    """ultralytics' restricted checkpoint loading for the duration (``ULTRALYTICS_SAFE_LOAD`` for this block only):
    known model classes rebuilt with ``weights_only=True`` and no ``eval`` while a model is built. Nothing changes
    when :func:`trusted`. Restored on exit."""
    if trusted():
        yield
        return
    import ultralytics.nn.tasks as tasks

    before = tasks.SAFE_LOAD
    tasks.SAFE_LOAD = True
    try:
        yield
    finally:
        tasks.SAFE_LOAD = before


def trusted() -> bool:
    """Whether the user asked to load weights without the check (``DETSEG_TRUST_WEIGHTS=1``)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _is_allowed(name: str) -> bool:
    name = _LEGACY_ATTRIBUTES.get(name, name)
    for old, new in _LEGACY_MODULES.items():
        if name.startswith(old):
            name = new + name[len(old):]
    if name in _EXACT or name.startswith("numpy.dtypes."):
        return True
    if not name.startswith(_CLASS_MODULES):
        return False
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return False  # names a module or attribute that does not exist here: not from this ultralytics/torch
    return isinstance(obj, type)


UNREADABLE = "{path} is not a loadable weights file"


def unsafe_globals(path: str | Path, unreadable: str = UNREADABLE) -> list[str]:
    """The globals a torch checkpoint's pickle imports that are outside detseg's allow-list (empty: safe).

    Args:
        path: a ``.pt`` file.
        unreadable: the caller's own words for a file it cannot load, with ``{path}`` in them (e.g.
            ``"{path} is not a readable SAM checkpoint"``); the error for a file that cannot be scanned
            starts with them.

    Raises:
        WeightsError: the file is not a torch zip archive (damaged, empty, or a raw/legacy pickle), so it
            cannot be scanned.
    """
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:  # ValueError for a non-zip file; RuntimeError for a damaged archive
        raise WeightsError(unreadable.format(path=path) + f" ({type(e).__name__}): not a torch zip checkpoint, "
                           "which is what ultralytics and torch.save write. A legacy or raw pickle is refused "
                           "because it cannot be checked for code that would run on load; pass --trust-weights "
                           "(or set DETSEG_TRUST_WEIGHTS=1) to load one you trust") from None
    return [n for n in names if not _is_allowed(n)]


#: files that passed the scan, by (resolved path, size, mtime, inode): a file changed since is scanned again
_PASSED: set[tuple] = set()


def check_weights_file(path: str | Path, unreadable: str = UNREADABLE) -> None:
    """Raise one clear WeightsError if ``path`` would import anything outside the allow-list while loading.

    Skipped when :func:`trusted`. Non-``.pt`` files (``.yaml``, ``.onnx``, OpenVINO folders) are not pickles
    and pass. ``unreadable``: as in :func:`unsafe_globals`.
    """
    path = Path(path)
    if trusted() or path.suffix.lower() not in {".pt", ".pth"} or not path.is_file():
        return
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _PASSED:  # scanned already, unchanged since: resolving and then loading a file scans it once
        return
    bad = unsafe_globals(path, unreadable)
    if not bad:
        _PASSED.add(key)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise WeightsError(f"refusing to load {path}: its pickle imports {shown}, which no ultralytics checkpoint "
                           "needs and which could run code on load. Pass --trust-weights (or set "
                           "DETSEG_TRUST_WEIGHTS=1) only if you trust where the file came from")
