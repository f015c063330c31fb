"""YoloDetector's overhead over ultralytics' own ``YOLO.predict``, measured in one run.

ms per image at imgsz 640 on this machine for batch 1 and batch 8, through the wrapper
(``YoloDetector(...)(images)``, which also converts to ``sv.Detections``) and through
``YOLO.predict`` directly on the same weights and images. Runs alternate and the
median of several repeats is kept. Target: wrapper overhead under 5%.

Usage:
    python benchmarks/detector.py [--weights detectors/weights/food-yolov8n.pt] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "detectors" / "weights" / "food-yolov8n.pt"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args(argv)

    import numpy as np
    from ultralytics import YOLO

    from detseg.data.synth import render_scene
    from detseg.detectors import YoloDetector

    weights = Path(args.weights)
    if not weights.is_file():  # timing does not depend on the weights' values
        weights = Path(tempfile.mkdtemp()) / "random-yolov8n.pt"
        YOLO("yolov8n.yaml").save(str(weights))
        print(f"(no {args.weights}: using random-initialised yolov8n weights)")
    images = [render_scene(np.random.default_rng(i), args.imgsz, args.imgsz).image for i in range(8)]
    detector = YoloDetector(str(weights), imgsz=args.imgsz, device="cpu", conf=0.25).load()
    model = YOLO(str(weights))
    kwargs = dict(imgsz=args.imgsz, device="cpu", conf=0.25, iou=0.7, max_det=300, verbose=False)
    detector(images[:1])
    model.predict(images[:1], **kwargs)  # warm-up both

    print(f"{'batch':>5} {'YOLO.predict ms/img':>20} {'YoloDetector ms/img':>20} {'overhead':>9}")
    for batch in (1, 8):
        ours, theirs = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for i in range(0, 8, batch):
                model.predict(images[i:i + batch], **kwargs)
            theirs.append((time.perf_counter() - t) / 8)
            t = time.perf_counter()
            for i in range(0, 8, batch):
                detector(images[i:i + batch])
            ours.append((time.perf_counter() - t) / 8)
        a, b = statistics.median(theirs), statistics.median(ours)
        print(f"{batch:>5} {a * 1000:>20.1f} {b * 1000:>20.1f} {100 * (b - a) / a:>8.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
