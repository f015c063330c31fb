"""The food detector on real photos: false detections and real-cookie recall.

On the UJ Staple Pantry validation photos (199 real pantry photos, held out: never trained,
tuned or chosen on), for each detector given:

- false detections per cookie-free photo: every detection on a photo with no cookie or
  biscuit is false (the photos hold no croissant or cupcake either: bread, eggs, cheese,
  jars, packets, kitchens);
- real-cookie recall: the share of the ground-truth ``cookie`` and ``biscuit`` instances
  matched by a detection of any class at IoU >= 0.5, and ("as cookie") by a ``cookie`` detection;
  one detection matches at most one cookie (COCO's greedy matching: detections in falling
  confidence, each to the unmatched cookie it overlaps most);

at the detector's default confidence, and over a sweep of confidences (``--plot`` draws
both curves). Detection runs once per photo at the lowest confidence of the sweep; each
threshold then filters those boxes, so every row comes from the same forward passes.

The same figures on photos outside the held-out set: ``--labels`` (a COCO JSON of boxes, e.g.
``data/real/uj-train-cookies-unseen.json``: real cookies in training photos that no detector
stage trained on) and/or ``--negatives`` (a list of cookie-free photo names, e.g. training photos
held out of a run), both read from ``--images``. These are the checks to choose recipes and
checkpoints by; the held-out validation photos are only measured.

``--bakery`` measures the dev split of ``real-bakery-photos`` (sites no detector trained on; boxes in
``data/real/bakery-boxes.json``), read in place from ``../shared/datasets/real-bakery-photos``:

- box AP50:95 and AP50, overall and per class (pycocotools, the three detector classes; a muffin is
  not one of them, so a detection on a muffin is a false positive), once on the detections a user
  gets at the default confidence and once on every detection down to the sweep's lowest confidence;
- false detections per look-alike-only photo (cakes, bread, donuts, macarons... with no item of the
  four boxed kinds), at the default confidence;
- the share of photos with items whose most frequent detected class is their most frequent true class;
- over the confidence sweep (``--plot``): false detections per look-alike photo and recall (a box of
  the right class at IoU >= 0.5, one box to one item, matched as for the cookies above).

Usage:
    python benchmarks/real_detector.py [--weights W [W ...]] [--plot runs/real_detector.png]
    python benchmarks/real_detector.py --labels data/real/uj-train-cookies-unseen.json \
        --images ../shared/datasets/uj-staple-pantry-train-images/images [--negatives LIST]
    python benchmarks/real_detector.py --bakery [--split dev] [--weights W [W ...]] [--plot runs/bakery.png]

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
DEFAULT_BAKERY = ROOT.parent / "shared" / "datasets" / "real-bakery-photos"
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


def matched(truth: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Which ``truth`` boxes ``(N, 4)`` the detections ``boxes`` ``(M, 4)`` find, one detection to one truth:
    in falling ``scores``, each detection takes the unmatched truth it overlaps most at IoU >= ``iou``
    (pycocotools' ``evaluateImg`` rule). Returns ``(N,)`` bool."""
    found = np.zeros(len(truth), bool)
    overlap = box_iou(np.asarray(truth, float).reshape(-1, 4), np.asarray(boxes, float).reshape(-1, 4))
    for j in np.argsort(-np.asarray(scores), kind="stable"):
        column = np.where(found, -1.0, overlap[:, j])  # a matched truth is taken
        if len(column) and column.max() >= iou:
            found[int(column.argmax())] = True
    return found


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


def per_class(detections, thresholds: dict[int, float]):
    """Each ``sv.Detections`` of a list filtered to confidence >= its class's threshold (``{class_id: conf}``;
    a class missing from the map keeps nothing). The same boxes a detector run at the lowest threshold and
    filtered per class returns: a box below that lowest threshold can only suppress lower boxes in NMS."""
    out = []
    for dets in detections:
        limit = np.array([thresholds.get(int(c), np.inf) for c in dets.class_id], float)
        out.append(dets[dets.confidence >= limit] if len(dets) else dets)
    return out


def load_box_photos(labels_json: Path, images: Path) -> list[dict]:
    """``[{"path", "cookies": (K, 4) xyxy}]`` for the photos of a COCO JSON of cookie boxes (pixels)."""
    return load_photos_from(json.loads(Path(labels_json).read_text()), Path(images))


def load_negative_photos(names_file: Path, images: Path) -> list[dict]:
    """Cookie-free photos named one per line (``#`` comments and blank lines skipped)."""
    names = [line.split("#")[0].strip() for line in Path(names_file).read_text().splitlines()]
    return [{"path": Path(images) / n, "cookies": np.zeros((0, 4))} for n in names if n]


