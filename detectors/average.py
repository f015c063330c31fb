"""Average the weights of several checkpoints of one training run (stochastic weight averaging).

A short fine-tuning run's checkpoints can swing from epoch to epoch; the mean of the last few
epochs' weights sits in a flatter, steadier place (Izmailov et al., "Averaging Weights Leads to
Wider Optima and Better Generalization", 2018). Weighted, two checkpoints (a start and its
fine-tune) give WiSE-FT's interpolation (Wortsman et al., "Robust fine-tuning of zero-shot
models", 2022). Batch-norm statistics of averaged weights are not the average of the statistics,
so they are recomputed on training images.

Example:
    >>> from detseg.detectors.average import average_checkpoints  # doctest: +SKIP
    >>> average_checkpoints([f"runs/t/weights/epoch{i}.pt" for i in range(10, 15)], "avg.pt",  # doctest: +SKIP
    ...                     images="datasets/food/images/train", imgsz=640)
    PosixPath('avg.pt')
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detseg.detectors.checkpoint import load, save_stripped
from detseg.errors import DatasetError, WeightsError


def average_weights(weights: Sequence[str | Path], coefficients: Sequence[float] | None = None):
    """The mean of the weights of ultralytics checkpoints of one architecture, uniform or weighted.

    Floating-point parameters and buffers are averaged in float32; integer buffers (batch-norm's
    ``num_batches_tracked``) are taken from the last checkpoint. With ``coefficients`` ``(1 - a, a)``
    for a start and its fine-tune this is WiSE-FT's weight interpolation (Wortsman et al., 2022).

    Args:
        weights: two or more ``.pt`` paths (``ema`` weights where present, as ultralytics loads them).
        coefficients: one non-negative weight per path, summing to 1; ``None``: uniform.

    Returns:
        The averaged model (float32, eval mode), a copy of the last checkpoint's module.

    Raises:
        WeightsError: fewer than two paths, a file missing or unreadable, architectures that differ, or
            coefficients that are not one non-negative number per path summing to 1.
    """
    return _average(weights, coefficients)[0]


def _coefficients(weights: Sequence[str | Path], coefficients: Sequence[float] | None) -> list[float]:
    if coefficients is None:
        return [1 / len(weights)] * len(weights)
    c = [float(x) for x in coefficients]
    if len(c) != len(weights) or any(not np.isfinite(x) or x < 0 for x in c) or abs(sum(c) - 1) > 1e-6:
        raise WeightsError(f"coefficients must be one non-negative number per checkpoint ({len(weights)}) summing "
                           f"to 1, got {list(coefficients)}")
    return c


def _average(weights: Sequence[str | Path], coefficients: Sequence[float] | None = None):
    """The averaged model, the last checkpoint's dict (its metadata serves the saved file) and the
    coefficients used."""
    if len(weights) < 2:
        raise WeightsError(f"averaging needs at least 2 checkpoints, got {len(weights)}: {list(map(str, weights))}")
    coef = _coefficients(weights, coefficients)

    loaded = [load(p) for p in weights]
    models = [model for model, _ in loaded]
    states = [m.state_dict() for m in models]
    ref = {k: tuple(v.shape) for k, v in states[0].items()}
    for path, state in zip(weights[1:], states[1:]):
        got = {k: tuple(v.shape) for k, v in state.items()}
        if got != ref:
            diff = sorted(set(ref.items()) ^ set(got.items()))[:3]
            raise WeightsError(f"{path}: architecture differs from {weights[0]} (first (tensor, shape) pairs "
                               f"found in only one of the two: {diff})")
    names = [getattr(m, "names", None) for m in models]
    for path, got in zip(weights[1:], names[1:]):
        if got != names[0]:
            raise WeightsError(f"{path}: class names {got} differ from {weights[0]}'s {names[0]}")
    mean = {k: (sum(c * s[k].float() for c, s in zip(coef, states)) if v.is_floating_point() else states[-1][k])
            for k, v in states[0].items()}
    model = models[-1]
    model.load_state_dict(mean)
    return model.eval(), loaded[-1][1], coef


def list_images(images: str | Path) -> list[Path]:
    """Image files directly in a folder, sorted."""
    folder = Path(images)
    from detseg.images import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise DatasetError("image folder not found", folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def recalibrate_batchnorm(model, images: Sequence[str | Path], imgsz: int = 640, batch: int = 16) -> int:
    """Recompute every batch-norm layer's running mean and variance on ``images``.

    Each image is letterboxed to ``imgsz`` x ``imgsz`` (ultralytics' grey padding, RGB, 0-1) and the
    model runs in training mode without gradients; the statistics are the plain average over all
    batches (momentum ``None``), as in SWA.

    Args:
        model: an ultralytics ``DetectionModel`` (float32).
        images: image paths (BGR files read with OpenCV; unreadable files are skipped).
        imgsz: square input size.
        batch: images per forward pass.

    Returns:
        The number of images used (0 for a model without batch norm: nothing to recompute).

    Raises:
        DatasetError: no image could be read (the statistics are then left as they were).
    """
    import cv2
    import torch
    from ultralytics.data.augment import LetterBox

    images = list(images)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
    letterbox = LetterBox((imgsz, imgsz), auto=False)
    used, chunk = 0, []
    was_training = model.training
    model.train()

    def flush():
        x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.no_grad():
            model(x)
        chunk.clear()

    try:
        for path in images:
            im = cv2.imread(str(path))
            if im is None:
                continue
            chunk.append(np.ascontiguousarray(letterbox(image=im)[..., ::-1]))
            used += 1
            if len(chunk) == batch:
                flush()
        if chunk:
            flush()
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    if not used:
        for m, (mean, var, count) in zip(bns, saved):
            m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
        raise DatasetError("no readable image to recompute batch-norm statistics on",
                           ", ".join(map(str, images[:3])) or "(empty list)")
    return used


def average_checkpoints(weights: Sequence[str | Path], out: str | Path,
                        images: str | Path | Sequence[str | Path] | None = None,
                        imgsz: int | None = None, max_images: int = 512, seed: int = 0, batch: int = 16,
                        coefficients: Sequence[float] | None = None) -> Path:
    """Average checkpoints, recompute batch-norm statistics, and save a stripped ultralytics checkpoint.

    Args:
        weights: the checkpoints to average (e.g. a run's ``weights/epoch*.pt`` from ``save_period=1``).
        out: the ``.pt`` to write (atomically); loadable by ``YOLO(out)`` and ``detseg predict --detector``.
        images: folder of training images for the batch-norm statistics, or a list of image paths (e.g.
            drawn from every train folder of a data.yaml); ``None`` keeps the averaged
            statistics (less accurate, see the module docstring).
        imgsz: input size for the statistics pass; None: the size the last checkpoint was trained at (its
            ``train_args``), else 640. The statistics must come from the scale the model will run at.
        max_images: at most this many images, drawn with ``random.Random(seed)``.
        seed: seed of that draw.
        batch: images per forward pass.
        coefficients: one weight per checkpoint, summing to 1 (see :func:`average_weights`); ``None``: uniform.

    Returns:
        The path written.
    """
    model, ckpt, coef = _average(weights, coefficients)
    if images is not None:
        paths = list_images(images) if isinstance(images, (str, Path)) else sorted(map(Path, images))
        if len(paths) > max_images:
            paths = sorted(random.Random(seed).sample(paths, max_images))
        if imgsz is None:
            trained = (ckpt.get("train_args") or {}).get("imgsz")
            imgsz = int(trained) if isinstance(trained, int) and not isinstance(trained, bool) else 640
        recalibrate_batchnorm(model, paths, imgsz=imgsz, batch=batch)
    # the last epoch's validation figures do not describe the average
    ckpt.update(model=model.half(), ema=None, train_metrics={}, train_results={})
    return save_stripped(ckpt, out, updates={"averaged_from": [str(p) for p in weights],
                                                 "averaged_coefficients": coef})
