"""YOLO / YOLO-seg datasets (ultralytics layout, Roboflow "YOLOv8" exports): read, check, write.

Label lines are ``class cx cy w h`` (boxes) or ``class x1 y1 x2 y2 ...`` (one polygon),
normalised to [0, 1]. Labels live where ultralytics looks: the image path with the
last ``images`` folder replaced by ``labels`` and the suffix by ``.txt``.
"""

from __future__ import annotations

import math
import os
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
import yaml

from detseg.atomic import atomic_write_text, place_file
from detseg.data.dataset import Annotation, Dataset, ImageRecord, polygon_area, split_name
from detseg.data.polygons import mask_to_polygons, merge_polygons
from detseg.data.validate import got, read_text
from detseg.errors import DatasetError
from detseg.images import IMAGE_SUFFIXES, open_pil, shown_size

_TOL = 1e-6  # rounding slack on the [0, 1] range


def label_path_for(image: Path) -> Path:
    """ultralytics' rule: .../images/x.jpg -> .../labels/x.txt (last 'images' component)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _read_names(cfg: dict, src: Path) -> list[str]:
    names = cfg.get("names")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError("names keys must be class ids 0..N-1", src) from None
        if keys != list(range(len(keys))):
            raise DatasetError(f"names keys must be 0..{len(keys) - 1} without gaps, got {keys}", src)
        values = [(f"names.{k}", names[k] if k in names else names[str(k)]) for k in keys]
    elif isinstance(names, list) and names:
        values = [(f"names[{i}]", n) for i, n in enumerate(names)]
    else:
        raise DatasetError("names must be a non-empty list or a {id: name} mapping", src)
    for where, name in values:
        if isinstance(name, bool) or not isinstance(name, (str, int, float)) or not str(name).strip():
            raise DatasetError(f"{where}: expected a class name, {got(name)}", src)
    return [str(n) for _, n in values]


def _is_split_source(path: Path) -> bool:
    """A split's folder, or a ``.txt`` list of its image paths (ultralytics takes both)."""
    return path.is_dir() or (path.is_file() and path.suffix.lower() == ".txt")


def resolve_folder(root: Path, value: str) -> Path:
    """A data.yaml split folder under ``root`` (Roboflow's ``../valid/images`` beside the data.yaml too)."""
    d = (root / value).resolve()
    if not d.exists() and value.startswith("../"):
        d = (root / value[3:]).resolve()  # Roboflow: ../valid/images next to data.yaml
    return d


def dataset_root(cfg: dict, src: Path) -> Path:
    """The folder a data.yaml's split paths are relative to: one rule for check, convert, train and evaluate.

    The data.yaml's own folder when it holds the split folders (so a copied or moved dataset is
    read where it is now, whatever stale ``path:`` it carries); else ``path:`` (absolute, or
    relative to the data.yaml, then to the current folder, then to the data.yaml's parent, as
    ``data/food.yaml``'s ``datasets/food`` is); else the data.yaml's folder.
    """
    values = [v for k in ("train", "val", "test") for v in split_folders(cfg.get(k))]
    candidates = [src.parent]
    if cfg.get("path"):
        p = Path(str(cfg["path"]))
        candidates += [p] if p.is_absolute() else [src.parent / p, Path.cwd() / p, src.parent.parent / p]
    for root in candidates:
        if values and all(_is_split_source(resolve_folder(root, v)) for v in values):
            return root
    return src.parent


