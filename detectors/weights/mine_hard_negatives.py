"""Stage D's hard negatives: background photos on which a detector fires, added to a dataset as
background-only training images (ultralytics trains on an image without a label file as a negative).

Usage (what made the shipped detector, see README.md beside this file):
    python detectors/weights/mine_hard_negatives.py --weights swa-last8.pt --images BG_DIR \
        --exclude data/real/uj-train-exclude.txt data/real/uj-train-dev-negatives.txt \
        --into D/images/train --max 400 --seed 2027

Photos are linked (not copied) into ``--into`` as ``hardneg-<name>``; the list of names is written
beside them as ``hardneg.txt``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", required=True, type=Path, help="background photos (no item of the classes)")
    ap.add_argument("--exclude", nargs="*", type=Path, default=[], help="lists of photo names to leave out")
    ap.add_argument("--into", required=True, type=Path, help="a dataset's train image folder")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--max", type=int, default=400, help="at most this many (seeded draw)")
    ap.add_argument("--seed", type=int, default=2027)
    args = ap.parse_args(argv)
    from detseg.data.synth.generate import list_backgrounds, read_name_list

    try:
        if not args.into.is_dir():
            raise ValueError(f"folder not found: {args.into}")
        photos = list_backgrounds(args.images, exclude=set().union(*(read_name_list(p) for p in args.exclude)))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ultralytics import YOLO

    model = YOLO(args.weights)
    fired = [p for p in photos if len(model.predict(str(p), imgsz=args.imgsz, conf=args.conf, agnostic_nms=True,
                                                    verbose=False)[0].boxes)]
    print(f"{len(fired)} of {len(photos)} photos get a detection at conf {args.conf}")
    if len(fired) > args.max:
        fired = sorted(random.Random(args.seed).sample(fired, args.max))
    listing = args.into / "hardneg.txt"
    if listing.is_file():  # a re-run replaces the previous run's links
        for name in read_name_list(listing):
            (args.into / f"hardneg-{name}").unlink(missing_ok=True)
    for p in fired:
        link = args.into / f"hardneg-{p.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(p.resolve())
    listing.write_text("".join(p.name + "\n" for p in fired))
    print(f"linked {len(fired)} hard negatives into {args.into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
