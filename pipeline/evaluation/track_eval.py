"""Tracking quality of a tracked video run against ground truth: HOTA, IDF1, MOTA, ID switches
(``trackers.eval``, roboflow's re-implementation of TrackEval's metrics), per-frame mask AP
(pycocotools) and distinct counts per class.

Inputs are the files ``detseg data synth-video`` and ``detseg predict VIDEO --track`` write:
MOTChallenge ``gt.txt`` (frames from 1; 8th column the class = COCO category id) and ``tracks.txt`` (results:
``frame,id,x,y,w,h,score,-1,-1,-1``; each row's class comes from ``predictions.json``'s ``category_id`` of that
frame and ``track_id``; an older ``tracks.txt`` with the class in its 8th column is read as it is), and COCO
``annotations.json`` / ``predictions.json`` whose image ids are frame numbers.

Boxes are matched by IoU, class-agnostically (track ids are unique across classes), as TrackEval
does for one class; ``per_class`` repeats it on each class's rows alone. Unlike TrackEval's
MOTChallenge loader nothing is filtered as "pedestrian only".

Example:
    >>> from detseg.pipeline.evaluation.track_eval import evaluate_video            # doctest: +SKIP
    >>> report = evaluate_video("gt_dir", "runs/track")                  # doctest: +SKIP
    >>> report["HOTA"], report["IDF1"], report["MOTA"], report["IDSW"]    # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from detseg.data.coco_format import validate_coco, validate_coco_results
from detseg.data.validate import read_json, read_text
from detseg.errors import DatasetError, InputError

_MOT_FIELDS = ("frame", "id", "x", "y", "width", "height", "score", "class")


def load_mot(path: str | Path) -> np.ndarray:
    """A MOTChallenge file as an ``(N, 8)`` float array: frame, id, x, y, w, h, score, class (empty: (0, 8)).

    The MOT validator: a line has at least 6 comma-separated fields (a missing score or class reads as 0),
    each a finite number; frame an integer >= 1, id and class integers, width and height not negative; no
    two lines give one id in one frame (TrackEval refuses that too). The first line that is not is one
    DatasetError ``file:line: what``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("MOT file not found", path)
    rows, seen = [], {}
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            raise DatasetError(f"{len(parts)} field(s); a MOT line is frame,id,x,y,w,h[,score,class,...]", path, n)
        row = []
        for name, text in zip(_MOT_FIELDS, parts):
            try:
                value = float(text)
            except ValueError:
                raise DatasetError(f"{name} {text[:30]!r} is not a number (a MOT line is frame,id,x,y,w,h[,score,"
                                   "class,...])", path, n) from None
            if not math.isfinite(value):
                raise DatasetError(f"{name} is {text[:30]}: not a finite number", path, n)
            if name in ("frame", "id", "class") and value != int(value):
                raise DatasetError(f"{name} {text[:30]} is not an integer", path, n)
            if (name == "frame" and value < 1) or (name in ("width", "height") and value < 0):
                raise DatasetError(f"{name} is {'below 1' if name == 'frame' else 'negative'} ({text[:30]})", path, n)
            row.append(value)
        key = (int(row[0]), int(row[1]))
        if key in seen:
            raise DatasetError(f"id {key[1]} appears twice in frame {key[0]} (also line {seen[key]})", path, n)
        seen[key] = n
        rows.append(row + [0.0] * (8 - len(row)))
    return np.array(rows, np.float64).reshape(-1, 8)


def classes_from_predictions(tracks: np.ndarray, predictions: list[dict]) -> np.ndarray:
    """``tracks`` with its class column filled from ``predictions`` (``image_id`` = frame, ``track_id``,
    ``category_id``) where the MOT results file leaves it at -1 (or 0); a row with no prediction keeps 0."""
    unknown = tracks[:, 7] <= 0
    if not unknown.any():
        return tracks
    category = {(int(p["image_id"]), int(p["track_id"])): int(p["category_id"]) for p in predictions
                if isinstance(p.get("track_id"), int) and isinstance(p.get("category_id"), int)}
    tracks = tracks.copy()
    tracks[unknown, 7] = [category.get((int(f), int(t)), 0) for f, t in tracks[unknown, :2]]
    return tracks


