"""Synthetic generator speed: images per second at 640x640 on ONE core, written to disk.

Usage:
    python benchmarks/synth.py [--images 100] [--imgsz 640]

Pins the process to one CPU (os.sched_setaffinity) and OpenCV to one thread, then runs
`generate_dataset` (render + polygons + JPEG + labels + COCO JSON) into a temp folder.
Then, on all cores, the same with one worker process per core (``--workers``), and checks
that both runs wrote the same bytes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    if cores:
        os.sched_setaffinity(0, {cores[0]})
    import cv2

    cv2.setNumThreads(1)
    from detseg.data.synth.generate import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = generate_dataset(Path(tmp) / "one", {"train": args.images}, seed=123, imgsz=args.imgsz,
                                   progress=False)
        seconds = time.perf_counter() - start
        instances = sum(summary["splits"]["train"]["instances"].values())
        print(f"{args.images} images of {args.imgsz}x{args.imgsz} ({instances} instances) in {seconds:.2f} s on one "
              f"core: {args.images / seconds:.1f} images/s (target >= 20)")
        if len(cores) > 1:
            os.sched_setaffinity(0, set(cores))
            start = time.perf_counter()
            generate_dataset(Path(tmp) / "many", {"train": args.images}, seed=123, imgsz=args.imgsz, progress=False,
                             workers=len(cores))
            many = time.perf_counter() - start
            same = all((Path(tmp) / "one" / f.relative_to(Path(tmp) / "many")).read_bytes() == f.read_bytes()
                       for f in (Path(tmp) / "many").rglob("*") if f.is_file() and f.name != "data.yaml")
            print(f"with --workers {len(cores)} on {len(cores)} cores: {many:.2f} s, {args.images / many:.1f} images/s "
                  f"({seconds / many:.2f}x; same bytes as one process: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