def split_folders(value) -> list[str]:
    """A split's folders: one path, or a list of them as ultralytics allows (empty for anything else)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    return []


def _split_dirs(cfg: dict, src: Path, root: Path) -> dict[str, list[Path]]:
    """Per split, its folders and ``.txt`` image lists (absolute), from the data.yaml's paths."""
    dirs = {}
    for key in ("train", "val", "test"):
        value = cfg.get(key)
        if not value:
            continue
        folders = split_folders(value)
        if not folders:
            raise DatasetError(f"{key} must be a folder path or a list of folder paths, got {value!r}", src)
        dirs[key] = []
        for folder in folders:
            d = resolve_folder(root, folder)
            if not _is_split_source(d):
                what = "is a file, not a folder or a .txt list of images" if d.exists() else "not found"
                raise DatasetError(f"{key} folder {folder!r} {what} (looked in {d})", src)
            if d in dirs[key]:
                raise DatasetError(f"{key} lists the folder {folder!r} twice", src)
            dirs[key].append(d)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = set(dirs.get(a, ())) & set(dirs.get(b, ()))
        if shared and dirs[a] != dirs[b]:  # a split that *is* another (val: images/train) is allowed
            raise DatasetError(f"{a} and {b} share the folder {sorted(shared)[0]} but not all their folders: "
                               "their images would be in both splits", src)
    return dirs


def _field_name(k: int, fields: int) -> str:
    """What field ``k`` of a label line of ``fields`` fields is: class id, x/y/width/height of a box, a polygon's
    point."""
    if k == 0:
        return "class id"
    if fields == 5:
        return ("x (box centre)", "y (box centre)", "width", "height")[k - 1]
    return f"{'xy'[(k - 1) % 2]} of point {(k + 1) // 2}"


def parse_label_file(path: Path, num_classes: int, width: int, height: int) -> list[Annotation]:
    """Parse and validate one label file (the YOLO label validator). Raises one DatasetError ``path:line: what``.

    A line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 ...`` (a polygon of 3+ points; then every line
    of the file is one); fields are finite numbers (``nan``, ``inf``, ``1e400`` refused, naming the field),
    the class an integer id of a data.yaml class, coordinates in [0, 1], a box's width and height not
    negative, a polygon's area not zero. A line repeated exactly is one instance, as ultralytics reads it.
    """
    rows = []
    if path.is_dir():
        raise DatasetError("a label file is a folder", path)
    text = read_text(path)
    for lineno, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields:
            continue
        values = []
        for k, field in enumerate(fields):
            try:
                value = float(field)
            except ValueError:
                raise DatasetError(f"malformed line: {_field_name(k, len(fields))} {field[:30]!r} is not a number",
                                   path, lineno) from None
            if not math.isfinite(value):
                raise DatasetError(f"{_field_name(k, len(fields))} is {field[:30]}: not a finite number", path, lineno)
            values.append(value)
        cls = values[0]
        if cls != int(cls):
            raise DatasetError(f"class id {fields[0]} is not an integer", path, lineno)
        if not 0 <= cls < num_classes:
            raise DatasetError(f"class id {int(cls)} out of range: data.yaml names {num_classes} classes "
                               f"(0..{num_classes - 1})", path, lineno)
        coords = np.array(values[1:], dtype=np.float64)
        if len(coords) < 2 or len(coords) % 2:
            raise DatasetError(f"malformed line: {len(coords)} coordinates, expected 4 (box) or an even "
                               f"number >= 6 (polygon)", path, lineno)
        if len(coords) == 4:
            for k in (3, 4):
                if values[k] < -_TOL:
                    raise DatasetError(f"{_field_name(k, 5)} is negative ({fields[k]})", path, lineno)
        for k, value in enumerate(values[1:], 1):
            if not -_TOL <= value <= 1 + _TOL:
                raise DatasetError(f"coordinates outside [0, 1]: {_field_name(k, len(fields))} is {fields[k]}; "
                                   "YOLO labels are normalised by image width/height", path, lineno)
        rows.append((lineno, int(cls), coords))
    has_polygons = any(len(c) >= 6 for _, _, c in rows)
    anns = []
    scale = np.array([width, height], np.float64)
    seen = set()
    for lineno, cls, coords in rows:
        key = (cls, tuple(coords.tolist()))
        if key in seen:  # ultralytics drops a repeated label line ("duplicate labels removed"): one instance
            continue
        seen.add(key)
        if len(coords) == 4 and not has_polygons:
            cx, cy, w, h = coords * np.array([width, height, width, height])
            anns.append(Annotation(cls, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)))
            continue
        if len(coords) < 6:
            raise DatasetError(f"polygon with {len(coords) // 2} point(s); a polygon needs at least 3 "
                               "(a 4-number box line is only valid in a file of boxes)", path, lineno)
        poly = (coords.reshape(-1, 2) * scale).astype(np.float32)
        x, y = poly[:, 0].astype(np.float64), poly[:, 1].astype(np.float64)
        if abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) < 1e-9:
            raise DatasetError("polygon of zero area", path, lineno)
        box = np.array([*poly.min(0), *poly.max(0)], np.float32)
        anns.append(Annotation(cls, box, polygons=[poly]))
    return anns


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with open_pil(path) as im:
            return shown_size(im)  # labels are normalised to the image as read, EXIF orientation applied
    except Exception as e:  # PIL raises many types for broken files
        raise DatasetError(f"unreadable image ({type(e).__name__}: {e})", path) from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a data.yaml never needs them, and nested aliases (a "billion laughs" file of a
    few hundred bytes) expand to gigabytes in memory."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"an alias (*{event.anchor}): dataset files may not "
                                              "use YAML aliases", event.start_mark)
        return super().compose_node(parent, index)


