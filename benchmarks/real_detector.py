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

The same figures on photos outside the held-out set: ``--labels`` (a COCO JSON of boxes, e.g.
``data/real/uj-train-cookies-unseen.json``: real cookies in training photos that no detector
stage trained on) and/or ``--negatives`` (a list of cookie-free photo names, e.g. training photos
held out of a run), both read from ``--images``. These are the checks to choose recipes and
checkpoints by; the held-out validation photos are only measured.

Usage:
    python benchmarks/real_detector.py [--weights W [W ...]] [--plot runs/real_detector.png]
    python benchmarks/real_detector.py --labels data/real/uj-train-cookies-unseen.json \
        --images ../shared/datasets/uj-staple-pantry-train-images/images [--negatives LIST]

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
    return load_photos_from(json.loads((folder / "annotations.json").read_text()), folder / "images")


def load_photos_from(coco: dict, images: Path) -> list[dict]:
    """``[{"path", "cookies": (K, 4) xyxy}]`` for every photo of ``coco`` with at least one annotation."""
    cookie_ids = {c["id"] for c in coco["categories"] if c["name"].lower() in COOKIE_NAMES}
    boxes: dict[int, list] = {im["id"]: [] for im in coco["images"]}
    annotated = set()
    for a in coco["annotations"]:
        annotated.add(a["image_id"])
        if a["category_id"] in cookie_ids:
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append([x, y, x + w, y + h])
    return [{"path": images / im["file_name"], "cookies": np.array(boxes[im["id"]], float).reshape(-1, 4)}
            for im in coco["images"] if im["id"] in annotated]


def load_box_photos(labels_json: Path, images: Path) -> list[dict]:
    """``[{"path", "cookies": (K, 4) xyxy}]`` for the photos of a COCO JSON of cookie boxes (pixels)."""
    return load_photos_from(json.loads(Path(labels_json).read_text()), Path(images))


def load_negative_photos(names_file: Path, images: Path) -> list[dict]:
    """Cookie-free photos named one per line (``#`` comments and blank lines skipped)."""
    names = [line.split("#")[0].strip() for line in Path(names_file).read_text().splitlines()]
    return [{"path": Path(images) / n, "cookies": np.zeros((0, 4))} for n in names if n]


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


def _false(r: dict) -> str:
    return f"{r['false_per_free_photo']:.2f}" if r["free_photos"] else "-"


def _recall(r: dict) -> str:
    found = round(r["cookie_recall"] * r["cookies"])
    return f"{r['cookie_recall']:.1%} ({found}/{r['cookies']})" if r["cookies"] else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with annotations.json and images/")
    parser.add_argument("--weights", nargs="+", default=None, help="detector weights (default: the shipped one)")
    parser.add_argument("--imgsz", type=int, default=None, help="inference size (default: the model's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", help="PNG of false detections and recall against confidence")
    parser.add_argument("--labels", nargs="+", help="instead of --data: COCO JSON(s) of real cookie boxes (pixels) "
                        "in --images")
    parser.add_argument("--negatives", help="instead of --data: file listing cookie-free photos in --images")
    parser.add_argument("--images", help="folder of the --labels / --negatives photos")
    args = parser.parse_args(argv)
    if args.labels or args.negatives:
        if not args.images:
            parser.error("--labels / --negatives need --images")
        if not Path(args.images).is_dir():
            print(f"skipped: {args.images} not found (the UJ dataset is not on this machine)")
            return 0
        photos = [p for labels in args.labels or () for p in load_box_photos(Path(labels), Path(args.images))]
        photos += load_negative_photos(Path(args.negatives), Path(args.images)) if args.negatives else []
        title = "real photos outside the held-out set"
    else:
        folder = Path(args.data)
        if not (folder / "annotations.json").is_file():
            print(f"skipped: {folder}/annotations.json not found (the UJ dataset is not on this machine)")
            return 0
        photos = load_photos(folder)
        title = "UJ Staple Pantry validation photos (held out)"
    from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector
    from detseg.detectors.yolo import DEFAULT_CONF
    from detseg.images import read_image

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
        print(f"  default conf {DEFAULT_CONF}: {_false(at_default)} false detections per "
              f"cookie-free photo, real-cookie recall {_recall(at_default)}")
        print(f"  {'conf':>6} {'false/photo':>12} {'recall':>14}")
        curves[name] = [rates(photos, detections, c) for c in SWEEP]
        for r in curves[name]:
            print(f"  {r['conf']:>6.2f} {_false(r):>12} {_recall(r):>14}")
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
        for ax, panel in ((ax1, "false detections per cookie-free photo"), (ax2, "real-cookie recall (IoU>=0.5)")):
            ax.axvline(DEFAULT_CONF, ls=":", c="k", lw=1)
            ax.set_xlabel("confidence threshold")
            ax.set_title(panel)
            ax.legend(fontsize=8)
        ax1.set_yscale("symlog", linthresh=0.1)
        ax1.set_ylim(bottom=0)
        fig.suptitle(title)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
