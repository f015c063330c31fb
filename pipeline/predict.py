"""``detseg predict``: run a pipeline over images, folders, globs or a video and write the outputs.

Bad inputs lose nothing: unreadable files are listed in ``summary.json`` and the run goes
on; the exit code is non-zero only if nothing could be processed (or, with ``strict``,
at the first failure). ``resume`` skips inputs whose outputs are complete.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import supervision as sv
from tqdm import tqdm

from detseg.atomic import atomic_write_json
from detseg.detectors.yolo import DEFAULT_CONF
from detseg.errors import DetsegError, InputError
from detseg.pipeline.core import Pipeline, stage_totals
from detseg.pipeline.outputs import OutputWriter
from detseg.pipeline.sources import Source, resolve_source
from detseg.pipeline.video import tracking_for
from detseg.segmenter.factory import build_segmenter


def load_categories(coco_json: str | Path | None) -> list[dict] | None:
    """The ``categories`` of a COCO JSON (``--categories``, or the ``--image-ids`` file), or None."""
    if coco_json is None:
        return None
    try:
        cats = json.loads(Path(coco_json).read_text()).get("categories")
        return [{"id": int(c["id"]), "name": str(c["name"])} for c in cats] if cats else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{coco_json}: not a readable COCO JSON with categories ({e})") from None


def load_image_ids(coco_json: str | Path | None) -> dict[str, int]:
    """file name -> image id of a COCO dataset, so predictions.json matches its ids."""
    if coco_json is None:
        return {}
    try:
        data = json.loads(Path(coco_json).read_text())
        return {Path(im["file_name"]).name: int(im["id"]) for im in data["images"]}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"--image-ids {coco_json}: not a readable COCO JSON with images ({e})") from None


RUN_SETTINGS = "run.json"  # what made the outputs in --out: --resume refuses other settings


def _assign_image_ids(src, image_ids: dict[str, int]) -> dict[str, int]:
    """``output name -> image id``: a dataset's ids (``--image-ids``, matched by file name) where
    given, fresh ids above all of them elsewhere, so two images never share an id."""
    ids, taken = {}, set(image_ids.values())
    next_id = max(taken, default=0) + 1
    for path in src.files if not src.is_video else []:
        name = src.names[str(path)]
        given = image_ids.get(Path(path).name)
        if given is not None and given not in ids.values():
            ids[name] = given
        else:
            while next_id in taken:
                next_id += 1
            ids[name] = next_id
            taken.add(next_id)
    return ids


def _check_settings(out: Path, settings: dict, resume: bool) -> None:
    path = out / RUN_SETTINGS
    if resume and path.is_file():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise InputError(f"--resume: {out} was made with other settings ({detail}); "
                             "use another --out, or rerun without --resume")
    atomic_write_json(path, settings, indent=2)


@contextlib.contextmanager
def _run_lock(out: Path):
    """One run at a time per output folder: a second one would overwrite the first's summary."""
    lock = out / ".detseg.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = lock.read_text().strip() if lock.is_file() else "?"
        alive = pid.isdigit() and Path(f"/proc/{pid}").exists()
        if alive:
            raise InputError(f"another detseg run (pid {pid}) is writing to {out}; use another --out") from None
        lock.unlink(missing_ok=True)  # left by a run that was killed
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def run_predict(pipeline: Pipeline, source, out: str | Path, *, stride: int = 1, max_frames: int | None = None,
                save_masks: bool = False, resume: bool = False, strict: bool = False,
                image_ids: dict[str, int] | None = None, progress: bool = True, notes: list[str] = (),
                verbose: bool = False, settings: dict | None = None, categories: list[dict] | None = None,
                track=False, batch_size: int = 1) -> dict:
    """Run ``pipeline`` on ``source`` and write everything under ``out``. Returns the summary dict.

    Args:
        source: anything :func:`~detseg.pipeline.sources.resolve_source` takes (resolved once here).
        categories: a dataset's COCO categories: predictions.json uses their ids (matched by name).
        track: videos only: True for ByteTrack ids with default settings, or a
            :class:`~detseg.pipeline.tracking.Tracker`; a pipeline that assigns ``tracker_id`` itself
            (``assigns_track_ids``, e.g. the keyframe pipeline) is tracked whatever ``track`` says.
            Tracked runs also write ``tracks.txt`` and count distinct objects (:mod:`detseg.pipeline.video`).
        settings: what produced the outputs (detector, segmenter, thresholds); recorded in
            ``out/run.json``, and ``resume`` refuses to mix outputs of other settings.
        batch_size: images of a folder run through SAM's encoder together (:mod:`detseg.pipeline.batching`).
    """
    src = source if isinstance(source, Source) else resolve_source(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if src.root is not None and out.resolve().is_relative_to(src.root.resolve()):  # never read our own outputs
        src.files = [f for f in src.files if not f.resolve().is_relative_to(out.resolve())]
    with _run_lock(out):
        _check_settings(out, {"source": str(source) if not src.kind == "arrays" else "arrays", "stride": stride,
                              **(settings or {})}, resume)
        return _run(pipeline, src, out, stride=stride, max_frames=max_frames, save_masks=save_masks,
                    resume=resume, strict=strict, image_ids=image_ids or {}, progress=progress, notes=notes,
                    verbose=verbose, categories=categories, track=track, batch_size=batch_size)


def _run(pipeline, src, out, *, stride, max_frames, save_masks, resume, strict, image_ids, progress, notes,
         verbose, categories, track, batch_size=1) -> dict:
    class_names = _class_names(pipeline)
    writer = OutputWriter(out, class_names, save_masks=save_masks, categories=categories)
    video = src.is_video
    tracking = tracking_for(pipeline, src.files[0], track, fps=src.video.fps) if video else None
    parts, failures, seconds, skipped = [], [], [], 0
    start = time.perf_counter()
    total = None if video else (len(src.files) if src.kind != "arrays" else len(src.arrays))
    if video and src.video and src.video.frames:
        total = -(-src.video.frames // stride)
        total = min(total, max_frames) if max_frames else total
    bar = tqdm(desc="predict", unit="frame" if video else "img", total=total, disable=not progress)
    ids = _assign_image_ids(src, image_ids)
    only = None
    if resume and not video and src.kind != "arrays":
        # skip finished inputs before reading them; every input keeps its name and image id
        only = set()
        for f in src.files:
            name = src.names[str(f)]
            if writer.done(name):
                parts.append(json.loads((out / "parts" / f"{name}.json").read_text()))
                skipped += 1
                bar.update(1)
            else:
                only.add(str(f))
    # outputs are written by one background thread while the next input is detected and segmented
    # (numpy, OpenCV and torch release the GIL); one thread keeps files and video frames in order
    video_state = {"sink": None, "tmp": None}

    def write(frame, image_id: int) -> tuple[dict, dict]:
        t = time.perf_counter()
        annotated = None
        if video:
            annotate = tracking.annotate if tracking is not None else writer.annotate
            annotated = annotate(frame.image, frame.detections)
            if video_state["sink"] is None:
                h, w = frame.image.shape[:2]
                video_state["tmp"] = out / f".annotated.{os.getpid()}.mp4"
                info = sv.VideoInfo(width=w, height=h, fps=max(1, round(src.video.fps / stride)))
                video_state["sink"] = sv.VideoSink(str(video_state["tmp"]), info).__enter__()
            video_state["sink"].write_frame(annotated)
        part = writer.write(frame.name, image_id, frame.path, frame.image, frame.detections, annotated,
                            frame=frame.frame)
        frame.seconds["write"] = time.perf_counter() - t
        return part, frame.seconds

    pending: deque[Future] = deque()

    def collect(limit: int) -> None:  # results in input order; a writing error surfaces here
        while len(pending) > limit:
            part, frame_seconds = pending.popleft().result()
            parts.append(part)
            seconds.append(frame_seconds)

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detseg-write")
    completed = False
    try:
        for frame in pipeline.run(src, stride=stride, max_frames=max_frames, strict=strict, only=only,
                                  **({"batch_size": batch_size} if batch_size > 1 else {})):
            bar.update(1)
            image_id = ids.get(frame.name, frame.index + 1) if not video else frame.frame + 1
            if not frame.ok:
                failures.append({"path": frame.path or frame.name, "error": frame.error})
                bar.set_postfix(failed=len(failures))
                if verbose:
                    tqdm.write(f"failed: {frame.error}", file=sys.stderr)
                continue
            if tracking is not None:  # in frame order, before the frame is handed to the writing thread
                tracking.update(frame)
            pending.append(executor.submit(write, frame, image_id))
            collect(limit=2)  # at most two frames wait to be written: memory stays bounded
        collect(limit=0)
        completed = True
    finally:
        executor.shutdown(wait=True)  # inputs already segmented are still written completely
        bar.close()
        if video_state["sink"] is not None:
            video_state["sink"].__exit__(None, None, None)
            if completed:  # publish only a complete video under the final name
                os.replace(video_state["tmp"], out / "annotated.mp4")
            else:
                Path(video_state["tmp"]).unlink(missing_ok=True)
    elapsed = time.perf_counter() - start
    summary = build_summary(src, out, class_names, parts, failures, skipped, seconds, elapsed, notes)
    if tracking is not None:
        tracking.finalize(out, summary)
    writer.finalize(parts, summary)
    return summary


def build_summary(src, out, class_names, parts, failures, skipped, seconds, elapsed, notes) -> dict:
    """summary.json's content (both engines): inputs, failures, instances per class, seconds per stage."""
    per_class = Counter(c for p in parts for c in p["classes"])
    processed = len(parts)
    summary = {
        "source": str(src.files[0].parent if src.kind == "image" else (src.root or src.kind)),
        "kind": src.kind,
        "out": str(out),
        "notes": list(notes) + src.warnings,
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
    if src.kind == "image":
        summary["source"] = str(src.files[0])
    return summary


def _class_names(pipeline: Pipeline) -> dict[int, str]:
    names = getattr(pipeline.detector, "class_names", None)  # any detector may expose {id: name}
    return {int(k): str(v) for k, v in dict(names or {}).items()}


def add_predict_command(sub) -> None:
    p = sub.add_parser("predict", help="segment images, a folder, a glob or a video",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Detect, segment and write annotated images/video, YOLO-seg labels, COCO "
                                   "predictions and summary.json under --out.")
    p.add_argument("source", help="image, folder (recursive), glob pattern, or video file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--detector", default=None,
                   help="YOLO weights (default: the shipped food detector); an open-vocabulary model "
                        "(yoloe-11s-seg.pt, yolov8s-worldv2.pt) detects the --classes names given")
    p.add_argument("--segmenter", default="auto",
                   help="SAM checkpoint path or name (mobile_sam.pt, sam_b.pt, ...), grabcut, box or ellipse; "
                        "auto: mobile_sam.pt if present or downloadable, else grabcut")
    p.add_argument("--device", default="auto")
    p.add_argument("--conf", type=float, default=DEFAULT_CONF, help="detector confidence threshold")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    p.add_argument("--imgsz", type=int, default=None, help="detector input size (default: the model's own)")
    p.add_argument("--max-det", type=int, default=300, help="maximum detections per image")
    p.add_argument("--agnostic-nms", action=argparse.BooleanOptionalAction, default=True,
                   help="NMS across classes: one object never gets two class labels")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names or ids to keep; for an open-vocabulary detector, the "
                        "names to detect (e.g. croissant,cookie,cupcake)")
    p.add_argument("--multimask", choices=("single", "best", "all"), default="single")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--stride", type=int, default=1, help="video: process every n-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="video: stop after this many processed frames")
    p.add_argument("--save-masks", action="store_true", help="also write PNG instance masks")
    p.add_argument("--resume", action="store_true", help="skip inputs whose outputs are already complete")
    p.add_argument("--strict", action="store_true", help="stop at the first input that fails")
    p.add_argument("--image-ids", default=None,
                   help="COCO JSON whose image ids (matched by file name) and category ids (matched by class "
                        "name) predictions.json should use")
    p.add_argument("--categories", default=None,
                   help="COCO JSON whose category ids predictions.json should use (default: --image-ids' file)")
    p.add_argument("--track", action=argparse.BooleanOptionalAction, default=None,
                   help="video: ByteTrack ids, tracks.txt (MOTChallenge) and distinct object counts "
                        "(default: on for videos; --no-track for independent frames)")
    p.add_argument("--keyframe-every", type=int, default=1, metavar="K",
                   help="video: run the detector (and SAM 2 box prompts) on every K-th frame only; SAM 2's video "
                        "memory carries the masks between (needs a SAM 2 --segmenter, e.g. sam2.1_t.pt)")
    from detseg.pipeline.distributed import add_engine_arguments  # --engine ray (Ray Data), --batch

    add_engine_arguments(p)
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="also print each failed input as it happens")
    p.set_defaults(func=_cmd_predict)


