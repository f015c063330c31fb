"""The real bakery photos: their table, the split by site, the hand-checked boxes, and a YOLO view to train on.

The photos themselves (``real-bakery-photos/images/*.jpg`` and ``photos.csv``) are not part of
detseg: they are read in place from a folder the caller names. What detseg ships is the boxes,
``data/real/bakery-boxes.json`` (COCO, pixels of the stored photo, ``bbox`` = ``[x, y, w, h]``),
whose ``images`` entries carry each photo's ``file_name``, size, ``sha256`` (of the original
file, as in ``photos.csv``), ``repo`` (the site), ``split`` (``train`` or ``dev``) and ``main``
(the image-level note). Categories: ``croissant``, ``cookie``, ``cupcake`` (the detector's three)
and ``muffin`` (boxed, but not a detector class: see ``data/real/labelling/GUIDE.md``).
``iscrowd`` marks a box around a group too dense to separate.

``data/real/bakery-lookalikes.json`` (same form) boxes the baked goods in the train split's look-alike-only
photos (categories ``LOOKALIKE_CATEGORIES``: cake, bread, pastry, tart, donut, macaron, dessert; rules in
``data/real/labelling/GUIDE-lookalikes.md``), for training a look-alike class (round 7 of the model card).

Example:
    >>> from detseg.data.bakery import load_boxes, photos_of_split  # doctest: +SKIP
    >>> boxes = load_boxes()
    >>> len(photos_of_split(boxes, "dev"))  # doctest: +SKIP
    171
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from detseg.atomic import atomic_write_text
from detseg.data.yolo_format import yolo_box_line
from detseg.errors import DatasetError

REAL_DIR = Path(__file__).resolve().parent / "real"
BOXES_FILE = REAL_DIR / "bakery-boxes.json"
SPLIT_FILE = REAL_DIR / "bakery-split.json"
DETECTOR_CLASSES = ("croissant", "cookie", "cupcake")  # the order of the shipped detector's class ids
CATEGORIES = (*DETECTOR_CLASSES, "muffin")
SPLITS = ("train", "dev")
LOOKALIKES_FILE = REAL_DIR / "bakery-lookalikes.json"
LOOKALIKE_CATEGORIES = ("cake", "bread", "pastry", "tart", "donut", "macaron", "dessert")


def read_photo_table(csv_path: str | Path) -> list[dict]:
    """The rows of ``photos.csv`` (``file, main, items, count, width, height, repo, ..., sha256, note``)."""
    path = Path(csv_path)
    if not path.is_file():
        raise DatasetError("photo table not found", path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = {"file", "main", "repo", "sha256", "width", "height"}
    if not rows or not need <= set(rows[0]):
        raise DatasetError(f"not a real-bakery photo table (needs columns {sorted(need)})", path)
    return rows


def dev_sites(split_file: str | Path = SPLIT_FILE) -> frozenset[str]:
    """The sites (``repo`` values) whose photos form the dev split; every other site is train."""
    return frozenset(json.loads(Path(split_file).read_text())["dev_sites"])


def split_of(repo: str, dev: frozenset[str] | None = None) -> str:
    """``"dev"`` or ``"train"`` for a photo's site: the split is by site, never by photo."""
    return "dev" if repo in (dev_sites() if dev is None else dev) else "train"


def load_boxes(path: str | Path = BOXES_FILE, categories: tuple[str, ...] = CATEGORIES) -> dict:
    """The COCO dict of the boxes, checked: every box inside its photo, ids consistent, ``categories`` exactly.

    Raises:
        DatasetError: naming the file and the first problem found.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read the box file ({type(e).__name__})", path) from None
    problems = check_boxes(coco, categories)
    if problems:
        raise DatasetError(problems[0], path)
    return coco


def coco_box_in_photo(xyxy, width: int, height: int) -> tuple[list[float], bool] | None:
    """A labeller's ``xyxy`` box (pixels) clipped to a ``width`` x ``height`` photo, as a COCO ``[x, y, w, h]``.

    Returns:
        ``(bbox, clipped)``: the box and whether clipping changed it; None when less than one pixel of
        width or height is left inside the photo.
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)
    if cx2 - cx1 < 1 or cy2 - cy1 < 1:
        return None
    return [cx1, cy1, cx2 - cx1, cy2 - cy1], (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)


