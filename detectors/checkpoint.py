"""Read and write ultralytics checkpoint files (the ``.pt`` dicts ultralytics saves), for the tools that
rewrite a trained detector's weights: :mod:`detseg.detectors.average` and :mod:`detseg.detectors.heads`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from detseg.atomic import place_file
from detseg.errors import WeightsError


def load(path: str | Path):
    """``(model, checkpoint dict)`` as ultralytics loads them: the ``ema`` weights where present, float32.

    Raises:
        WeightsError: the file is missing or not an ultralytics checkpoint.
    """
    from ultralytics.nn.tasks import load_checkpoint

    if not Path(path).is_file():
        raise WeightsError(f"{path}: checkpoint not found")
    try:
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
