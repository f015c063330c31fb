"""The ``detseg predict`` command: options, checks made before any model loads, the report.

The work itself is :func:`detseg.pipeline.predict.run_predict` (or, with ``--engine ray``,
:mod:`detseg.pipeline.scale.ray_engine`).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from detseg.data.validate import as_dict, as_int, as_list, as_str, at, fail, key, leaves, read_json
from detseg.detectors.yolo import DEFAULT_CONF
from detseg.errors import DetsegError, InputError
from detseg.pipeline.cli.options import (
    HelpFormatter,
    auto_or_positive_int,
    fraction,
    imgsz,
    non_negative_float,
    positive_int,
    sam_imgsz,
)
from detseg.pipeline.predict import RunOptions, run_predict
from detseg.pipeline.sources import resolve_source

_COCO_OBJECT = 'a COCO JSON object {"images": [{"id", "file_name", ...}, ...], "categories": [...]}'


def load_categories(coco_json: str | Path | None) -> list[dict] | None:
    """The ``categories`` of a COCO JSON (``--categories``, or the ``--image-ids`` file), or None (none given).

    Raises:
        DatasetError: the file is unreadable, not JSON, or its categories are not objects with an integer
            ``id`` (each once) and a string ``name`` (one line: ``file: categories[2].id: what``).
    """
    if coco_json is None:
        return None
    path = Path(coco_json)
    data = as_dict(read_json(path), path, "", _COCO_OBJECT)
    cats = data.get("categories")
    if not cats:
        return None
    from detseg.data.coco_format import validate_categories

    return [{"id": c["id"], "name": c["name"]} for c in validate_categories(cats, path)]


def load_image_ids(coco_json: str | Path | None) -> dict[str, int]:
    """file name -> image id of a COCO dataset (``--image-ids``), so predictions.json matches its ids.

    The file is a COCO JSON object whose ``images`` are objects with an integer ``id`` (each once) and a
    ``file_name`` that stays inside the image folder (no absolute path, no ``..`` out of it, as
    :func:`~detseg.data.coco_format.load_coco` requires); inputs are matched by their path relative to the source
    folder (``sub/x.jpg``), or by base name where only one ``file_name`` has it.

    Raises:
        DatasetError: the first problem, in one line: ``file: images[3].id: expected an integer, got list``.
    """
    if coco_json is None:
        return {}
    path = Path(coco_json)
    data = as_dict(read_json(path), path, "", _COCO_OBJECT)
    images = as_list(key(data, "images", path, ""), path, "images")
    ids, seen = {}, {}
    for i, im in enumerate(images):
        where = at("images", i)
        as_dict(im, path, where)
        image_id = as_int(key(im, "id", path, where), path, at(where, "id"))
        file_name = as_str(key(im, "file_name", path, where), path, at(where, "file_name"))
        if leaves(".", file_name):
            fail(path, at(where, "file_name"), f"{file_name!r} leaves the image folder (an absolute path or ../)")
        if image_id in seen:
            fail(path, at(where, "id"), f"duplicate image id {image_id} (also images[{seen[image_id]}])")
        seen[image_id] = i
        ids[Path(file_name).as_posix()] = image_id
    return ids


def add_predict_command(sub) -> None:
    p = sub.add_parser("predict", help="segment images, a folder, a glob or a video",
                       formatter_class=HelpFormatter,
                       description="Detect, segment and write annotated images/video, YOLO-seg labels, COCO "
                                   "predictions and summary.json under --out.")
    p.add_argument("source", help="image, folder (recursive), glob pattern, or video file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", "--detector", dest="detector", default=None,
                   help="YOLO weights (default: the shipped food detector); an open-vocabulary model "
                        "(yoloe-11s-seg.pt, yolov8s-worldv2.pt) detects the --classes names given; "
                        "ultralytics' model= (--detector is the old name)")
    p.add_argument("--segmenter", default="auto",
                   help="SAM checkpoint path or name (mobile_sam.pt, sam_b.pt, ...), grabcut, box, ellipse, or "
                        "detector (a -seg detector's own masks, e.g. a distilled student's); auto: mobile_sam.pt if "
                        "present or downloadable, else grabcut")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N, N or mps")
    p.add_argument("--conf", type=fraction, default=DEFAULT_CONF, help="detector confidence threshold")
    p.add_argument("--iou", type=fraction, default=0.7, help="NMS IoU threshold")
    p.add_argument("--imgsz", type=imgsz, default=None, help="detector input size (default: the model's own)")
    p.add_argument("--max-det", type=positive_int, default=300, help="maximum detections per image")
    p.add_argument("--agnostic-nms", action=argparse.BooleanOptionalAction, default=True,
                   help="NMS across classes: one object never gets two class labels")
    p.add_argument("--augment", action="store_true",
                   help="test-time augmentation (3 scales, one flipped; about 3x the detector's time)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names or ids to keep; for an open-vocabulary detector, the "
                        "names to detect (e.g. croissant,cookie,cupcake)")
    p.add_argument("--multimask", choices=("single", "best", "all"), default="single",
                   help="SAM: one mask per box (single) or the best of three by predicted IoU (best); all three "
                        "(all) is for the Python API, the files hold one mask per box")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="SAM: fp32, bf16 autocast (CPU or CUDA) or fp16 autocast (CUDA)")
    p.add_argument("--sam-imgsz", type=sam_imgsz, default=None,
                   help="SAM: its square input side, a multiple of 64 from 256 (default: SAM's own, 1024); "
                        "512 runs the encoder about 4x faster, with coarser masks")
    p.add_argument("--stride", "--vid-stride", dest="stride", type=positive_int, default=1,
                   help="video: process every n-th frame (ultralytics' vid_stride)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="video: stop after this many processed frames")
    p.add_argument("--save-masks", action="store_true", help="also write PNG instance masks")
    p.add_argument("--resume", action="store_true", help="finish an earlier run in --out: skip inputs whose "
                   "outputs are complete (refused if its settings differ)")
    p.add_argument("--exist-ok", action="store_true", help="write into a non-empty --out (an earlier run's, or "
                   "files detseg did not write); files this run does not rewrite stay")
    p.add_argument("--strict", action="store_true", help="stop at the first input that fails")
    p.add_argument("--image-ids", default=None,
                   help="COCO JSON whose image ids (matched by file name) and category ids (matched by class "
                        "name) predictions.json should use")
    p.add_argument("--categories", default=None,
                   help="COCO JSON whose category ids predictions.json should use (default: --image-ids' file)")
    p.add_argument("--track", action=argparse.BooleanOptionalAction, default=None,
                   help="video: track ids (ByteTrack; SAM 2's memory with --keyframe-every), tracks.txt "
                        "(MOTChallenge) and distinct object counts (default: on for videos; --no-track for "
                        "independent frames)")
    p.add_argument("--keyframe-every", type=positive_int, default=1, metavar="K",
                   help="video: run the detector (and SAM 2 box prompts) on every K-th frame only; SAM 2's video "
                        "memory carries the masks and ids between (needs a SAM 2 --segmenter, e.g. sam2.1_t.pt); "
                        "masks that follow each object through time, not speed: it measured slower than per-frame "
                        "SAM 2 on a CPU and on an H200 (README, Videos)")

    add_engine_arguments(p)
    p.add_argument("--save-dataset", metavar="DIR", default=None,
                   help="also write a YOLO-seg dataset (data.yaml, images/, labels/ per split) from the masks, "
                        "trainable with `detseg train --task segment`; video frames are written as JPEG")
    p.add_argument("--val-fraction", type=fraction, default=0.2,
                   help="--save-dataset: share of images in val, by a stable hash of the path")
    p.add_argument("--min-mask-score", type=fraction, default=None,
                   help="drop detections whose mask score is below this (from every output); the count is "
                        "printed and in summary.json. Scores: SAM's predicted IoU; GrabCut's colour separation "
                        "(0 = its ellipse fallback); 1 for --segmenter box/ellipse")
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

    # every number's range was checked by the parser (detseg.pipeline.cli.options); what the engine can do, here
    if args.engine == "ray":

        check_ray_options(args)
    source = resolve_source(args.source)  # a bad source or --out fails before any model loads
    from detseg.pipeline.predict import claim_output_folder

    claim_output_folder(Path(args.out), resume=args.resume, exist_ok=args.exist_ok)
    if args.multimask == "all":  # the files hold one mask per box: "all" would write what "best" writes
        raise InputError("--multimask all keeps SAM's three masks per box for Python (SamSegmenter(multimask='all'): "
                         "data['mask_candidates']); detseg predict writes one mask per box: use --multimask best")
    if args.keyframe_every > 1 and not source.is_video:
        raise InputError(f"--keyframe-every {args.keyframe_every} needs a video source (SAM 2 carries each object "
                         f"between keyframes); {args.source} is not a video")
    if args.keyframe_every > 1 and args.track is False:
        raise InputError("--keyframe-every needs tracking: drop --no-track")
    if args.keyframe_every > 1 and args.min_mask_score is not None:  # said before any model loads
        raise InputError(f"--min-mask-score {args.min_mask_score} does not apply to --keyframe-every: SAM 2's "
                         "memory carries each object between keyframes")
    _check_writable(Path(args.out))
    ignored = ignored_video_options(args, source)
    for line in ignored:  # said before the run starts, and kept in summary.json's notes
        print(f"note: {line}", file=sys.stderr)
    try:  # a malformed ids file fails in one line before any model loads, naming its flag
        image_ids = load_image_ids(args.image_ids)
        categories = load_categories(args.categories or args.image_ids)
    except DetsegError as e:
        flag = "--image-ids" if args.image_ids and str(args.image_ids) in str(e) else "--categories"
        raise InputError(f"{flag}: {e}") from None
    weights = args.detector or DEFAULT_WEIGHTS
    if args.engine == "ray":  # the same outputs, written by Ray Data actors
        return cmd_predict_ray(args, source, weights, ignored, image_ids, categories)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes:
        classes = [int(c) if c.isdigit() else c for c in classes]
    detector = YoloDetector(weights, conf=args.conf, iou=args.iou, classes=classes, imgsz=args.imgsz,
                            device=args.device, max_det=args.max_det, agnostic_nms=args.agnostic_nms,
                            augment=args.augment).load()
    if args.keyframe_every > 1:  # keyframe mode: SAM 2 video memory between detector keyframes
        from detseg.pipeline.video.keyframes import build_keyframe_pipeline

        pipeline, note = build_keyframe_pipeline(detector, args.segmenter, args.keyframe_every, args.device,
                                                 fps=source.video.fps / args.stride, sam=sam_options(args))
    else:  # --segmenter detector: a -seg detector's own masks
        from detseg.pipeline.factory import build_pipeline

        pipeline, note = build_pipeline(detector, args.segmenter, args.device, sam_options(args))
    if not args.quiet:
        print(note, file=sys.stderr)
    video = source.is_video  # the video-only options are not passed for images (run.json records stride 1)
    track = (args.track if args.track is not None else True) if video else False  # on by default for videos
    from detseg.pipeline.batching import resolve_batch_size

    options = run_options(args, weights, [note, *ignored], image_ids, categories,
                          stride=args.stride if video else 1, max_frames=args.max_frames if video else None,
                          strict=args.strict, track=track, verbose=args.verbose, save_dataset=args.save_dataset,
                          val_fraction=args.val_fraction, min_mask_score=args.min_mask_score,
                          batch_size=resolve_batch_size(args.batch, getattr(pipeline, "segmenter", None))
                          if args.keyframe_every == 1 else 1)
    summary = run_predict(pipeline, source, args.out, options)
    for warning in source.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return report(args, summary)


def ignored_video_options(args, source) -> list[str]:
    """One note naming the video-only options (``--track``, ``--stride``, ``--max-frames``) given with an
    image, a folder or a glob, which has no frames to track or skip; empty for a video or when none is given."""
    if source.is_video:
        return []
    given = [flag for flag, on in (("--track", args.track is True), (f"--stride {args.stride}", args.stride != 1),
                                   (f"--max-frames {args.max_frames}", args.max_frames is not None)) if on]
    if not given:
        return []
    what = {"image": "an image", "folder": "a folder of images", "glob": "a glob of images"}.get(source.kind, "images")
    named = given[0] if len(given) == 1 else f"{', '.join(given[:-1])} and {given[-1]}"
    return [f"{named} {'applies' if len(given) == 1 else 'apply'} to videos only: ignored for {what}"]


def run_options(args, weights, notes: list[str], image_ids: dict[str, int], categories: list[dict] | None,
                **engine_fields) -> RunOptions:
    """The :class:`~detseg.pipeline.predict.RunOptions` of a ``predict`` command line: what both engines take
    from it, plus ``engine_fields`` (the local engine's video, dataset and score options; the Ray batch)."""
    return RunOptions(settings=predict_settings(args, weights), save_masks=args.save_masks, resume=args.resume,
                      exist_ok=args.exist_ok, image_ids=image_ids, categories=categories, progress=not args.quiet,
                      notes=notes, **engine_fields)


def predict_settings(args, weights) -> dict:
    """What produced the outputs (run.json): ``--resume`` refuses to mix other settings (either engine)."""
    return {"detector": str(weights), "segmenter": args.segmenter, "conf": args.conf, "iou": args.iou,
            "imgsz": args.imgsz, "max_det": args.max_det, "agnostic_nms": args.agnostic_nms,
            "classes": args.classes, "multimask": args.multimask, "precision": args.precision,
            "keyframe_every": args.keyframe_every, "augment": args.augment, "sam_imgsz": args.sam_imgsz}


def sam_options(args):
    """The :class:`~detseg.segmenter.factory.SamOptions` of a ``predict`` command line."""
    from detseg.segmenter.factory import SamOptions

    return SamOptions(multimask=args.multimask, precision=args.precision, imgsz=args.sam_imgsz)


def report(args, summary: dict) -> int:
    """Print the failures and a one-line result; raise when nothing could be processed."""
    failed, nothing = summary["failed"], summary["processed"] == 0
    if not (nothing and len(failed) == 1):  # a lone failure is said once, by the error below
        for failure in failed:
            print(f"failed: {failure['error']}", file=sys.stderr)
    if not args.quiet and not (nothing and failed):
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
    if nothing:
        raise DetsegError("nothing could be processed" + (f": {failed[0]['error']}" if len(failed) == 1 else
                                                          f": all {len(failed)} inputs failed" if failed else ""))
    return 0


# --engine ray (Ray Data): the command-line side; the engine itself is detseg.pipeline.scale.ray_engine
def add_engine_arguments(p) -> None:
    """``--engine``, ``--workers``, ``--gpus-per-worker``, ``--ray-address`` and ``--batch`` of ``detseg predict``."""
    from detseg.pipeline.scale.ray_engine import INSTALL_HINT

    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help=f"local: this process; ray: Ray Data actors, the same output files (images only; "
                        f"{INSTALL_HINT})")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="ray: actors, each with its own detector and segmenter")
    p.add_argument("--gpus-per-worker", type=non_negative_float, default=0,
                   help="ray: GPUs per actor (e.g. 1, or 0.5 to share)")
    p.add_argument("--threads-per-worker", type=positive_int, default=1, help="ray: torch/OpenCV threads per actor")
    p.add_argument("--ray-address", default=None,
                   help="ray: join this cluster (auto, host:6379, ray://host:10001); default: start a local "
                        "instance listening on 127.0.0.1 only. Inputs and --out must be on a file system every "
                        "node sees")
    p.add_argument("--batch", type=auto_or_positive_int, default="auto",
                   help="images per SAM encoder call (and per Ray batch); auto: 1 on a CPU, 8 on a GPU")


