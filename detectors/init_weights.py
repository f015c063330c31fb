"""Start a YOLO model from any compatible weights: copy every tensor that matches by name and shape.

``detseg train --model yolov5n.yaml --init yolov5n-coco-state-dict.pt`` builds the model from its
``.yaml`` with the dataset's classes, copies into it every tensor of the given state dict or
checkpoint whose name and shape match, and saves the result in ultralytics' checkpoint form, the
one form ``YOLO(...).train()`` keeps (a model built from a ``.yaml`` and filled by hand would be
rebuilt, and its weights dropped, when training starts).

Example:
    >>> from detseg.detectors.init_weights import init_checkpoint  # doctest: +SKIP
    >>> report = init_checkpoint("yolov5n.yaml", "yolov5n-coco-state-dict.pt", ["croissant", "cookie", "cupcake"],
    ...                          "runs/t/init.pt")
    >>> report.summary()  # doctest: +SKIP
    'copied 342 of 355 tensors from yolov5n-coco-state-dict.pt; 13 keep their fresh initialisation (model.24.*)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detseg.errors import WeightsError


@dataclass
class InitReport:
    """What :func:`init_checkpoint` copied: tensor names of the new model, split by what happened to them."""

    source: Path
    copied: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)  # same name, other shape: left fresh
    fresh: list[str] = field(default_factory=list)  # not in the source (or other shape): left fresh
    unused: int = 0  # source tensors with no counterpart in the new model
    class_rows: str = ""  # how the class-logit rows were matched, when the source names its classes

    @property
    def total(self) -> int:
        return len(self.copied) + len(self.fresh)

    def summary(self) -> str:
        """One line for the console: how many matched, and which layers start fresh."""
        line = f"copied {len(self.copied)} of {self.total} tensors from {self.source.name}"
        if self.fresh:
            prefixes = sorted({".".join(n.split(".")[:2]) for n in self.fresh})
            shown = ", ".join(f"{p}.*" for p in prefixes[:4]) + (", ..." if len(prefixes) > 4 else "")
            line += f"; {len(self.fresh)} keep their fresh initialisation ({shown})"
        if self.shape_mismatch:
            line += f"; {len(self.shape_mismatch)} of those matched by name but not shape"
        if self.unused:
            line += f"; {self.unused} source tensors unused"
        if self.class_rows:
            line += f"; {self.class_rows}"
        return line


def read_tensors(path: str | Path) -> dict:
    """The named tensors of a state dict or checkpoint file, as ``{name: torch.Tensor}``.

    Reads safely first (``torch.load(weights_only=True)``: plain state dicts, and checkpoints whose
    ``"model"``/``"state_dict"`` entry is a state dict). A full ultralytics checkpoint (a pickled
    module) is read with ultralytics' own loader, as ``YOLO(path)`` would.

    Raises:
        WeightsError: the file is missing or unreadable, or holds no dict of tensors.
    """
    return _tensors_of(_read(path), Path(path))


def _read(path: str | Path):
    """What :func:`read_tensors` reads from: the file's object (a state dict, a checkpoint dict or a module)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--init file not found: {path}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        obj = None
    if obj is None:
        from detseg.pickle_scan import check_weights_file

        # a full pickle is about to be loaded: refuse one that would run code
        check_weights_file(path, "cannot read {path} as a state dict or checkpoint")
        try:
            from ultralytics.nn.tasks import torch_safe_load

            from detseg.pickle_scan import restricted_loading

            with restricted_loading():
                obj, _ = torch_safe_load(str(path))
        except Exception as e:
            raise WeightsError(f"cannot read {path} as a state dict or checkpoint ({type(e).__name__})") from None
    return obj


def _names_of(obj) -> dict | None:
    """``{id: name}`` of the classes a checkpoint's model was trained for; None for a bare state dict."""
    import torch

    modules = [obj] if isinstance(obj, torch.nn.Module) else (
        [obj.get(k) for k in ("ema", "model")] if isinstance(obj, Mapping) else [])
    for module in modules:
        names = getattr(module, "names", None)
        if isinstance(names, Mapping) and names:
            return dict(names)
        if isinstance(names, (list, tuple)) and names:
            return dict(enumerate(names))
    return None