def rates(photos, detections, conf: float) -> dict:
    """False detections per cookie-free photo and cookie recall (any class; and as cookie) for detections
    with confidence >= conf."""
    false, free, found, as_cookie, total = 0, 0, 0, 0, 0
    for photo, dets in zip(photos, detections):
        keep = dets.confidence >= conf
        xyxy, scores = dets.xyxy[keep], dets.confidence[keep]
        if len(photo["cookies"]) == 0:
            free += 1
            false += len(xyxy)
        else:
            total += len(photo["cookies"])
            found += int(matched(photo["cookies"], xyxy, scores).sum())
            names = np.asarray(dets.data.get("class_name", np.array([""] * len(dets))))[keep]
            cookie = np.isin(np.char.lower(names.astype(str)), list(COOKIE_NAMES))
            as_cookie += int(matched(photo["cookies"], xyxy[cookie], scores[cookie]).sum())
    return {"conf": conf, "false_per_free_photo": false / max(free, 1), "cookie_recall": found / max(total, 1),
            "cookie_recall_as_cookie": as_cookie / max(total, 1), "free_photos": free, "cookies": total}


def _false(r: dict) -> str:
    return f"{r['false_per_free_photo']:.2f}" if r["free_photos"] else "-"


def _recall(r: dict, key: str = "cookie_recall") -> str:
    found = round(r[key] * r["cookies"])
    return f"{r[key]:.1%} ({found}/{r['cookies']})" if r["cookies"] else "-"


def bakery_photos(coco: dict, images: Path, split: str = "dev") -> list[dict]:
    """``[{"path", "id", "width", "height", "main", "boxes": [(class_name, xyxy, iscrowd)]}]`` for one split."""
    from detseg.data.bakery import boxes_by_image, photos_of_split

    cat = {c["id"]: c["name"] for c in coco["categories"]}
    by_image = boxes_by_image(coco)
    out = []
    for im in photos_of_split(coco, split):
        boxes = []
        for a in by_image[im["id"]]:
            x, y, w, h = a["bbox"]
            boxes.append((cat[a["category_id"]], [x, y, x + w, y + h], bool(a.get("iscrowd"))))
        out.append({"path": Path(images) / im["file_name"], "id": im["id"], "width": im["width"],
                    "height": im["height"], "main": im.get("main", ""), "boxes": boxes})
    return out


