"""``--engine ray`` vs the local engine on the same generated images, measured in one run.

Offline and weight-free on the segmenter side: the shipped food detector
(``detectors/weights/food-yolov5nu.pt``) and GrabCut (no SAM weights can be downloaded here).

1. Outputs: every file the Ray engine writes equals the local engine's byte for byte
   (summary.json aside: it holds timings), and predictions.json loads equal, when both run
   the detector with the same number of torch threads (1): YOLO's CPU convolutions give
   other last bits of a score or box with another thread count, in either engine.
2. Throughput: the local engine (one process, one writing thread) at torch's default threads
   and at 1 thread vs the Ray engine with ``--workers`` single-threaded actors on a local
   Ray instance.
   Ray's start-up (``ray.init``) is timed apart; the Ray figure includes starting the actors
   and building each one's detector and segmenter.
3. Per-image cost of each stage (read, detect, segment, write) from the local run, and, with
   ``--encoder-batch B``, MobileSAM's encoder (random weights) per image at batch 1 vs batch B.

Usage:
    python benchmarks/scale.py [--images 40] [--size 640] [--workers 2] [--encoder-batch 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "detectors" / "weights" / "food-yolov5nu.pt"


def make_images(folder: Path, n: int, size: int) -> None:
    import cv2
    import numpy as np

    from detseg.data.synth.generate import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        scene = render_scene(np.random.default_rng([16, i]), size, size)
        cv2.imwrite(str(folder / f"scene_{i:03d}.jpg"), scene.image)


def compare(a: Path, b: Path) -> tuple[int, list[str]]:
    """(files compared, relative paths that differ or are missing), summary.json aside."""
    names = {str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()}
    names |= {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()}
    names.discard("summary.json")
    differ = [n for n in sorted(names) if not ((a / n).is_file() and (b / n).is_file()
                                              and (a / n).read_bytes() == (b / n).read_bytes())]
    return len(names), differ


def encoder_batch(batch: int, size: int) -> tuple[float, float]:
    """MobileSAM encoder seconds per image at batch 1 and at ``batch`` (random weights, same images)."""
    import numpy as np

    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam_loading import save_random_checkpoint

    tmp = Path(tempfile.mkdtemp())
    ckpt = save_random_checkpoint(tmp / "mobile_sam.pt", "mobile_sam")
    sam = SamSegmenter(str(ckpt), device="cpu", cache_bytes=2**30).load()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
    sam.embed(images[0])  # warm-up
    sam.clear_cache()
    t = time.perf_counter()
    for im in images:
        sam.embed(im)
    one = (time.perf_counter() - t) / batch
    sam.clear_cache()
    t = time.perf_counter()
    sam.embed_batch(images)
    many = (time.perf_counter() - t) / batch
    shutil.rmtree(tmp, ignore_errors=True)
    return one, many


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=640, help="square image side")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (one torch / OpenCV thread each)")
    parser.add_argument("--encoder-batch", type=int, default=4, help="also time SAM's encoder at this batch (0: skip)")
    args = parser.parse_args(argv)

    import ray
    import torch

    from detseg.detectors import YoloDetector
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.pipeline.scale.ray_engine import PipelineSpec, RayOptions, predict
    from detseg.segmenter import GrabCutSegmenter

    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "images"
    make_images(folder, args.images, args.size)
    threads = torch.get_num_threads()
    print(f"{args.images} generated images {args.size}x{args.size}; shipped detector {WEIGHTS.name} + GrabCut "
          f"(weight-free, offline); {os.cpu_count()} CPU cores")

    # 1. local engine (the CLI's code path), at torch's default threads and at the actors' one thread
    pipe = Pipeline(YoloDetector(WEIGHTS, device="cpu").load(), GrabCutSegmenter())
    t = time.perf_counter()
    local = run_predict(pipe, folder, tmp / "local-default", RunOptions(progress=False))
    t_local = time.perf_counter() - t
    torch.set_num_threads(1)
    pipe = Pipeline(YoloDetector(WEIGHTS, device="cpu").load(), GrabCutSegmenter())
    t = time.perf_counter()
    run_predict(pipe, folder, tmp / "local", RunOptions(progress=False))
    t_local1 = time.perf_counter() - t
    torch.set_num_threads(threads)
    del pipe

    # 2. Ray engine: a local instance, single-threaded actors
    t = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    t_init = time.perf_counter() - t
    t = time.perf_counter()
    summary = predict(PipelineSpec(str(WEIGHTS), "grabcut", "cpu"), folder, tmp / "ray", RunOptions(progress=False),
                      RayOptions(workers=args.workers, threads_per_worker=1))
    t_ray = time.perf_counter() - t
    ray.shutdown()

    n_files, differ = compare(tmp / "local", tmp / "ray")
    same_preds = (json.loads((tmp / "local" / "predictions.json").read_text())
                  == json.loads((tmp / "ray" / "predictions.json").read_text()))
    n = local["processed"]
    print(f"\noutputs: {n_files} files compared (summary.json aside), {len(differ)} differ"
          f"{': ' + ', '.join(differ[:5]) if differ else ' (byte for byte identical)'}; "
          f"predictions.json equal: {same_preds}; {local['instances']} instances")
    threads_differ = len(compare(tmp / "local-default", tmp / "local")[1])
    print(f"local engine at {threads} torch threads vs 1 thread: {threads_differ} files differ "
          "(float last bits of the detector)")
    print(f"local engine ({threads} torch threads): {t_local:.2f} s, {n / t_local:.3f} images/s")
    print(f"local engine (1 torch thread): {t_local1:.2f} s, {n / t_local1:.3f} images/s")
    print(f"ray engine ({args.workers} actors x 1 thread): {t_ray:.2f} s, {summary['processed'] / t_ray:.3f} images/s "
          f"(+ ray.init {t_init:.2f} s)")
    print(f"ray / local throughput: {t_local / t_ray:.2f}x vs {threads} threads, {t_local1 / t_ray:.2f}x vs 1 thread "
          f"(target >= 0.9x); with ray.init counted: {t_local / (t_ray + t_init):.2f}x and "
          f"{t_local1 / (t_ray + t_init):.2f}x")

    stages = {k: v / n for k, v in local["seconds_per_stage"].items() if k in ("read", "detect", "segment", "write")}
    print("local per-image seconds by stage: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
          + f"; {local['instances'] / n:.1f} boxes per image")
    ray_stages = {k: v / n for k, v in summary["seconds_per_stage"].items() if k in stages}
    print("ray per-image seconds by stage (in the actors, 1 thread each): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ray_stages.items()))
    if args.encoder_batch > 1:
        one, many = encoder_batch(args.encoder_batch, 1024)
        print(f"MobileSAM encoder (random weights, {threads} threads), seconds per 1024x1024 image: batch 1 "
              f"{one:.3f}, batch {args.encoder_batch} {many:.3f} ({one / many:.2f}x per image)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not differ and same_preds else 1


if __name__ == "__main__":
    raise SystemExit(main())