def match_class_rows(model, tensors: dict, source_names: Mapping | None) -> tuple[str, list[str]]:
    """Copy the class-logit rows of ``tensors`` into ``model`` by class name, as ultralytics' own ``load``
    does for a pretrained ``.pt`` (``_remap_cls_by_names``), and take them out of ``tensors`` so that
    :func:`copy_matching` never copies them by position: a source whose classes are the same in another order
    (or some of them) starts each class from its own rows. No-op (``""``) without source names or when the
    names are the same, in the same order. Returns the words for :meth:`InitReport.summary` and the names of the
    tensors whose rows were copied."""
    from ultralytics.nn.modules.head import Detect

    from detseg.keys import class_key

    target = dict(getattr(model, "names", None) or {})
    if not source_names or not target:
        return "", []
    lookup = {class_key(v): int(k) for k, v in source_names.items()}
    idx = [lookup.get(class_key(target[k]), -1) for k in range(len(target))]
    if len(source_names) == len(target) and idx == list(range(len(target))):
        return "", []
    keys = []
    for name, m in model.named_modules():
        if isinstance(m, Detect):
            for attr in ("cv3", "one2one_cv3"):
                for i, seq in enumerate(getattr(m, attr, None) or ()):
                    if getattr(seq[-1], "out_channels", None) == len(target):
                        keys += [f"{name}.{attr}.{i}.{len(seq) - 1}.{p}" for p in ("weight", "bias")]
    own, matched, copied = model.state_dict(), [t for t, s in enumerate(idx) if s >= 0], []
    for key in keys:
        src = tensors.pop(key, None)
        if src is not None and matched and tuple(src.shape[1:]) == tuple(own[key].shape[1:]):
            own[key][matched] = src[[idx[t] for t in matched]].to(own[key].dtype)
            copied.append(key)
    if not matched:
        return "no class name in common with the source: class rows start fresh", []
    if not copied:  # names matched, but the class convolutions differ in shape (another scale) or place
        return "class rows start fresh (the source's class layers have another shape)", []
    if not any(k.endswith(".weight") for k in copied):  # another scale: same biases, other input width
        return (f"class biases matched by name for {len(matched)} of {len(target)} classes; class weights start "
                "fresh (the source's class layers have another shape)"), copied
    return f"class rows matched by name for {len(matched)} of {len(target)} classes", copied


def _tensors_of(obj, path: Path) -> dict:
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj.float().state_dict()
    if isinstance(obj, Mapping):
        for key in ("ema", "model", "state_dict"):  # checkpoint forms: ultralytics, plain torch, Lightning
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                return inner.float().state_dict()
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path} holds no dict of tensors (found {type(obj).__name__}); --init needs a state dict "
                       "or a checkpoint")


def copy_matching(model, tensors: Mapping, source: str | Path = "weights") -> InitReport:
    """Copy into ``model`` (an ``nn.Module``) every tensor of ``tensors`` with its name and shape.

    Floating-point tensors are cast to the model's dtype; integer buffers (batch-norm counters) are
    copied as they are.

    Raises:
        WeightsError: not one tensor matches (the file is for another architecture).
    """
    import torch

    report = InitReport(source=Path(source))
    own = model.state_dict()
    with torch.no_grad():
        for name, target in own.items():
            src = tensors.get(name)
            if src is None:
                report.fresh.append(name)
            elif tuple(src.shape) != tuple(target.shape):
                report.fresh.append(name)
                report.shape_mismatch.append(name)
            else:
                target.copy_(src.to(target.dtype) if target.is_floating_point() else src)
                report.copied.append(name)
    report.unused = sum(1 for n in tensors if n not in own)
    learned = [n for n in report.copied if not n.endswith("num_batches_tracked")]
    if not learned:
        raise WeightsError(f"{report.source} has no tensor in common with the model (0 of {report.total} match by "
                           "name and shape): is it weights for another architecture?")
    return report


def init_checkpoint(model_cfg: str | Path, init: str | Path, names: Sequence[str], out: str | Path) -> InitReport:
    """Build ``model_cfg`` for ``names``, copy what matches from ``init``, save an ultralytics checkpoint at ``out``.

    Args:
        model_cfg: an ultralytics model ``.yaml`` (``yolov5n.yaml``, ``yolov8n.yaml``, ``yolov8n-seg.yaml``, a path),
            or ``yolov5n-seg.yaml`` (any scale; :mod:`detseg.detectors.model_configs`, written beside ``out``).
        init: a state dict or checkpoint file (see :func:`read_tensors`).
        names: the dataset's class names, in class-id order (sets the head's size).
        out: where to write the checkpoint that ``YOLO(out).train(...)`` then starts from.

    Returns:
        :class:`InitReport` (``.summary()`` is the line ``detseg train`` prints).
    """
    import torch
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    from detseg.atomic import atomic_write_bytes
    from detseg.detectors.model_configs import resolve_model_config

    model_cfg = resolve_model_config(model_cfg, Path(out).parent)
    try:
        cfg = yaml_model_load(str(model_cfg))
    except FileNotFoundError as e:
        raise WeightsError(f"model config {model_cfg} not found ({e})") from None
    task = guess_model_task(cfg)
    model = _model_class(task)(cfg, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    obj = _read(init)
    tensors = _tensors_of(obj, Path(init))
    class_rows, by_name = match_class_rows(model, tensors, _names_of(obj))
    report = copy_matching(model, tensors, init)
    report.class_rows = class_rows
    report.fresh = [n for n in report.fresh if n not in by_name]
    report.copied += by_name
    import io

    buffer = io.BytesIO()
    torch.save({"model": model.float(), "train_args": {"model": str(model_cfg), "task": task},
                "detseg_init": {"source": str(init), "copied": len(report.copied), "total": report.total}}, buffer)
    atomic_write_bytes(Path(out), buffer.getvalue())
    return report


def _model_class(task: str):
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    classes = {"detect": DetectionModel, "segment": SegmentationModel}
    if task not in classes:
        raise WeightsError(f"--init supports detect and segment models, not {task!r}")
    return classes[task]
