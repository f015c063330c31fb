"""COCO instance datasets (one JSON per split + an image folder): read, check, write.

Class ids are the positions of the categories sorted by COCO id, so a COCO file with
ids 1..3 and a YOLO file with ids 0..2 of the same names describe the same classes. What detseg
writes in COCO of a COCO source (a conversion, ``evaluate``'s predictions) keeps the source's
category ids (``Dataset.category_ids``); of a YOLO source, ids are 1, 2, 3, ...
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from detseg.atomic import atomic_write_json, place_file
from detseg.data.dataset import Annotation, Dataset, ImageRecord, split_name
from detseg.data.validate import (
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    at,
    fail,
    got,
    key,
    leaves,
    read_json,
    type_name,
)
from detseg.errors import DatasetError


def _polygons_from_segmentation(seg, where: str, path: Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """``seg``'s polygons (pixels); ``size`` (height, width): refuse points far outside the image."""
    if any(not isinstance(p, list) for p in seg):
        raise DatasetError(f"{where}: segmentation must be a list of polygons [[x1, y1, x2, y2, ...], ...], "
                           f"got a list of {type_name(next(p for p in seg if not isinstance(p, list)))}", path)
    polys = []
    for k, p in enumerate(seg):
        if len(p) < 6 or len(p) % 2:
            raise DatasetError(f"{where}[{k}]: polygon with {len(p) // 2} point(s); a polygon needs at least 3", path)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p):
            raise DatasetError(f"{where}[{k}]: polygon coordinates must be numbers, got {p[:4]!r}...", path)
        poly = np.asarray(p, np.float64).reshape(-1, 2)
        if not np.isfinite(poly).all():
            raise DatasetError(f"{where}[{k}]: polygon with a NaN or infinite coordinate", path)
        if size is not None:
            _check_extent(poly, size, f"{where}[{k}]", path)
        x, y = poly[:, 0], poly[:, 1]
        if abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) == 0:
            raise DatasetError(f"{where}[{k}]: polygon of zero area", path)
        polys.append(poly.astype(np.float32))
    return polys


def _check_extent(points: np.ndarray, size: tuple[int, int], where: str, path: Path) -> None:
    """Refuse points more than one image width or height outside their image: absurd for a label, and
    pycocotools would rasterise such a polygon point by point (a coordinate of 1e9 takes gigabytes)."""
    h, w = size
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if (pts[:, 0] < -w).any() or (pts[:, 0] > 2 * w).any() or (pts[:, 1] < -h).any() or (pts[:, 1] > 2 * h).any():
        raise DatasetError(f"{where}: coordinates lie more than an image width or height outside the "
                           f"{w}x{h} image (x {pts[:, 0].min():g}..{pts[:, 0].max():g}, "
                           f"y {pts[:, 1].min():g}..{pts[:, 1].max():g})", path)