def bakery_ap(photos: list[dict], detections, names: dict, conf: float) -> dict:
    """Box AP50:95 and AP50 (pycocotools), overall and per detector class, for detections with confidence >= conf.

    ``names`` maps the detector's class ids to names; detections of other names are dropped, and ground
    truth of other names (muffins) is left out, so a detection on a muffin counts as a false positive.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from detseg.data.bakery import DETECTOR_CLASSES

    cat_id = {n: i + 1 for i, n in enumerate(DETECTOR_CLASSES)}
    gt = {"images": [{"id": p["id"], "width": p["width"], "height": p["height"]} for p in photos],
          "categories": [{"id": i, "name": n} for n, i in cat_id.items()], "annotations": []}
    for p in photos:
        for name, (x1, y1, x2, y2), crowd in p["boxes"]:
            if name in cat_id:
                gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": p["id"],
                                          "category_id": cat_id[name], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                          "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd)})
    results = []
    for p, dets in zip(photos, detections):
        for xyxy, score, cls in zip(dets.xyxy, dets.confidence, dets.class_id):
            name = names.get(int(cls))
            if score >= conf and name in cat_id:
                x1, y1, x2, y2 = (float(v) for v in xyxy)
                results.append({"image_id": p["id"], "category_id": cat_id[name], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "score": float(score)})
    out = {"conf": conf, "AP": 0.0, "AP50": 0.0, "per_class": {n: {"AP": 0.0, "AP50": 0.0} for n in cat_id}}
    if not results or not gt["annotations"]:
        return out
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out["AP"], out["AP50"] = float(ev.stats[0]), float(ev.stats[1])
    precision = ev.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)
    for k, (name, cid) in enumerate(cat_id.items()):
        has_gt = any(a["category_id"] == cid and not a["iscrowd"] for a in gt["annotations"])
        pc = precision[:, :, k, 0, -1]
        ap = float(pc[pc > -1].mean()) if has_gt and (pc > -1).any() else float("nan")
        ap50 = precision[0, :, k, 0, -1]
        out["per_class"][name] = {"AP": ap, "AP50": float(ap50[ap50 > -1].mean()) if has_gt and (ap50 > -1).any()
                                  else float("nan")}
    return out


def bakery_rates(photos: list[dict], detections, names: dict, conf: float) -> dict:
    """False detections per look-alike-only photo, class-aware recall at IoU >= 0.5, majority-class agreement."""
    from collections import Counter

    false, lookalike, found, total, agree, with_items = 0, 0, 0, 0, 0, 0
    other_false, other_only = 0, 0
    for p, dets in zip(photos, detections):
        keep = dets.confidence >= conf
        xyxy, cls = dets.xyxy[keep], [names.get(int(c)) for c in dets.class_id[keep]]
        if not p["boxes"]:
            lookalike += 1
            false += len(xyxy)
            continue
        in_classes = [(n, b, crowd) for n, b, crowd in p["boxes"] if n in names.values()]
        truth = [(n, b) for n, b, crowd in in_classes if not crowd]
        if not in_classes:  # boxes of other classes only (muffins)
            other_only += 1
            other_false += len(xyxy)
            continue
        scores = dets.confidence[keep]
        for name in {n for n, _ in truth}:
            same = np.array([c == name for c in cls], bool)
            boxes = np.array([b for n, b in truth if n == name], float)
            total += len(boxes)
            found += int(matched(boxes, xyxy[same], scores[same]).sum())
        if truth:
            with_items += 1
            majority = Counter(n for n, _ in truth).most_common(1)[0][0]
            agree += bool(cls) and Counter(cls).most_common(1)[0][0] == majority
    return {"conf": conf, "false_per_lookalike_photo": false / max(lookalike, 1), "lookalike_photos": lookalike,
            "recall": found / max(total, 1), "items": total, "majority_class": agree / max(with_items, 1),
            "photos_with_items": with_items,
            # not in the look-alike figure (its definition since round 2: photos with no box at all), said beside it
            "false_per_other_only_photo": other_false / max(other_only, 1), "other_only_photos": other_only}


def run_bakery(args) -> int:
    """The ``--bakery`` report (see the module docstring)."""
    from detseg.data.bakery import BOXES_FILE, load_boxes

    folder = Path(args.bakery)
    if not (folder / "images").is_dir():
        print(f"skipped: {folder}/images not found (the real bakery photos are not on this machine)")
        return 0
    from detseg.detectors import DEFAULT_WEIGHTS
    from detseg.detectors.yolo import DEFAULT_CONF
    from detseg.images import read_image

    photos = bakery_photos(load_boxes(args.bakery_boxes or BOXES_FILE), folder / "images", args.split)
    images = [read_image(p["path"]) for p in photos]
    curves = {}
    for weights in args.weights or [str(DEFAULT_WEIGHTS)]:
        detector = _detector(weights, args)
        start = time.perf_counter()
        detections = [detector(im) for im in images]
        seconds = time.perf_counter() - start
        names = {int(k): v for k, v in detector.class_names.items()}
        name = Path(weights).name
        at_default = bakery_rates(photos, detections, names, DEFAULT_CONF)
        print(f"{name}: real-bakery-photos {args.split} split, {len(photos)} photos ({at_default['items']} items, "
              f"{at_default['lookalike_photos']} look-alike-only photos), {seconds / len(photos) * 1000:.0f} ms/photo "
              f"on {args.device}")
        for conf, label in ((DEFAULT_CONF, f"default conf {DEFAULT_CONF}"), (min(SWEEP), f"conf >= {min(SWEEP)}")):
            ap = bakery_ap(photos, detections, names, conf)
            per = "  ".join(f"{n} {v['AP']:.3f}/{v['AP50']:.3f}" for n, v in ap["per_class"].items())
            print(f"  box AP50:95 / AP50 at {label}: all {ap['AP']:.3f}/{ap['AP50']:.3f}  {per}")
        print(f"  default conf {DEFAULT_CONF}: {at_default['false_per_lookalike_photo']:.2f} detections per "
              f"look-alike-only photo, recall {at_default['recall']:.1%}, majority class right on "
              f"{round(at_default['majority_class'] * at_default['photos_with_items'])} of "
              f"{at_default['photos_with_items']} photos")
        if at_default["other_only_photos"]:
            print(f"  default conf {DEFAULT_CONF}: {at_default['false_per_other_only_photo']:.2f} detections per photo "
                  f"of muffins only ({at_default['other_only_photos']} photos; not in the look-alike figure)")
        curves[name] = [bakery_rates(photos, detections, names, c) for c in SWEEP]
        print(f"  {'conf':>6} {'false/look-alike':>17} {'recall':>8}")
        for r in curves[name]:
            print(f"  {r['conf']:>6.2f} {r['false_per_lookalike_photo']:>17.2f} {r['recall']:>8.1%}")
    if args.plot:
        _plot(curves, ("false_per_lookalike_photo", "false detections per look-alike-only photo", 0.3),
              ("recall", "recall (right class, IoU>=0.5)", None),
              f"real-bakery-photos, {args.split} split (sites never trained on)", args.plot)
    return 0


def _detector(weights: str, args):
    """The detector a benchmark run measures: every box down to the sweep's lowest confidence, with the
    run's ``--imgsz``, ``--iou``, ``--device``, ``--augment`` and ``--classes``."""
    from detseg.detectors import YoloDetector

    return YoloDetector(weights, conf=min(SWEEP), iou=args.iou, imgsz=args.imgsz, device=args.device,
                        augment=args.augment, classes=args.classes).load()


