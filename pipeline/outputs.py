"""What ``detseg predict`` writes, every file atomically.

Layout of ``--out``::

    annotated/<name>.jpg      masks, boxes and "class score" labels drawn (images)
    annotated.mp4             the same for a video (same size and fps)
    labels/<name>.txt         YOLO-seg lines (class x1 y1 x2 y2 ... normalised)
    masks/<name>.png          optional: uint16 instance ids (0 = background, k = k-th detection)
    parts/<name>.json         per-input results; their presence marks an input done (--resume)
    predictions.json          COCO results (RLE masks), for pycocotools ``loadRes``
    images.json               COCO images + categories matching predictions.json's ids
    summary.json              inputs, failures, instances per class, seconds per stage
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from detseg.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from detseg.data.polygons import instance_polygons, merge_polygons
from detseg.data.validate import as_dict, as_int, as_list, as_str, at, fail, key, read_json
from detseg.data.yolo_format import yolo_line
from detseg.errors import DatasetError, InputError
from detseg.keys import CLASS_NAME
from detseg.pipeline.evaluation.metrics import result_entry
from detseg.pipeline.sources import relative_in

# Distinct colours (Sasha Trubetskoy's list), one per class id, told apart on food photos
PALETTE = sv.ColorPalette.from_hex(["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
                                    "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#000075"])


class Annotator:
    """Masks, mask outlines, boxes and "class score" labels (supervision's annotators), one
    colour per class, and a legend of the classes in the image. Outlines keep masks visible
    on food of a colour close to the mask's.

    With ``by_track=True`` (tracked videos) colours follow ``tracker_id``, labels read
    ``#id class score`` and each track's box centre leaves a short trace (supervision's
    ``TraceAnnotator``: call it on the frames in order); the legend is left out.
    """

    def __init__(self, class_names: dict[int, str] | None = None, palette: sv.ColorPalette = PALETTE,
                 by_track: bool = False, trace_length: int = 24):
        self.class_names = dict(class_names or {})
        self.palette = palette
        self.by_track = by_track
        self.trace_length = trace_length
        self._cache = {}

    def _annotators(self, w: int, h: int):
        if (h, w) not in self._cache:
            thickness = sv.calculate_optimal_line_thickness((w, h))
            scale = max(0.4, 0.6 * sv.calculate_optimal_text_scale((w, h)))  # small items, small but legible labels
            lookup = sv.ColorLookup.TRACK if self.by_track else sv.ColorLookup.CLASS
            self._trace = (sv.TraceAnnotator(color=self.palette, thickness=max(1, thickness),
                                             trace_length=self.trace_length, color_lookup=lookup)
                           if self.by_track else None)
            self._cache[(h, w)] = (
                sv.MaskAnnotator(color=self.palette, opacity=0.4, color_lookup=lookup),
                max(1, thickness),
                sv.BoxAnnotator(color=self.palette, thickness=max(1, thickness // 2), color_lookup=lookup),
                sv.LabelAnnotator(color=self.palette, text_scale=scale, text_thickness=1,
                                  text_padding=max(2, thickness), color_lookup=lookup, smart_position=True),
                scale,
            )
        return self._cache[(h, w)]

    def __call__(self, image: np.ndarray, dets: sv.Detections) -> np.ndarray:
        h, w = image.shape[:2]
        masks, outlines, boxes, labels, scale = self._annotators(w, h)
        out = image.copy()
        if len(dets) == 0:
            return out
        if dets.mask is not None:
            out = masks.annotate(out, dets)
            self._outline(out, dets, outlines)
        out = boxes.annotate(out, dets)
        names = dets.data.get(CLASS_NAME, np.array([str(c) for c in dets.class_id]))
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        text = [f"{n} {c:.2f}" for n, c in zip(names, conf)]
        if self.by_track:
            tracked = dets[dets.tracker_id > 0] if dets.tracker_id is not None else dets[:0]
            out = self._trace.annotate(out, tracked)  # id 0 (no track): unrelated rows, never one trace
            return labels.annotate(out, dets, labels=[f"#{t} {x}" if t else x for t, x in zip(dets.tracker_id, text)])
        out = labels.annotate(out, dets, labels=text)
        return self.legend(out, dets, names, scale)

    def _outline(self, image: np.ndarray, dets: sv.Detections, thickness: int) -> None:
        """Each mask's edge in its colour, in place: the mask minus its erosion, per mask crop.

        Not supervision's PolygonAnnotator: that draws every traced contour, and a fragmented mask
        has thousands (45,832 polylines, 1.1 s, for one 1024-px frame of random-weight SAM masks);
        erosion costs the same whatever the mask's shape.
        """
        kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
        ids = dets.tracker_id if self.by_track and dets.tracker_id is not None else dets.class_id
        for i in range(len(dets)):
            crop, (x0, y0) = mask_crop(dets.mask, i)
            if not crop.any():
                continue
            inner = cv2.erode(crop.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            edge = crop & ~inner.astype(bool)
            colour = self.palette.by_idx(int(ids[i]) if ids is not None else i).as_bgr()
            image[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]][edge] = colour

    def legend(self, image: np.ndarray, dets: sv.Detections, names, scale: float) -> np.ndarray:
        """A box in the top-left corner: one swatch and "name  count" per class present."""
        if dets.class_id is None:
            return image
        present = {}
        for cid, name in zip(dets.class_id.astype(int), names):
            present.setdefault(cid, [name, 0])[1] += 1
        font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
        rows = [(cid, f"{name}  {count}") for cid, (name, count) in sorted(present.items())]
        (tw, th), _ = cv2.getTextSize(max((r[1] for r in rows), key=len), font, scale, thick)
        pad, sw = max(3, th // 2), th
        box_w, row_h = pad * 3 + sw + tw, th + pad
        box_h = pad + row_h * len(rows)
        if box_w >= image.shape[1] or box_h >= image.shape[0]:
            return image
        region = image[:box_h, :box_w]
        region[:] = (region * 0.35 + 255 * 0.65).astype(np.uint8)  # a light, see-through panel
        for k, (cid, text) in enumerate(rows):
            y = pad + k * row_h
            colour = self.palette.by_idx(cid).as_bgr()
            cv2.rectangle(image, (pad, y), (pad + sw, y + th), colour, -1)
            cv2.putText(image, text, (pad * 2 + sw, y + th), font, scale, (20, 20, 20), thick, cv2.LINE_AA)
        return image


def mask_crop(masks, index: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One mask as ``(crop, (x0, y0))``: an ``sv.CompactMask``'s stored crop, or a dense mask whole at (0, 0).

    Spares materialising a full-frame array per instance on large (compact) images.
    """
    if hasattr(masks, "crop") and hasattr(masks, "offsets"):  # sv.CompactMask
        x0, y0 = (int(v) for v in masks.offsets[index][:2])
        return masks.crop(index), (x0, y0)
    return np.asarray(masks[index], dtype=bool), (0, 0)


