"""SAM segmenter speed and memory, ours vs ultralytics' predictor, measured in one run.

Uses a random-initialised MobileSAM checkpoint (no weights can be downloaded here):
timings do not depend on the weights' values; random weights make masks cover large
parts of the frame, the worst case for the upsampling.

Prints: encoder ms; decoder ms per box, for N in {1, 8, 32, 100}: ultralytics' own mask
decoder module in a per-box loop and in one big batch, our path (the shared-image box
decoder, auto chunks) and ultralytics' predictor; re-prompt time of a cached
image vs the first call; peak memory growth for a 4000x3000 image with 200 boxes
(CompactMask vs dense, each in a fresh process); bf16 vs fp32 time and mask IoU; MobileSAM and
SAM 2.1-t time at input sides (``imgsz``) 1024, 768 and 512.
With ``--device cuda``: the same comparisons on the GPU, peak CUDA memory of 200 boxes
in chunks of 64 instead of the RSS figures, and fp16 / bf16 vs fp32.

Usage:
    python benchmarks/segmenter.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _image(h, w, seed=0):
    """A photo-like BGR test image: a smooth colour field (bicubic from a 32-px grid) plus noise."""
    import cv2

    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 255, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    smooth = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).astype(int)
    return np.clip(smooth + rng.integers(-10, 10, smooth.shape), 0, 255).astype(np.uint8)


def _boxes(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.05, 0.3, (n, 2)) * [w, h]
    xy = rng.uniform(0, 1, (n, 2)) * ([w, h] - size)
    return np.concatenate([xy, xy + size], 1).astype(np.float32)


def _time(fn, repeat=1):
    import torch

    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous: time it to completion
        best = min(best, time.perf_counter() - t)
    return best, out


def _ultralytics_predictor(checkpoint, device="cpu"):
    from ultralytics.models.sam import Predictor

    return Predictor(overrides=dict(conf=0.0, model=str(checkpoint), imgsz=1024, device=device, verbose=False,
                                    save=False))


def memory_child(checkpoint: str, output: str) -> None:
    """Run in a fresh process: peak RSS growth of predict_masks on 4000x3000 with 200 boxes."""
    from detseg.segmenter import SamSegmenter

    seg = SamSegmenter(checkpoint, output=output, device="cpu").load()
    image = _image(3000, 4000, 1)
    boxes = _boxes(200, 3000, 4000, 1)
    seg.embed(image)  # the encoder's own memory is not what this measures
    import gc
    import threading

    gc.collect()
    page = resource.getpagesize()

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    before, peak, done = rss(), [0], threading.Event()

    def sample():  # RSS sampled every 2 ms during the call: its peak, not the process's all-time peak
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    masks, _ = seg.predict_masks(image, boxes)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], rss())
    area = int(sum(np.asarray(masks[i]).sum() for i in range(len(boxes))))
    print(json.dumps({"peak_growth_mb": round((peak[0] - before) / 2**20, 1), "masks": len(masks),
                      "mask_pixels": area}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N in {1, 8, 32} only, one repeat")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--memory-child", nargs=2, metavar=("CHECKPOINT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0

    import torch

    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam_loading import save_random_checkpoint

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    ckpt = save_random_checkpoint(tmp / "mobile_sam.pt", "mobile_sam")
    device = args.device
    cuda = device.startswith("cuda")
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, random MobileSAM weights")
    h, w = 768, 1024
    image = _image(h, w)
    repeat = 1 if args.quick else 2
    repeat += cuda  # the first GPU call pays for lazy initialisation

    seg = SamSegmenter(str(ckpt), output="dense", device=device).load()
    reference = SamSegmenter(str(ckpt), output="dense", device=device, decoder="reference").load()
    enc, _ = _time(lambda: seg._encode(image), repeat)
    print(f"encoder: {enc * 1000:.0f} ms per image ({w}x{h} -> 1024)")
    seg.embed(image)

    predictor = _ultralytics_predictor(ckpt, device)
    predictor.set_image(image)
    feats = predictor.features
    from ultralytics.models.sam import Predictor

    reference.embed(image)
    print(f"\n{'N':>4} {'ref. loop':>10} {'ref. batch':>11} {'ours (auto)':>12} {'ultralytics':>12}"
          f" {'ultra/ours':>10} {'mask agree':>10}   (ms per box, decode + upsample, cached embedding;"
          f" ref. = ultralytics' MaskDecoder module)")
    for n in (1, 8, 32) if args.quick else (1, 8, 32, 100):
        boxes = _boxes(n, h, w, n)
        timings = {}
        for name, chunk in (("loop", 1), ("batch", n)):
            reference.chunk_size = chunk
            timings[name], _ = _time(lambda: reference.predict_masks(image, boxes), repeat)
        timings["ours"], (ours, _) = _time(lambda: seg.predict_masks(image, boxes), repeat)
        timings["ultra"], (ref, _) = _time(
            lambda: Predictor.inference_features(predictor, feats, src_shape=(h, w), bboxes=boxes), repeat)
        agree = (ref.cpu().numpy() == ours).mean()
        print(f"{n:>4} {timings['loop'] / n * 1000:>10.1f} {timings['batch'] / n * 1000:>11.1f} "
              f"{timings['ours'] / n * 1000:>12.1f} {timings['ultra'] / n * 1000:>12.1f} "
              f"{timings['ultra'] / timings['ours']:>9.2f}x {agree:>10.5f}")

    print()
    for n in (1, 8):
        fresh = SamSegmenter(str(ckpt), output="dense", device=device).load()
        boxes = _boxes(n, h, w, 3)
        first, _ = _time(lambda: fresh.predict_masks(image, boxes))
        again, _ = _time(lambda: fresh.predict_masks(image, boxes), repeat)
        print(f"re-prompt a cached image ({n} box{'es' if n > 1 else ''}): first call {first * 1000:.0f} ms, "
              f"again {again * 1000:.0f} ms -> {first / again:.1f}x faster; cache {fresh.cache_info()}")

    if cuda:
        big, big_boxes = _image(3000, 4000, 1), _boxes(200, 3000, 4000, 1)
        for output in ("compact", "dense"):
            big_seg = SamSegmenter(str(ckpt), output=output, device=device).load()
            big_seg.embed(big)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            seconds, _ = _time(lambda: big_seg.predict_masks(big, big_boxes))
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            print(f"4000x3000 image, 200 boxes, chunks of {big_seg._chunk()}, {output}: {seconds * 1000:.0f} ms, "
                  f"peak CUDA memory over the cached embedding {peak:.0f} MB")
    else:
        print("\npeak memory growth, 4000x3000 image, 200 boxes (fresh process each):")
        for output in ("compact", "dense"):
            res = subprocess.run([sys.executable, __file__, "--memory-child", str(ckpt), output],
                                 capture_output=True, text=True, cwd=ROOT)
            line = res.stdout.strip().splitlines()[-1] if res.returncode == 0 else f"failed: {res.stderr[-300:]}"
            print(f"  {output:<8} {line}")

    boxes = _boxes(16, h, w, 5)
    seg32 = SamSegmenter(str(ckpt), output="dense", device=device, cache_bytes=0).load()
    t32, (m32, _) = _time(lambda: seg32.predict_masks(image, boxes), repeat)  # cache off: encoder each call
    for precision in ("fp16", "bf16") if cuda else ("bf16",):
        half = SamSegmenter(str(ckpt), output="dense", device=device, precision=precision, cache_bytes=0).load()
        t16, (m16, _) = _time(lambda: half.predict_masks(image, boxes), repeat)
        inter = (m32 & m16).sum((1, 2))
        union = np.maximum((m32 | m16).sum((1, 2)), 1)
        print(f"\n{precision} vs fp32 (encoder + 16 boxes): fp32 {t32 * 1000:.0f} ms, {precision} {t16 * 1000:.0f} ms"
              f" -> {t32 / t16:.2f}x; mask IoU {precision} vs fp32: mean {np.mean(inter / union):.3f}, "
              f"min {np.min(inter / union):.3f}")

    # SAM's input side (imgsz): the same image and boxes at 1024 (SAM's own), 768 and 512, cache off. Time only:
    # what a smaller input costs in mask quality needs real weights (random weights' masks say nothing about it)
    print()
    for arch, name in (("mobile_sam", "mobile_sam.pt"), ("sam2.1_t", "sam2.1_t.pt")):
        arch_ckpt = ckpt if arch == "mobile_sam" else save_random_checkpoint(tmp / name, arch)
        line = []
        for imgsz in (1024, 768, 512):
            sized = SamSegmenter(str(arch_ckpt), output="dense", device=device, cache_bytes=0, imgsz=imgsz).load()
            sized.predict_masks(image, boxes[:1])  # warm-up
            seconds, _ = _time(lambda: sized.predict_masks(image, boxes), repeat)
            line.append(f"{imgsz}: {seconds * 1000:.0f} ms")
        print(f"{arch}, encoder + 16 boxes by input side (imgsz): " + ", ".join(line))

    # the encoder on several images in one call (SamSegmenter.embed_batch), cache off
    batches = (1, 4, 16) if cuda else (1, 4)
    batcher = SamSegmenter(str(ckpt), output="dense", device=device, cache_bytes=0).load()
    images = [_image(h, w, 10 + i) for i in range(max(batches))]
    batcher.embed_batch(images[:1])  # warm-up
    print()
    for b in batches:
        seconds, _ = _time(lambda: batcher.embed_batch(images[:b]), repeat)
        print(f"encoder, batch {b:>2}: {b / seconds:.2f} images/s ({seconds / b * 1000:.0f} ms per image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
