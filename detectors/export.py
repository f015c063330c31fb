"""Export a trained YOLO model (detector or -seg student) for fast CPU inference: ONNX or OpenVINO.

A thin wrapper over ``YOLO.export``: it checks the runtime packages first (one clear error instead of
ultralytics installing them behind the user's back), exports on the CPU at a fixed input size, and
places the result where asked, atomically. The exported file or folder is read back by
:class:`detseg.detectors.YoloDetector` (and ``--detector`` on the command line) like a ``.pt``; its
input size and class names come from the metadata ultralytics embeds.

Example:
    >>> from detseg.detectors.export import export
    >>> export("runs/student/weights/best.pt", "openvino", imgsz=320)   # doctest: +SKIP
    PosixPath('runs/student/weights/best_openvino_model')
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from detseg.atomic import temp_name
from detseg.errors import InputError, WeightsError

#: format -> (packages it needs, what ultralytics names its output after the weights' stem)
FORMATS = {
    "onnx": (("onnx", "onnxruntime"), "{stem}.onnx"),
    "openvino": (("openvino",), "{stem}_openvino_model"),
}


def check_runtime(fmt: str) -> None:
    """Raise one clear error when a format's packages are missing.

    Raises:
        InputError: ``fmt`` is not a supported format, or its packages are not installed.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
    missing = [p for p in FORMATS[fmt][0] if importlib.util.find_spec(p) is None]
    if missing:
        raise InputError(f"the {fmt} format needs {', '.join(missing)}: pip install \"detseg[export]\"")


def exported_format(path: str | Path) -> str | None:
    """``"onnx"`` / ``"openvino"`` for an ultralytics export's name, None for anything else (``.pt``, ``.yaml``).

    By name, so a missing export is reported as one; an OpenVINO folder is ``*_openvino_model`` (or the ``.xml``
    model file inside it, which ultralytics also loads).
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.name.endswith("_openvino_model") or (path.suffix.lower() == ".xml"
                                                  and path.parent.name.endswith("_openvino_model")):
        return "openvino"
    return None


def exported_metadata(path: str | Path) -> dict:
    """What ultralytics embedded in an export (task, names, imgsz, batch, ...); {} if none.

    Read without importing the runtime (ultralytics' own reader).
    """
    import ast

    from ultralytics.nn.backends.base import BaseBackend

    meta = dict(BaseBackend.read_metadata(Path(path)))
    for key in ("imgsz", "names", "args"):  # ONNX stores them as strings (as BaseBackend.apply_metadata reads them)
        if isinstance(meta.get(key), str):
            meta[key] = ast.literal_eval(meta[key])
    return meta


def open_export(path: str | Path, imgsz=None) -> tuple[Path, list[int] | None]:
    """Check an export before ultralytics loads it: ``(path to load, fixed input size or None if dynamic)``; an
    OpenVINO ``.xml`` gives its ``*_openvino_model`` folder.

    Raises:
        WeightsError: the export does not exist.
        InputError: its runtime is not installed, or ``imgsz`` (int or (h, w)) is not the size it was
            exported for.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"exported model not found: {path.resolve()}")
    check_runtime(exported_format(path))
    if path.suffix.lower() == ".xml":  # the model file of an OpenVINO export: ultralytics loads its folder
        path = path.parent
    meta = exported_metadata(path)
    fixed = None if (meta.get("args") or {}).get("dynamic") else meta.get("imgsz")
    if imgsz and fixed:
        asked = list(imgsz) if isinstance(imgsz, (list, tuple)) else [imgsz] * 2
        if [int(v) for v in asked] != [int(v) for v in fixed]:
            raise InputError(f"{path.name} was exported for imgsz {fixed}; run it at that size "
                             f"or export again with `detseg export --imgsz {imgsz}`")
    return path, (list(fixed) if fixed else None)