def read_data_yaml(src: Path) -> dict:
    """A data.yaml as a dict; one-line DatasetErrors for a missing, unreadable, non-UTF-8 or non-YAML file,
    or one that uses YAML aliases."""
    try:
        cfg = yaml.load(Path(src).read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506 (safe loader)
    except UnicodeDecodeError as e:
        raise DatasetError(f"not UTF-8 text (byte {e.start})", src) from None
    except OSError as e:
        raise DatasetError(f"unreadable ({e.strerror or e})", src) from None
    except yaml.YAMLError as e:
        raise DatasetError(f"not valid YAML ({' '.join(str(e).split())})", src) from None
    if not isinstance(cfg, dict):
        raise DatasetError("expected a mapping with keys names, train, val", src)
    return cfg


def validate_data_yaml(cfg, src: Path) -> list[str]:
    """Check a data.yaml's keys (the mapping :func:`read_data_yaml` returns); returns the class names.

    ``names``: a non-empty list or an ``{id: name}`` mapping of ids 0..N-1, each a name; ``nc`` (if given) their
    number; ``path`` (if given) a string; at least one of ``train``/``val``/``test``. The split paths
    themselves are checked as they are read (:func:`load_yolo`, :func:`read_image_list`).
    """
    if not isinstance(cfg, dict):
        raise DatasetError("expected a mapping with keys names, train, val", src)
    if "names" not in cfg:
        raise DatasetError("missing key(s) names (a YOLO data.yaml needs names and train/val/test folders)", src)
    if not any(cfg.get(k) for k in ("train", "val", "test")):
        raise DatasetError("missing key(s) train, val, test: name at least one split folder", src)
    names = _read_names(cfg, src)
    if "nc" in cfg and (isinstance(cfg["nc"], bool) or not isinstance(cfg["nc"], int) or cfg["nc"] != len(names)):
        raise DatasetError(f"nc is {cfg['nc']!r} but names lists {len(names)} classes", src)
    if cfg.get("path") is not None and not isinstance(cfg["path"], str):
        raise DatasetError(f"path: expected a folder path, {got(cfg['path'])}", src)
    return names


def _other_splits(data_yaml: Path, names: list[str], cfg: dict) -> dict:
    """The split keys of a ``data.yaml`` already in the output folder that this conversion does not write,
    where its classes are the same and the split's folder is there (converting one split of a dataset in
    place, e.g. ``annotations/val.json`` into its own folder, must not drop the others)."""
    try:
        old = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) if data_yaml.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(old, dict):
        return {}
    old_names = old.get("names")
    old_names = list(old_names.values()) if isinstance(old_names, dict) else old_names
    if old_names != list(names) or "path" in old:
        return {}
    return {k: old[k] for k in ("train", "val", "test") if k not in cfg and isinstance(old.get(k), str)
            and (data_yaml.parent / old[k]).is_dir()}


