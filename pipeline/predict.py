"""``detseg predict``: run a pipeline over images, folders, globs or a video and write the outputs.

Bad inputs lose nothing: unreadable files are listed in ``summary.json`` and the run goes
on; the exit code is non-zero only if nothing could be processed (or, with ``strict``,
at the first failure). ``resume`` skips inputs whose outputs are complete.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
from tqdm import tqdm

from detseg.errors import DetsegError, InputError, WeightsError
from detseg.pipeline.autolabel import DatasetWriter, MinMaskScore
from detseg.pipeline.core import Pipeline, stage_totals
from detseg.pipeline.outputs import OutputWriter, output_name
from detseg.pipeline.sources import is_video, list_files, video_info
from detseg.segmenter.factory import build_segmenter

def load_image_ids(coco_json: str | Path | None) -> dict[str, int]:
    """file name -> image id of a COCO dataset, so predictions.json matches its ids."""
    if coco_json is None:
        return {}
    try:
        data = json.loads(Path(coco_json).read_text())
        return {Path(im["file_name"]).name: int(im["id"]) for im in data["images"]}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"--image-ids {coco_json}: not a readable COCO JSON with images ({e})") from None


def run_predict(pipeline: Pipeline, source, out: str | Path, *, stride: int = 1, max_frames: int | None = None,
                save_masks: bool = False, resume: bool = False, strict: bool = False,
                image_ids: dict[str, int] | None = None, progress: bool = True, notes: list[str] = (),
                save_dataset: str | Path | None = None, val_fraction: float = 0.2,
                min_mask_score: float | None = None) -> dict:
    """Run ``pipeline`` on ``source`` and write everything under ``out``. Returns the summary dict.

    ``save_dataset``: also write a YOLO-seg dataset there (see :mod:`detseg.pipeline.autolabel`), split
    ``val_fraction`` into val. ``min_mask_score``: drop detections whose mask score is below it, from
    every output; how many is ``summary["dropped_low_mask_score"]``.
    """
    out = Path(out)
    class_names = _class_names(pipeline)
    dataset = DatasetWriter(save_dataset, source, class_names, val_fraction, resume) if save_dataset else None
    out.mkdir(parents=True, exist_ok=True)
    min_score = None
    if min_mask_score is not None:
        min_score = MinMaskScore(min_mask_score)
        pipeline = Pipeline(pipeline.detector, pipeline.segmenter, pipeline.box_steps,
                            [*pipeline.mask_steps, min_score])
    writer = OutputWriter(out, class_names, save_masks=save_masks)
    video = is_video(source)
    root = Path(source) if not isinstance(source, (list, tuple)) and Path(str(source)).is_dir() else None
    parts, failures, seconds, skipped = [], [], [], 0
    start = time.perf_counter()
    bar = tqdm(desc="predict", unit="frame" if video else "img", disable=not progress)
    image_ids = image_ids or {}
    run_source, index_of = source, {}
    if resume and not video and not isinstance(source, (list, tuple)):
        # skip finished inputs before reading them; keep every input's original index (its image id)
        files = list_files(source)
        index_of = {str(f): i for i, f in enumerate(files)}
        run_source = []
        for f in files:
            name = output_name(str(f), root, index_of[str(f)])
            if writer.done(name):
                parts.append(json.loads((out / "parts" / f"{name}.json").read_text()))
                skipped += 1
                if dataset is not None:
                    dataset.add(str(f), out / "labels" / f"{name}.txt")
            else:
                run_source.append(str(f))
    # outputs are written by one background thread while the next input is detected and segmented
    # (numpy, OpenCV and torch release the GIL); one thread keeps files and video frames in order
    video_state = {"writer": None, "tmp": None}

    def write(frame, name: str, image_id: int) -> tuple[dict, dict]:
        t = time.perf_counter()
        annotated = None
        if video:
            annotated = writer.annotate(frame.image, frame.detections)
            if video_state["writer"] is None:
                info = video_info(Path(source))
                h, w = frame.image.shape[:2]
                video_state["tmp"] = out / f".annotated.{os.getpid()}.mp4"
                video_state["writer"] = cv2.VideoWriter(str(video_state["tmp"]), cv2.VideoWriter_fourcc(*"mp4v"),
                                                        info["fps"] / stride, (w, h))
            video_state["writer"].write(annotated)
        part = writer.write(name, image_id, frame.path, frame.image, frame.detections, annotated)
        if dataset is not None:  # the label file just written, hard-linked beside the original image
            dataset.add(frame.path, out / "labels" / f"{name}.txt", frame.image if video else None)
        frame.seconds["write"] = time.perf_counter() - t
        return part, frame.seconds

    pending: deque[Future] = deque()

    def collect(limit: int) -> None:  # results in input order; a writing error surfaces here
        while len(pending) > limit:
            part, frame_seconds = pending.popleft().result()
            parts.append(part)
            seconds.append(frame_seconds)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detseg-write")
    try:
        frames = pipeline.run(run_source, stride=stride, max_frames=max_frames, strict=strict)
        for frame in frames:
            bar.update(1)
            index = index_of.get(frame.path, frame.index)
            name = output_name(frame.path, root, index)
            image_id = image_ids.get(Path(frame.path).name, index + 1)
            if not frame.ok:
                failures.append({"path": frame.path or name, "error": frame.error})
                bar.set_postfix(failed=len(failures))
                continue
            pending.append(executor.submit(write, frame, name, image_id))
            collect(limit=2)  # at most two frames wait to be written: memory stays bounded
        collect(limit=0)
    finally:
        executor.shutdown(wait=True)  # inputs already segmented are still written completely
        bar.close()
        if video_state["writer"] is not None:
            video_state["writer"].release()
            os.replace(video_state["tmp"], out / "annotated.mp4")  # complete: publish under the final name
    elapsed = time.perf_counter() - start
    per_class = Counter(c for p in parts for c in p["classes"])
    processed = len(parts)
    summary = {
        "source": str(source) if not isinstance(source, (list, tuple)) else f"{len(source)} inputs",
        "out": str(out),
        "notes": list(notes),
        "inputs": processed + len(failures),
        "processed": processed,
        "resumed_skipped": skipped,
        "failed": failures,
        "instances_per_class": {name: per_class.get(name, 0) for name in class_names.values()},
        "instances": sum(per_class.values()),
        "seconds_per_stage": {k: round(v, 4) for k, v in stage_totals(seconds).items()},
        "seconds_total": round(elapsed, 3),
        "images_per_second": round((processed - skipped) / elapsed, 3) if elapsed > 0 else None,
    }
    if min_score is not None:
        summary["dropped_low_mask_score"] = min_score.dropped
    if dataset is not None:
        summary["dataset"] = dataset.finalize(min_score.dropped if min_score is not None else None)
    writer.finalize(parts, summary)
    return summary


def _class_names(pipeline: Pipeline) -> dict[int, str]:
    names = getattr(pipeline.detector, "class_names", None)  # any detector may expose {id: name}
    return {int(k): str(v) for k, v in dict(names or {}).items()}


def add_predict_command(sub) -> None:
    p = sub.add_parser("predict", help="segment images, a folder, a glob or a video")
    p.add_argument("source", help="image, folder (recursive), glob pattern, or video file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--detector", default=None, help="YOLO weights (default: the shipped food detector)")
    p.add_argument("--segmenter", default="auto",
                   help="SAM checkpoint path or name (mobile_sam.pt, sam_b.pt, ...), grabcut, box or ellipse; "
                        "auto: mobile_sam.pt if present or downloadable, else grabcut")
    p.add_argument("--device", default="auto")
    p.add_argument("--conf", type=float, default=0.25, help="detector confidence threshold")
    p.add_argument("--classes", default=None, help="comma-separated class names or ids to keep")
    p.add_argument("--multimask", choices=("single", "best", "all"), default="single")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--stride", type=int, default=1, help="video: process every n-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="video: stop after this many processed frames")
    p.add_argument("--save-masks", action="store_true", help="also write PNG instance masks")
    p.add_argument("--resume", action="store_true", help="skip inputs whose outputs are already complete")
    p.add_argument("--strict", action="store_true", help="stop at the first input that fails")
    p.add_argument("--image-ids", default=None, help="COCO JSON whose image ids predictions.json should use")
    p.add_argument("--save-dataset", metavar="DIR", default=None,
                   help="also write a YOLO-seg dataset (data.yaml, images/, labels/ per split) from the masks, "
                        "trainable with `detseg train --task segment`; video frames are written as JPEG")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="--save-dataset: share of images in val, by a stable hash of the path (default: %(default)s)")
    p.add_argument("--min-mask-score", type=float, default=None,
                   help="drop detections whose mask score is below this (from every output); the count is "
                        "printed and in summary.json")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args) -> int:
    import sys

    from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector

    from detseg.pipeline.sources import check_source

    check_source(args.source)  # a bad source fails before any model loads
    weights = args.detector or DEFAULT_WEIGHTS
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes:
        classes = [int(c) if c.isdigit() else c for c in classes]
    detector = YoloDetector(weights, conf=args.conf, classes=classes, device=args.device).load()
    segmenter, note = build_segmenter(args.segmenter, args.device, args.multimask, args.precision)
    print(note, file=sys.stderr)
    pipeline = Pipeline(detector, segmenter)
    summary = run_predict(pipeline, args.source, args.out, stride=args.stride, max_frames=args.max_frames,
                          save_masks=args.save_masks, resume=args.resume, strict=args.strict,
                          image_ids=load_image_ids(args.image_ids), notes=[note], save_dataset=args.save_dataset,
                          val_fraction=args.val_fraction, min_mask_score=args.min_mask_score)
    for failure in summary["failed"]:
        print(f"failed: {failure['error']}", file=sys.stderr)
    print(f"{summary['processed']} of {summary['inputs']} inputs processed, {summary['instances']} instances "
          f"{summary['instances_per_class']}; outputs in {args.out}", file=sys.stderr)
    if "dropped_low_mask_score" in summary:
        print(f"dropped {summary['dropped_low_mask_score']} detection(s) with mask score < {args.min_mask_score}",
              file=sys.stderr)
    if "dataset" in summary:
        ds = summary["dataset"]
        print(f"dataset in {args.save_dataset}: {ds['images']['train']} train / {ds['images']['val']} val images "
              f"({ds['negatives']['train'] + ds['negatives']['val']} without detections, kept as negatives)"
              + (f"; {ds['video_frames_as_jpeg']} video frames written as JPEG" if ds["video_frames_as_jpeg"] else "")
              + (f"; skipped {len(ds['skipped_not_trainable'])} file(s) ultralytics cannot train on"
                 if ds["skipped_not_trainable"] else ""), file=sys.stderr)
    if summary["processed"] == 0:
        raise DetsegError("nothing could be processed" + (f": {summary['failed'][0]['error']}"
                                                          if summary["failed"] else ""))
    return 0
