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
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from detseg.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from detseg.data.polygons import instance_polygons, merge_polygons
from detseg.data.yolo_format import yolo_line
from detseg.pipeline.metrics import result_entry


def output_name(path: str, root: Path | None, index: int) -> str:
    """A flat, unique file stem for an input: its path relative to the source folder, '/' -> '__'."""
    if not path:
        return f"array_{index:06d}"
    if "#" in path:  # video frame
        video, frame = path.rsplit("#", 1)
        return f"{Path(video).stem}_{int(frame):06d}"
    p = Path(path)
    try:
        rel = p.relative_to(root) if root is not None and root.is_dir() else Path(p.name)
    except ValueError:
        rel = Path(p.name)
    return "__".join(rel.with_suffix("").parts)


class Annotator:
    """supervision's mask, box and label annotators, sized to the image, colours by class."""

    def __init__(self):
        self._cache = {}

    def __call__(self, image: np.ndarray, dets: sv.Detections) -> np.ndarray:
        h, w = image.shape[:2]
        key = (h, w)
        if key not in self._cache:
            thickness = sv.calculate_optimal_line_thickness((w, h))
            scale = 0.6 * sv.calculate_optimal_text_scale((w, h))  # food items are small: keep labels small
            self._cache[key] = (
                sv.MaskAnnotator(opacity=0.45, color_lookup=sv.ColorLookup.CLASS),
                sv.BoxAnnotator(thickness=thickness, color_lookup=sv.ColorLookup.CLASS),
                sv.LabelAnnotator(text_scale=scale, text_thickness=1, text_padding=max(2, thickness),
                                  color_lookup=sv.ColorLookup.CLASS, smart_position=True),
            )
        masks, boxes, labels = self._cache[key]
        out = image.copy()
        if len(dets) == 0:
            return out
        if dets.mask is not None:
            out = masks.annotate(out, dets)
        out = boxes.annotate(out, dets)
        names = dets.data.get("class_name", np.array([str(c) for c in dets.class_id]))
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        return labels.annotate(out, dets, labels=[f"{n} {c:.2f}" for n, c in zip(names, conf)])


def mask_crop(masks, index: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One mask as ``(crop, (x0, y0))``: an ``sv.CompactMask``'s stored crop, or a dense mask whole at (0, 0).

    Spares materialising a full-frame array per instance on large (compact) images.
    """
    if hasattr(masks, "crop") and hasattr(masks, "offsets"):  # sv.CompactMask
        x0, y0 = (int(v) for v in masks.offsets[index][:2])
        return masks.crop(index), (x0, y0)
    return np.asarray(masks[index], dtype=bool), (0, 0)


def detection_records(dets: sv.Detections, image_id: int, shape: tuple[int, int]):
    """COCO results and YOLO-seg lines of one image's detections."""
    h, w = shape
    results, lines = [], []
    conf = dets.confidence if dets.confidence is not None else np.ones(len(dets))
    classes = dets.class_id.astype(int) if dets.class_id is not None else np.zeros(len(dets), int)
    if dets.mask is None:
        return [result_entry(image_id, c + 1, float(s), None, b) for c, s, b in zip(classes, conf, dets.xyxy)], []
    canvas = np.zeros((w, h), np.uint8).T  # (H, W) in Fortran order, as RLE encoding reads it
    for i, cls in enumerate(classes):
        crop, (x0, y0) = mask_crop(dets.mask, i)
        region = canvas[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
        region[...] = crop  # the full-frame mask, for its exact RLE; cleared again below
        results.append(result_entry(image_id, cls + 1, float(conf[i]), canvas, dets.xyxy[i]))
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
    """uint16 PNG: pixel = 1 + index of the detection whose mask covers it (later rows on top)."""
    ids = np.zeros(shape, np.uint16)
    if dets.mask is not None:
        for i in range(len(dets)):
            ids[np.asarray(dets.mask[i])] = i + 1
    ok, png = cv2.imencode(".png", ids)
    return png.tobytes()


class OutputWriter:
    """Writes per-input outputs as they come, and the assembled files at the end."""

    def __init__(self, out: str | Path, class_names: dict[int, str], save_masks: bool = False):
        self.out = Path(out)
        self.class_names = class_names
        self.save_masks = save_masks
        self.annotate = Annotator()

    def done(self, name: str) -> bool:
        return (self.out / "parts" / f"{name}.json").is_file()

    def write(self, name: str, image_id: int, path: str, image: np.ndarray, dets: sv.Detections,
              annotated: np.ndarray | None = None) -> dict:
        """Write one input's outputs; the part file goes last, so it marks the input complete."""
        h, w = image.shape[:2]
        results, lines = detection_records(dets, image_id, (h, w))
        if getattr(dets, "tracker_id", None) is not None:  # tracked video: one result per row, in row order
            for result, track_id in zip(results, dets.tracker_id):
                result["track_id"] = int(track_id)
        if annotated is None:
            annotated = self.annotate(image, dets)
            ok, jpg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, 92])
            atomic_write_bytes(self.out / "annotated" / f"{name}.jpg", jpg.tobytes())
        atomic_write_text(self.out / "labels" / f"{name}.txt", "\n".join(lines) + ("\n" if lines else ""))
        if self.save_masks:
            atomic_write_bytes(self.out / "masks" / f"{name}.png", instance_png(dets, (h, w)))
        part = {"image": {"id": image_id, "file_name": Path(path).name if path and "#" not in path else f"{name}.jpg",
                          "path": path, "width": w, "height": h},
                "results": results,
                "classes": [self.class_names.get(int(c), str(c)) for c in (dets.class_id if dets.class_id is not None
                                                                           else [])]}
        if path and "#" in path:  # a video frame: no frame file exists, so name the video and the frame (from 1)
            video, index = path.rsplit("#", 1)
            part["image"].update(file_name=Path(video).name, frame=int(index) + 1)
        atomic_write_json(self.out / "parts" / f"{name}.json", part)
        return part

    def finalize(self, parts: list[dict], summary: dict) -> None:
        """predictions.json, images.json and summary.json from the parts (in input order)."""
        parts = sorted(parts, key=lambda p: p["image"]["id"])
        results = [r for p in parts for r in p["results"]]
        images = [{k: p["image"][k] for k in ("id", "file_name", "frame", "width", "height") if k in p["image"]}
                  for p in parts]
        categories = [{"id": i + 1, "name": n} for i, n in sorted(self.class_names.items())]
        atomic_write_json(self.out / "predictions.json", results)
        atomic_write_json(self.out / "images.json", {"images": images, "annotations": [], "categories": categories})
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
