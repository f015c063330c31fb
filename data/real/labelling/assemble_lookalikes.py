"""Assemble data/real/bakery-lookalikes.json from the per-photo look-alike box files (GUIDE-lookalikes.md).

    python data/real/labelling/assemble_lookalikes.py --boxes WORK/lookalike --photos LIST [LIST ...] \
        [--out data/real/bakery-lookalikes.json]

``--photos``: the name lists handed to the labellers (one file name a line); every listed photo must have its
box file (``FILE.json``: ``{"file", "boxes": [{"cls", "xyxy", "crowd"?}], "note"}``) and be a photo of
``bakery-boxes.json`` with no box there (a look-alike-only photo). Each image entry copies that file's
``file_name``, size, ``sha256``, ``repo``, ``split`` and ``main``. Boxes are clipped to the photo and must keep
a positive area; a box of one of the four boxed kinds (croissant, cookie, cupcake, muffin) stops the
assembly: such a photo belongs in ``bakery-boxes.json`` first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    from detseg.atomic import atomic_write_json
    from detseg.data.bakery import (
        LOOKALIKE_CATEGORIES,
        LOOKALIKES_FILE,
        check_boxes,
        coco_box_in_photo,
        load_boxes,
    )

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--boxes", required=True, help="folder of per-photo FILE.json box files")
    p.add_argument("--photos", required=True, nargs="+", help="the lists of photos given to the labellers")
    p.add_argument("--out", default=str(LOOKALIKES_FILE))
    p.add_argument("--info", default=None, help="JSON file whose object becomes the file's 'info'")
    args = p.parse_args(argv)

    items = load_boxes()
    with_boxes = {a["image_id"] for a in items["annotations"]}
    known = {im["file_name"]: im for im in items["images"]}
    names = [n.strip() for f in args.photos for n in Path(f).read_text().splitlines() if n.strip()]
    cat_id = {n: i + 1 for i, n in enumerate(LOOKALIKE_CATEGORIES)}
    coco = {
        "info": json.loads(Path(args.info).read_text()) if args.info else {},
        "categories": [{"id": i, "name": n} for n, i in cat_id.items()],
        "images": [],
        "annotations": [],
    }
    problems, clipped = [], 0
    for name in sorted(set(names)):
        src, box_file = known.get(name), Path(args.boxes) / (name + ".json")
        if src is None or src["id"] in with_boxes:
            problems.append(f"{name}: not a look-alike-only photo of bakery-boxes.json")
            continue
        if not box_file.is_file():
            problems.append(f"{name}: no box file {box_file}")
            continue
        image_id = len(coco["images"]) + 1
        labelled = json.loads(box_file.read_text())
        coco["images"].append({k: src[k] for k in ("file_name", "width", "height", "sha256", "repo", "split", "main")}
                              | {"id": image_id, "note": labelled.get("note", "")})
        w, h = src["width"], src["height"]
        for b in labelled["boxes"]:
            if b["cls"] not in cat_id:
                problems.append(f"{name}: class {b['cls']!r} (not a look-alike category)")
                continue
            inside = coco_box_in_photo(b["xyxy"], w, h)
            if inside is None:
                problems.append(f"{name}: box {b['xyxy']} has no area inside the {w}x{h} photo")
                continue
            bbox, was_clipped = inside
            clipped += was_clipped
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": cat_id[b["cls"]],
                "bbox": bbox, "area": bbox[2] * bbox[3],
                "iscrowd": int(bool(b.get("crowd"))),
            })
    problems += check_boxes(coco, LOOKALIKE_CATEGORIES)
    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        return 1
    atomic_write_json(args.out, coco, indent=None)
    print(f"{args.out}: {len(coco['images'])} photos, {len(coco['annotations'])} boxes "
          f"({sum(a['iscrowd'] for a in coco['annotations'])} crowd, {clipped} clipped to the photo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