def _plot(curves: dict, left: tuple, right: tuple, title: str, path: str) -> None:
    """Two panels against the confidence threshold: ``(key, panel title, target line or None)`` each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from detseg.detectors.yolo import DEFAULT_CONF

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, panel, target) in zip(axes, (left, right)):
        for name, rows in curves.items():
            ax.plot(SWEEP, [r[key] for r in rows], marker="o", label=name)
        if target is not None:
            ax.axhline(target, ls="--", c="grey", lw=1, label=f"target {target:g}")
        ax.axvline(DEFAULT_CONF, ls=":", c="k", lw=1)
        ax.set_xlabel("confidence threshold")
        ax.set_title(panel)
        ax.legend(fontsize=8)
    axes[0].set_yscale("symlog", linthresh=0.1)
    axes[0].set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of this benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with annotations.json and images/")
    parser.add_argument("--weights", nargs="+", default=None, help="detector weights (default: the shipped one)")
    parser.add_argument("--imgsz", type=int, default=None, help="inference size (default: the model's)")
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default: detseg's, 0.7)")
    parser.add_argument("--classes", nargs="+", type=int, default=None,
                        help="keep only these class ids (e.g. 0 1 2 of a model trained with a look-alike class 3)")
    parser.add_argument("--augment", action="store_true", help="test-time augmentation (ultralytics' augment=True)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", help="PNG of false detections and recall against confidence")
    parser.add_argument("--labels", nargs="+", help="instead of --data: COCO JSON(s) of real cookie boxes (pixels) "
                        "in --images")
    parser.add_argument("--negatives", help="instead of --data: file listing cookie-free photos in --images")
    parser.add_argument("--images", help="folder of the --labels / --negatives photos")
    parser.add_argument("--bakery", nargs="?", const=str(DEFAULT_BAKERY), default=None, metavar="DIR",
                        help="instead of --data: the real-bakery-photos folder (default when given alone: %(const)s)")
    parser.add_argument("--bakery-boxes", default=None, help="box file (default: data/real/bakery-boxes.json)")
    parser.add_argument("--split", default="dev", choices=("dev", "train"), help="--bakery split (default: dev)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bakery:
        return run_bakery(args)
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
    from detseg.detectors import DEFAULT_WEIGHTS
    from detseg.detectors.yolo import DEFAULT_CONF
    from detseg.images import read_image

    images = [read_image(p["path"]) for p in photos]
    curves = {}
    for weights in args.weights or [str(DEFAULT_WEIGHTS)]:
        detector = _detector(weights, args)
        start = time.perf_counter()
        detections = [detector(im) for im in images]
        seconds = time.perf_counter() - start
        at_default = rates(photos, detections, DEFAULT_CONF)
        name = Path(weights).name
        print(f"{name}: {len(photos)} photos ({at_default['free_photos']} cookie-free, {at_default['cookies']} "
              f"cookies), {seconds / len(photos) * 1000:.0f} ms/photo on {args.device}")
        print(f"  default conf {DEFAULT_CONF}: {_false(at_default)} false detections per "
              f"cookie-free photo, real-cookie recall {_recall(at_default)} (as cookie "
              f"{_recall(at_default, 'cookie_recall_as_cookie')})")
        print(f"  {'conf':>6} {'false/photo':>12} {'recall':>14} {'as cookie':>14}")
        curves[name] = [rates(photos, detections, c) for c in SWEEP]
        for r in curves[name]:
            print(f"  {r['conf']:>6.2f} {_false(r):>12} {_recall(r):>14} {_recall(r, 'cookie_recall_as_cookie'):>14}")
    if args.plot:
        _plot(curves, ("false_per_free_photo", "false detections per cookie-free photo", 0.5),
              ("cookie_recall", "real-cookie recall (IoU>=0.5)", 0.6), title, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
