"""The ``detseg`` command line.

Every user error (bad path, bad dataset, missing weights, ...) is raised as a
:class:`detseg error <detseg.errors.DetsegError>` subclass and printed here as one line,
with exit code 2; only genuine bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from detseg.errors import DetsegError
from detseg.pipeline.options import (
    MAX_IMGSZ,
    OneLineParser,
    UsageError,
    check_override,
    finite_float,
    fraction,
    imgsz,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed,
    train_batch,
)


def _add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="generate, check and convert datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    synth = dsub.add_parser("synth", help="generate the synthetic food dataset (exact masks)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--train", type=non_negative_int, default=100, help="training images")
    synth.add_argument("--val", type=non_negative_int, default=20, help="validation images")
    synth.add_argument("--test", type=non_negative_int, default=0, help="test images")
    synth.add_argument("--seed", type=seed, default=0, help="same seed and arguments -> identical files")
    synth.add_argument("--imgsz", type=imgsz, default=640,
                       help="image side in pixels: square synthetic scenes; with --backgrounds, the long side "
                            "of each composite (the photo's aspect is kept)")
    synth.add_argument("--coco-masks", choices=("polygon", "rle"), default="polygon",
                       help="COCO segmentation format: polygons (default) or exact RLE")
    synth.add_argument("--workers", type=int_range(1, 256), default=1,
                       help="processes rendering in parallel (e.g. the number of cores); same files for any number")
    synth.add_argument("--backgrounds", metavar="DIR",
                       help="real photos to composite the items onto (matched to each photo's light, colour cast, "
                            "sharpness and noise), "
                            "with unlabelled look-alike foods; photos must not show the classes")
    synth.add_argument("--exclude", metavar="FILE",
                       help="text file of background file names to skip (one per line), e.g. photos showing cookies")
    synth.add_argument("--photo-fraction", type=fraction, default=0.8,
                       help="with --backgrounds: share of images composited on a real photo (default: %(default)s)")
    synth.add_argument("--negatives", type=non_negative_float, default=0.0,
                       help="with --backgrounds: add this fraction of background-only photos with empty labels "
                            "(default: %(default)s)")
    synth.add_argument("--real-items", metavar="JSON",
                       help="with --backgrounds: COCO boxes of hand-labelled real photos (e.g. "
                            "data/real/uj-train-cookies.json); their items are cut out and pasted into composites")
    synth.add_argument("--real-images", metavar="DIR",
                       help="folder of the --real-items photos (default: --backgrounds)")
    synth.add_argument("--real-repeat", type=non_negative_int, default=0,
                       help="also add each --real-items photo to train this many times (default: %(default)s)")
    synth.set_defaults(func=_cmd_synth)

    check = dsub.add_parser("check", help="validate a YOLO or COCO dataset and print a summary")
    check.add_argument("path", help="data.yaml, a folder holding one, or a COCO .json")
    check.add_argument("--images", help="image folder of a COCO .json (default: beside it)")
    check.add_argument("--fast", action="store_true",
                       help="labels and image headers only: skip decoding every image and the cross-split check")
    check.set_defaults(func=_cmd_check)

    convert = dsub.add_parser("convert", help="convert a dataset between YOLO and COCO")
    convert.add_argument("path", help="source: data.yaml / folder (YOLO) or a COCO .json")
    convert.add_argument("--to", required=True, choices=("coco", "yolo"), help="target format")
    convert.add_argument("--out", required=True, help="output folder")
    convert.add_argument("--images", help="image folder of a COCO .json source (default: beside it)")
    convert.set_defaults(func=_cmd_convert)

    video = dsub.add_parser("synth-video", help="generate a synthetic video with exact masks and track ids (MOT GT)")
    video.add_argument("--out", required=True, help="output folder (video.mp4, gt.txt, annotations.json)")
    video.add_argument("--frames", type=positive_int, default=60, help="number of frames")
    video.add_argument("--seed", type=seed, default=0, help="same seed and arguments -> identical files")
    side = int_range(MIN_VIDEO_SIDE, MAX_IMGSZ, what="a frame side in pixels")
    video.add_argument("--width", type=side, default=640,
                       help=f"frame width in pixels (>= {MIN_VIDEO_SIDE}: the items are up to about 120 pixels)")
    video.add_argument("--height", type=side, default=384, help=f"frame height in pixels (>= {MIN_VIDEO_SIDE})")
    video.add_argument("--fps", type=finite_float(0, 1000, lo_open=True), default=12.0,
                       help="frames per second of video.mp4")
    video.set_defaults(func=_cmd_synth_video)


def _cmd_synth(args) -> int:
    from detseg.data.synth import generate_dataset

    counts = {"train": args.train, "val": args.val, "test": args.test}  # each >= 0, checked by the parser
    backgrounds = None
    if args.backgrounds:
        from detseg.data.synth import list_backgrounds

        try:
            backgrounds = list_backgrounds(args.backgrounds, args.exclude or ())
        except (OSError, ValueError) as e:
            raise DetsegError(f"--backgrounds: {e}") from None
    elif args.negatives or args.exclude or args.real_items:
        raise DetsegError("--negatives, --exclude and --real-items need --backgrounds DIR")
    real_items = None
    if args.real_items:
        real_items = (str(args.real_items), str(args.real_images or args.backgrounds))
        if not Path(args.real_items).is_file():
            raise DetsegError(f"--real-items: file not found: {args.real_items}")
    if args.real_repeat and not args.real_items:
        raise DetsegError("--real-repeat must be >= 0 and needs --real-items")
    summary = generate_dataset(args.out, counts, seed=args.seed, imgsz=args.imgsz, masks_as=args.coco_masks,
                               workers=args.workers, backgrounds=backgrounds, photo_fraction=args.photo_fraction,
                               negatives=args.negatives, real_items=real_items, real_repeat=args.real_repeat)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_synth_video(args) -> int:
    from detseg.data.synth_video import generate_video

    pixels = args.frames * args.width * args.height
    if pixels > MAX_VIDEO_PIXELS:  # every frame is held in memory until the files are written
        raise UsageError(f"data synth-video: --frames x --width x --height is {pixels:,} pixels, more than the "
                         f"{MAX_VIDEO_PIXELS:,} one clip may have (every frame and its masks stay in memory "
                         f"until the files are written): fewer or smaller frames")
    try:
        summary = generate_video(args.out, frames=args.frames, width=args.width, height=args.height, seed=args.seed,
                                 fps=args.fps)
    except ValueError as e:
        raise DetsegError(f"synth-video: {e}") from None
    print(json.dumps(summary, indent=2))
    return 0


MIN_VIDEO_SIDE = 128  # the items of `data synth-video` are up to about 120 pixels across
MAX_VIDEO_PIXELS = 2**28  # frames x width x height: about 8 bytes a pixel (image, masks) stay in memory


def _cmd_check(args) -> int:
    from detseg.data.io import load_dataset

    dataset = load_dataset(args.path, images=args.images)
    print(dataset.summary_table())
    if args.fast:
        return 0
    from detseg.data.verify import verify_dataset

    problems = verify_dataset(dataset)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if problems:
        raise DetsegError(f"{len(problems)} problem(s) found (listed above)")
    print("every image decodes, sizes match, no image is in two splits")
    return 0


def _cmd_convert(args) -> int:
    from detseg.data.dataset import clip_to_images
    from detseg.data.io import load_dataset, save_dataset

    dataset = load_dataset(args.path, images=args.images)
    dataset, clipped = clip_to_images(dataset)
    if clipped.clipped or clipped.dropped:
        print(f"warning: {clipped}", file=sys.stderr)
    written = save_dataset(dataset, args.out, args.to)
    print(f"wrote {args.to.upper()} dataset to {written}")
    return 0


def _add_train_command(sub) -> None:
    p = sub.add_parser("train", help="train a YOLO detector with ultralytics (offline from a .yaml)")
    p.add_argument("--data", required=True, help="data.yaml: data/food.yaml, a synth output, a Roboflow export")
    p.add_argument("--model", default=None,
                   help="yolov8n.yaml / yolov8n-seg.yaml (from scratch) or weights .pt (default: by --task)")
    p.add_argument("--init", default=None, metavar="PATH",
                   help="start --model (a .yaml) from a state dict or checkpoint: every tensor matching by name "
                        "and shape is copied and the count printed (e.g. COCO-pretrained YOLOv5n weights into "
                        "yolov5n.yaml)")
    p.add_argument("--task", choices=("detect", "segment"), default="detect",
                   help="detect (boxes) or segment (a -seg model on polygon labels, e.g. a --save-dataset output; "
                        "pretrained=detector.pt starts it from a detector's weights)")
    p.add_argument("--epochs", type=positive_int, default=100)
    p.add_argument("--imgsz", type=imgsz, default=640)
    p.add_argument("--batch", type=train_batch, default=16,
                   help="images per batch; -1: AutoBatch; a fraction in (0, 1): that share of the GPU memory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, 0, mps")
    p.add_argument("--workers", type=non_negative_int, default=2, help="dataloader workers")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default="runs/train", help="run folder (weights/best.pt, metrics.json, command.txt)")
    p.add_argument("--time", type=positive_float, default=None,
                   help="training budget in hours (ultralytics fits the schedule to it; overrides --epochs)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="ultralytics' own plots in --out: results.png, confusion matrix, PR curves, batches")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="any other ultralytics training argument, e.g. lr0=0.002 close_mosaic=2 warmup_epochs=0.5")
    p.set_defaults(func=_cmd_train)


_TRAIN_FLAGS = {"data", "model", "init", "task", "epochs", "imgsz", "batch", "device", "workers", "seed", "time",
                "resume", "plots", "project", "name"}


def parse_overrides(items: list[str]) -> dict:
    """``["lr0=0.002", "cos_lr=True"]`` -> ``{"lr0": 0.002, "cos_lr": True}`` (values read as YAML scalars).

    Raises:
        DetsegError: an item is not ``KEY=VALUE``, names an argument ultralytics does not know, or has a
            value of another type than ultralytics' default for it (:func:`~detseg.pipeline.options.check_override`).
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
    from detseg.detectors.train import metrics_summary, train

    overrides = parse_overrides(args.overrides)  # option mistakes first, before the dataset is read
    if not args.resume:
        load_dataset(args.data)  # a dataset `detseg data check` rejects fails here, not mid-training
    model = args.model or ("yolov8n-seg.yaml" if args.task == "segment" else "yolov8n.yaml")
    result = train(args.data, model=model, task=args.task, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                   device=args.device, out=args.out, resume=args.resume, workers=args.workers, seed=args.seed,
                   plots=args.plots, init=args.init, **({"time": args.time} if args.time else {}), **overrides)
    print(metrics_summary(result.metrics))
    print(f"best weights: {result.best_weights}")
    return 0