RAY_UNSUPPORTED = (("save_dataset", "--save-dataset"), ("min_mask_score", "--min-mask-score"),
                   ("strict", "--strict"))


def check_ray_options(args) -> None:
    """Refuse, in one line and before Ray starts or a model loads, the ``predict`` options the Ray engine
    does not implement (rather than run and silently ignore them)."""
    given = [flag for name, flag in RAY_UNSUPPORTED if getattr(args, name, None) is not None
             and getattr(args, name) is not False]  # --min-mask-score 0 is given too
    if given:
        raise InputError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} not supported with "
                         f"--engine ray: use --engine local")


def cmd_predict_ray(args, source, weights, notes: list[str], image_ids: dict[str, int],
                    categories: list[dict] | None) -> int:
    """The CLI's ``--engine ray`` branch (arguments already checked and files read by ``_cmd_predict``)."""
    check_ray_options(args)
    from detseg.pipeline.scale.ray_engine import PipelineSpec, RayOptions, import_ray, predict

    import_ray()  # fail in one line before any model loads
    from detseg.detectors import YoloDetector
    from detseg.pipeline.batching import GPU_BATCH, resolve_batch_size
    from detseg.pipeline.factory import OWN_MASKS, OWN_MASKS_NOTE, segmenter_note, uses_own_masks
    from detseg.segmenter.factory import build_segmenter

    if source.is_video:
        raise InputError("--engine ray takes images (a file, a folder or a glob); run a video with --engine local")
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if classes:
        classes = [int(c) if c.isdigit() else c for c in classes]
    detector_options = dict(conf=args.conf, iou=args.iou, classes=classes, imgsz=args.imgsz, max_det=args.max_det,
                            agnostic_nms=args.agnostic_nms, augment=args.augment)
    # choose the segmenter once, here (a bad checkpoint fails now; "auto" resolves the same for every worker)
    segmenter = None
    detector = YoloDetector(weights, device="cpu", **detector_options)  # loaded only if asked
    sam = sam_options(args)
    if uses_own_masks(args.segmenter, detector, sam):
        resolved, note = OWN_MASKS, OWN_MASKS_NOTE  # a -seg detector's own masks
    else:  # fp16 is checked on the GPU, by the workers
        segmenter, note = build_segmenter(args.segmenter, "cpu",
                                          replace(sam, precision="fp32") if sam.precision == "fp16" else sam)
        resolved = getattr(segmenter, "checkpoint", None) or args.segmenter
        if resolved == "auto":
            resolved = "grabcut"
        note = segmenter_note(note, detector)  # loads the detector once here, as the local engine does
    device = "cpu" if args.gpus_per_worker == 0 else args.device
    spec = PipelineSpec(args.detector, str(resolved), device, sam, detector_options)
    on_gpu = args.gpus_per_worker > 0 and args.batch == "auto" and callable(getattr(segmenter, "embed_batch", None))
    batch = GPU_BATCH if on_gpu else resolve_batch_size(args.batch, segmenter)
    del segmenter
    if not args.quiet:
        print(note, file=sys.stderr)
    options = run_options(args, weights, [note, *notes], image_ids, categories, batch_size=batch)
    engine = RayOptions(workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                        threads_per_worker=args.threads_per_worker, ray_address=args.ray_address)
    summary = predict(spec, source, args.out, options, engine)
    for warning in source.warnings:  # as the local engine says them
        print(f"warning: {warning}", file=sys.stderr)
    return report(args, summary)