def check_boxes(coco: dict, categories: tuple[str, ...] = CATEGORIES) -> list[str]:
    """Every problem of a box file, one line each (empty when it is sound); its categories must be ``categories``."""
    if not isinstance(coco, dict):
        return [f"a box file is a COCO JSON object, got a {type(coco).__name__}"]
    for key in ("images", "annotations", "categories"):
        entries = coco.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return [f"{key!r} must be a list of objects"]
    problems: list[str] = []
    cats = {c["id"]: c.get("name") for c in coco.get("categories", []) if isinstance(c.get("id"), int)}
    if len(cats) != len(coco.get("categories", [])):
        problems.append("category ids must be distinct whole numbers")
    if sorted(map(str, cats.values())) != sorted(categories):
        problems.append(f"categories must be {list(categories)}, got {sorted(map(str, cats.values()))}")
    images = {}
    for im in coco.get("images", []):
        name = im.get("file_name", "")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            problems.append(f"image {im.get('id')}: file_name {name!r} must be a plain file name")
        if not (isinstance(im.get("sha256"), str) and len(im["sha256"]) == 64):
            problems.append(f"{name}: sha256 missing or not 64 hex digits")
        if not all(isinstance(im.get(k), int) and not isinstance(im.get(k), bool) and im[k] > 0
                   for k in ("width", "height")):
            problems.append(f"{name}: width and height must be positive whole numbers")
            im = {**im, "width": float("inf"), "height": float("inf")}  # its boxes are still checked for form
        if im.get("split") not in SPLITS:
            problems.append(f"{name}: split must be one of {SPLITS}")
        if not isinstance(im.get("id"), int):
            problems.append(f"{name}: image id must be a whole number")
            continue
        if im.get("id") in images:
            problems.append(f"{name}: image id {im.get('id')} used twice")
        images[im.get("id")] = im
    names = [str(im.get("file_name")) for im in images.values()]
    if len(set(names)) != len(names):
        problems.append("a file_name appears twice")
    for a in coco.get("annotations", []):
        im = images.get(a.get("image_id")) if isinstance(a.get("image_id"), int) else None
        where = f"annotation {a.get('id')}"
        if im is None:
            problems.append(f"{where}: unknown image_id {a.get('image_id')}")
            continue
        if not isinstance(a.get("category_id"), int) or a["category_id"] not in cats:
            problems.append(f"{where} ({im.get('file_name')}): unknown category_id {a.get('category_id')}")
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            problems.append(f"{where} ({im.get('file_name')}): bbox must be [x, y, w, h]")
            continue
        x, y, w, h = bbox
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > im["width"] + 0.5 or y + h > im["height"] + 0.5:
            problems.append(f"{where} ({im.get('file_name')}): box {bbox} not inside the {im['width']}x{im['height']} "
                            "photo")
    return problems


def photos_of_split(coco: dict, split: str) -> list[dict]:
    """The ``images`` entries of one split."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    return [im for im in coco["images"] if im["split"] == split]


def boxes_by_image(coco: dict) -> dict[int, list[dict]]:
    """``{image_id: [annotation, ...]}`` (every image present, possibly with an empty list)."""
    out: dict[int, list[dict]] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        out[a["image_id"]].append(a)
    return out


def write_yolo_split(coco: dict, images_dir: str | Path, out: str | Path, split: str = "train",
                     skip_crowd_photos: bool = True, class_of: dict[str, int] | None = None) -> dict:
    """A YOLO view of one split for ultralytics: ``out/images/*.jpg`` (links to the photos) + ``out/labels/*.txt``.

    Only the categories of ``class_of`` (category name -> class id) become label lines; by default the
    detector's classes (``croissant`` 0, ``cookie`` 1, ``cupcake`` 2), so a muffin is background to a 3-class
    detector, like every other look-alike. Photos with a crowd box are left out (a group box is neither one
    item nor background). Photos without a line get empty label files: they are the real negatives.

    Written again into the same ``out`` (e.g. after the box file changed), links and label files of photos no
    longer in the view are removed, so ultralytics does not train on stale labels; regular files there are kept.

    Returns:
        ``{"images", "boxes", "negatives", "skipped_crowd"}`` counts.
    """
    import os

    images_dir, out = Path(images_dir), Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    class_of = {n: i for i, n in enumerate(DETECTOR_CLASSES)} if class_of is None else class_of
    cat_name = {c["id"]: c["name"] for c in coco["categories"]}
    by_image = boxes_by_image(coco)
    counts = {"images": 0, "boxes": 0, "negatives": 0, "skipped_crowd": 0}
    written: set[str] = set()
    for im in photos_of_split(coco, split):
        anns = by_image[im["id"]]
        if skip_crowd_photos and any(a.get("iscrowd") for a in anns):
            counts["skipped_crowd"] += 1
            continue
        src = images_dir / im["file_name"]
        if not src.is_file():
            raise DatasetError("photo listed in the box file not found", src)
        lines = []
        for a in anns:
            name = cat_name[a["category_id"]]
            if name not in class_of:
                continue
            lines.append(yolo_box_line(class_of[name], a["bbox"], im["width"], im["height"]))
        link = out / "images" / im["file_name"]
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(src.resolve(), link)
        atomic_write_text(out / "labels" / (Path(im["file_name"]).stem + ".txt"), "\n".join(lines) + ("\n" if lines
                                                                                                        else ""))
        counts["images"] += 1
        counts["boxes"] += len(lines)
        counts["negatives"] += not lines
        written.add(im["file_name"])
    for link in (out / "images").iterdir():
        if link.is_symlink() and link.name not in written:
            link.unlink()
            (out / "labels" / (link.stem + ".txt")).unlink(missing_ok=True)
    return counts
