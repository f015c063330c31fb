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

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

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
    """``"onnx"`` / ``"openvino"`` for an ultralytics export, None for anything else (``.pt``, ``.yaml``)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.is_dir() and path.name.endswith("_openvino_model"):
        return "openvino"
    return None


def exported_metadata(path: str | Path) -> dict:
    """What ultralytics embedded in an export (task, names, imgsz, batch, ...); {} if none.

    Read without importing the runtime (ultralytics' own reader).
    """
    from ultralytics.nn.backends.base import BaseBackend

    meta = dict(BaseBackend.read_metadata(Path(path)))
    for key in ("imgsz", "names", "args"):
        if isinstance(meta.get(key), str):
            import ast

            meta[key] = ast.literal_eval(meta[key])
    return meta


def export(weights: str | Path, fmt: str = "openvino", imgsz: int = 640, half: bool = False,
           out: str | Path | None = None) -> Path:
    """Export ``weights`` (a detect or segment ``.pt``) to ``fmt`` at a fixed ``imgsz``.

    Args:
        weights: trained ultralytics weights, e.g. ``runs/student/weights/best.pt``.
        fmt: ``"openvino"`` (fastest on Intel CPUs) or ``"onnx"`` (ONNX Runtime, any CPU).
        imgsz: square input side the exported model is fixed to (use the size it was trained at).
        half: FP16 weights (OpenVINO only; CPUs compute in FP32 either way, the file is halved).
        out: where to put the result (a ``.onnx`` file or an ``_openvino_model`` folder);
            default: beside ``weights``, named as ultralytics names it.

    Returns:
        The exported file (onnx) or folder (openvino).

    Raises:
        InputError: unknown format, missing runtime package, bad ``imgsz`` or ``out``.
        WeightsError: ``weights`` is not a loadable detect/segment model.
    """
    from detseg.assets import resolve_weights
    from detseg.detectors.train import load_yolo

    check_runtime(fmt)
    if int(imgsz) < 32 or int(imgsz) % 32:
        raise InputError(f"imgsz must be a multiple of 32 (the model's stride), got {imgsz}")
    if half and fmt != "openvino":
        raise InputError("half=True is supported for the openvino format only")
    src = resolve_weights(weights)
    if src.suffix != ".pt":
        raise WeightsError(f"export takes trained .pt weights, got {src}")
    name = FORMATS[fmt][1].format(stem=src.stem)
    dst = Path(out) if out is not None else src.parent / name
    if fmt == "onnx" and dst.suffix != ".onnx":
        raise InputError(f"an onnx export is one .onnx file; got out={dst}")
    if fmt == "openvino" and not dst.name.endswith("_openvino_model"):
        raise InputError(f"an openvino export folder must end in _openvino_model (ultralytics reads it by that); "
                         f"got out={dst}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    # ultralytics writes beside its input: export a private copy in a temp folder, then move the result in
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".export-") as tmp:
        copy = Path(tmp) / src.name
        shutil.copyfile(src, copy)
        model = load_yolo(copy)
        import torch

        threads = torch.get_num_threads()
        try:
            produced = Path(model.export(format=fmt, imgsz=int(imgsz), quantize=16 if half else None, device="cpu",
                                         dynamic=False, simplify=importlib.util.find_spec("onnxslim") is not None))
        except (InputError, WeightsError):
            raise
        except Exception as e:  # the exporters raise many types; the cause is one line
            raise WeightsError(f"export of {src} to {fmt} failed ({type(e).__name__}: {str(e)[:300]})") from None
        finally:  # ultralytics' select_device leaves torch at cores - 1 threads for the whole process
            torch.set_num_threads(threads)
        if produced.is_dir():
            if dst.exists():
                shutil.rmtree(dst)
            produced.rename(dst)
        else:
            os.replace(produced, dst)
    return dst
