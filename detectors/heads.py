"""Change the classes of a trained ultralytics detector without touching what it has learned.

- :func:`add_classes`: widen the detection head by new classes (their output rows start fresh, every
  trained row is kept), so a detector can be trained on with extra classes, e.g. a look-alike class that
  teaches it what is *not* one of its classes.
- :func:`keep_classes`: drop classes from the head (their output rows are removed), e.g. that helper class
  before the detector ships; the remaining classes score exactly as before.

Both read and write ultralytics checkpoints (the ``ema`` weights where present, as ultralytics loads
them) and save a stripped one (fp16, no optimizer, no training state, no dataset path: ultralytics'
``strip_optimizer``) atomically. Only the anchor-free ``Detect`` head of YOLOv5u/v8/11 is handled; an
end-to-end (one-to-one) head is refused. Recent ultralytics trainers also copy class rows by name when a
checkpoint meets a dataset with other classes (``cls_remap``); :func:`add_classes` does it explicitly, for
any ultralytics version detseg supports, and leaves a file that can be checked before any training.

Example:
    >>> from detseg.detectors.heads import add_classes, keep_classes  # doctest: +SKIP
    >>> add_classes("food.pt", "food4.pt", ["other baked good"])  # doctest: +SKIP
    >>> keep_classes("runs/r7/weights/best.pt", "food.pt", [0, 1, 2])  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path

from detseg.detectors.checkpoint import load, save_stripped
from detseg.errors import InputError, WeightsError


def _detect_head(model, path):
    from ultralytics.nn.modules.head import Detect

    head = model.model[-1]
    if type(head) is not Detect:  # a -seg/-pose/-obb head holds more outputs than boxes and classes
        raise WeightsError(f"{path}: the head is {type(head).__name__}; only a plain Detect head can change classes")
    if getattr(head, "end2end", False) or hasattr(head, "one2one_cv3"):
        raise WeightsError(f"{path}: an end-to-end (one-to-one) head cannot change classes here")
    return head


def _set_rows(head, rows: Sequence[int | None]) -> None:
    """Rebuild each scale's last class conv with one output per entry of ``rows``: an old row's index or None (new).

    A new row gets zero weights and ultralytics' prior bias: it scores the same low value everywhere until
    trained (and the file is the same on every run)."""
    import torch

    for i, seq in enumerate(head.cv3):
        old = seq[-1]
        new = torch.nn.Conv2d(old.in_channels, len(rows), 1).to(old.weight.device, old.weight.dtype)
        prior = math.log(5 / len(rows) / (640 / float(head.stride[i])) ** 2)  # ultralytics' Detect.bias_init
        with torch.no_grad():
            for j, r in enumerate(rows):
                if r is None:
                    new.weight[j] = 0.0
                    new.bias[j] = prior
                else:
                    new.weight[j] = old.weight[r]
                    new.bias[j] = old.bias[r]
        seq[-1] = new
    head.nc = len(rows)
    head.no = head.nc + head.reg_max * 4


def _rewrite(weights, out, change) -> Path:
    """Load ``weights``, apply ``change(model, head, names) -> names``, save a stripped checkpoint at ``out``."""
    model, ckpt = load(weights)
    head = _detect_head(model, weights)
    names = change(model, head, dict(model.names))
    model.names = names
    model.nc = len(names)
    if isinstance(getattr(model, "yaml", None), dict):
        model.yaml["nc"] = len(names)
    train_args = {k: v for k, v in (ckpt.get("train_args") or {}).items() if k != "data"}  # its classes changed
    ckpt.update(model=model, ema=None, train_args=train_args, train_metrics={}, train_results={})
    return save_stripped(ckpt, out)  # fp16, epoch -1: not a resumable run


def add_classes(weights: str | Path, out: str | Path, names: Sequence[str]) -> Path:
    """Save ``weights`` with ``names`` appended as new classes (ids ``nc, nc+1, ...``).

    The trained classes keep their ids and their output rows; the new rows start with ultralytics'
    prior bias (a low score) and fresh weights, so before training the new classes are almost never
    detected and the old ones score exactly as before.

    Args:
        weights: an ultralytics detection checkpoint (``.pt``).
        out: where to save the widened checkpoint.
        names: the new class names, none already in the model.

    Returns:
        ``out`` as a Path.

    Raises:
        InputError: no name given, or a name the model already has.
        WeightsError: not a detection checkpoint with a plain Detect head.
    """
    if isinstance(names, str):
        raise InputError(f"add_classes: names is a list of class names, got the string {names!r}")
    names = list(names)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise InputError(f"add_classes: give one or more non-empty class names, got {names!r}")
    if len(set(names)) != len(names):
        raise InputError(f"add_classes: a class name is given twice: {names!r}")

    def change(model, head, old):
        taken = sorted(set(names) & set(old.values()))
        if taken:
            raise InputError(f"add_classes: the model already has the classes {taken}")
        _set_rows(head, list(range(head.nc)) + [None] * len(names))
        return {**old, **{len(old) + k: n for k, n in enumerate(names)}}

    return _rewrite(weights, out, change)


def keep_classes(weights: str | Path, out: str | Path, classes: Sequence[int]) -> Path:
    """Save ``weights`` with only ``classes`` (ids, in the order given: they become ids ``0, 1, ...``).

    The kept classes' scores are unchanged for every box; a box whose best class was a dropped one now
    reports its best kept class (ultralytics scores classes independently, with sigmoids).

    Args:
        weights: an ultralytics detection checkpoint (``.pt``).
        out: where to save the narrowed checkpoint.
        classes: class ids to keep, at least one, each once.

    Returns:
        ``out`` as a Path.

    Raises:
        InputError: an empty list, a repeated id or one the model does not have.
        WeightsError: not a detection checkpoint with a plain Detect head.
    """
    if isinstance(classes, (str, int)) or not all(isinstance(c, numbers.Integral) and not isinstance(c, bool)
                                                  for c in classes):
        raise InputError(f"keep_classes: classes is a list of class ids (ints), got {classes!r}")
    classes = [int(c) for c in classes]

    def change(model, head, old):
        bad = [c for c in classes if c not in old]
        if not classes or bad or len(set(classes)) != len(classes):
            raise InputError(f"keep_classes: give distinct class ids of this model ({sorted(old)}); got {classes}")
        _set_rows(head, classes)
        return {k: old[c] for k, c in enumerate(classes)}

    return _rewrite(weights, out, change)
