"""Read and write ultralytics checkpoint files (the ``.pt`` dicts ultralytics saves): :func:`load_yolo` for
training, validation and export, and for the tools that rewrite a trained detector's weights
(:mod:`detseg.detectors.average`, :mod:`detseg.detectors.heads`) :func:`load` and :func:`save_stripped`."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from detseg.assets import load_error
from detseg.atomic import place_file
from detseg.errors import WeightsError


def load(path: str | Path):
    """``(model, checkpoint dict)`` as ultralytics loads them: the ``ema`` weights where present, float32.

    Raises:
        WeightsError: the file is missing or not an ultralytics checkpoint.
    """
    from ultralytics.nn.tasks import load_checkpoint

    from detseg.pickle_scan import check_weights_file, restricted_loading

    if not Path(path).is_file():
        raise WeightsError(f"{path}: checkpoint not found")
    check_weights_file(path, "{path} is not an ultralytics checkpoint")
    try:
        with restricted_loading():
            return load_checkpoint(path)
    except Exception as e:  # a file that is not an ultralytics checkpoint
        raise WeightsError(f"{path}: not an ultralytics checkpoint ({type(e).__name__}: {e})") from None


def save_stripped(ckpt: dict, out: str | Path, updates: dict | None = None) -> Path:
    """Save ``ckpt`` at ``out`` atomically as ultralytics' ``strip_optimizer`` leaves a finished run's file:
    fp16, no optimizer or EMA, epoch -1 (not resumable), ``train_args`` cut to ultralytics' own keys;
    ``updates`` are written over the result. Returns ``out`` as a Path."""
    import torch
    from ultralytics.utils.torch_utils import strip_optimizer

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / Path(out).name
        torch.save(ckpt, staged)
        strip_optimizer(staged, updates=updates)
        return place_file(staged, out)


NOT_YOLO = "{path} is not a loadable ultralytics YOLO model"  # the message for a file that is not one


def load_yolo(path, tasks: tuple[str, ...] = ("detect", "segment")):
    """An ultralytics YOLO model from a ``.pt`` or ``.yaml``, or one clear WeightsError."""
    from ultralytics import YOLO

    from detseg.pickle_scan import check_weights_file, restricted_loading

    check_weights_file(path, NOT_YOLO)
    try:
        with restricted_loading() if str(path).endswith((".pt", ".pth")) else contextlib.nullcontext():
            model = YOLO(str(path))
    except Exception as e:  # ultralytics raises many types for a bad, foreign or half-downloaded file
        raise WeightsError(f"{NOT_YOLO.format(path=path)} ({load_error(e)})") from None
    if model.task not in tasks:
        raise WeightsError(f"{path} is a {model.task!r} model; expected one of {list(tasks)}")
    return model
