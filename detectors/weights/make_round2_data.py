"""The training data of rounds 2 and 3 (model card): real bakery boxes + composites, as one ultralytics data.yaml.

    python detectors/weights/make_round2_data.py --photos ../shared/datasets/real-bakery-photos \
        --synth runs/synth1 --out runs/round2-data [--repeat 3] [--synth-images 800]

Round 3 adds look-alike negatives more than once an epoch (``--negative-repeat``), real UJ training
photos as negatives (``--uj-images DIR --uj-negatives N --uj-exclude FILE ...``) and the boxed UJ
cookie photos (``--uj-items JSON --uj-items-repeat N``). Round 4 takes composites from several synth
folders (``--synth A B --synth-images 200 200``) and adds ready image folders as they are
(``--extra-train DIR ...``: e.g. the hard negatives of ``mine_hard_negatives.py``). Round 7 adds a fourth
class, ``3 other baked good``: the boxes of ``--lookalikes`` (``data/real/bakery-lookalikes.json``: the
train split's look-alike photos; a crowd box (a dense tray or display case) is left out and its photo kept, so
that region stays background, as every look-alike was before) and the train split's muffins; a photo counts as one
"with items" (``--repeat``) only for a line of the three detector classes, else as a negative
(``--negative-repeat``), as before.

Writes OUT/real-train (train-split photos: every photo with items, every look-alike-only photo as an
empty-label negative), OUT/real-train-repeat{2..N} (the photos with items again, so they count N times
an epoch), OUT/real-dev (the dev split: ultralytics' val, so best.pt is picked on sites never trained on),
OUT/synth (links to the first --synth-images composites of the synth dataset's train split) and
OUT/data.yaml. Photos are linked, never copied.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml


def main(argv=None) -> int:
    from detseg.data.bakery import DETECTOR_CLASSES, load_boxes, write_yolo_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, help="the real-bakery-photos folder")
    p.add_argument("--synth", required=True, nargs="+", help="`detseg data synth --backgrounds ...` output folders")
    p.add_argument("--out", required=True)
    p.add_argument("--repeat", type=int, default=3, help="times each photo with items counts per epoch")
    p.add_argument("--synth-images", type=int, nargs="+", default=[800],
                   help="composites taken from each synth folder's train split (one number, or one per folder)")
    p.add_argument("--negative-repeat", type=int, default=1, help="times each look-alike-only photo counts per epoch")
    p.add_argument("--uj-images", help="the UJ training photos folder (round 3)")
    p.add_argument("--uj-negatives", type=int, default=0, help="cookie-free UJ photos added as empty-label negatives")
    p.add_argument("--uj-exclude", nargs="*", default=[],
                   help="name lists (one per line, # comments) and COCO files whose photos are never used")
    p.add_argument("--uj-items", help="a COCO file of boxed UJ cookie photos to train on")
    p.add_argument("--uj-items-repeat", type=int, default=1)
    p.add_argument("--extra-train", nargs="*", default=[], help="image folders added to train as they are")
    p.add_argument("--lookalikes", help="COCO file of look-alike boxes: train them, and muffins, as class 3 (round 7)")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args(argv)
    if len(args.synth_images) not in (1, len(args.synth)):
        p.error("--synth-images: give one number, or one per --synth folder")
    missing = [f for f in args.extra_train if not Path(f).is_dir()]
    if missing:
        p.error(f"--extra-train: folder not found: {', '.join(missing)}")

    out = Path(args.out).resolve()
    boxes = load_boxes()
    images = Path(args.photos) / "images"
    names = list(DETECTOR_CLASSES)
    class_of = None
    if args.lookalikes:
        boxes, class_of = _with_lookalikes(boxes, args.lookalikes)
        names.append(LOOKALIKE_CLASS)
    counts = write_yolo_split(boxes, images, out / "real-train", "train", class_of=class_of)
    print("real-train:", counts)
    print("real-dev:", write_yolo_split(boxes, images, out / "real-dev", "dev"))
    train = [str(out / "real-train" / "images")]
    labels = sorted((out / "real-train" / "labels").glob("*.txt"))
    with_items = {label: _has_items(label) for label in labels}
    for folder, repeat, items in (("real-train-repeat", args.repeat, True),
                                  ("real-train-negatives", args.negative_repeat, False)):
        for r in range(2, repeat + 1):
            dst = out / f"{folder}{r}"
            for label in labels:
                if with_items[label] == items:
                    _link_pair(out / "real-train" / "images" / (label.stem + ".jpg"), label, dst)
            train.append(str(dst / "images"))
    if args.uj_images:
        train += _uj_folders(args, out)
    n_synth, per_folder = 0, args.synth_images * (len(args.synth) if len(args.synth_images) == 1 else 1)
    for k, (folder, n) in enumerate(zip(args.synth, per_folder)):
        dst = out / ("synth" if k == 0 else f"synth{k + 1}")
        synth_imgs = sorted((Path(folder) / "images" / "train").iterdir())[:n]
        for img in synth_imgs:
            label = Path(folder) / "labels" / "train" / (img.stem + ".txt")
            if label.exists():
                _link_pair(img, label, dst)
        n_synth += len(synth_imgs)
        train.append(str(dst / "images"))
    train += [str(Path(folder).resolve()) for folder in args.extra_train]
    cfg = {"path": str(out), "train": train, "val": str(out / "real-dev" / "images"),
           "names": dict(enumerate(names))}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"{out / 'data.yaml'}: train {len(train)} folders ({n_synth} composites)")
    return 0


LOOKALIKE_CLASS = "other baked good"


def _has_items(label: Path) -> bool:
    """Whether a YOLO label file has a line of the three detector classes (a look-alike line is not an item)."""
    from detseg.data.bakery import DETECTOR_CLASSES

    return any(int(ln.split()[0]) < len(DETECTOR_CLASSES) for ln in label.read_text().splitlines() if ln.strip())


def _with_lookalikes(boxes: dict, path: str) -> tuple[dict, dict[str, int]]:
    """``boxes`` with the look-alike file's non-crowd boxes added to their photos, and the class map that
    trains the three detector classes as 0-2 and muffins and every look-alike category as 3."""
    from detseg.data.bakery import DETECTOR_CLASSES, LOOKALIKE_CATEGORIES, load_boxes

    extra = load_boxes(path, LOOKALIKE_CATEGORIES)
    by_name = {im["file_name"]: im["id"] for im in boxes["images"]}
    unknown = [im["file_name"] for im in extra["images"] if im["file_name"] not in by_name]
    if unknown:
        raise SystemExit(f"--lookalikes: {len(unknown)} photos not in the box file, e.g. {unknown[0]}")
    ids = {im["id"]: by_name[im["file_name"]] for im in extra["images"]}
    offset = max(c["id"] for c in boxes["categories"])
    next_id = max((a["id"] for a in boxes["annotations"]), default=0) + 1
    anns = []
    for a in extra["annotations"]:
        if not a.get("iscrowd"):
            anns.append({**a, "id": next_id + len(anns), "image_id": ids[a["image_id"]],
                         "category_id": a["category_id"] + offset})
    merged = {**boxes, "categories": boxes["categories"] + [{**c, "id": c["id"] + offset} for c in extra["categories"]],
              "annotations": boxes["annotations"] + anns}
    class_of = {n: i for i, n in enumerate(DETECTOR_CLASSES)} | {n: len(DETECTOR_CLASSES)
                                                                  for n in ("muffin", *LOOKALIKE_CATEGORIES)}
    print(f"look-alikes: {len(anns)} boxes (crowd boxes left out) in {len(extra['images'])} photos, as class 3")
    return merged, class_of


def _link_pair(image: Path, label: Path, dst: Path) -> None:
    """Link ``image`` and ``label`` into ``dst/images`` and ``dst/labels`` (never copied)."""
    for src, sub in ((image, "images"), (label, "labels")):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        link = dst / sub / src.name
        if not link.is_symlink():
            os.symlink(src.resolve(), link)


def _uj_folders(args, out: Path) -> list[str]:
    """UJ negatives (empty labels) and boxed UJ cookie photos as YOLO folders; returns their image folders."""
    import json
    import random

    uj = Path(args.uj_images)
    never: set[str] = set()
    for f in args.uj_exclude:
        if f.endswith(".json"):
            never |= {im["file_name"] for im in json.loads(Path(f).read_text())["images"]}
        else:
            never |= {ln.strip() for ln in Path(f).read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    items = json.loads(Path(args.uj_items).read_text()) if args.uj_items else {"images": [], "annotations": []}
    never |= {im["file_name"] for im in items["images"]}
    pool = sorted(p.name for p in uj.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.name not in never)
    chosen = sorted(random.Random(args.seed).sample(pool, min(args.uj_negatives, len(pool))))
    folders = []
    if chosen:
        dst, labels = out / "uj-negatives", out / "uj-negatives-labels"
        labels.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            label = labels / (Path(name).stem + ".txt")
            label.write_text("")
            _link_pair(uj / name, label, dst)
        folders.append(str(dst / "images"))
        print(f"uj-negatives: {len(chosen)} of {len(pool)} eligible photos")
    if items["images"]:
        by_image: dict[int, list] = {}
        for a in items["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        # a photo of the file with no box is not used as a negative (the file's own note: its subject is cookie-like,
        # e.g. round crackers): left out. Rounds 3 and 4 trained the 6 such photos of the fit file as negatives
        # (fixed 2026-12-08, model card).
        items = {**items, "images": [im for im in items["images"] if by_image.get(im["id"])]}
        cat = {c["id"]: c["name"] for c in items["categories"]}
        from detseg.data.bakery import DETECTOR_CLASSES
        from detseg.data.yolo_format import yolo_box_line

        base = out / "uj-items-labels"  # the label files; uj-items{,2,...} link to them
        (base / "labels").mkdir(parents=True, exist_ok=True)
        for im in items["images"]:
            lines = [yolo_box_line(DETECTOR_CLASSES.index(cat[a["category_id"]]), a["bbox"], im["width"], im["height"])
                     for a in by_image.get(im["id"], [])]
            label = base / "labels" / (Path(im["file_name"]).stem + ".txt")
            label.write_text("\n".join(lines) + "\n")
        for r in range(1, args.uj_items_repeat + 1):
            dst = out / f"uj-items{r}"
            for im in items["images"]:
                _link_pair(uj / im["file_name"], base / "labels" / (Path(im["file_name"]).stem + ".txt"), dst)
            folders.append(str(dst / "images"))
        print(f"uj-items: {len(items['images'])} photos, {len(items['annotations'])} boxes, x{args.uj_items_repeat}")
    return folders


if __name__ == "__main__":
    sys.exit(main())
