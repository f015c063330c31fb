"""Synthetic generator speed: images per second at 640x640 on ONE core, written to disk.

Usage:
    python benchmarks/synth.py [--images 100] [--imgsz 640]

Pins the process to one CPU (os.sched_setaffinity) and OpenCV to one thread, then runs
`generate_dataset` (render + polygons + JPEG + labels + COCO JSON) into a temp folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this folder is first on sys.path and its pipeline.py / segmenter.py would shadow the packages
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2

    cv2.setNumThreads(1)
    from data.synth import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = generate_dataset(tmp, {"train": args.images}, seed=123, imgsz=args.imgsz, progress=False)
        seconds = time.perf_counter() - start
    instances = sum(summary["splits"]["train"]["instances"].values())
    print(f"{args.images} images of {args.imgsz}x{args.imgsz} ({instances} instances) in {seconds:.2f} s on one "
          f"core: {args.images / seconds:.1f} images/s (target >= 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
