"""COCO instance datasets (one JSON per split + an image folder): read, check, write.

Class ids are the positions of the categories sorted by COCO id, so a COCO file with
ids 1..3 and a YOLO file with ids 0..2 of the same names describe the same classes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from detseg.atomic import atomic_write_json, place_file
from detseg.data.dataset import Annotation, Dataset, ImageRecord, split_name
from detseg.errors import DatasetError


def _polygons_from_segmentation(seg, where: str, path: Path) -> list[np.ndarray]:
    if any(not isinstance(p, list) for p in seg):
        raise DatasetError(f"{where}: segmentation must be a list of polygons [[x1, y1, x2, y2, ...], ...], "
                           f"got a list of {type(next(p for p in seg if not isinstance(p, list))).__name__}", path)
    polys = []
    for p in seg:
        if len(p) < 6 or len(p) % 2:
            raise DatasetError(f"{where}: polygon with {len(p) // 2} point(s); a polygon needs at least 3", path)
        try:
            poly = np.asarray(p, np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: polygon coordinates must be numbers, got {p[:4]!r}...", path) from None
        if not np.isfinite(poly).all():
            raise DatasetError(f"{where}: polygon with a NaN or infinite coordinate", path)
        x, y = poly[:, 0], poly[:, 1]
        if abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) == 0:
            raise DatasetError(f"{where}: polygon of zero area", path)
        polys.append(poly.astype(np.float32))
    return polys


def _check_rle(seg: dict, rec: ImageRecord, where: str, path: Path) -> dict:
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise DatasetError(f"{where}: RLE needs size [height, width], got {size!r}", path)
    if list(size) != [rec.height, rec.width]:
        raise DatasetError(f"{where}: RLE size {size} differs from its image's {[rec.height, rec.width]}", path)
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != size[0] * size[1]:
            raise DatasetError(f"{where}: RLE counts must be non-negative integers summing to height x width", path)
        return seg
    if isinstance(counts, str):
        try:
            area = mask_utils.area({"size": size, "counts": counts.encode()})
        except Exception as e:  # pycocotools raises plain Exceptions on bad strings
            raise DatasetError(f"{where}: RLE counts string does not decode ({e})", path) from None
        if area > size[0] * size[1]:
            raise DatasetError(f"{where}: RLE counts string does not decode to this size", path)
        return seg
    raise DatasetError(f"{where}: RLE counts must be a list of integers or a compressed string", path)



def _inside(images: Path, file_name: str, image_id, json_path) -> Path:
    """``images / file_name``, refusing a name that leaves the image folder (``../x.jpg``, ``/etc/x.jpg``).

    The check is on the path as written (symlinked images inside the folder stay fine)."""
    path = images / file_name
    if Path(file_name).is_absolute() or not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(images)):
        raise DatasetError(f"image {image_id}: file_name {file_name!r} leaves the image folder {images}", json_path)
    return path

def load_coco(json_path: Path, images: str | Path | None = None, split: str | None = None) -> Dataset:
    """Load and validate one COCO JSON; images are looked up in ``images`` (default: beside the JSON,
    or ``../images/{split}`` for detseg's own layout)."""
    json_path = Path(json_path)
    try:
        coco = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"not valid JSON ({e})", json_path) from None
    missing = [k for k in ("images", "annotations", "categories") if k not in coco]
    if missing:
        raise DatasetError(f"missing key(s) {', '.join(missing)} (COCO needs images, annotations, categories)",
                           json_path)
    stem = json_path.name.replace("_annotations.coco.json", json_path.parent.name).removesuffix(".json")
    split = split or split_name(stem)
    if split not in ("train", "val", "test"):  # e.g. CVAT's instances_default.json: one split, for training
        split = "train"
    if images is None:  # detseg layout, then an images/ folder beside the JSON, then the JSON's own folder
        candidates = [json_path.parent / "images", json_path.parent]
        if json_path.parent.name == "annotations":
            candidates.insert(0, json_path.parent.parent / "images" / split)
        images = next(c for c in candidates if c.is_dir())
    images = Path(images)

    cats = sorted(coco["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    names = [str(c["name"]) for c in cats]
    records: dict[int, ImageRecord] = {}
    seen_names: dict[str, int] = {}
    if len(cat_index) != len(cats):
        raise DatasetError("duplicate category ids", json_path)
    for im in coco["images"]:
        try:
            image_id, file_name, w, h = im["id"], im["file_name"], int(im["width"]), int(im["height"])
        except KeyError as e:
            raise DatasetError(f"image entry {im.get('id', '?')} lacks {e}", json_path) from None
        except (TypeError, ValueError):
            raise DatasetError(f"image {im.get('id')}: width and height must be integers", json_path) from None
        if w <= 0 or h <= 0:  # labels are normalised by the size: one of 0 makes every label invalid
            raise DatasetError(f"image {image_id} ({file_name!r}): width and height must be positive, got "
                               f"{w}x{h}", json_path)
        if not isinstance(file_name, str) or not file_name.strip():
            raise DatasetError(f"image {image_id}: file_name must be a non-empty string, got {file_name!r}", json_path)
        if image_id in records:
            raise DatasetError(f"duplicate image id {image_id}", json_path)
        if file_name in seen_names:
            raise DatasetError(f"duplicate file name {file_name!r} (image ids {seen_names[file_name]} and {image_id})",
                               json_path)
        seen_names[file_name] = image_id
        path = _inside(images, file_name, image_id, json_path)
        if not path.is_file():
            raise DatasetError(f"image {file_name!r} (id {image_id}) not found in {images}", json_path)
        records[image_id] = ImageRecord(path.resolve(), w, h, [], image_id=image_id)
    for ann in coco["annotations"]:
        where = f"annotation {ann.get('id', '?')}"
        rec = records.get(ann.get("image_id"))
        if rec is None:
            raise DatasetError(f"{where}: image_id {ann.get('image_id')} is not in images", json_path)
        if ann.get("category_id") not in cat_index:
            raise DatasetError(f"{where}: category_id {ann.get('category_id')} is not in categories", json_path)
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise DatasetError(f"{where}: bbox must be four numbers [x, y, w, h], got {bbox!r}", json_path)
        x, y, bw, bh = (float(v) for v in bbox)
        if not np.isfinite([x, y, bw, bh]).all() or bw < 0 or bh < 0:
            raise DatasetError(f"{where}: bbox {bbox} has a negative or non-finite size", json_path)
        a = Annotation(cat_index[ann["category_id"]], np.array([x, y, x + bw, y + bh], np.float32))
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            a.polygons = _polygons_from_segmentation(seg, where, json_path)
        elif isinstance(seg, dict):
            a.rle = _check_rle(seg, rec, where, json_path)
        elif seg not in (None, []):
            raise DatasetError(f"{where}: segmentation must be polygons or an RLE dict, got {type(seg).__name__}",
                               json_path)
        rec.annotations.append(a)
    return Dataset(names=names, splits={split: list(records.values())}, source=json_path, format="coco")


def load_coco_folder(folder: Path) -> Dataset:
    """detseg layout (annotations/{split}.json + images/{split}/) or a Roboflow COCO export
    ({split}/_annotations.coco.json)."""
    files = sorted(folder.glob("annotations/*.json")) or sorted(folder.glob("*/_annotations.coco.json"))
    merged = None
    for f in files:
        ds = load_coco(f)
        if merged is None:
            merged = ds
            merged.source = folder
        elif ds.names != merged.names:
            raise DatasetError(f"categories differ from those of the first split ({merged.names[:5]}...)", f)
        else:
            merged.splits.update(ds.splits)
    return merged


def coco_dict(ds: Dataset, split: str, file_names: list[str] | None = None) -> dict:
    """The COCO JSON of one split (polygons in pixels, exact RLE kept as RLE)."""
    images, anns = [], []
    for idx, r in enumerate(ds.splits[split], 1):
        image_id = r.image_id if r.image_id is not None else idx
        images.append({"id": image_id, "file_name": file_names[idx - 1] if file_names else r.path.name,
                       "width": r.width, "height": r.height})
        for a in r.annotations:
            x0, y0, x1, y1 = (float(v) for v in a.xyxy)
            entry = {"id": len(anns) + 1, "image_id": image_id, "category_id": a.class_id + 1,
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0}
            if a.rle is not None:
                entry["segmentation"] = a.rle
                entry["area"] = float(a.mask(r.height, r.width).sum())
            elif a.polygons:
                flat = [[round(float(v), 2) for v in p.ravel()] for p in a.polygons]
                entry["segmentation"] = flat
                rles = mask_utils.frPyObjects(flat, r.height, r.width)
                entry["area"] = float(mask_utils.area(mask_utils.merge(rles)))
            else:
                entry["segmentation"] = []
                entry["area"] = (x1 - x0) * (y1 - y0)
            anns.append(entry)
    cats = [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(ds.names)]
    return {"images": images, "annotations": anns, "categories": cats}


def save_coco(ds: Dataset, out: Path) -> Path:
    """Write annotations/{split}.json and images/{split}/ for every split. Returns ``out``.

    Raises:
        DatasetError: two images of a split share a file name (see :meth:`Dataset.check_unique_file_names`).
    """
    ds.check_unique_file_names()
    for split, records in ds.splits.items():
        for r in records:
            place_file(r.path, out / "images" / split / r.path.name)
        atomic_write_json(out / "annotations" / f"{split}.json", coco_dict(ds, split))
    return out