def export(weights: str | Path, fmt: str = "openvino", imgsz: int | None = None, half: bool = False,
           out: str | Path | None = None) -> Path:
    """Export ``weights`` (a detect or segment ``.pt``) to ``fmt`` at a fixed ``imgsz``.

    Args:
        weights: trained ultralytics weights, e.g. ``runs/student/weights/best.pt``.
        fmt: ``"openvino"`` (fastest on Intel CPUs) or ``"onnx"`` (ONNX Runtime, any CPU).
        imgsz: square input side the exported model is fixed to; None: the size it was trained at
            (640 when the file does not say).
        half: FP16 weights (OpenVINO only: the file is halved; OpenVINO picks the compute precision
            itself, bf16 on CPUs that have it, f32 otherwise).
        out: where to put the result (a ``.onnx`` file or an ``_openvino_model`` folder);
            default: beside ``weights``, named as ultralytics names it. An existing one is replaced.

    Returns:
        The exported file (onnx) or folder (openvino).

    Raises:
        InputError: unknown format, missing runtime package, bad ``imgsz`` or ``out``.
        WeightsError: ``weights`` is not a loadable detect/segment model, or the exporter failed.
    """
    from detseg.assets import keep_torch_threads, resolve_weights
    from detseg.detectors.checkpoint import load_yolo

    check_runtime(fmt)
    if imgsz is not None and (int(imgsz) < 32 or int(imgsz) % 32):
        raise InputError(f"imgsz must be a multiple of 32 (the model's stride), got {imgsz}")
    if half and fmt != "openvino":
        raise InputError("half=True is supported for the openvino format only")
    src = resolve_weights(weights)
    if src.suffix != ".pt":
        raise WeightsError(f"export takes trained .pt weights, got {src}")
    dst = Path(out) if out is not None else src.parent / FORMATS[fmt][1].format(stem=src.stem)
    if fmt == "onnx" and (dst.suffix != ".onnx" or dst.is_dir()):
        raise InputError(f"an onnx export is one .onnx file; got out={dst}")
    if fmt == "openvino" and (not dst.name.endswith("_openvino_model") or (dst.exists() and not dst.is_dir())):
        raise InputError(f"an openvino export is a folder whose name ends in _openvino_model (ultralytics reads it "
                         f"by that); got out={dst}")
    model = load_yolo(src)  # errors name the user's file, not a temporary copy
    if imgsz is None:
        imgsz = ((getattr(model, "ckpt", None) or {}).get("train_args") or {}).get("imgsz") or 640
    dst.parent.mkdir(parents=True, exist_ok=True)
    # ultralytics writes beside its input (and names the folder by replacing ".pt" anywhere in the path):
    # export a private copy in a temp folder without ".pt" in its path, then move the result in
    staging = dst.parent if ".pt" not in str(dst.parent.resolve()) else None
    with tempfile.TemporaryDirectory(dir=staging, prefix="detseg-export-") as tmp:
        copy = Path(tmp) / "model.pt"
        shutil.copyfile(src, copy)
        extra = {"simplify": importlib.util.find_spec("onnxslim") is not None} if fmt == "onnx" else {}
        try:
            with keep_torch_threads(), _without_lines_naming(tmp):
                produced = Path(load_yolo(copy).export(format=fmt, imgsz=int(imgsz),
                                                       quantize=16 if half else None, device="cpu", dynamic=False,
                                                       **extra))
        except (InputError, WeightsError):
            raise
        except Exception as e:  # the exporters raise many types; the cause is one line
            raise WeightsError(f"export of {src} to {fmt} failed ({type(e).__name__}: {str(e)[:300]})") from None
        _put_in_place(produced, dst)
    return dst


@contextlib.contextmanager
def _without_lines_naming(private: str | Path):
    """Drop ultralytics' log lines that name the private copy's folder (its "saved as ..." and its closing
    "Export complete ... Predict: yolo predict model=..." hint): the folder is deleted a moment later, and
    the caller prints the exported file's real place."""
    from ultralytics.utils import LOGGER

    def keep(record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return str(private) not in message and "Export complete" not in message

    LOGGER.addFilter(keep)
    try:
        yield
    finally:
        LOGGER.removeFilter(keep)


def _put_in_place(produced: Path, dst: Path) -> None:
    """Move ``produced`` to ``dst``, replacing what is there: a file atomically, a folder by two renames."""
    part = temp_name(dst)
    shutil.rmtree(part, ignore_errors=True) if part.is_dir() else part.unlink(missing_ok=True)
    shutil.move(str(produced), str(part))  # a rename on the same disk
    if not part.is_dir():
        os.replace(part, dst)
        return
    old = dst.with_name(f".{dst.name}.{os.getpid()}.old")
    if dst.exists():
        os.rename(dst, old)
    os.rename(part, dst)
    shutil.rmtree(old, ignore_errors=True)