def detection_records(dets: sv.Detections, image_id: int, shape: tuple[int, int],
                      category_ids: dict[int, int] | None = None):
    """COCO results and YOLO-seg lines of one image's detections.

    ``category_ids`` maps class id -> COCO category id (default: class id + 1).
    """
    h, w = shape
    category_ids = category_ids or {}
    results, lines = [], []
    conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
    classes = dets.class_id.astype(int) if dets.class_id is not None else np.zeros(len(dets), int)
    if dets.mask is None:
        return [result_entry(image_id, category_ids.get(int(c), int(c) + 1), float(s), None, b)
                for c, s, b in zip(classes, conf, dets.xyxy)], []
    mask_scores = dets.data.get("mask_score") if dets.data else None
    canvas = np.zeros((w, h), np.uint8).T  # (H, W) in Fortran order, as RLE encoding reads it
    for i, cls in enumerate(classes):
        crop, (x0, y0) = mask_crop(dets.mask, i)
        region = canvas[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
        region[...] = crop  # the full-frame mask, for its exact RLE; cleared again below
        entry = result_entry(image_id, category_ids.get(int(cls), int(cls) + 1), float(conf[i]), canvas, dets.xyxy[i])
        if mask_scores is not None:
            entry["mask_score"] = float(mask_scores[i])  # the segmenter's own score; "score" stays the detector's
        results.append(entry)
        region[...] = 0
        pixels = int(np.count_nonzero(crop))
        if pixels:
            # predicted masks can be fragmented: a YOLO-seg line keeps the 20 largest parts and
            # drops specks (< 4 px or < 0.2% of the mask); the COCO RLE stays exact
            min_area = max(4.0, 0.002 * pixels)
            parts = instance_polygons(crop, min_area=min_area, max_parts=20, splice_holes=True)
            poly = merge_polygons(parts)
            if len(poly) >= 3:
                lines.append(yolo_line(cls, poly + np.array([x0, y0], np.float32), w, h))
    return results, lines


def instance_png(dets: sv.Detections, shape: tuple[int, int]) -> bytes:
    """uint16 PNG: pixel = 1 + index of the detection whose mask covers it. Where masks overlap, the smaller mask
    is on top, as supervision's ``MaskAnnotator`` draws the annotated image (rows come by falling confidence, so
    painting them in order put the least confident on top: a large false box could erase a small item)."""
    ids = np.zeros(shape, np.uint16)
    if dets.mask is not None and len(dets):
        masks = dets.mask
        areas = (np.asarray(masks.area) if hasattr(masks, "crop") else
                 np.asarray(masks).reshape(len(dets), -1).sum(1))  # a CompactMask's, without a full frame each
        for i in np.argsort(-areas, kind="stable"):  # largest first, so smaller ones are painted over it
            crop, (x0, y0) = mask_crop(masks, int(i))  # one crop at a time: never every mask at full size
            h, w = crop.shape
            ids[y0:y0 + h, x0:x0 + w][crop] = i + 1
    ok, png = cv2.imencode(".png", ids)
    return png.tobytes()


def coco_categories(class_names: dict[int, str], dataset_categories: list[dict] | None = None):
    """``(categories, class id -> category id)``: the dataset's own ids where its names match the
    detector's (case-insensitive), class id + 1 when no dataset is given."""
    if not dataset_categories:
        cats = [{"id": i + 1, "name": n} for i, n in sorted(class_names.items())]
        return cats, {i: i + 1 for i in class_names}
    by_name = {str(c["name"]).lower(): int(c["id"]) for c in dataset_categories}
    cats = [{"id": int(c["id"]), "name": c["name"]} for c in dataset_categories]
    next_id = max(by_name.values(), default=0) + 1
    mapping = {}
    for i, name in sorted(class_names.items()):
        if name.lower() in by_name:
            mapping[i] = by_name[name.lower()]
        else:
            mapping[i] = next_id
            cats.append({"id": next_id, "name": name})
            next_id += 1
    return cats, mapping


def read_part(path: str | Path) -> dict:
    """One input's part file (``parts/<name>.json``), validated: what ``--resume`` and the summary read.

    Raises:
        DatasetError: the file is empty, truncated (atomic writes do not fsync, so a power loss can leave
            one), not JSON, or not a part: an object whose ``image`` has an integer ``id``, a ``file_name``
            and integer ``width`` and ``height``, whose ``results`` is a list of objects and ``classes`` a
            list of class names. One line: ``file: where: what``.
    """
    path = Path(path)
    part = as_dict(read_json(path), path, "", 'a part object {"image": {...}, "results": [...], "classes": [...]}')
    image = as_dict(key(part, "image", path, ""), path, "image")
    as_int(key(image, "id", path, "image"), path, "image.id")
    as_str(key(image, "file_name", path, "image"), path, "image.file_name")
    for side in ("width", "height"):
        as_int(key(image, side, path, "image"), path, at("image", side), minimum=1)
    for i, result in enumerate(as_list(key(part, "results", path, ""), path, "results")):
        as_dict(result, path, at("results", i))
    for i, name in enumerate(as_list(key(part, "classes", path, ""), path, "classes")):
        if not isinstance(name, str):
            fail(path, at("classes", i), "expected a class name (a string)")
    return part


class OutputWriter:
    """Writes per-input outputs as they come, and the assembled files at the end."""

    _out_stat = _out_fd = None  # see _pin_out

    def __init__(self, out: str | Path, class_names: dict[int, str], save_masks: bool = False,
                 categories: list[dict] | None = None, root: str | Path | None = None):
        """``categories``: a dataset's COCO categories; results then use its ids, matched by name
        (classes it does not name get ids above its own), so AP against it is computed per class.
        ``root``: the source folder; images.json's ``file_name`` is each image's path relative to it
        (``a/x.jpg`` and ``b/x.jpg`` stay apart, as COCO allows folders), ``output_name`` the flat name
        of its files under ``out``."""
        self.out = Path(out)
        self.root = Path(root) if root is not None else None
        self.class_names = class_names
        self.save_masks = save_masks
        self.categories, self.category_ids = coco_categories(class_names, categories)
        self.annotate = Annotator(class_names)
        self._out_stat, self._out_fd = None, None
        self._pin_out()

    def _pin_out(self) -> None:
        """Remember which folder ``out`` is, to notice it removed (or removed and made again) during the run.

        An open descriptor of the folder keeps its inode number from going to a folder made in its place.
        """
        try:
            self._out_stat = os.stat(self.out)
        except OSError:  # not made yet: its first write makes it
            return
        if hasattr(os, "O_DIRECTORY"):
            try:
                self._out_fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                pass

    def close(self) -> None:
        if self._out_fd is not None:
            os.close(self._out_fd)
            self._out_fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit
            pass

    def check_out(self) -> None:
        """Raise InputError when ``out`` is no longer the folder this writer began in: removed (``rm -rf``)
        during the run, perhaps made again since, so the outputs of the inputs done before it are gone."""
        if self._out_stat is None:
            return
        try:
            now = os.stat(self.out)
        except OSError:
            now = None
        if now is None or not os.path.samestat(now, self._out_stat):
            raise InputError(f"--out {self.out} was removed during the run, and with it the outputs of the inputs "
                             "done before; nothing more is written (no summary.json): run again")

    def check_written(self, parts: list[dict]) -> None:
        """Raise InputError unless ``out`` is still this run's folder and holds the part file of every input in
        ``parts`` (what summary.json counts): a summary never counts files that are gone."""
        self.check_out()
        names = [p["image"].get("output_name") for p in parts]
        missing = [n for n in names if n is not None and not (self.out / "parts" / f"{n}.json").is_file()]
        if missing:
            raise InputError(f"{len(missing)} of the {len(parts)} part files in {self.out / 'parts'} were removed "
                             f"during the run ({missing[0]}.json{', ...' if len(missing) > 1 else ''}); no "
                             "summary.json is written: run again with --resume to redo those inputs")

    def done(self, name: str) -> bool:
        return (self.out / "parts" / f"{name}.json").is_file()

    def finished(self, name: str) -> tuple[dict | None, str]:
        """``(part, "")`` when input ``name`` is done (its part file is complete), else ``(None, why)``:
        ``why`` is empty when there is no part file, and one line saying so when the part file is unusable
        (empty or truncated by a power loss, see :func:`read_part`): ``--resume`` redoes that input."""
        path = self.out / "parts" / f"{name}.json"
        if not path.is_file():
            return None, ""
        try:
            return read_part(path), ""
        except DatasetError as e:
            return None, f"--resume: redoing {name}: its part file is unusable ({e})"

    def write(self, name: str, image_id: int, path: str, image: np.ndarray, dets: sv.Detections,
              annotated: np.ndarray | None = None, frame: int | None = None, given: str | None = None) -> dict:
        """Write one input's outputs; the part file goes last, so it marks the input complete.

        ``given``: the input's path as the user gave it, recorded as its ``path`` (default: ``path``; a Ray worker
        reads the absolute path it was sent, where the local engine reads the given one).

        Raises:
            InputError: ``out`` was removed during the run (:meth:`check_out`).
        """
        self.check_out()
        h, w = image.shape[:2]
        results, lines = detection_records(dets, image_id, (h, w), self.category_ids)
        if getattr(dets, "tracker_id", None) is not None:  # tracked video: one result per row, in row order
            for result, track_id in zip(results, dets.tracker_id):
                result["track_id"] = int(track_id) or None  # None: a detection the tracker gave no track
        if annotated is None:
            annotated = self.annotate(image, dets)
            ok, jpg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 92])
            atomic_write_bytes(self.out / "annotated" / f"{name}.jpg", jpg.tobytes())
        atomic_write_text(self.out / "labels" / f"{name}.txt", "\n".join(lines) + ("\n" if lines else ""))
        if self.save_masks:
            atomic_write_bytes(self.out / "masks" / f"{name}.png", instance_png(dets, (h, w)))
        image_record = {"id": image_id, "file_name": self._file_name(path) if path else f"{name}.jpg",
                        "output_name": name, "path": path if given is None else given, "width": w, "height": h}
        if frame is not None:  # a video frame: no frame file exists, so name the video and the frame (from 1)
            image_record["frame"] = frame + 1
        part = {"image": image_record,
                "results": results,
                "classes": [self.class_names.get(int(c), str(c)) for c in (dets.class_id if dets.class_id is not None
                                                                           else [])]}
        atomic_write_json(self.out / "parts" / f"{name}.json", part)
        return part

    def _file_name(self, path: str) -> str:
        """``path`` relative to the source folder (POSIX separators; :func:`relative_in`), or its base name."""
        return relative_in(Path(path), self.root).as_posix() if self.root is not None else Path(path).name

    def finalize(self, parts: list[dict], summary: dict) -> None:
        """predictions.json, images.json and summary.json from the parts (in input order).

        Raises:
            InputError: ``out`` was removed, or part files of ``parts`` deleted, during the run
                (:meth:`check_written`): nothing is written.
        """
        self.check_written(parts)
        parts = sorted(parts, key=lambda p: p["image"]["id"])
        results = [r for p in parts for r in p["results"]]
        images = [{k: p["image"][k] for k in ("id", "file_name", "output_name", "frame", "width", "height")
                   if k in p["image"]} for p in parts]
        atomic_write_json(self.out / "predictions.json", results)
        atomic_write_json(self.out / "images.json", {"images": images, "annotations": [],
                                                      "categories": self.categories})
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        self.close()
