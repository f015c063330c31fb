"""Train an ultralytics YOLO detector: a thin, honest wrapper over ``YOLO.train``.

What it adds: a dataset file resolved to absolute paths (so ``data/food.yaml`` and
Roboflow exports work from any folder), weights names checked before a long run
starts, a run folder that is exactly ``out``, and ``metrics.json`` + ``command.txt``
written next to the weights.

Example:
    >>> from detseg.detectors.train import train  # doctest: +SKIP
    >>> result = train("datasets/food/data.yaml", model="yolov8n.yaml", epochs=1, imgsz=64,  # doctest: +SKIP
    ...                out="runs/t")
    >>> result.best_weights  # doctest: +SKIP
    PosixPath('runs/t/weights/best.pt')
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from detseg.assets import keep_torch_threads, offline_fonts, resolve_device, resolve_weights
from detseg.atomic import atomic_write_json, atomic_write_text
from detseg.detectors.checkpoint import NOT_YOLO, load_yolo
from detseg.detectors.model_configs import is_derived, resolve_model_config
from detseg.errors import DatasetError, InputError, WeightsError
from detseg.pickle_scan import restricted_loading


@dataclass
class TrainResult:
    """Where a training run left its outputs."""

    run_dir: Path
    best_weights: Path
    metrics: dict


def resolve_data_yaml(data: str | Path, out_dir: Path, require: tuple[str, ...] = ("train", "val")) -> Path:
    """Write a copy of an ultralytics dataset file with every path made absolute.

    Paths resolve by :func:`detseg.data.yolo_format.dataset_root`, the rule ``data check`` and
    ``evaluate`` use too. Roboflow exports (``train: ../train/images``, ``val: ../valid/images``)
    are resolved against the file's folder.

    Returns:
        The path of the resolved copy inside ``out_dir``.

    Raises:
        DatasetError: the file is missing, not YAML, lacks ``train``/``val``/``names``,
            or a split folder does not exist.
    """
    src = Path(data)
    if not src.is_file():
        raise DatasetError("dataset file not found; pass a data.yaml (e.g. data/food.yaml after "
                           "`detseg data synth --out datasets/food`)", src)
    from detseg.data.yolo_format import dataset_root, read_data_yaml, resolve_folder, split_folders

    cfg = read_data_yaml(src)
    missing = [k for k in (*require, "names") if not cfg.get(k)]  # `val:` left blank is as missing as no `val`
    if missing:
        raise DatasetError(f"missing or empty key(s) {missing}; an ultralytics dataset file needs "
                           f"{', '.join(require)} and names", src)
    root = dataset_root(cfg, src)
    resolved = dict(cfg)
    resolved["path"] = str(root.resolve())
    for split in ("train", "val", "test"):
        value = cfg.get(split)
        if not value:
            resolved.pop(split, None)
            continue
        entries = split_folders(value)
        if not entries:
            raise DatasetError(f"{split} must be a folder path or a list of folder paths, got {value!r}", src)
        fixed = []
        for entry in entries:
            target = resolve_folder(root, entry)
            if not target.exists():
                raise DatasetError(f"{split} folder {entry!r} not found under {root}", src)
            fixed.append(str(target))
        resolved[split] = fixed if isinstance(value, list) else fixed[0]
    for split in ("train", "val"):  # ultralytics insists on both keys even when only evaluating
        resolved.setdefault(split, resolved[require[0]])
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / "data.yaml"
    atomic_write_text(dst, yaml.safe_dump(resolved, sort_keys=False))
    return dst


TASKS = ("detect", "segment")


def _ap_metrics(metric, names, class_index) -> dict:
    """mAP50 / mAP50-95 / precision / recall overall and per class of one ultralytics ``Metric``."""
    per_class = {}
    for i, cls in enumerate(class_index):
        per_class[names[int(cls)]] = {"mAP50": float(metric.ap50[i]), "mAP50-95": float(metric.ap[i])}
    return {
        "mAP50": float(metric.map50),
        "mAP50-95": float(metric.map),
        "precision": float(metric.mp),
        "recall": float(metric.mr),
        "per_class": per_class,
    }


def _box_metrics(metrics) -> dict:
    """Box metrics (top level) from an ultralytics ``DetMetrics``; a ``SegmentMetrics`` adds ``"mask"``."""
    out = _ap_metrics(metrics.box, metrics.names, metrics.box.ap_class_index)
    seg = getattr(metrics, "seg", None)
    if seg is not None:
        out["mask"] = _ap_metrics(seg, metrics.names, metrics.ap_class_index)
    return out


def _check_task(model: str, task: str) -> None:
    """Fail before a long run when a model file is of the other task (``yolov8n.yaml`` with ``segment``)."""
    if task not in TASKS:
        raise WeightsError(f"unknown task {task!r}; expected one of {TASKS}")
    if not str(model).endswith((".yaml", ".yml")):
        return
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    try:
        found = "segment" if is_derived(model) else guess_model_task(yaml_model_load(str(model)))
    except FileNotFoundError as e:
        raise WeightsError(f"model config {model} not found ({e})") from None
    if found != task:
        hint = "yolov8n-seg.yaml" if task == "segment" else "yolov8n.yaml"
        raise WeightsError(f"model {model} is a {found} model but --task is {task}; use e.g. {hint}")


def evaluate_detector(weights: str | Path, data: str | Path, split: str = "val", imgsz: int | None = None,
                      batch: int = 16, device: str = "auto", out: str | Path | None = None) -> dict:
    """Box mAP (and mask mAP, for a segmentation model) on a dataset split, via ultralytics' validator.

    ``weights``: a ``.pt``, or a ``detseg export`` (``.onnx``, ``*_openvino_model/``), run at the size it was
    exported for. ``imgsz``: None runs a ``.pt`` at the size it was trained at (as ``predict`` does).

    Raises:
        DatasetError: the model's class names are not the dataset's, in order (ultralytics scores by class id,
            so a Roboflow export that sorts the names differently would be scored against the wrong classes).

    Returns:
        ``{"mAP50", "mAP50-95", "precision", "recall", "per_class": {name: {...}}}`` for boxes; a ``-seg``
        model adds ``"mask"`` with the same keys for masks.
    """
    from ultralytics import YOLO

    from detseg.data.yolo_format import read_data_yaml, validate_data_yaml
    from detseg.detectors.export import exported_format, exported_metadata, open_export

    # absolute: ultralytics puts a relative project under its own runs_dir
    out_dir = (Path(out) if out else Path("runs/val")).resolve()
    data_yaml = resolve_data_yaml(data, out_dir / "val-data", require=(split,))
    if exported_format(weights):  # an ONNX file / OpenVINO folder: ultralytics validates it at its fixed size
        path, _ = open_export(weights)
        metadata = exported_metadata(path)
        model = YOLO(str(path), task=metadata.get("task", "detect"))
        model_names = metadata.get("names")
    else:
        model = load_yolo(resolve_weights(weights, unreadable=NOT_YOLO))
        model_names = model.names
    if isinstance(model_names, dict):
        names = validate_data_yaml(read_data_yaml(data_yaml), data_yaml)
        ours = [str(model_names[k]) for k in sorted(model_names, key=int)]
        if ours != list(names):
            raise DatasetError(f"the model's classes {ours} are not the dataset's {list(names)} (ultralytics scores "
                               "by class id: rename or reorder the dataset's names to the model's)", data)
    size = {} if imgsz is None else {"imgsz": imgsz}
    with keep_torch_threads(model, "on_val_start"), offline_fonts():
        metrics = model.val(data=str(data_yaml), split=split, batch=batch, device=resolve_device(device),
                            plots=False, verbose=False, project=str(out_dir), name="val", exist_ok=True, **size)
    with contextlib.suppress(OSError):  # ultralytics makes its save_dir even with plots off: leave no empty folder
        (out_dir / "val").rmdir()
    return _box_metrics(metrics)


def claim_run_folder(out: str | Path, resume: bool = False, exist_ok: bool = False) -> None:
    """Refuse a non-empty run folder unless the run resumes it or ``exist_ok`` (one InputError saying so)."""
    out = Path(out)
    if not resume and not exist_ok and out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out} already holds files (an earlier run's weights and metrics would be replaced "
                         "or mixed with this run's): pass --resume to continue an interrupted run, --exist-ok to "
                         "train into it anyway, or choose another --out")


def train(
    data: str | Path,
    model: str | Path = "yolov8n.yaml",
    epochs: int | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    device: str = "auto",
    out: str | Path = "runs/train",
    resume: bool = False,
    workers: int | None = None,
    seed: int | None = None,
    plots: bool | None = None,
    task: str | None = None,
    init: str | Path | None = None,
    exist_ok: bool = False,
    **overrides,
) -> TrainResult:
    """Train a YOLO detector (or, with ``task="segment"``, a YOLO-seg model) with ultralytics and record it.

    Args:
        data: an ultralytics dataset file (``data/food.yaml``, a synth output's
            ``data.yaml``, a Roboflow "YOLOv8" export's ``data.yaml``).
        model: ``.yaml`` to train from scratch (works offline) or ``.pt`` weights to
            fine-tune (a local file, or a name ultralytics downloads when online). ``yolov5n-seg.yaml``
            (any scale), which ultralytics does not ship, is a YOLOv5u with a mask head
            (:mod:`detseg.detectors.model_configs`), written into ``out``.
        epochs, imgsz, batch, workers, seed: as in ultralytics (None: 100 epochs, 640, 16, 2 workers and seed 0
            for a new run; on ``resume``, the checkpoint's). A resumed run takes ``imgsz``, ``batch`` and
            ``workers`` where given; ``epochs``, ``seed`` and ``task`` are the checkpoint's, and one that differs
            from it is an InputError (ultralytics would drop it without a word).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"0"``, ``"mps"``.
        out: the run folder; weights land in ``out/weights/{best,last}.pt``.
        resume: continue the interrupted run in ``out`` from ``out/weights/last.pt``, on ``device`` with
            ``workers``, and the ``overrides`` ultralytics allows on resume (``time``, ``patience``, ...); the
            rest come from the checkpoint. A finished run (its ``last.pt`` stripped of the optimizer) is a
            WeightsError.
        plots: ultralytics' own plots in the run folder (results.png, confusion matrix, PR
            curves, training batches; None: on, or the checkpoint's on ``resume``); they work offline (a font
            download is skipped).
        task: ``"detect"`` (None: detect; boxes) or ``"segment"`` (instance masks: ``yolov8n-seg.yaml`` or a ``-seg``
            ``.pt``; the dataset needs polygon labels, e.g. a ``detseg predict --save-dataset`` output).
            ``pretrained=detector.pt`` (an override) starts a ``-seg`` model from a detector's weights.
        init: a state dict or checkpoint to start ``model`` (a ``.yaml``) from: every tensor that matches by name
            and shape is copied (:mod:`detseg.detectors.init_weights`), the rest starts fresh, and one line
            saying how many matched is printed. E.g. COCO-pretrained YOLOv5n weights into ``yolov5n.yaml``.
        exist_ok: train into a non-empty ``out`` (not resuming): an earlier run's weights there are removed
            first, so none of them is taken for this run's. Without it such an ``out`` is refused (ultralytics
            would have made ``train2``; detseg's run folder is the one named).
        **overrides: any other ultralytics training argument.

    Returns:
        :class:`TrainResult` with the run folder, best weights and metrics on ``val`` (box; with
        ``task="segment"`` also ``metrics["mask"]``).
    """
    out = Path(out).resolve()
    claim_run_folder(out, resume=resume, exist_ok=exist_ok)
    if not resume and exist_ok:
        for stale in (out / "weights").glob("*.pt"):  # never taken for this run's best.pt or epoch checkpoints
            stale.unlink()
    if resume:
        last = out / "weights" / "last.pt"
        if not last.is_file():
            raise WeightsError(f"nothing to resume: {last} does not exist")
        yolo = load_yolo(last)
        ckpt = getattr(yolo, "ckpt", None) or {}
        if ckpt.get("epoch", -1) < 0 or ckpt.get("optimizer") is None:  # ultralytics strips last.pt when a run ends
            raise WeightsError(f"the run in {out} has finished ({last} keeps no optimizer state): nothing to resume; "
                               f"to train on, start a new --out with --model {out / 'weights' / 'best.pt'}")
        _check_resumed_settings(ckpt.get("train_args") or {}, yolo.task, out,
                                {"epochs": epochs, "seed": seed, "task": task})
        # the device is this machine's, the run stays in `out` (also when the folder was moved), and ultralytics
        # takes the overrides it allows on resume (time, workers, batch, ...) and names the ones it ignores
        data_yaml = out / "data.yaml"  # the run's own resolved copy, which moves with the folder
        where = {"save_dir": str(out), **({"data": str(data_yaml)} if data_yaml.is_file() else {})}
        # the trainer loads last.pt again: in ultralytics' restricted mode, as load_yolo did
        with keep_torch_threads(yolo, "on_train_start"), offline_fonts(), restricted_loading():
            given = {k: v for k, v in (("imgsz", imgsz), ("batch", batch), ("workers", workers), ("plots", plots))
                     if v is not None}  # what ultralytics lets a resumed run change, where the caller set it
            final = yolo.train(resume=True, device=resolve_device(device), **given, **where, **overrides)
    else:
        task = task or "detect"
        if not str(model).endswith((".yaml", ".yml")):
            from detseg.detectors.yolo import _check_model_format

            _check_model_format(model)  # a notes.txt given as --model: before anything is written into --out
        _check_task(model, task)
        model = resolve_model_config(model, out)  # yolov5n-seg.yaml: derived from ultralytics' yolov5.yaml
        data_yaml = resolve_data_yaml(data, out)
        is_yaml = str(model).endswith((".yaml", ".yml"))
        model_path = str(model) if is_yaml else str(resolve_weights(model, unreadable=NOT_YOLO))
        if init is not None:
            model_path = str(_init_from(model, init, data_yaml, out))
        yolo = load_yolo(model_path)
        if yolo.task != task:
            raise WeightsError(f"weights {model} are a {yolo.task} model but the task is {task}")
        with keep_torch_threads(yolo, "on_train_start"), offline_fonts():
            imgsz, batch = imgsz or 640, batch or 16
            final = yolo.train(data=str(data_yaml), epochs=100 if epochs is None else epochs, imgsz=imgsz,
                               batch=batch, device=resolve_device(device), project=str(out.parent), name=out.name,
                               exist_ok=True, workers=2 if workers is None else workers, seed=seed or 0,
                               plots=True if plots is None else plots, **overrides)
    best = out / "weights" / "best.pt"
    if not best.is_file():
        best = out / "weights" / "last.pt"
    if final is not None and hasattr(final, "box"):
        metrics = _box_metrics(final)  # ultralytics' own final validation of best.pt: not run a second time
    else:  # e.g. val=False: nothing was validated at the end of training
        metrics = evaluate_detector(best, data_yaml, split="val", imgsz=imgsz, batch=batch or 16, device=device,
                                    out=out)
    atomic_write_json(out / "metrics.json", {"split": "val", "task": task if not resume else _task_of(best),
                                             "weights": str(best), **metrics}, indent=2)
    atomic_write_text(out / "command.txt", shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\n")
    return TrainResult(run_dir=out, best_weights=best, metrics=metrics)


def _init_from(model, init, data_yaml: Path, out: Path) -> Path:
    """Write ``out/init.pt``: ``model`` (a ``.yaml``) for the dataset's classes with what matches from ``init``."""
    from detseg.data.yolo_format import read_data_yaml
    from detseg.detectors.init_weights import init_checkpoint

    if not str(model).endswith((".yaml", ".yml")):
        raise WeightsError(f"--init starts a model built from a .yaml (e.g. yolov5n.yaml); {model} already has weights")
    names = read_data_yaml(data_yaml)["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    report = init_checkpoint(model, init, names, out / "init.pt")
    print(f"init: {report.summary()}", flush=True)
    return out / "init.pt"


def _check_resumed_settings(train_args: dict, task: str, out: Path, given: dict) -> None:
    """Refuse settings a resumed run cannot take: ``epochs`` / ``seed`` / ``task`` given (not None) that differ
    from the interrupted run's (its checkpoint's ``train_args``). The same values, as in the run's own command
    line with ``--resume`` added, pass."""
    # a run with a time budget has its epochs refitted by ultralytics after each epoch: its own --epochs differs
    run = {"epochs": None if train_args.get("time") else train_args.get("epochs"), "seed": train_args.get("seed"),
           "task": task}
    differ = [f"--{k} {v} (the run's: {run[k]})" for k, v in given.items()
              if v is not None and run[k] is not None and v != run[k]]
    if differ:
        raise InputError(f"--resume continues the run in {out} as it was started, so it cannot take "
                         f"{', '.join(differ)}: drop them, or start a new --out with --model "
                         f"{out / 'weights' / 'last.pt'} to train on with other settings")


def _task_of(weights: Path) -> str:
    return load_yolo(weights).task


def metrics_summary(metrics: dict) -> str:
    """One line per class: the table `detseg train` prints (box, and mask columns for a -seg model)."""
    mask = metrics.get("mask")
    head = f"{'class':<12} {'mAP50':>7} {'mAP50-95':>9}"
    lines = [head + (f" {'mask50':>7} {'mask50-95':>9}" if mask else "")]

    def row(name, box, m):
        cells = f"{name:<12} {box['mAP50']:7.3f} {box['mAP50-95']:9.3f}"
        return cells + (f" {m['mAP50']:7.3f} {m['mAP50-95']:9.3f}" if m else "")

    lines.append(row("all", metrics, mask))
    for name, m in metrics["per_class"].items():
        lines.append(row(name, m, mask["per_class"].get(name) if mask else None))
    return "\n".join(lines)
