"""COCO mask and box AP with pycocotools as the reference implementation.

Example:
    >>> from detseg.pipeline.evaluation.metrics import coco_ap                           # doctest: +SKIP
    >>> metrics = coco_ap(gt_coco_dict, predictions, iou_type="segm")   # doctest: +SKIP
    >>> metrics["AP"], metrics["per_class"]["cookie"]                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from detseg.data.polygons import mask_to_rle

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def result_entry(image_id: int, category_id: int, score: float, mask=None, xyxy=None) -> dict:
    """One COCO result: ``segmentation`` (RLE) when a mask is given, ``bbox`` (xywh) always."""
    entry = {"image_id": int(image_id), "category_id": int(category_id), "score": float(score)}
    if mask is not None:
        entry["segmentation"] = mask_to_rle(mask)
        if xyxy is None:
            ys, xs = np.nonzero(mask)
            xyxy = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, 0, 0)
    if xyxy is not None:
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        entry["bbox"] = [x0, y0, x1 - x0, y1 - y0]
    return entry


def _coco_from_dict(gt: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_eval(gt: dict, predictions: list[dict], iou_type: str = "segm"):
    """Run pycocotools' COCOeval; returns the evaluated ``COCOeval`` (or None with no predictions)."""
    from pycocotools.cocoeval import COCOeval

    if not predictions:
        return None
    coco_gt = _coco_from_dict(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(predictions))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_ap(gt: dict, predictions: list[dict], iou_type: str = "segm") -> dict:
    """AP50:95, AP50, AP75, AP small/medium/large, per-class AP50:95 and mean IoU of matches.

    Args:
        gt: a COCO instances dict (images, annotations, categories).
        predictions: COCO results (image_id, category_id, score, segmentation RLE and/or bbox).
        iou_type: ``"segm"`` (masks) or ``"bbox"``.

    Returns:
        ``{"AP", "AP50", ..., "per_class": {name: AP}, "mean_iou": float, "matched": int}``.
        With no predictions every AP is 0.0. A class with no ground-truth instance has a per-class AP of
        None (pycocotools' -1: undefined, and left out of the overall AP), not 0.0.
    """
    names = {c["id"]: c["name"] for c in gt["categories"]}
    ev = coco_eval(gt, predictions, iou_type)
    if ev is None:
        present = {a["category_id"] for a in gt.get("annotations", []) if not a.get("iscrowd")}
        return {**{k: 0.0 for k in STAT_NAMES},
                "per_class": {n: (0.0 if i in present else None) for i, n in names.items()},
                "mean_iou": 0.0, "matched": 0}
    # pycocotools reports -1 where a metric is undefined (e.g. no large objects): keep that as None
    stats = {k: (float(v) if v >= 0 else None) for k, v in zip(STAT_NAMES, ev.stats[:6])}
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    per_class = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        per_class[names[cat_id]] = float(p[p > -1].mean()) if (p > -1).any() else None
    miou, matched = matched_mean_iou(ev)
    return {**stats, "per_class": per_class, "mean_iou": miou, "matched": matched}


def matched_mean_iou(ev) -> tuple[float, int]:
    """Mean IoU of the detection-GT pairs COCOeval matched at IoU 0.5 (area "all").

    ``ev.ious[(img, cat)]`` has one row per detection in score order (truncated to the
    last maxDets) and one column per GT in ``ev._gts`` order, as ``computeIoU`` builds it.
    """
    ious = []
    for e in ev.evalImgs:
        if e is None or e["aRng"] != ev.params.areaRng[0]:
            continue
        key = (e["image_id"], e["category_id"])
        table = np.asarray(ev.ious.get(key, []))
        if table.size == 0:
            continue
        dts = ev._dts[key]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: ev.params.maxDets[-1]]
        row_of = {dts[i]["id"]: r for r, i in enumerate(order)}
        col_of = {g["id"]: c for c, g in enumerate(ev._gts[key])}
        for d_id, g_id in zip(e["dtIds"], e["dtMatches"][0]):
            if g_id > 0:
                ious.append(float(table[row_of[d_id], col_of[int(g_id)]]))
    return (float(np.mean(ious)) if ious else 0.0), len(ious)