def _add_val_command(sub) -> None:
    p = sub.add_parser("val", help="box mAP of a detector on a dataset split (ultralytics' validator)")
    p.add_argument("--model", "--weights", dest="weights", required=True,
                   help="trained .pt, or an export folder (ultralytics' model=; --weights is the old name)")
    p.add_argument("--data", required=True, help="ultralytics data.yaml")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--imgsz", type=imgsz, default=640)
    p.add_argument("--batch", type=positive_int, default=16)
    p.add_argument("--device", default="auto")
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


def _add_export_command(sub) -> None:
    p = sub.add_parser("export", help="export trained weights to ONNX or OpenVINO for fast CPU inference")
    p.add_argument("--model", "--weights", dest="weights", required=True,
                   help="trained .pt, a detector or a -seg student (ultralytics' model=; --weights is the old name)")
    p.add_argument("--format", default="openvino", choices=("openvino", "onnx"),
                   help="openvino (fastest on Intel CPUs) or onnx (ONNX Runtime) (default: %(default)s)")
    p.add_argument("--imgsz", type=imgsz, default=None,
                   help="input side the export is fixed to (default: the size the model was trained at)")
    p.add_argument("--half", action="store_true", help="FP16 weights (openvino only)")
    p.add_argument("--out", default=None,
                   help="result path (default: beside the weights, e.g. best.onnx or best_openvino_model/)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from detseg.detectors.export import export

    path = export(args.weights, args.format, imgsz=args.imgsz, half=args.half, out=args.out)
    print(f"exported: {path}\nPredict: detseg predict SOURCE --model {path}  (or YoloDetector / YoloSegModel "
          f"weights in Python)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from detseg import __version__

    parser = OneLineParser(prog="detseg", description="YOLO boxes + SAM masks = instance segmentation.")
    parser.add_argument("--version", action="version", version=f"detseg {__version__}")
    parser.add_argument("--trust-weights", action="store_true",
                        help="load .pt files whose pickle names code outside what ultralytics checkpoints contain "
                             "(only for files you trust; accepted anywhere on the line; sets DETSEG_TRUST_WEIGHTS=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def _add_predict_command(sub) -> None:
    from detseg.pipeline.predict_cli import add_predict_command

    add_predict_command(sub)


def _add_evaluate_command(sub) -> None:
    from detseg.pipeline.evaluate import add_evaluate_command

    add_evaluate_command(sub)


def _add_evaluate_video_command(sub) -> None:
    from detseg.pipeline.track_eval import add_evaluate_video_command

    add_evaluate_video_command(sub)


_EXTRA_COMMANDS: list = [_add_train_command, _add_val_command, _add_export_command, _add_predict_command,
                         _add_evaluate_command, _add_evaluate_video_command]


def prepare_environment() -> None:
    """Settings a command-line run needs before ultralytics is first imported (the user's own win).

    - ``YOLO_AUTOINSTALL=false``: never install packages behind the user's back (ultralytics
      would, e.g. a HEIF plugin for a file Pillow cannot identify).
    - ``OMP_NUM_THREADS`` = the cores this process may use: ultralytics sets it to 1 when it is
      imported before torch, and torch then runs every op (training, detection, SAM) on one core.
    - ``YOLO_OFFLINE=true``: ultralytics then skips its online check (two DNS lookups per import) and,
      since it believes it is offline, sends no usage events, whatever its ``sync`` setting says.
      The user's settings file is not touched. Downloading a weights name the user asked for
      (``yolov8n.pt``) still works: :func:`detseg.assets.resolve_weights` lifts it for that download.
      A user who sets ``YOLO_OFFLINE`` themselves keeps their value.
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from detseg.assets import silence_ultralytics_network

    silence_ultralytics_network()
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``detseg`` console script. Returns the exit code."""
    prepare_environment()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--trust-weights" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        argv.remove("--trust-weights")  # accepted before or after the command name, like a global flag
        from detseg.pickle_scan import TRUST_ENV

        os.environ[TRUST_ENV] = "1"
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # every option's range is checked here, before any work
        return int(args.func(args) or 0)
    except DetsegError as e:
        print(f"detseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("detseg: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the machine, not the code: a full disk, a permission, a vanished file
        where = f": {e.filename}" if e.filename else ""
        print(f"detseg: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
