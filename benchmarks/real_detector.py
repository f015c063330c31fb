"""The food detector on real photos: false detections and real-cookie recall.

On the UJ Staple Pantry validation photos (199 real pantry photos, held out: never trained,
tuned or chosen on), for each detector given:

- false detections per cookie-free photo: every detection on a photo with no cookie or
  biscuit is false (the photos hold no croissant or cupcake either: bread, eggs, cheese,
  jars, packets, kitchens);
- real-cookie recall: the share of the ground-truth ``cookie`` and ``biscuit`` instances
  that some detection (any class) overlaps with IoU >= 0.5;

at the detector's default confidence, and over a sweep of confidences (``--plot`` draws
both curves). Detection runs once per photo at the lowest confidence of the sweep; each
threshold then filters those boxes, so every row comes from the same forward passes.

Usage:
    python benchmarks/real_detector.py [--weights W [W ...]] [--plot runs/real_detector.png]

Dataset: "The Staple Pantry Dataset (University of Johannesburg)", CC BY-SA 4.0, read in
place from ../shared/datasets/uj-staple-pantry-valid (skips cleanly when absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "uj-staple-pantry-valid"
COOKIE_NAMES = {"cookie", "cookies", "biscuit", "biscuits"}
SWEEP = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes ``(N, 4)`` x ``(M, 4)``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def load_photos(folder: Path) -> list[dict]:
    """``[{"path", "cookies": (K, 4) xyxy}]`` for every annotated photo."""
    coco = json.loads((folder / "annotations.json").read_text())
    cookie_ids = {c["id"] for c in coco["categories"] if c["name"].lower() in COOKIE_NAMES}
    boxes: dict[int, list] = {im["id"]: [] for im in coco["images"]}
    annotated = set()
    for a in coco["annotations"]:
        annotated.add(a["image_id"])
        if a["category_id"] in cookie_ids:
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append([x, y, x + w, y + h])
    return [{"path": folder / "images" / im["file_name"], "cookies": np.array(boxes[im["id"]], float).reshape(-1, 4)}
            for im in coco["images"] if im["id"] in annotated]


def rates(photos, detections, conf: float) -> dict:
    """False detections per cookie-free photo and cookie recall for detections with confidence >= conf."""
    false, free, found, total = 0, 0, 0, 0
    for photo, dets in zip(photos, detections):
        keep = dets.confidence >= conf
        xyxy = dets.xyxy[keep]
        if len(photo["cookies"]) == 0:
            free += 1
            false += len(xyxy)
        else:
            total += len(photo["cookies"])
            found += int((box_iou(photo["cookies"], xyxy) >= 0.5).any(axis=1).sum())
    return {"conf": conf, "false_per_free_photo": false / max(free, 1), "cookie_recall": found / max(total, 1),
            "free_photos": free, "cookies": total}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with annotations.json and images/")
    parser.add_argument("--weights", nargs="+", default=None, help="detector weights (default: the shipped one)")
    parser.add_argument("--imgsz", type=int, default=None, help="inference size (default: the model's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", help="PNG of false detections and recall against confidence")
    args = parser.parse_args(argv)
    folder = Path(args.data)
    if not (folder / "annotations.json").is_file():
        print(f"skipped: {folder}/annotations.json not found (the UJ dataset is not on this machine)")
        return 0
    from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector
    from detseg.detectors.yolo import DEFAULT_CONF
    from detseg.images import read_image

    photos = load_photos(folder)
    images = [read_image(p["path"]) for p in photos]
    curves = {}
    for weights in args.weights or [str(DEFAULT_WEIGHTS)]:
        detector = YoloDetector(weights, conf=min(SWEEP), imgsz=args.imgsz, device=args.device).load()
        start = time.perf_counter()
        detections = [detector(im) for im in images]
        seconds = time.perf_counter() - start
        at_default = rates(photos, detections, DEFAULT_CONF)
        name = Path(weights).name
        print(f"{name}: {len(photos)} photos ({at_default['free_photos']} cookie-free, {at_default['cookies']} "
              f"cookies), {seconds / len(photos) * 1000:.0f} ms/photo on {args.device}")
        print(f"  default conf {DEFAULT_CONF}: {at_default['false_per_free_photo']:.2f} false detections per "
              f"cookie-free photo, real-cookie recall {at_default['cookie_recall']:.1%}")
        print(f"  {'conf':>6} {'false/photo':>12} {'recall':>8}")
        curves[name] = [rates(photos, detections, c) for c in SWEEP]
        for r in curves[name]:
            print(f"  {r['conf']:>6.2f} {r['false_per_free_photo']:>12.2f} {r['cookie_recall']:>8.1%}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for name, rows in curves.items():
            ax1.plot(SWEEP, [r["false_per_free_photo"] for r in rows], marker="o", label=name)
            ax2.plot(SWEEP, [r["cookie_recall"] for r in rows], marker="o", label=name)
        ax1.axhline(0.5, ls="--", c="grey", lw=1, label="target <= 0.5")
        ax2.axhline(0.6, ls="--", c="grey", lw=1, label="target >= 60%")
        for ax, title in ((ax1, "false detections per cookie-free photo"), (ax2, "real-cookie recall (IoU>=0.5)")):
            ax.axvline(DEFAULT_CONF, ls=":", c="k", lw=1)
            ax.set_xlabel("confidence threshold")
            ax.set_title(title)
            ax.legend(fontsize=8)
        ax1.set_yscale("symlog", linthresh=0.1)
        ax1.set_ylim(bottom=0)
        fig.suptitle("UJ Staple Pantry validation photos (held out)")
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