def _sequence_data(gt: np.ndarray, tr: np.ndarray, frames: int) -> tuple[list, list, list]:
    """Per frame: ground-truth ids and track ids remapped to 0..n-1, and their box IoU ``(n_gt, n_tracks)``."""
    from trackers.eval import box_iou

    gt_ids = {v: i for i, v in enumerate(np.unique(gt[:, 1]).tolist())}
    tr_ids = {v: i for i, v in enumerate(np.unique(tr[:, 1]).tolist())}
    gt_per_frame, tr_per_frame, iou_per_frame = [], [], []
    for f in range(1, frames + 1):
        g, t = gt[gt[:, 0] == f], tr[tr[:, 0] == f]
        gt_per_frame.append(np.array([gt_ids[v] for v in g[:, 1]], int))
        tr_per_frame.append(np.array([tr_ids[v] for v in t[:, 1]], int))
        iou_per_frame.append(box_iou(g[:, 2:6], t[:, 2:6], box_format="xywh") if len(g) and len(t)
                             else np.zeros((len(g), len(t))))
    return gt_per_frame, tr_per_frame, iou_per_frame


def tracking_metrics(gt: np.ndarray, tracks: np.ndarray, frames: int | None = None) -> dict:
    """HOTA (mean over IoU 0.05..0.95), DetA, AssA, IDF1, MOTA, MOTP, IDSW, MT/ML of one sequence.

    The metrics are ``trackers.eval``'s (roboflow's ``trackers``, written to match TrackEval), computed on
    the frames as :func:`load_mot` read and checked them: every class together, nothing filtered out.

    Args:
        gt, tracks: arrays of :func:`load_mot`.
        frames: number of frames (default: the last frame in either file).
    """
    from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

    frames = int(frames or max(gt[:, 0].max(initial=0), tracks[:, 0].max(initial=0)))
    data = _sequence_data(gt, tracks, frames)
    hota = compute_hota_metrics(*data)
    clear = compute_clear_metrics(*data)
    ident = compute_identity_metrics(*data)
    return {"HOTA": float(hota["HOTA"]), "DetA": float(hota["DetA"]), "AssA": float(hota["AssA"]),
            "IDF1": float(ident["IDF1"]), "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]),
            "IDSW": int(clear["IDSW"]), "MT": int(clear["MT"]), "ML": int(clear["ML"]),
            "gt_objects": len(np.unique(gt[:, 1])), "tracks": len(np.unique(tracks[:, 1])), "frames": frames}


def count_objects(rows: np.ndarray, min_frames: int = 1) -> dict[int, int]:
    """Distinct ids per class id (class column - 1; each id counted once, as its most frequent class)."""
    counts: dict[int, int] = {}
    for tid in np.unique(rows[:, 1]):
        own = rows[rows[:, 1] == tid]
        if len(own) >= min_frames:
            values, n = np.unique(own[:, 7].astype(int) - 1, return_counts=True)
            c = int(values[np.argmax(n)])
            counts[c] = counts.get(c, 0) + 1
    return counts


def frame_count(coco: dict, gt: np.ndarray, tracks: np.ndarray) -> int:
    """The sequence's length: the last frame that ``annotations.json`` (image ids are frame numbers) or either
    MOT file names, so a ground truth that lists only the frames with objects loses no row past its count."""
    last_image = max((int(im["id"]) for im in coco["images"]), default=0)
    return max(len(coco["images"]), last_image, int(gt[:, 0].max(initial=0)), int(tracks[:, 0].max(initial=0)))


def _frames_run(images_json: Path) -> set[int] | None:
    """The frame numbers (image ids) a run wrote outputs for, from its ``images.json``; None without one."""
    if not images_json.is_file():
        return None
    data = read_json(images_json)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not all(isinstance(im, dict) and isinstance(im.get("id"), int) for im in images):
        raise DatasetError('expected the {"images": [{"id": ...}, ...]} detseg predict writes', images_json)
    return {im["id"] for im in images}


