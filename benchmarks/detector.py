"""YoloDetector's overhead over ``YOLO.predict``, and what a larger YOLOv8 costs, measured in one run.

1. Wrapper overhead: ms per image at imgsz 640 on this machine for batch 1 and batch 8, through
   the wrapper (``YoloDetector(...)(images)``, which also converts to ``sv.Detections``) and through
   ``YOLO.predict`` directly on the same weights and images. Runs alternate and the median of
   several repeats is kept. Target: wrapper overhead under 5%.
2. Model size (``--scales``, default ``n s``): for each YOLOv8 scale with this project's 3 classes,
   the shipped checkpoint's format (fp16, optimizer stripped) written to a temp dir, its file size,
   parameters, GFLOPs at ``--imgsz`` and ms per image through ``YOLO.predict`` at batch 1 and 8 on the
   same images, scales alternating. Weights are random: speed and size do not depend on their values
   (accuracy does, and is not measured here). The detector must stay <= 25 MB.

Usage:
    python benchmarks/detector.py [--weights detectors/weights/food-yolov5nu.pt] [--repeats 5] [--scales n s]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def predict_options(imgsz: int) -> dict:
    """``YOLO.predict`` options matching ``YoloDetector``'s defaults, for timing either the same way."""
    return dict(imgsz=imgsz, device="cpu", conf=0.25, iou=0.7, max_det=300, verbose=False)


def seconds_per_image(run, images, batch: int) -> float:
    """Wall time of one pass of ``run`` over ``images`` in batches of ``batch``, per image."""
    t = time.perf_counter()
    for i in range(0, len(images), batch):
        run(images[i:i + batch])
    return (time.perf_counter() - t) / len(images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "detectors" / "weights" / "food-yolov5nu.pt"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--scales", nargs="*", default=["n", "s"], choices=["n", "s", "m", "l", "x"],
                        help="YOLOv8 scales to compare for size and speed (none: skip)")
    args = parser.parse_args(argv)

    import numpy as np
    from ultralytics import YOLO

    from detseg.data.synth.generate import render_scene
    from detseg.detectors import YoloDetector

    weights = shipped = Path(args.weights)
    if not weights.is_file():  # timing does not depend on the weights' values
        shipped = None
        weights = Path(tempfile.mkdtemp()) / "random-yolov8n.pt"
        YOLO("yolov8n.yaml").save(str(weights))
        print(f"(no {args.weights}: using random-initialised yolov8n weights)")
    images = [render_scene(np.random.default_rng(i), args.imgsz, args.imgsz).image for i in range(8)]
    detector = YoloDetector(str(weights), imgsz=args.imgsz, device="cpu", conf=0.25).load()
    model = YOLO(str(weights))
    kwargs = predict_options(args.imgsz)
    detector(images[:1])
    model.predict(images[:1], **kwargs)  # warm-up both

    print(f"{'batch':>5} {'YOLO.predict ms/img':>20} {'YoloDetector ms/img':>20} {'overhead':>9}")
    for batch in (1, 8):
        ours, theirs = [], []
        for _ in range(args.repeats):
            theirs.append(seconds_per_image(lambda chunk: model.predict(chunk, **kwargs), images, batch))
            ours.append(seconds_per_image(detector, images, batch))
        a, b = statistics.median(theirs), statistics.median(ours)
        print(f"{batch:>5} {a * 1000:>20.1f} {b * 1000:>20.1f} {100 * (b - a) / a:>8.1f}%")
    if args.scales:
        print()
        size_cost(args.scales, images, args.imgsz, args.repeats, shipped=shipped)
    return 0


