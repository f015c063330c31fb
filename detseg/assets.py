"""Finding model files and devices, shared by ``detectors`` and ``segmenter``.

A download happens only here, only for a known ultralytics asset name, and only
because the caller passed that name: never on import or in a constructor.
"""

from __future__ import annotations

from pathlib import Path

from detseg.errors import WeightsError


def downloadable_names() -> frozenset[str]:
    """Weights names that ultralytics can download (``yolov8n.pt``, ``mobile_sam.pt``, ...)."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return GITHUB_ASSETS_NAMES


def resolve_weights(weights: str | Path, hint: str = "") -> Path:
    """Return a local weights file: the path itself, or a known name downloaded by ultralytics.

    Args:
        weights: a path to an existing file, or a name such as ``yolov8n.pt``.
        hint: what else the user can do, appended to the error message.

    Raises:
        WeightsError: the file does not exist and is not a downloadable name, or the
            download failed (offline). The message says where the file was looked for.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise WeightsError(f"weights path {path} is not a file")
    name = path.name
    if name not in downloadable_names() or path.parent != Path("."):
        raise WeightsError(f"weights file not found: {path.resolve()}. Pass the path of an existing file{hint}")
    try:
        from ultralytics.utils.downloads import attempt_download_asset

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
    return local


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` / ``"mps"`` / ``"cpu"`` by availability; other values pass through."""
    if device not in (None, "", "auto"):
        return str(device)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
