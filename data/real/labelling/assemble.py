"""Assemble data/real/bakery-boxes.json from the per-photo box files written while labelling.

    python data/real/labelling/assemble.py --photos ../shared/datasets/real-bakery-photos \
        --boxes WORK/out --screened WORK/assign/negatives.txt WORK/assign/negatives.result.json \
        [--out data/real/bakery-boxes.json]

Every photo of ``photos.csv`` enters the file once it has been looked at: a photo with a box file
(``FILE.json``: ``{"file", "boxes": [{"cls", "xyxy", "crowd"?}], "note"}``) gets its boxes; a
look-alike-only photo that the negatives screening looked at and found free of the four kinds gets
none. A photo not yet looked at is left out and listed. Boxes are clipped to the photo (labellers
read coordinates off a grid) and must keep a positive area.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _one_row_per_file(rows: list[dict], images: Path) -> list[dict]:
    """photos.csv names 3 stored files twice (two source photos saved under one name): keep the row whose
    width and height are the stored file's."""
    from PIL import Image

    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    kept = []
    for name, group in by_file.items():
        if len(group) > 1:
            with Image.open(images / name) as im:
                size = im.size
            group = [r for r in group if (int(r["width"]), int(r["height"])) == size] or group[:1]
        kept.append(group[0])
    return kept


def main(argv=None) -> int:
    from detseg.atomic import atomic_write_json
    from detseg.data.bakery import (
        BOXES_FILE,
        CATEGORIES,
        check_boxes,
        coco_box_in_photo,
        dev_sites,
        read_photo_table,
        split_of,
    )

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, help="the real-bakery-photos folder (photos.csv)")
    p.add_argument("--boxes", required=True, help="folder of per-photo FILE.json box files")
    p.add_argument(
        "--screened",
        nargs=2,
        required=True,
        metavar=("LIST", "RESULT"),
        help="the look-alike photos given to the screening (one name a line) and its result JSON "
        "({'screened': N, 'contains_items': [names]})",
    )
    p.add_argument("--out", default=str(BOXES_FILE))
    p.add_argument("--info", default=None, help="JSON file whose object becomes the file's 'info'")
    args = p.parse_args(argv)

    rows = _one_row_per_file(read_photo_table(Path(args.photos) / "photos.csv"), Path(args.photos) / "images")
    given = [n.strip() for n in Path(args.screened[0]).read_text().splitlines() if n.strip()]
    screened = json.loads(Path(args.screened[1]).read_text())
    if screened["screened"] < len(given):
        raise SystemExit(f"the screening looked at {screened['screened']} of {len(given)} photos")
    negatives_ok = set(given) - set(screened.get("contains_items", []))
    dev = dev_sites()
    cat_id = {n: i + 1 for i, n in enumerate(CATEGORIES)}
    coco = {
        "info": json.loads(Path(args.info).read_text()) if args.info else {},
        "categories": [{"id": i, "name": n} for n, i in cat_id.items()],
        "images": [],
        "annotations": [],
    }
    missing, clipped = [], 0
    for r in rows:
        box_file = Path(args.boxes) / (r["file"] + ".json")
        if box_file.is_file():
            labelled = json.loads(box_file.read_text())
            boxes, note = labelled["boxes"], labelled.get("note", "")
        elif r["file"] in negatives_ok:
            boxes, note = [], "screened: none of the four kinds"
        else:
            missing.append(r["file"])
            continue
        w, h = int(r["width"]), int(r["height"])
        image_id = len(coco["images"]) + 1
        coco["images"].append(
            {
                "id": image_id,
                "file_name": r["file"],
                "width": w,
                "height": h,
                "sha256": r["sha256"],
                "repo": r["repo"],
                "split": split_of(r["repo"], dev),
                "main": r["main"],
                "note": note,
            }
        )
        for b in boxes:
            inside = coco_box_in_photo(b["xyxy"], w, h)
            if inside is None:
                raise SystemExit(f"{box_file}: box {b['xyxy']} has no area inside the {w}x{h} photo")
            bbox, was_clipped = inside
            clipped += was_clipped
            if b["cls"] not in cat_id:
                raise SystemExit(f"{box_file}: unknown class {b['cls']!r}")
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": cat_id[b["cls"]],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": int(bool(b.get("crowd"))),
                }
            )
    problems = check_boxes(coco)
    if problems:
        raise SystemExit("\n".join(problems[:20]))
    atomic_write_json(args.out, coco, indent=None)
    print(
        f"{args.out}: {len(coco['images'])} photos, {len(coco['annotations'])} boxes ({clipped} clipped to the "
        f"photo); {len(missing)} photos not looked at yet"
    )
    for name in missing[:20]:
        print(f"  not yet: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