def _hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is hidden (``._a.jpg``, ``.ipynb_checkpoints/``),
    as ultralytics' globbing skips them."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_image_list(path: Path, root: Path) -> list[Path]:
    """The images a YOLO list file (``train: train.txt``) names, one a line, validated.

    ``./x.jpg`` is relative to the list's folder, as ultralytics reads it; so is any other relative path;
    an absolute path is taken as it is. Each must stay inside the dataset folder ``root`` (checked on the
    path as written: no ``..`` out of it, no absolute path elsewhere), be an image file that exists, and be
    listed once; the first that is not is one DatasetError ``list.txt:line: what``.
    """
    text = read_text(path)
    base = Path(os.path.abspath(root))
    images, seen = [], {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        entry = raw.strip()
        if not entry:
            continue
        image = Path(os.path.normpath(os.path.join(os.path.abspath(path.parent), entry)))  # absolute entries stay
        if not image.is_relative_to(base):
            raise DatasetError(f"image path {entry[:80]!r} leaves the dataset folder {root}", path, lineno)
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(f"{entry[:80]!r} is not an image file name (expected one of "
                               f"{', '.join(IMAGE_SUFFIXES)})", path, lineno)
        if not image.is_file():
            raise DatasetError(f"image {entry[:80]!r} not found (looked for {image})", path, lineno)
        if image in seen:
            raise DatasetError(f"image {entry[:80]!r} listed twice (also line {seen[image]})", path, lineno)
        seen[image] = lineno
        images.append(image)
    return images


def load_yolo(data_yaml: Path) -> Dataset:
    """Load and validate a YOLO(-seg) dataset. See :func:`data.dataset.load_dataset`."""
    src = Path(data_yaml)
    cfg = read_data_yaml(src)
    names = validate_data_yaml(cfg, src)
    root = dataset_root(cfg, src)
    splits = {}
    for key, img_dirs in _split_dirs(cfg, src, root).items():
        images: list[Path] = []
        stems: dict[Path, Path] = {}
        for img_dir in img_dirs:  # a list of folders (or image lists): their images one after the other
            if img_dir.is_file():
                folder_images = read_image_list(img_dir, root)
            else:
                folder_images = sorted(p for p in img_dir.rglob("*")
                                       if p.suffix.lower() in IMAGE_SUFFIXES and not _hidden(p, img_dir))
            for img in folder_images:
                lbl = label_path_for(img)
                if lbl in stems:
                    raise DatasetError(f"duplicate file name: {stems[lbl].name} and {img.name} share the label "
                                       f"{lbl.name}", img)
                stems[lbl] = img
            label_dir = label_path_for(img_dir / "x.jpg").parent
            if img_dir.is_dir() and label_dir.is_dir():  # a list may name some of a folder's images
                for lbl in sorted(label_dir.rglob("*.txt")):
                    if lbl in stems or _hidden(lbl, label_dir) or lbl == label_dir / "classes.txt":
                        continue  # macOS ._ files, .ipynb_checkpoints, LabelImg's class list: not labels
                    others = sorted(p.name for p in (img_dir / lbl.relative_to(label_dir)).parent.glob(
                        glob_escape(lbl.stem) + ".*") if p.suffix.lower() not in IMAGE_SUFFIXES)
                    why = (f"its image {others[0]} is not a format detseg reads ({', '.join(IMAGE_SUFFIXES)})"
                           if others else "no image of that name in " + str(img_dir))
                    raise DatasetError("label without image: " + why, lbl)
            images += folder_images
        records = []
        for i, img in enumerate(images, 1):
            w, h = _image_size(img)
            lbl = label_path_for(img)
            anns = parse_label_file(lbl, len(names), w, h) if lbl.exists() else []
            records.append(ImageRecord(img, w, h, anns, image_id=i))
        splits[split_name(key)] = records
    return Dataset(names=names, splits=splits, source=src, format="yolo")


def yolo_box_line(class_id: int, xywh, width: float, height: float) -> str:
    """One YOLO detection label line ``class cx cy w h`` (normalised) from a COCO pixel box ``[x, y, w, h]``."""
    x, y, w, h = (float(v) for v in xywh)
    return f"{int(class_id)} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"


def yolo_line(class_id: int, polygon: np.ndarray, width: int, height: int) -> str:
    """One YOLO-seg label line from a pixel polygon (K, 2)."""
    norm = np.clip(np.asarray(polygon, np.float64) / np.array([width, height]), 0, 1).ravel()
    return f"{int(class_id)} " + ("%.6f " * len(norm) % tuple(norm.tolist()))[:-1]  # one C-level format call


def save_yolo(ds: Dataset, out: Path) -> Path:
    """Write ``ds`` as a YOLO-seg dataset (boxes only where an instance has no mask). Crowd regions
    (COCO ``iscrowd``) are left out, as ultralytics' ``convert_coco`` leaves them out.

    Raises:
        DatasetError: two images of a split share a file name (see :meth:`Dataset.check_unique_file_names`),
            or a stem (``x.jpg``, ``x.png``: both would be labelled by ``labels/<split>/x.txt``).
    """
    ds.check_unique_file_names()
    for split, records in ds.splits.items():
        stems: dict[str, Path] = {}
        for r in records:
            if r.path.stem in stems:
                raise DatasetError(f"{split} has two images with the stem {r.path.stem!r} ({stems[r.path.stem].name} "
                                   f"and {r.path.name}); YOLO names label files by stem, so one label file would "
                                   "replace the other: rename one first", ds.source)
            stems[r.path.stem] = r.path
            if ds.format == "yolo":  # its sizes were read from these very files by load_yolo
                continue
            size = _image_size(r.path)  # labels are normalised by the size ultralytics will read (EXIF applied)
            if size != (r.width, r.height):  # checked before anything is written
                raise DatasetError(f"the dataset says {r.width}x{r.height} but the image reads as {size[0]}x{size[1]} "
                                   "(EXIF orientation, or a resized file?): its YOLO labels would be normalised by "
                                   "the wrong size; fix its width/height first", r.path)
    for split, records in ds.splits.items():
        # one form per split: ultralytics refuses a segment dataset where some files hold boxes and others polygons
        # (and a detect run drops every polygon), so a box in a split with outlines is written as its four corners
        outlines = any(a.has_mask for r in records for a in r.annotations if not a.iscrowd)
        for r in records:
            place_file(r.path, out / "images" / split / r.path.name)
            lines = []
            for a in (a for a in r.annotations if not a.iscrowd):
                x0, y0, x1, y1 = (float(v) for v in a.xyxy)
                if a.rle is not None:
                    poly = merge_polygons(mask_to_polygons(a.mask(r.height, r.width)))
                elif a.polygons:
                    poly = merge_polygons(a.polygons)
                elif not outlines:
                    lines.append(f"{a.class_id} {(x0 + x1) / 2 / r.width:.6f} {(y0 + y1) / 2 / r.height:.6f} "
                                 f"{(x1 - x0) / r.width:.6f} {(y1 - y0) / r.height:.6f}")
                    continue
                else:  # a box in a split with outlines: its four corners
                    poly = None
                if poly is None or len(poly) < 3 or polygon_area(poly) <= 0:  # or a 1-px-wide mask: no outline
                    poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
                    if polygon_area(poly) <= 0:  # a box of no area is no instance (detseg's own check refuses it)
                        continue
                lines.append(yolo_line(a.class_id, poly, r.width, r.height))
            text = "\n".join(lines) + ("\n" if lines else "")
            atomic_write_text(out / "labels" / split / (r.path.stem + ".txt"), text)
    # no `path:`: split folders resolve beside the data.yaml, so the folder can be moved
    cfg = {**{s: f"images/{s}" for s in ds.splits}, "names": dict(enumerate(ds.names))}
    cfg = {**_other_splits(out / "data.yaml", ds.names, cfg), **cfg}
    if "val" not in cfg and "train" in cfg:
        cfg["val"] = cfg["train"]  # ultralytics insists on a val split
    if "train" not in cfg and ds.splits:  # and on a train split: a val- or test-only dataset trains on what it has
        cfg = {"train": f"images/{next(iter(ds.splits))}", **cfg}
    return atomic_write_text(out / "data.yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