def evaluate_video(gt_dir: str | Path, run_dir: str | Path, class_names: dict[int, str] | None = None,
                   min_track_frames: int = 3) -> dict:
    """Tracking and mask quality of a tracked run against a ground-truth folder.

    Args:
        gt_dir: folder with ``gt.txt`` and ``annotations.json`` (``detseg data synth-video``).
        run_dir: folder with ``tracks.txt`` and ``predictions.json`` (``detseg predict VIDEO --track``).
        class_names: class id -> name (default: the ground truth's categories).
        min_track_frames: tracks shorter than this are not counted as objects (as ``summary.json``).

    Only the frames the run processed (its ``images.json``) are scored: a ``--stride`` or ``--max-frames``
    run is not charged with the frames it skipped (``frames_not_run`` says how many).

    Returns:
        ``tracking_metrics`` over all classes, plus ``frames_not_run``, ``per_class`` (the same per class),
        ``counts`` (true and predicted distinct objects per class, relative error), ``mask`` (COCO
        mask AP, AP50, AP75 over all frames) and ``box`` (box AP).
    """
    from detseg.pipeline.evaluation.metrics import coco_ap

    gt_dir, run_dir = Path(gt_dir), Path(run_dir)
    for need in (gt_dir / "gt.txt", gt_dir / "annotations.json", run_dir / "tracks.txt",
                 run_dir / "predictions.json"):
        if not need.is_file():
            raise InputError(f"missing {need}: expected a synth-video folder and a `detseg predict --track` folder")
    gt, tracks = load_mot(gt_dir / "gt.txt"), load_mot(run_dir / "tracks.txt")
    gt_json, predictions_json = gt_dir / "annotations.json", run_dir / "predictions.json"
    coco = validate_coco(read_json(gt_json), gt_json, unique_file_names=False, evaluation=True)  # frames share a name
    predictions = validate_coco_results(read_json(predictions_json), predictions_json, coco["images"])
    tracks = classes_from_predictions(tracks, predictions)
    frames = frame_count(coco, gt, tracks)
    ran = _frames_run(run_dir / "images.json")
    not_run = sorted({int(im["id"]) for im in coco["images"]} - ran) if ran is not None else []
    if not_run:  # --stride / --max-frames: frames the run never saw are not its misses
        gt = gt[np.isin(gt[:, 0], sorted(ran))]
        coco = {**coco, "images": [im for im in coco["images"] if int(im["id"]) in ran],
                "annotations": [a for a in coco["annotations"] if int(a["image_id"]) in ran]}
    if class_names is None:
        class_names = {c["id"] - 1: c["name"] for c in coco["categories"]}
    report = tracking_metrics(gt, tracks, frames)
    report["frames_not_run"] = len(not_run)
    report["per_class"] = {}
    for c, name in sorted(class_names.items()):
        g, t = gt[gt[:, 7] == c + 1], tracks[tracks[:, 7] == c + 1]
        if len(g):
            report["per_class"][name] = tracking_metrics(g, t, frames)
    # as summary.json: a run that processed fewer frames than min_track_frames asks for a track in every one of them
    processed = len(ran) if ran is not None else frames
    true_counts, pred_counts = count_objects(gt), count_objects(tracks, max(1, min(min_track_frames, processed)))
    total_true, total_pred = sum(true_counts.values()), sum(pred_counts.values())
    report["counts"] = {
        "true": {n: true_counts.get(c, 0) for c, n in sorted(class_names.items())},
        "predicted": {n: pred_counts.get(c, 0) for c, n in sorted(class_names.items())},
        "relative_error": abs(total_pred - total_true) / max(total_true, 1),
    }
    gt_coco = {k: coco[k] for k in ("images", "categories")}
    # numbered from 1: pycocotools counts a match to an annotation with id 0 as no match (0-based ids are common)
    gt_coco["annotations"] = [{**a, "id": i} for i, a in enumerate(coco["annotations"], 1)]
    have_masks = any("segmentation" in p for p in predictions)
    if have_masks:
        bare = next((i for i, a in enumerate(coco["annotations"]) if not a.get("segmentation")), None)
        if bare is not None:
            raise DatasetError(f"annotations[{bare}]: no segmentation, which mask AP of the predictions' masks needs",
                               gt_json)
    if predictions and have_masks:
        m = coco_ap(gt_coco, predictions, "segm")
        report["mask"] = {k: m[k] for k in ("AP", "AP50", "AP75", "mean_iou", "matched")}  # mean_iou: J of matches
    if predictions:
        b = coco_ap(gt_coco, predictions, "bbox")
        report["box"] = {k: b[k] for k in ("AP", "AP50", "AP75")}
    return report


def report_table(report: dict) -> str:
    """A short markdown table of the headline figures."""
    lines = ["| HOTA | IDF1 | MOTA | ID switches | objects (true / counted) | mask AP | mask AP50 |",
             "|---|---|---|---|---|---|---|"]
    mask = report.get("mask", {})
    lines.append(f"| {report['HOTA']:.3f} | {report['IDF1']:.3f} | {report['MOTA']:.3f} | {report['IDSW']} | "
                 f"{sum(report['counts']['true'].values())} / {sum(report['counts']['predicted'].values())} | "
                 f"{mask.get('AP', float('nan')):.3f} | {mask.get('AP50', float('nan')):.3f} |")
    return "\n".join(lines)
