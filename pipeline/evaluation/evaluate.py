"""``detseg evaluate``: COCO mask AP of pipeline configurations on a YOLO-seg or COCO dataset.

The detector runs once per image; every segmenter configuration then segments the same
boxes, so the comparison table differs only by the segmenter.

Example:
    >>> from detseg.pipeline.evaluation.evaluate import evaluate                                   # doctest: +SKIP
    >>> report = evaluate("datasets/food/data.yaml", "gt", ["grabcut", "box"], split="val",
    ...                   out="runs/eval")                                       # doctest: +SKIP
    >>> report["configs"]["grabcut"]["segm"]["AP"]                               # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detseg.atomic import atomic_write_json, atomic_write_text
from detseg.data.coco_format import coco_dict
from detseg.data.dataset import Dataset
from detseg.data.io import load_dataset
from detseg.errors import InputError
from detseg.images import read_image
from detseg.keys import CLASS_NAME, class_key
from detseg.pipeline.evaluation.metrics import STAT_NAMES, coco_ap, coco_eval, result_entry


def class_id_mapping(detector_names: dict[int, str], dataset_names: list[str],
                     class_map: dict[str, str] | None = None) -> dict[int, int]:
    """Detector class id -> dataset class id, matched by name (after ``class_map``) with
    :func:`~detseg.keys.class_key` (case-insensitively, as ``detseg predict --image-ids`` matches a dataset's
    categories, and without surrounding spaces).

    Raises:
        InputError: a detector class has no dataset class of that name and no mapping.
    """
    class_map = {class_key(k): v for k, v in (class_map or {}).items()}
    index = {class_key(n): i for i, n in enumerate(dataset_names)}
    if len(index) != len(dataset_names):
        raise InputError(f"the dataset's class names {dataset_names[:20]} differ only by case or spaces; rename "
                         "them so that each names one class")
    mapping, missing = {}, []
    for det_id, name in detector_names.items():
        target = class_key(class_map.get(class_key(name), name))
        if target in index:
            mapping[int(det_id)] = index[target]
        else:
            missing.append(name)
    if missing:
        raise InputError(f"detector class(es) {missing} are not in the dataset's classes {dataset_names[:20]}; "
                         "pass --class-map detector_name=dataset_name,...")
    return mapping


def _detector(spec, dataset: Dataset, split: str, conf: float, device: str):
    from detseg.detectors import BoxesDetector, YoloDetector

    if spec == "gt":
        return BoxesDetector(dataset=dataset, split=split)
    return YoloDetector(spec, conf=conf, device=device).load()


def _segmenter(spec: str, device: str):
    from detseg.segmenter.factory import build_segmenter

    if spec == "auto":
        raise InputError("evaluate needs explicit segmenters (a checkpoint path, grabcut, box, ellipse or detector)")
    return build_segmenter(spec, device=device)[0]


def evaluate(data, detector="gt", segmenters=("grabcut", "box"), split: str | None = None, out=None,
             class_map: dict[str, str] | None = None, conf: float = 0.001, device: str = "auto",
             every: int = 1, progress: bool = True, plots: bool = True) -> dict:
    """Evaluate each segmenter with the same detector boxes; write predictions, metrics and plots.

    Args:
        data: a dataset path (YOLO data.yaml / folder, COCO JSON) or a loaded :class:`Dataset`.
        detector: ``"gt"`` (ground-truth boxes: the segmenter alone), YOLO weights, or a Detector.
        segmenters: names (``grabcut``, ``box``, ``ellipse``, a SAM checkpoint, ``detector``: a -seg
            detector's own masks) or ``{name: segmenter}``. With ``detector`` every segmenter gets the -seg
            model's boxes, which leave out detections whose own mask is empty (as ultralytics does).
        split: dataset split (default ``val`` if present, else the first).
        out: output folder (None: write nothing).
        class_map: detector class name -> dataset class name, for differing names.
        conf: detector confidence threshold (low, as AP needs the whole PR curve).
        device: for YOLO and SAM.
        every: evaluate every n-th image.
        progress: tqdm bars.
        plots: write PR curves and per-class AP bars (PNG).

    Returns:
        ``{"split", "images", "configs": {name: {"segm": {...}, "bbox": {...}, "seconds": ...}}}``.
    """
    if every < 1:
        raise InputError(f"every must be >= 1, got {every}")
    if not segmenters:
        raise InputError("no segmenter given: pass e.g. grabcut,box or a SAM checkpoint")
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    split = split or ("val" if "val" in dataset.splits else next(iter(dataset.splits)))
    if split not in dataset.splits:
        raise InputError(f"split {split!r} not in dataset (has {sorted(dataset.splits)})")
    records = dataset.splits[split][::every]
    box_only = sum(not a.has_mask for r in records for a in r.annotations)
    if box_only:  # pycocotools cannot rasterise an empty segmentation, and a box is no mask to score against
        total = sum(len(r.annotations) for r in records)
        raise InputError(f"mask AP needs a mask (polygon or RLE) for every ground-truth instance: {box_only} of "
                         f"{total} in split {split!r} have only a box (a detection dataset?); `detseg val` scores "
                         "boxes")
    det = _detector(detector, dataset, split, conf, device) if isinstance(detector, str) else detector
    det_names = getattr(det, "class_names", None) or dict(enumerate(dataset.names))
    mapping = class_id_mapping(det_names, dataset.names, class_map)
    if isinstance(segmenters, dict):
        segs = segmenters
    else:
        from detseg.detectors import YoloDetector
        from detseg.detectors.yolo_seg import DetectorMasks, YoloSegModel
        from detseg.pipeline.factory import OWN_MASKS

        if OWN_MASKS in segmenters:  # a -seg detector's own masks, scored beside other segmenters on its boxes
            if not isinstance(det, YoloDetector) or det.task != "segment":
                raise InputError(f"segmenter {OWN_MASKS!r} scores a -seg detector's own masks; the detector "
                                 f"{detector} has none")
            if not isinstance(det, YoloSegModel):  # one given as a YoloSegModel keeps its mask_mode
                det = YoloSegModel.from_detector(det)
        segs = {s: DetectorMasks(det) if s == OWN_MASKS else _segmenter(s, device) for s in segmenters}
    gt = coco_dict(dataset, split)
    category_ids = dataset.coco_category_ids()  # predictions.json scores against the user's own file
    keep_ids = {r.image_id for r in records}
    gt["images"] = [im for im in gt["images"] if im["id"] in keep_ids]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep_ids]

    preds = {name: [] for name in segs}
    seconds = {name: 0.0 for name in segs}
    # with the ground-truth boxes every score is 1 and pycocotools would rank the masks by their order in the file:
    # the segmenter's own mask score (SAM's predicted IoU) ranks them instead
    by_mask_score = isinstance(detector, str) and detector == "gt"
    for record in tqdm(records, desc=f"evaluate {split}", disable=not progress):
        image = read_image(record.path)
        if image.shape[:2] != (record.height, record.width):  # masks of another size than the GT: IoU -1, no error
            raise InputError(f"{record.path}: read as {image.shape[1]}x{image.shape[0]} but the dataset says "
                             f"{record.width}x{record.height} (EXIF orientation, or a resized file?): fix its "
                             "width/height in the dataset file")
        dets = det(image)
        keep = np.array([int(c) in mapping for c in dets.class_id], bool) if len(dets) else np.zeros(0, bool)
        dets = dets[np.flatnonzero(keep)] if len(dets) else dets
        category = [category_ids[mapping[int(c)]] for c in dets.class_id] if len(dets) else []
        conf_values = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        for name, seg in segs.items():
            if len(dets) == 0:
                continue
            t = time.perf_counter()
            masks, mask_scores = seg.predict_masks(image, dets.xyxy)
            seconds[name] += time.perf_counter() - t
            scores = mask_scores if by_mask_score and mask_scores is not None else conf_values
            for i in range(len(dets)):
                preds[name].append(result_entry(record.image_id, category[i], float(scores[i]),
                                                np.asarray(masks[i]), dets.xyxy[i]))
    report = {"split": split, "images": len(records), "detector": str(detector), "configs": {}}
    for name in segs:
        report["configs"][name] = {
            "segm": coco_ap(gt, preds[name], "segm"),
            "bbox": coco_ap(gt, [{k: v for k, v in p.items() if k != "segmentation"} for p in preds[name]], "bbox"),
            "segmenter_seconds": round(seconds[name], 3),
            "predictions": len(preds[name]),
        }
    if out is not None:
        _write(Path(out), report, gt, preds, plots)
    return report


def worst_masks(data, predictions: list[dict], split: str | None = None, n: int = 6, every: int = 1) -> list[dict]:
    """The ``n`` ground-truth instances whose best-overlapping prediction has the lowest mask IoU.

    Args:
        data: the dataset (path or :class:`Dataset`) the predictions were made on.
        predictions: COCO results with RLE masks (e.g. an ``evaluate`` output's predictions.json).
        split: the split evaluated.
        every: the ``every`` the predictions were made with (``evaluate(..., every=k)`` scores every k-th image;
            the images it skipped have no predictions, and are not listed as missed).

    Returns:
        Dicts with ``image`` (BGR), ``truth`` and ``predicted`` (bool masks), ``iou``, ``class_name``,
        worst first.
    """
    from detseg.data.polygons import mask_iou, rle_to_mask

    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    split = split or ("val" if "val" in dataset.splits else next(iter(dataset.splits)))
    by_image: dict[int, list[dict]] = {}
    for p in predictions:
        by_image.setdefault(p["image_id"], []).append(p)
    rows = []
    if every < 1:
        raise InputError(f"every must be >= 1, got {every}")
    for record in dataset.splits[split][::every]:
        preds = [rle_to_mask(p["segmentation"]) for p in by_image.get(record.image_id, [])]
        for a in record.annotations:
            truth = a.mask(record.height, record.width)
            ious = [mask_iou(truth, m) for m in preds]
            best = int(np.argmax(ious)) if ious else -1
            rows.append((ious[best] if ious else 0.0, record, truth, preds[best] if ious else np.zeros_like(truth),
                         dataset.names[a.class_id]))
    rows.sort(key=lambda r: r[0])
    return [{"image": read_image(r.path), "truth": t, "predicted": p, "iou": iou, CLASS_NAME: name}
            for iou, r, t, p, name in rows[:n]]


def metrics_table(report: dict) -> str:
    """The comparison table (markdown): one row per configuration."""
    head = "| segmenter | mask AP50:95 | AP50 | AP75 | AP_s | AP_m | AP_l | box AP50:95 | mean IoU (matched) |"
    lines = [head, "|" + "---|" * 9]
    shown = Counter(Path(name).name for name in report["configs"])
    for name, m in report["configs"].items():
        s, b = m["segm"], m["bbox"]
        cells = ["—" if s[k] is None else f"{s[k]:.3f}" for k in STAT_NAMES]
        box_ap = "—" if b["AP"] is None else f"{b['AP']:.3f}"
        label = Path(name).name if shown[Path(name).name] == 1 else name  # a full path where file names repeat
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {box_ap} | {s['mean_iou']:.3f} |")
    return "\n".join(lines)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name)


def folder_names(names) -> dict[str, str]:
    """``name -> output folder name``: the file name made safe, numbered ``_2``, ``_3``, ... where two
    segmenters share one (``a/sam.pt``, ``b/sam.pt`` -> ``sam.pt``, ``sam.pt_2``), in the order given."""
    out, taken = {}, set()
    for name in names:
        base = folder = _safe(name)
        k = 1
        while folder.lower() in taken:
            k += 1
            folder = f"{base}_{k}"
        out[name] = folder
        taken.add(folder.lower())
    return out


def _write(out: Path, report: dict, gt: dict, preds: dict, plots: bool) -> None:
    folders = folder_names(preds)
    for name, p in preds.items():
        atomic_write_json(out / folders[name] / "predictions.json", p)
    atomic_write_json(out / "ground_truth.json", gt)
    atomic_write_json(out / "metrics.json", report, indent=2)
    table = metrics_table(report)
    atomic_write_text(out / "metrics.md", f"# Mask AP, split {report['split']} ({report['images']} images, "
                                          f"detector {report['detector']})\n\n{table}\n")
    if plots:
        from detseg.pipeline.evaluation.plots import plot_per_class_ap, plot_pr_curves

        evals = {name: coco_eval(gt, p, "segm") for name, p in preds.items()}
        plot_pr_curves(evals, out / "pr_curves.png")
        plot_per_class_ap(report, out / "per_class_ap.png")