def _check_writable(out: Path) -> None:
    """Fail with one line, before the models load, when --out cannot be written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".detseg-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"--out {out} is not writable ({e.strerror or e})") from None


def _cmd_predict(args) -> int:
    import sys

    from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector
    for name, value, low, high in (("--conf", args.conf, 0, 1), ("--iou", args.iou, 0, 1)):
        if not low <= value <= high:
            raise InputError(f"{name} must be in [{low}, {high}], got {value}")
    if args.max_det < 1 or (args.imgsz is not None and args.imgsz < 32):
        raise InputError(f"--max-det must be >= 1 and --imgsz >= 32, got {args.max_det} and {args.imgsz}")
    if args.stride < 1 or (args.max_frames is not None and args.max_frames < 1):
        raise InputError(f"--stride and --max-frames must be >= 1, got {args.stride} and {args.max_frames}")
    if args.keyframe_every < 1:
        raise InputError(f"--keyframe-every must be >= 1, got {args.keyframe_every}")
    source = resolve_source(args.source)  # a bad source or --out fails before any model loads
    if args.keyframe_every > 1 and (not source.is_video or args.track is False):
        raise InputError("--keyframe-every needs a video source and tracking (drop --no-track)")
    _check_writable(Path(args.out))
    weights = args.detector or DEFAULT_WEIGHTS
    if args.engine == "ray":  # the same outputs, written by Ray Data actors
        from detseg.pipeline.distributed import cmd_predict_ray

        return cmd_predict_ray(args, source, predict_settings(args, weights))
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes:
        classes = [int(c) if c.isdigit() else c for c in classes]
    detector = YoloDetector(weights, conf=args.conf, iou=args.iou, classes=classes, imgsz=args.imgsz,
                            device=args.device, max_det=args.max_det, agnostic_nms=args.agnostic_nms).load()
    if args.keyframe_every > 1:  # keyframe mode: SAM 2 video memory between detector keyframes
        from detseg.pipeline.keyframes import build_keyframe_pipeline

        pipeline, note = build_keyframe_pipeline(detector, args.segmenter, args.keyframe_every, args.device,
                                                 fps=source.video.fps / args.stride)
    else:
        segmenter, note = build_segmenter(args.segmenter, args.device, args.multimask, args.precision)
        pipeline = Pipeline(detector, segmenter)
    if not args.quiet:
        print(note, file=sys.stderr)
    track = args.track if args.track is not None else source.is_video  # on by default for videos
    from detseg.pipeline.batching import resolve_batch_size

    summary = run_predict(pipeline, source, args.out, settings=predict_settings(args, weights), stride=args.stride,
                          max_frames=args.max_frames, save_masks=args.save_masks, resume=args.resume,
                          strict=args.strict, image_ids=load_image_ids(args.image_ids), notes=[note],
                          progress=not args.quiet, categories=load_categories(args.categories or args.image_ids),
                          track=track, verbose=args.verbose,
                          batch_size=resolve_batch_size(args.batch, getattr(pipeline, "segmenter", None))
                          if args.keyframe_every == 1 else 1)
    for warning in source.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return report(args, summary)


def predict_settings(args, weights) -> dict:
    """What produced the outputs (run.json): ``--resume`` refuses to mix other settings (either engine)."""
    return {"detector": str(weights), "segmenter": args.segmenter, "conf": args.conf, "iou": args.iou,
            "imgsz": args.imgsz, "max_det": args.max_det, "agnostic_nms": args.agnostic_nms,
            "classes": args.classes, "multimask": args.multimask, "precision": args.precision,
            "keyframe_every": args.keyframe_every}


def report(args, summary: dict) -> int:
    """Print the failures and a one-line result; raise when nothing could be processed."""
    for failure in summary["failed"]:
        print(f"failed: {failure['error']}", file=sys.stderr)
    if not args.quiet:
        print(f"{summary['processed']} of {summary['inputs']} inputs processed, {summary['instances']} instances "
          f"{summary['instances_per_class']}; outputs in {args.out}", file=sys.stderr)
    if summary["processed"] == 0:
        raise DetsegError("nothing could be processed" + (f": {summary['failed'][0]['error']}"
                                                          if summary["failed"] else ""))
    return 0
