"""Evaluate a segmenter alone: prompt it with ground-truth boxes (optionally jittered) and score
its masks with COCO mask AP and the mean IoU of each mask with its own ground truth.

Example:
    >>> from detseg.data.io import load_dataset                                   # doctest: +SKIP
    >>> from detseg.segmenter import GrabCutSegmenter                                  # doctest: +SKIP
    >>> ds = load_dataset("../shared/datasets/uj-staple-pantry-valid/annotations.json")  # doctest: +SKIP
    >>> evaluate_on_gt_boxes(ds, GrabCutSegmenter(), jitter=0.1)["AP"]          # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from detseg.data.dataset import Dataset
from detseg.data.polygons import mask_iou
from detseg.images import read_image
from detseg.pipeline.evaluation.metrics import coco_ap, result_entry


def jitter_boxes(boxes: np.ndarray, amount: float, rng: np.random.Generator, shape) -> np.ndarray:
    """Move each box edge by up to ``amount`` x the box's width/height (uniform), clipped to the image."""
    if amount <= 0 or len(boxes) == 0:
        return boxes.copy()
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    scale = np.concatenate([w, h, w, h], axis=1)
    out = boxes + rng.uniform(-amount, amount, boxes.shape) * scale
    out[:, [0, 2]] = np.sort(out[:, [0, 2]], axis=1).clip(0, shape[1])
    out[:, [1, 3]] = np.sort(out[:, [1, 3]], axis=1).clip(0, shape[0])
    return out


def evaluate_on_gt_boxes(dataset: Dataset, segmenter, split: str | None = None, jitter: float = 0.0,
                         seed: int = 0, agnostic: bool = False, every: int = 1, progress: bool = True) -> dict:
    """Segment every ground-truth box of a split and score the masks.

    Args:
        dataset: a loaded dataset with masks (polygons or RLE).
        segmenter: any object with ``predict_masks(image, boxes) -> (masks, scores)``.
        split: which split (default: the first).
        jitter: box edge noise as a fraction of box size (0.1 = up to 10%), like a detector's boxes.
        seed: jitter RNG seed.
        agnostic: score every instance as one class (default: each keeps its ground-truth class,
            as the reference figures of the UJ dataset README do).
        every: evaluate every n-th image only.
        progress: show a tqdm bar.

    Returns:
        COCO mask metrics (``AP``, ``AP50``, ``AP75``, ...), ``paired_miou`` (each mask vs the
        ground truth whose box prompted it), ``ms_per_box`` (segmenter time only), ``images``, ``boxes``.
    """
    split = split or next(iter(dataset.splits))
    records = dataset.splits[split][::every]
    rng = np.random.default_rng(seed)
    images, annotations, predictions, ious = [], [], [], []
    seconds, n_boxes = 0.0, 0
    for idx, record in enumerate(tqdm(records, desc=f"{type(segmenter).__name__}", disable=not progress), 1):
        if not record.annotations:
            continue
        image = read_image(record.path)
        h, w = image.shape[:2]
        images.append({"id": idx, "file_name": record.path.name, "width": w, "height": h})
        gt_boxes = np.stack([a.xyxy for a in record.annotations]).astype(np.float32)
        prompts = jitter_boxes(gt_boxes, jitter, rng, (h, w))
        start = time.perf_counter()
        masks, mask_scores = segmenter.predict_masks(image, prompts)  # scores rank the masks (all 1: file order)
        seconds += time.perf_counter() - start
        n_boxes += len(prompts)
        mask_scores = np.ones(len(masks)) if mask_scores is None else np.asarray(mask_scores, np.float64)
        for a, mask, score in zip(record.annotations, masks, mask_scores):
            gt_mask = a.mask(h, w)
            cat = 1 if agnostic else a.class_id + 1
            ann_id = len(annotations) + 1
            annotations.append({**result_entry(idx, cat, 1.0, gt_mask), "id": ann_id, "iscrowd": 0,
                                "area": float(gt_mask.sum())})
            mask = np.asarray(mask)
            predictions.append(result_entry(idx, cat, float(score), mask))
            ious.append(mask_iou(mask, gt_mask))
    categories = [{"id": 1, "name": "object"}] if agnostic else \
        [{"id": i + 1, "name": n} for i, n in enumerate(dataset.names)]
    for a in annotations:
        a.pop("score", None)
    gt = {"images": images, "annotations": annotations, "categories": categories}
    metrics = coco_ap(gt, predictions, "segm")
    if agnostic:
        metrics.pop("per_class", None)  # one class: nothing per class to report
    metrics.update(paired_miou=float(np.mean(ious)) if ious else 0.0,
                   ms_per_box=1000 * seconds / max(n_boxes, 1), images=len(images), boxes=n_boxes)
    return metrics
