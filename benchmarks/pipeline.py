"""End-to-end speed of ``detseg predict`` vs the ultralytics equivalent, measured in one run.

On a folder of generated 1024x1024 images with >= 10 food items each, with the shipped
food detector and a random-initialised MobileSAM checkpoint (no SAM weights can be
downloaded here; timings do not depend on the weights' values):

1. ours: ``run_predict`` (detect, segment with one embedding per image and chunked
   decoding, write annotated images, labels, COCO predictions);
2. ultralytics: ``ultralytics.data.annotator.auto_annotate`` on the same weights (YOLO
   predict, then ``SAM(...)(image, bboxes=...)`` per image, writes YOLO-seg labels);
3. the floor: detector + SAM encoder + SAM decoder forward passes alone, and our
   in-memory ``Pipeline`` per stage against it.

Both sides do the same work: auto_annotate's detector settings (conf 0.25, NMS IoU 0.45, per-class NMS,
640 px) on ours too, and each side loads its two models inside its timed run (auto_annotate always does;
ours builds a fresh pipeline each round). With ``--device cuda`` both run on the GPU, each after a warm-up on
one image in the same process (CUDA start-up and kernel selection are not timed).

Usage:
    python benchmarks/pipeline.py [--images 6] [--repeats 1] [--weights detectors/weights/food-yolov5nu.pt]
        [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, n: int, min_items: int = 10) -> None:
    """``n`` generated 1024-px images, keeping scenes with at least ``min_items`` instances."""
    import cv2
    import numpy as np

    from detseg.data.synth.generate import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    seed, made = 0, 0
    while made < n:
        scene = render_scene(np.random.default_rng([2024, seed]), 1024, 1024)
        seed += 1
        if len(scene.masks) >= min_items:
            cv2.imwrite(str(folder / f"scene_{made:03d}.jpg"), scene.image)
            made += 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--weights", default=str(ROOT / "detectors" / "weights" / "food-yolov5nu.pt"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds of ours and ultralytics")
    args = parser.parse_args(argv)
    device, cuda = args.device, args.device.startswith("cuda")

    import torch

    from detseg.detectors import YoloDetector
    from detseg.images import read_image
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam_loading import save_random_checkpoint

    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "images"
    make_folder(folder, args.images)
    ckpt = save_random_checkpoint(tmp / "sam" / "mobile_sam.pt", "mobile_sam")
    weights = args.weights
    if not Path(weights).is_file():
        sys.exit(f"{weights} not found: train the food detector first (see detectors/weights/README.md)")

    # the same work on both sides: auto_annotate's detector settings (conf 0.25, NMS IoU 0.45 per class, 640 px)
    same_work = dict(device=device, imgsz=640, conf=0.25, iou=0.45, agnostic_nms=False)
    detector = YoloDetector(weights, **same_work).load()
    segmenter = SamSegmenter(str(ckpt), device=device).load()
    pipe = Pipeline(detector, segmenter)
    files = sorted(folder.glob("*.jpg"))
    images = [read_image(f) for f in files]
    boxes = sum(len(detector(im)) for im in images)
    where = torch.cuda.get_device_name(device) if cuda else f"torch {torch.get_num_threads()} threads"
    print(f"{len(files)} images 1024x1024, {boxes} detected boxes ({boxes / len(files):.1f} per image), {where}; "
          "both sides: conf 0.25, NMS IoU 0.45 per class, models loaded inside the timed run")
    from ultralytics.data.annotator import auto_annotate

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if cuda:  # warm-ups, not timed
        (tmp / "warm").mkdir()
        os.link(files[0], tmp / "warm" / files[0].name)
        run_predict(pipe, tmp / "warm", tmp / "warm-ours", RunOptions(progress=False))
        segmenter.clear_cache()
        with contextlib.redirect_stdout(io.StringIO()):
            auto_annotate(str(tmp / "warm"), det_model=weights, sam_model=str(ckpt), device=device, imgsz=640,
                          output_dir=str(tmp / "warm-ultra"))

    # 1. ours, end to end (CLI code path, outputs written), then 2. ultralytics' auto_annotate on the
    # same weights; alternating rounds, so that a slow spell of the machine hits both sides.
    # ultralytics' select_device pins torch to cores - 1 threads for the rest of its process: ours gets
    # its default back each round, and is also timed once at ultralytics' count (below).
    threads = torch.get_num_threads()
    n, rounds = len(files), []
    print()
    for r in range(args.repeats):
        torch.set_num_threads(threads)
        t = time.perf_counter()  # as auto_annotate, which loads both models in its run: ours builds its own here
        fresh = Pipeline(YoloDetector(weights, **same_work).load(), SamSegmenter(str(ckpt), device=device).load())
        summary = run_predict(fresh, folder, tmp / f"ours-{r}", RunOptions(progress=False))
        ours = time.perf_counter() - t
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            auto_annotate(str(folder), det_model=weights, sam_model=str(ckpt), device=device, imgsz=640,
                          output_dir=str(tmp / f"ultra-{r}"))
        ultra = time.perf_counter() - t
        rounds.append(ultra / ours)
        label = f"end to end, round {r + 1}" if args.repeats > 1 else "end to end"
        print(f"{label}: ours {n / ours:.3f} images/s ({where}), ultralytics auto_annotate {n / ultra:.3f} "
              f"images/s -> {ultra / ours:.2f}x")
    if len(rounds) > 1:
        print(f"median of {len(rounds)} rounds: {statistics.median(rounds):.2f}x (min {min(rounds):.2f}x, "
              f"max {max(rounds):.2f}x)")
    if not cuda:
        same = max(1, (os.cpu_count() or 2) - 1)
        torch.set_num_threads(same)
        t = time.perf_counter()
        fresh = Pipeline(YoloDetector(weights, **same_work).load(), SamSegmenter(str(ckpt), device=device).load())
        run_predict(fresh, folder, tmp / "ours-same-threads", RunOptions(progress=False))
        ours_same = time.perf_counter() - t
        torch.set_num_threads(threads)
        print(f"same torch threads as ultralytics sets ({same}): ours {n / ours_same:.3f} images/s -> "
              f"{ultra / ours_same:.2f}x (against the last round's ultralytics time)")

    # 3. the floor: forward passes alone, vs our in-memory pipeline per stage
    segmenter = SamSegmenter(str(ckpt), device=device, cache_bytes=0).load()
    pipe = Pipeline(detector, segmenter)
    floor = {"detector": 0.0, "encoder": 0.0, "decoder": 0.0}
    stages, total = {}, 0.0
    for image in images:
        t = time.perf_counter()
        dets = detector(image)
        floor["detector"] += time.perf_counter() - t
        t = time.perf_counter()
        emb = segmenter._encode(image)
        sync()
        floor["encoder"] += time.perf_counter() - t
        prompt = torch.as_tensor(dets.xyxy * emb.scale, device=segmenter._device)
        t = time.perf_counter()
        segmenter.predict_torch(emb, prompt)
        sync()
        floor["decoder"] += time.perf_counter() - t
        t = time.perf_counter()
        _, seconds = pipe.process(image)
        total += time.perf_counter() - t
        for k, v in seconds.items():
            stages[k] = stages.get(k, 0.0) + v
    floor_total = sum(floor.values())
    print("\nfloor (forward passes alone), seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in floor.items())
          + f", total {floor_total:.2f}")
    print("our Pipeline per stage, seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
          + f", total {total:.2f}")
    print(f"pipeline overhead over the floor: {100 * (total - floor_total) / floor_total:.1f}% "
          f"(upsampling to full resolution, box checks, Detections bookkeeping)")
    written = summary["seconds_per_stage"].get("write", 0.0)
    print(f"writing outputs (annotated JPEGs, labels, COCO RLE) in the end-to-end run: {written:.2f} s, in a "
          f"background thread overlapping the next image's forward passes ({ours:.2f} s wall in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
