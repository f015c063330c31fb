"""The training data of round 2 (model card): real bakery boxes + composites, as one ultralytics data.yaml.

    python detectors/weights/make_round2_data.py --photos ../shared/datasets/real-bakery-photos \
        --synth runs/synth1 --out runs/round2-data [--repeat 3] [--synth-images 800]

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
    p.add_argument("--synth", required=True, help="a `detseg data synth --backgrounds ...` output folder")
    p.add_argument("--out", required=True)
    p.add_argument("--repeat", type=int, default=3, help="times each photo with items counts per epoch")
    p.add_argument("--synth-images", type=int, default=800, help="composites taken from the synth train split")
    args = p.parse_args(argv)

    out = Path(args.out).resolve()
    boxes = load_boxes()
    images = Path(args.photos) / "images"
    counts = write_yolo_split(boxes, images, out / "real-train", "train")
    print("real-train:", counts)
    print("real-dev:", write_yolo_split(boxes, images, out / "real-dev", "dev"))
    train = [str(out / "real-train" / "images")]
    for r in range(2, args.repeat + 1):
        dst = out / f"real-train-repeat{r}"
        for sub in ("images", "labels"):
            (dst / sub).mkdir(parents=True, exist_ok=True)
        for label in sorted((out / "real-train" / "labels").glob("*.txt")):
            if not label.read_text().strip():
                continue  # negatives count once
            for src, sub in ((out / "real-train" / "images" / (label.stem + ".jpg"), "images"), (label, "labels")):
                link = dst / sub / src.name
                if not link.exists():
                    os.symlink(src.resolve(), link)
        train.append(str(dst / "images"))
    synth_imgs = sorted((Path(args.synth) / "images" / "train").iterdir())[: args.synth_images]
    for sub in ("images", "labels"):
        (out / "synth" / sub).mkdir(parents=True, exist_ok=True)
    for img in synth_imgs:
        label = Path(args.synth) / "labels" / "train" / (img.stem + ".txt")
        for src, sub in ((img, "images"), (label, "labels")):
            link = out / "synth" / sub / src.name
            if src.exists() and not link.exists():
                os.symlink(src.resolve(), link)
    train.append(str(out / "synth" / "images"))
    cfg = {"path": str(out), "train": train, "val": str(out / "real-dev" / "images"),
           "names": dict(enumerate(DETECTOR_CLASSES))}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"{out / 'data.yaml'}: train {len(train)} folders ({len(synth_imgs)} composites)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