def rle_string_counts(text: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or None when it is not one.

    pycocotools itself checks only the foreground area of a string; a string whose runs overrun the image makes
    its decoder raise, and one whose runs fall short leaves part of the mask uninitialised. Reading the runs here
    lets a checker demand what the list form demands: non-negative runs summing to height x width.
    """
    runs: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                return None  # the last run is cut off
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                return None  # not a character of the encoding
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def _check_rle(seg: dict, height: int, width: int, where: str, path: Path) -> dict:
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in size)):
        raise DatasetError(f"{where}: RLE needs size [height, width], got {size!r}", path)
    if list(size) != [height, width]:
        raise DatasetError(f"{where}: RLE size {size} differs from its image's {[height, width]}", path)
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != size[0] * size[1]:
            raise DatasetError(f"{where}: RLE counts must be non-negative integers summing to height x width", path)
        return seg
    if isinstance(counts, str):
        runs = rle_string_counts(counts)
        if runs is None or any(v < 0 for v in runs) or sum(runs) != size[0] * size[1]:
            raise DatasetError(f"{where}: RLE counts string does not decode to runs summing to height x width "
                               f"({size[0]}x{size[1]})", path)
        return seg
    raise DatasetError(f"{where}: RLE counts must be a list of integers or a compressed string", path)


def _check_bbox(bbox, where: str, path: Path, size: tuple[int, int]) -> list[float]:
    """``[x, y, w, h]``: four finite numbers, width and height >= 0, within an image size of the image."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                               for v in bbox):
        shown = repr(bbox) if len(repr(bbox)) <= 60 else repr(bbox)[:57] + "..."
        raise DatasetError(f"{where}: expected four numbers [x, y, w, h], got {shown}", path)
    x, y, bw, bh = (as_number(v, path, at(where, k), minimum=0 if k >= 2 else None, name=name)
                    for k, (v, name) in enumerate(zip(bbox, ("x", "y", "width", "height"))))
    _check_extent(np.array([[x, y], [x + bw, y + bh]]), size, where, path)
    return [x, y, bw, bh]


def validate_categories(categories: list, path) -> list[dict]:
    """A COCO ``categories`` list, checked: a list of dicts, each with an integer ``id`` (each once) and a string
    ``name``.

    Returns the entries with ``id`` and ``name`` normalised (other keys kept); the first problem is one
    ``DatasetError`` ``file: categories[2].id: what``.
    """
    out, category_at = [], {}
    for i, c in enumerate(as_list(categories, path, "categories")):
        where = at("categories", i)
        as_dict(c, path, where)
        cid = as_int(key(c, "id", path, where), path, at(where, "id"))
        name = as_str(key(c, "name", path, where), path, at(where, "name"))
        if cid in category_at:
            fail(path, at(where, "id"), f"duplicate category id {cid} (also categories[{category_at[cid]}])")
        category_at[cid] = i
        out.append({**c, "id": cid, "name": name})
    return out


def validate_coco(coco, path: Path, *, unique_file_names: bool = True, evaluation: bool = False) -> dict:
    """Check a COCO instances file's content (:func:`load_coco` and ``evaluate-video`` read one).

    The first problem is one DatasetError ``file: where: what`` (``annotations[12].image_id: expected an
    integer, got list``). Checked: the top level is an object whose ``images``, ``annotations`` and
    ``categories`` are lists of objects; ids are unique integers; ``file_name`` a non-empty string; width
    and height positive integers; a category's ``name`` a string; every annotation names an image and a
    category that exist; ``bbox`` is four finite numbers with non-negative width and height; a segmentation
    is polygons (3+ points of finite numbers, non-zero area) or an RLE of its image's size; no box or
    polygon point lies more than an image width or height outside its image.

    Args:
        unique_file_names: refuse two images of one ``file_name`` (a video's frames share one).
        evaluation: also require what pycocotools' evaluation reads: an annotation's ``id`` and ``area``,
            and ``iscrowd`` 0 or 1 (0 when absent).

    Returns:
        The file's dict with its images, annotations and categories copied, every id and size an ``int``
        and every bbox four floats.
    """
    as_dict(coco, path, "", 'a COCO object {"images": [...], "annotations": [...], "categories": [...]}')
    missing = [k for k in ("images", "annotations", "categories") if k not in coco]
    if missing:
        fail(path, "", f"missing key(s) {', '.join(missing)} (COCO needs images, annotations, categories)")
    for k in ("images", "annotations"):  # categories: validate_categories
        as_list(coco[k], path, k)
    categories = validate_categories(coco["categories"], path)
    category_at = {c["id"]: i for i, c in enumerate(categories)}
    images, image_at, name_at = [], {}, {}
    for i, im in enumerate(coco["images"]):
        where = at("images", i)
        as_dict(im, path, where)
        iid = as_int(key(im, "id", path, where), path, at(where, "id"))
        file_name = as_str(key(im, "file_name", path, where), path, at(where, "file_name"))
        w = as_int(key(im, "width", path, where), path, at(where, "width"))
        h = as_int(key(im, "height", path, where), path, at(where, "height"))
        if w <= 0 or h <= 0:  # labels are normalised by the size: one of 0 makes every label invalid
            fail(path, where, f"width and height must be positive, got {w}x{h} (file_name {file_name!r})")
        if iid in image_at:
            fail(path, at(where, "id"), f"duplicate image id {iid} (also images[{image_at[iid]}])")
        if unique_file_names and file_name in name_at:
            j = name_at[file_name]
            fail(path, at(where, "file_name"), f"duplicate file name {file_name!r} (image ids {images[j]['id']} and "
                                               f"{iid})")
        image_at[iid], name_at[file_name] = i, i
        images.append({**im, "id": iid, "file_name": file_name, "width": w, "height": h})
    annotations, annotation_at = [], {}
    for i, ann in enumerate(coco["annotations"]):
        where = at("annotations", i)
        as_dict(ann, path, where)
        entry = dict(ann)
        if "id" in ann or evaluation:
            aid = entry["id"] = as_int(key(ann, "id", path, where), path, at(where, "id"))
            if aid in annotation_at:
                fail(path, at(where, "id"), f"duplicate annotation id {aid} (also annotations[{annotation_at[aid]}])")
            annotation_at[aid] = i
        iid = entry["image_id"] = as_int(key(ann, "image_id", path, where), path, at(where, "image_id"))
        if iid not in image_at:
            fail(path, at(where, "image_id"), f"image_id {iid} is not in images")
        cid = entry["category_id"] = as_int(key(ann, "category_id", path, where), path, at(where, "category_id"))
        if cid not in category_at:
            fail(path, at(where, "category_id"), f"category_id {cid} is not in categories")
        image = images[image_at[iid]]
        size = (image["height"], image["width"])
        entry["bbox"] = _check_bbox(key(ann, "bbox", path, where), at(where, "bbox"), path, size)
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            _polygons_from_segmentation(seg, at(where, "segmentation"), path, size)
        elif isinstance(seg, dict):
            _check_rle(seg, *size, at(where, "segmentation"), path)
        elif seg is not None and seg != []:
            fail(path, at(where, "segmentation"), f"expected polygons or an RLE object, {got(seg)}")
        if evaluation:
            entry["area"] = as_number(key(ann, "area", path, where), path, at(where, "area"), minimum=0, name="area")
            crowd = ann.get("iscrowd", 0)  # absent: not a crowd
            if crowd not in (0, 1) or isinstance(crowd, bool):
                fail(path, at(where, "iscrowd"), f"expected 0 or 1, {got(crowd)}")
            entry["iscrowd"] = int(crowd)
        annotations.append(entry)
    return {**coco, "images": images, "annotations": annotations, "categories": categories}


def validate_coco_results(results, path: Path, images: list[dict]) -> list[dict]:
    """Check COCO results (a ``predictions.json``) against the ground truth's (validated) ``images``.

    The first problem is one DatasetError ``file: where: what``. Each result is an object with an integer
    ``image_id`` of an image in ``images``, an integer ``category_id``, a finite ``score``, a ``bbox`` as
    in :func:`validate_coco` and, optionally, a ``segmentation`` (an RLE of its image's size, or polygons).
    Returns the results with every id an ``int``.
    """
    as_list(results, path, "", 'a list of COCO results [{"image_id", "category_id", "score", "bbox", ...}, ...]')
    sizes = {im["id"]: (im["height"], im["width"]) for im in images}
    checked = []
    for i, r in enumerate(results):
        where = at("", i)
        as_dict(r, path, where)
        entry = dict(r)
        iid = entry["image_id"] = as_int(key(r, "image_id", path, where), path, at(where, "image_id"))
        if iid not in sizes:
            fail(path, at(where, "image_id"), f"image_id {iid} is not in the ground truth's images")
        entry["category_id"] = as_int(key(r, "category_id", path, where), path, at(where, "category_id"))
        entry["score"] = as_number(key(r, "score", path, where), path, at(where, "score"), name="score")
        entry["bbox"] = _check_bbox(key(r, "bbox", path, where), at(where, "bbox"), path, sizes[iid])
        seg = r.get("segmentation")
        if isinstance(seg, dict):
            _check_rle(seg, *sizes[iid], at(where, "segmentation"), path)
        elif isinstance(seg, list) and seg:
            _polygons_from_segmentation(seg, at(where, "segmentation"), path, sizes[iid])
        elif "segmentation" in r:
            fail(path, at(where, "segmentation"), f"expected an RLE object or polygons, {got(seg)}")
        checked.append(entry)
    return checked


def _inside(images: Path, file_name: str, where: str, json_path) -> Path:
    """``images / file_name``, refusing a name that leaves the image folder (``../x.jpg``, ``/etc/x.jpg``).

    The check is on the path as written (symlinked images inside the folder stay fine)."""
    if leaves(images, file_name):
        raise DatasetError(f"{where}: file_name {file_name!r} leaves the image folder {images}", json_path)
    return images / file_name


def load_coco(json_path: Path, images: str | Path | None = None, split: str | None = None) -> Dataset:
    """Load and validate one COCO JSON (:func:`validate_coco`); images are looked up in ``images``
    (default: beside the JSON, or ``../images/{split}`` for detseg's own layout)."""
    json_path = Path(json_path)
    coco = validate_coco(read_json(json_path), json_path)
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

    cats = _without_umbrella(sorted(coco["categories"], key=lambda c: c["id"]), coco["annotations"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    names = [c["name"] for c in cats]
    records: dict[int, ImageRecord] = {}
    for i, im in enumerate(coco["images"]):
        image_id, file_name = im["id"], im["file_name"]
        path = _inside(images, file_name, f"images[{i}].file_name", json_path)
        if not path.is_file():
            raise DatasetError(f"images[{i}].file_name: image {file_name!r} (id {image_id}) not found in {images}",
                               json_path)
        # absolute, links not followed: a linked image (git-annex, DVC) keeps its own name, not its store key's
        records[image_id] = ImageRecord(Path(os.path.abspath(path)), im["width"], im["height"], [],
                                        image_id=image_id)
    for ann in coco["annotations"]:  # every value checked by validate_coco
        x, y, bw, bh = ann["bbox"]
        a = Annotation(cat_index[ann["category_id"]], np.array([x, y, x + bw, y + bh], np.float32),
                       iscrowd=bool(ann.get("iscrowd", 0)))
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            a.polygons = [np.asarray(p, np.float32).reshape(-1, 2) for p in seg]
        elif isinstance(seg, dict):
            a.rle = seg
        records[ann["image_id"]].annotations.append(a)
    return Dataset(names=names, splits={split: list(records.values())}, source=json_path, format="coco",
                   category_ids=[c["id"] for c in cats])


def _without_umbrella(cats: list[dict], annotations: list[dict]) -> list[dict]:
    """The categories without a Roboflow-style umbrella entry: one no annotation uses whose name is the
    ``supercategory`` of every other (``{"id": 0, "name": "foods", "supercategory": "none"}`` before ``croissant``,
    ``cookie``, ... of supercategory ``foods``). Kept, it became class 0 and moved every real class up by one against
    Roboflow's own YOLO export of the same project."""
    used = {a.get("category_id") for a in annotations}
    for c in cats:
        others = [o for o in cats if o is not c]
        if (others and c["id"] not in used and c.get("name") and c.get("supercategory") in (None, "", "none")
                and all(o.get("supercategory") == c["name"] for o in others)):
            return others
    return cats


def load_coco_folder(folder: Path) -> Dataset:
    """detseg layout (annotations/{split}.json + images/{split}/) or a Roboflow COCO export
    ({split}/_annotations.coco.json)."""
    files = sorted(folder.glob("annotations/*.json")) or sorted(folder.glob("*/_annotations.coco.json"))
    merged, loaded_from = None, {}
    for f in files:
        ds = load_coco(f)
        for split in ds.splits:  # train.json and train_extra.json (any other stem) would both be "train"
            if split in loaded_from:
                raise DatasetError(f"split {split!r} comes from two files: {loaded_from[split].name} and {f.name} "
                                   "(a JSON named other than train/val/valid/test is read as train): merge them or "
                                   "load one JSON at a time", folder)
            loaded_from[split] = f
        if merged is None:
            merged = ds
            merged.source = folder
        elif ds.names != merged.names:
            raise DatasetError(f"categories differ from those of the first split ({merged.names[:5]}...)", f)
        elif ds.category_ids != merged.category_ids:
            raise DatasetError(f"category ids differ from those of the first split ({merged.category_ids[:5]}...)",
                               f)
        else:
            merged.splits.update(ds.splits)
    return merged


def coco_dict(ds: Dataset, split: str, file_names: list[str] | None = None) -> dict:
    """The COCO JSON of one split (polygons in pixels, exact RLE kept as RLE; a COCO source's category ids)."""
    category_ids = ds.coco_category_ids()
    images, anns = [], []
    for idx, r in enumerate(ds.splits[split], 1):
        image_id = r.image_id if r.image_id is not None else idx
        images.append({"id": image_id, "file_name": file_names[idx - 1] if file_names else r.path.name,
                       "width": r.width, "height": r.height})
        for a in r.annotations:
            x0, y0, x1, y1 = (float(v) for v in a.xyxy)
            entry = {"id": len(anns) + 1, "image_id": image_id, "category_id": category_ids[a.class_id],
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": int(a.iscrowd)}
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
    cats = [{"id": i, "name": n, "supercategory": "none"} for i, n in zip(category_ids, ds.names)]
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