def write_scale_checkpoint(scale: str, path: Path, names: dict) -> Path:
    """Write a random-initialised YOLOv8 detector as ultralytics ships weights.

    The checkpoint is stripped by ultralytics' ``strip_optimizer`` (fp16, no optimizer), the format of
    ``detectors/weights/food-yolov5nu.pt``, so its file size is the size a trained one would have.

    Args:
        scale: YOLOv8 scale letter (``"n"``, ``"s"``, ...).
        path: the ``.pt`` file to write.
        names: ``{class_id: name}``; the head gets ``len(names)`` classes.

    Returns:
        ``path``, which ``YOLO(path)`` loads.
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import strip_optimizer

    model = DetectionModel(f"yolov8{scale}.yaml", nc=len(names), verbose=False)
    model.names = dict(names)
    torch.save({"model": model, "train_args": {"imgsz": 640}}, path)
    strip_optimizer(path)
    return path


def size_cost(scales, images, imgsz: int, repeats: int, shipped: Path | None = None) -> list[dict]:
    """Measure what each YOLOv8 scale costs, scales alternating in the timing loop, and print a table.

    Args:
        scales: scale letters, e.g. ``["n", "s"]``; the first is the reference of the last column.
        images: ``(H, W, 3)`` uint8 BGR images to time ``YOLO.predict`` on (batches of 1 and 8).
        imgsz: inference size.
        repeats: timing repeats; the median is kept.
        shipped: the shipped weights, whose file size is printed beside the table (``None``: not printed).

    Returns:
        One dict per scale: ``scale``, ``mb`` (file size), ``params_m``, ``gflops`` and ``ms``
        (``{1: ms per image at batch 1, 8: at batch 8}``).
    """
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import get_flops

    from detseg.data.synth.food_items import CLASS_NAMES

    names = dict(enumerate(CLASS_NAMES))
    models, rows = {}, []
    level = LOGGER.level
    LOGGER.setLevel("WARNING")  # ultralytics logs every model build and strip; only the table matters here
    try:
        with tempfile.TemporaryDirectory(prefix="detseg-scales-") as folder:
            for scale in scales:
                path = write_scale_checkpoint(scale, Path(folder) / f"yolov8{scale}-food.pt", names)
                model = YOLO(str(path))
                params = sum(p.numel() for p in model.model.parameters())
                rows.append({"scale": scale, "mb": path.stat().st_size / 1e6, "params_m": params / 1e6,
                             "gflops": get_flops(model.model, imgsz), "ms": {}})
                models[scale] = model
    finally:
        LOGGER.setLevel(level)
    kwargs = predict_options(imgsz)
    for model in models.values():
        model.predict(images[:1], **kwargs)  # warm-up
    for batch in (1, 8):
        times = {scale: [] for scale in scales}
        for _ in range(repeats):
            for scale, model in models.items():  # alternate, so drifts in machine speed hit every scale
                times[scale].append(seconds_per_image(lambda chunk: model.predict(chunk, **kwargs), images, batch))
        for row in rows:
            row["ms"][batch] = 1000 * statistics.median(times[row["scale"]])
    base = rows[0]
    print(f"What the model size costs (YOLOv8, 3 classes, imgsz {imgsz}, CPU, random weights):")
    print(f"{'model':>8} {'file MB':>8} {'params M':>9} {'GFLOPs':>7} {'ms/img b1':>10} {'ms/img b8':>10} "
          f"{'b1 vs ' + base['scale']:>8}")
    for row in rows:
        print(f"{'yolov8' + row['scale']:>8} {row['mb']:>8.1f} {row['params_m']:>9.2f} {row['gflops']:>7.1f} "
              f"{row['ms'][1]:>10.1f} {row['ms'][8]:>10.1f} {row['ms'][1] / base['ms'][1]:>7.2f}x")
    if shipped is not None and shipped.is_file():
        print(f"shipped {shipped.name}: {shipped.stat().st_size / 1e6:.1f} MB (limit 25 MB)")
    for row in (row for row in rows if row["mb"] > 25):
        print(f"yolov8{row['scale']} is over the 25 MB limit for the shipped detector")
    return rows


if __name__ == "__main__":
    sys.exit(main())
