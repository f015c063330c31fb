"""Finding model files and devices, shared by ``detectors`` and ``segmenter``.

A download happens only here, only for a known ultralytics asset name, and only
because the caller passed that name: never on import or in a constructor.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import contextmanager
from pathlib import Path

from detseg.errors import InputError, WeightsError
from detseg.pickle_scan import UNREADABLE, check_weights_file


def downloadable_names() -> frozenset[str]:
    """Weights names that ultralytics can download (``yolov8n.pt``, ``mobile_sam.pt``, ...)."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return GITHUB_ASSETS_NAMES


_OFFLINE_ENV = "YOLO_OFFLINE"
_offline_set_here = False


def silence_ultralytics_network() -> None:
    """Set ``YOLO_OFFLINE=true`` for this process unless the user set it: no online check, no usage events.

    ultralytics resolves two public DNS names when it is imported and, when it believes it is online
    and its ``sync`` setting is on, sends usage events. The ``detseg`` command calls this before
    ultralytics is imported; the user's ultralytics settings file is not touched. Library users
    who want the same set the variable themselves.
    """
    global _offline_set_here
    if _OFFLINE_ENV not in os.environ:
        os.environ[_OFFLINE_ENV] = "true"  # ultralytics 8.4.0 reads only "true"; later ones "1" too
        _offline_set_here = True


@contextmanager
def _online_for_this_download():
    """Lift the ``YOLO_OFFLINE`` that :func:`silence_ultralytics_network` set, for a download the user asked for."""
    saved = os.environ.pop(_OFFLINE_ENV, None) if _offline_set_here else None
    try:
        yield
    finally:
        if saved is not None:
            os.environ[_OFFLINE_ENV] = saved


@contextmanager
def offline_fonts():
    """While ``YOLO_OFFLINE`` is set, give ultralytics a font on this machine instead of fetching one.

    ultralytics checks for ``Arial.ttf`` when it checks a dataset and when it draws a label, and
    fetches it from GitHub if it is not in its settings folder; ``YOLO_OFFLINE`` does not stop that.
    Within this block (train and val) a missing font is answered with matplotlib's DejaVu Sans, so
    the plots are drawn and nothing is fetched. Outside it, and without ``YOLO_OFFLINE``, ultralytics
    is untouched.
    """
    if os.environ.get(_OFFLINE_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}:
        yield
        return
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks
    import ultralytics.utils.plotting as plotting
    from matplotlib import font_manager

    def local_font(font="Arial.ttf"):
        mine = checks.USER_CONFIG_DIR / Path(font).name
        return mine if mine.exists() else Path(font_manager.findfont("DejaVu Sans"))

    saved = [(m, m.check_font) for m in (checks, data_utils, plotting) if hasattr(m, "check_font")]
    for module, _ in saved:
        module.check_font = local_font
    try:
        yield
    finally:
        for module, original in saved:
            module.check_font = original


def resolve_weights(weights: str | Path, hint: str = "", unreadable: str = UNREADABLE) -> Path:
    """Return a local weights file: the path itself, or a known name downloaded by ultralytics.

    Args:
        weights: a path to an existing file, or a name such as ``yolov8n.pt``.
        hint: what else the user can do, appended to the error message.
        unreadable: the caller's words for a file it cannot load, ``{path}`` in them (for a file that
            is not a torch zip checkpoint).

    Raises:
        WeightsError: the file does not exist and is not a downloadable name, or the
            download failed (offline). The message says where the file was looked for.
            Or the file's pickle would import something no checkpoint needs
            (:mod:`detseg.pickle_scan`; ``DETSEG_TRUST_WEIGHTS=1`` skips that check).
    """
    path = Path(weights).expanduser()
    if path.is_file():
        check_weights_file(path, unreadable)
        return path
    if path.exists():
        raise WeightsError(f"weights path {path} is not a file")
    name = path.name
    if name not in downloadable_names() or path.parent != Path("."):
        raise WeightsError(f"weights file not found: {path.resolve()}. Pass the path of an existing file{hint}")
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        with _online_for_this_download():
            local = Path(attempt_download_asset(name))
    except Exception as e:  # network errors come in many types; all mean "could not download"
        local, reason = None, f" ({type(e).__name__}: {e})"
    else:
        reason = ""
    if local is None or not local.is_file():
        raise WeightsError(
            f"{name} is not in {Path.cwd()} and could not be downloaded{reason}. "
            f"Download it where you have internet and put it there, or pass a local path{hint}"
        )
    check_weights_file(local, unreadable)
    return local


def load_error(e: BaseException) -> str:
    """A one-line reason why a weights file did not load, without torch's advice to unpickle
    untrusted files (``weights_only=False``), which detseg never gives."""
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    if "weights_only" in str(e) or "Weights only load failed" in str(e):
        first = "not a file torch can read as weights (corrupt, truncated, or not a PyTorch checkpoint)"
    return f"{type(e).__name__}: {first[:200]}"


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` / ``"mps"`` / ``"cpu"`` by availability; other names are checked.

    Raises:
        InputError: not a device name (``cpu``, ``cuda``, ``cuda:N``, ``N``, ``mps``), or a GPU
            that this machine does not have.
    """
    import re

    import torch

    if device not in (None, "", "auto"):
        name = str(device).strip().lower()
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?|\d+(,\d+)*", name):
            raise InputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N, N (a GPU index) or mps")
        if (name.startswith("cuda") or name[0].isdigit()) and not torch.cuda.is_available():
            raise InputError(f"device {device!r} asks for a CUDA GPU, but torch sees none on this machine "
                             "(use --device cpu, or auto)")
        if name.startswith("cuda:") or name[0].isdigit():  # cuda:N, N, or a list N,M as ultralytics takes it
            indices = [int(i) for i in name.split(":")[-1].split(",")]
            if max(indices) >= torch.cuda.device_count():
                raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError("device 'mps' asks for Apple's GPU, which torch does not see here")
        return name

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@contextmanager
def keep_torch_threads(yolo=None, *events: str):
    """Keep torch's thread count through an ultralytics call (predict, train, val, export).

    ultralytics' ``select_device`` sets torch to cores - 1 threads for CPU work (1 of 2 cores
    here), halving that call and every later torch op in the process, SAM included. This sets
    the count back on exit and, for a call that runs long after ``select_device`` (training,
    validation), at each of the model's callback ``events`` too.
    """
    import torch

    threads = torch.get_num_threads()

    def restore(_=None) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    for event in events:
        yolo.add_callback(event, restore)
    try:
        yield
    finally:
        restore()
        for event in events:  # this call's callbacks only: a detector called per image must not pile them up
            with contextlib.suppress(ValueError, KeyError, AttributeError):
                yolo.callbacks[event].remove(restore)
