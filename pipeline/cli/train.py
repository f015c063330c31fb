"""``detseg train``, ``detseg val`` and ``detseg export``: the detector's training, validation and export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detseg.errors import DetsegError
from detseg.pipeline.cli.options import (
    HelpFormatter,
    check_override,
    imgsz,
    non_negative_int,
    positive_float,
    positive_int,
    seed,
    train_batch,
)


def add_train_command(sub) -> None:
    p = sub.add_parser("train", formatter_class=HelpFormatter,
                       help="train a YOLO detector with ultralytics (offline from a .yaml)")
    p.add_argument("--data", help="data.yaml: data/food.yaml, a synth output, a Roboflow export (not needed with "
                                  "--resume: the run keeps its own)")
    p.add_argument("--model", default=None,
                   help="yolov8n.yaml / yolov8n-seg.yaml (from scratch) or weights .pt (default: by --task); "
                        "yolov5n-seg.yaml: a YOLOv5u with a mask head, which a YOLOv5u detector's weights fit via "
                        "--init")
    p.add_argument("--init", default=None, metavar="PATH",
                   help="start --model (a .yaml) from a state dict or checkpoint: every tensor matching by name "
                        "and shape is copied and the count printed (e.g. COCO-pretrained YOLOv5n weights into "
                        "yolov5n.yaml)")
    p.add_argument("--task", choices=("detect", "segment"), default=None,
                   help="detect (boxes; the default) or segment (a -seg model on polygon labels, e.g. a "
                        "--save-dataset output; pretrained=detector.pt starts it from a detector's weights)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default: 100; on --resume the run's (another number is refused: start a new --out)")
    p.add_argument("--imgsz", type=imgsz, default=None, help="training size (default: 640; on --resume the run's)")
    p.add_argument("--batch", type=train_batch, default=None,
                   help="images per batch (default: 16; on --resume the run's); -1: AutoBatch; a fraction in (0, 1): "
                        "that share of the GPU memory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, 0, mps")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="dataloader workers (default: 2; on --resume the run's)")
    p.add_argument("--seed", type=seed, default=None, help="default: 0; on --resume the run's")
    p.add_argument("--out", default="runs/train", help="run folder (weights/best.pt, metrics.json, command.txt)")
    p.add_argument("--time", type=positive_float, default=None,
                   help="training budget in hours (ultralytics fits the schedule to it; overrides --epochs)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--exist-ok", action="store_true",
                   help="train into a non-empty --out (an earlier run's weights there are removed first)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=None,
                   help="ultralytics' own plots in --out: results.png, confusion matrix, PR curves, batches "
                        "(default: on; on --resume the run's)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="any other ultralytics training argument, e.g. lr0=0.002 close_mosaic=2 warmup_epochs=0.5")
    p.set_defaults(func=_cmd_train)


_TRAIN_FLAGS = {"data", "model", "init", "task", "epochs", "imgsz", "batch", "device", "workers", "seed", "time",
                "resume", "plots", "exist_ok"}
_RUN_FOLDER = {"project", "name", "save_dir"}  # ultralytics' run-folder arguments: --out is detseg's one


def parse_overrides(items: list[str]) -> dict:
    """``["lr0=0.002", "cos_lr=True"]`` -> ``{"lr0": 0.002, "cos_lr": True}`` (values read as YAML scalars).

    Raises:
        DetsegError: an item is not ``KEY=VALUE``, names an argument ultralytics does not know, or has a
            value of another type than ultralytics' default for it
            (:func:`~detseg.pipeline.cli.options.check_override`).
    """
    import yaml
    from ultralytics.cfg import DEFAULT_CFG_DICT

    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DetsegError(f"training override {item!r} is not KEY=VALUE (e.g. lr0=0.002)")
        if key in _TRAIN_FLAGS:
            raise DetsegError(f"{key!r} has its own flag: use --{key.replace('_', '-')} instead of {item!r}")
        if key in _RUN_FOLDER:
            raise DetsegError(f"{item!r}: the run folder is --out (a run writes into it, resuming or not)")
        if key not in DEFAULT_CFG_DICT:
            raise DetsegError(f"unknown ultralytics training argument {key!r} in {item!r}")
        try:
            read = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            read = value
        parsed[key] = check_override(key, read, value)
    return parsed


def _cmd_train(args) -> int:
    from detseg.data.io import load_dataset
    from detseg.detectors.train import claim_run_folder, metrics_summary, train

    overrides = parse_overrides(args.overrides)  # option mistakes first, before the dataset is read
    if not args.resume and not args.data:
        raise DetsegError("train: --data is required (a data.yaml), except with --resume")
    claim_run_folder(args.out, resume=args.resume, exist_ok=args.exist_ok)
    if args.resume:
        unused = [f"--{k}" for k in ("data", "model", "init") if getattr(args, k)]
        if unused:  # the run's own command line with --resume added: fine, but say what is not read
            print(f"--resume: {' and '.join(unused)} not used: the run in {args.out} goes on with its own "
                  f"(weights/last.pt, data.yaml)", file=sys.stderr)
    if not args.resume:
        dataset = load_dataset(args.data)  # a dataset `detseg data check` rejects fails here, not mid-training
        if args.task == "segment":
            boxes = sum(not a.has_mask for records in dataset.splits.values() for r in records for a in r.annotations)
            if boxes:
                raise DetsegError(f"--task segment trains on outlines, but {boxes} instance(s) of {args.data} have "
                                  "only a box: use a dataset with polygon labels (e.g. a `detseg predict "
                                  "--save-dataset` output) or --task detect")
    model = args.model or ("yolov8n-seg.yaml" if args.task == "segment" else "yolov8n.yaml")
    result = train(args.data, model=model, task=args.task, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                   device=args.device, out=args.out, resume=args.resume, workers=args.workers, seed=args.seed,
                   plots=args.plots, init=args.init, exist_ok=args.exist_ok,
                   **({"time": args.time} if args.time else {}), **overrides)
    print(metrics_summary(result.metrics))
    print(f"best weights: {result.best_weights}")
    return 0


def add_val_command(sub) -> None:
    p = sub.add_parser("val", formatter_class=HelpFormatter,
                       help="box mAP of a detector on a dataset split (ultralytics' validator)")
    p.add_argument("--model", "--weights", dest="weights", required=True,
                   help="trained .pt, or an export folder (ultralytics' model=; --weights is the old name)")
    p.add_argument("--data", required=True, help="ultralytics data.yaml")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="dataset split to measure")
    p.add_argument("--imgsz", type=imgsz, default=None, help="input size (default: the size the model was trained at)")
    p.add_argument("--batch", type=positive_int, default=16, help="images per batch")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N, N or mps")
    p.add_argument("--out", default="runs/val", help="folder for the metrics JSON and ultralytics' files "
                                                     "(default: %(default)s; never the weights' folder)")
    p.set_defaults(func=_cmd_val)


def _cmd_val(args) -> int:
    from detseg.atomic import atomic_write_json
    from detseg.detectors.train import evaluate_detector, metrics_summary

    out = Path(args.out)
    metrics = evaluate_detector(args.weights, args.data, split=args.split, imgsz=args.imgsz, batch=args.batch,
                                device=args.device, out=out)
    atomic_write_json(out / f"metrics_{args.split}.json", {"data": str(args.data), "split": args.split,
                                                            "weights": str(args.weights), **metrics}, indent=2)
    print(metrics_summary(metrics))
    return 0


def add_export_command(sub) -> None:
    p = sub.add_parser("export", formatter_class=HelpFormatter,
                       help="export trained weights to ONNX or OpenVINO for fast CPU inference")
    p.add_argument("--model", "--weights", dest="weights", required=True,
                   help="trained .pt, a detector or a -seg student (ultralytics' model=; --weights is the old name)")
    p.add_argument("--format", default="openvino", choices=("openvino", "onnx"),
                   help="openvino (fastest on Intel CPUs) or onnx (ONNX Runtime) (default: %(default)s)")
    p.add_argument("--imgsz", type=imgsz, default=None,
                   help="input side the export is fixed to (default: the size the model was trained at)")
    p.add_argument("--half", action="store_true", help="FP16 weights (openvino only)")
    p.add_argument("--out", default=None,
                   help="result path (default: beside the weights, e.g. best.onnx or best_openvino_model/)")
    p.set_defaults(func=_cmd_export, out_is_folder=False)  # an .onnx file is a valid --out


def _cmd_export(args) -> int:
    from detseg.detectors.export import export

    path = export(args.weights, args.format, imgsz=args.imgsz, half=args.half, out=args.out)
    print(f"exported: {path}\nPredict: detseg predict SOURCE --model {path}  (or YoloDetector / YoloSegModel "
          f"weights in Python)")
    return 0
