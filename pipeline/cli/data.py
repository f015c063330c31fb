"""``detseg data``: synth, check, convert, synth-video."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from detseg.errors import DetsegError
from detseg.pipeline.cli.options import (
    MAX_IMGSZ,
    HelpFormatter,
    UsageError,
    finite_float,
    fraction,
    imgsz,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_int,
    seed,
)

MIN_VIDEO_SIDE = 128  # the items of `data synth-video` are up to about 120 pixels across
MAX_VIDEO_PIXELS = 2**28  # frames x width x height: about 8 bytes a pixel (image, masks) stay in memory


def add_data_commands(sub) -> None:
    data = sub.add_parser("data", formatter_class=HelpFormatter, help="generate, check and convert datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)

    synth = dsub.add_parser("synth", formatter_class=HelpFormatter,
                            help="generate the synthetic food dataset (exact masks)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--train", type=non_negative_int, default=100, help="training images")
    synth.add_argument("--val", type=non_negative_int, default=20, help="validation images")
    synth.add_argument("--test", type=non_negative_int, default=0, help="test images")
    synth.add_argument("--seed", type=seed, default=0, help="same seed and arguments -> identical files")
    synth.add_argument("--imgsz", type=imgsz, default=640,
                       help="image side in pixels: square synthetic scenes; with --backgrounds, the long side "
                            "of each composite (the photo's aspect is kept)")
    synth.add_argument("--coco-masks", choices=("polygon", "rle"), default="polygon",
                       help="COCO segmentation format: polygons (default) or exact RLE")
    synth.add_argument("--workers", type=int_range(1, 256), default=1,
                       help="processes rendering in parallel (e.g. the number of cores); same files for any number")
    synth.add_argument("--backgrounds", metavar="DIR",
                       help="real photos to composite the items onto (matched to each photo's light, colour cast, "
                            "sharpness and noise), "
                            "with unlabelled look-alike foods; photos must not show the classes; each photo "
                            "belongs to one split (80/10/10%% train/val/test by file name)")
    synth.add_argument("--exclude", metavar="FILE",
                       help="text file of background file names to skip (one per line), e.g. photos showing cookies")
    synth.add_argument("--photo-fraction", type=fraction, default=0.8,
                       help="with --backgrounds: share of images composited on a real photo (default: %(default)s)")
    synth.add_argument("--negatives", type=non_negative_float, default=0.0,
                       help="with --backgrounds: add this fraction of background-only photos with empty labels "
                            "(default: %(default)s)")
    synth.add_argument("--real-items", metavar="JSON",
                       help="with --backgrounds: COCO boxes of hand-labelled real photos (e.g. "
                            "data/real/uj-train-cookies.json); their items are cut out and pasted into train "
                            "composites")
    synth.add_argument("--real-images", metavar="DIR",
                       help="folder of the --real-items photos (default: --backgrounds)")
    synth.add_argument("--real-repeat", type=non_negative_int, default=0,
                       help="also add each --real-items photo to train this many times (default: %(default)s)")
    synth.set_defaults(func=_cmd_synth)

    check = dsub.add_parser("check", formatter_class=HelpFormatter,
                            help="validate a YOLO or COCO dataset and print a summary")
    check.add_argument("path", help="data.yaml, a folder holding one, or a COCO .json")
    check.add_argument("--images", help="image folder of a COCO .json (default: beside it)")
    check.add_argument("--fast", action="store_true",
                       help="labels and image headers only: skip decoding every image and the cross-split check")
    check.set_defaults(func=_cmd_check)

    convert = dsub.add_parser("convert", formatter_class=HelpFormatter, help="convert a dataset between YOLO and COCO")
    convert.add_argument("path", help="source: data.yaml / folder (YOLO) or a COCO .json")
    convert.add_argument("--to", required=True, choices=("coco", "yolo"), help="target format")
    convert.add_argument("--out", required=True, help="output folder")
    convert.add_argument("--images", help="image folder of a COCO .json source (default: beside it)")
    convert.add_argument("--exist-ok", action="store_true",
                         help="write into a non-empty --out (files this conversion does not write stay there); "
                              "the source's own folder needs no flag")
    convert.set_defaults(func=_cmd_convert)

    video = dsub.add_parser("synth-video", formatter_class=HelpFormatter,
                            help="generate a synthetic video with exact masks and track ids (MOT GT)")
    video.add_argument("--out", required=True, help="output folder (video.mp4, gt.txt, annotations.json)")
    video.add_argument("--frames", type=positive_int, default=60, help="number of frames")
    video.add_argument("--seed", type=seed, default=0, help="same seed and arguments -> identical files")
    side = int_range(MIN_VIDEO_SIDE, MAX_IMGSZ, what="a frame side in pixels")
    video.add_argument("--width", type=side, default=640,
                       help=f"frame width in pixels (>= {MIN_VIDEO_SIDE}: the items are up to about 120 pixels)")
    video.add_argument("--height", type=side, default=384, help=f"frame height in pixels (>= {MIN_VIDEO_SIDE})")
    video.add_argument("--fps", type=finite_float(0, 1000, lo_open=True), default=12.0,
                       help="frames per second of video.mp4")
    video.set_defaults(func=_cmd_synth_video)


def _cmd_synth(args) -> int:
    from detseg.data.synth.generate import generate_dataset

    counts = {"train": args.train, "val": args.val, "test": args.test}  # each >= 0, checked by the parser
    backgrounds = None
    if args.backgrounds:
        from detseg.data.synth.generate import list_backgrounds

        try:
            backgrounds = list_backgrounds(args.backgrounds, args.exclude or ())
        except (OSError, ValueError) as e:
            raise DetsegError(f"--backgrounds: {e}") from None
    elif args.negatives or args.exclude or args.real_items:
        raise DetsegError("--negatives, --exclude and --real-items need --backgrounds DIR")
    real_items = None
    if args.real_items:
        real_items = (str(args.real_items), str(args.real_images or args.backgrounds))
        if not Path(args.real_items).is_file():
            raise DetsegError(f"--real-items: file not found: {args.real_items}")
        _check_real_items(Path(args.real_items))
    if args.real_repeat and not args.real_items:
        raise DetsegError("--real-repeat must be >= 0 and needs --real-items")
    summary = generate_dataset(args.out, counts, seed=args.seed, imgsz=args.imgsz, masks_as=args.coco_masks,
                               workers=args.workers, backgrounds=backgrounds, photo_fraction=args.photo_fraction,
                               negatives=args.negatives, real_items=real_items, real_repeat=args.real_repeat)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_synth_video(args) -> int:
    from detseg.data.synth.synth_video import generate_video

    pixels = args.frames * args.width * args.height
    if pixels > MAX_VIDEO_PIXELS:  # every frame is held in memory until the files are written
        raise UsageError(f"data synth-video: --frames x --width x --height is {pixels:,} pixels, more than the "
                         f"{MAX_VIDEO_PIXELS:,} one clip may have (every frame and its masks stay in memory "
                         f"until the files are written): fewer or smaller frames")
    try:
        summary = generate_video(args.out, frames=args.frames, width=args.width, height=args.height, seed=args.seed,
                                 fps=args.fps)
    except ValueError as e:
        raise DetsegError(f"synth-video: {e}") from None
    print(json.dumps(summary, indent=2))
    return 0


def _check_real_items(path: Path) -> None:
    """A ``--real-items`` file is a sound COCO JSON of boxes whose categories are the generator's classes."""
    from detseg.data.coco_format import validate_coco
    from detseg.data.synth.food_items import CLASS_NAMES
    from detseg.data.validate import read_json

    coco = validate_coco(read_json(path), path, unique_file_names=False)  # a DatasetError names the problem
    unknown = sorted({c["name"] for c in coco["categories"]} - set(CLASS_NAMES))
    if unknown:
        raise DetsegError(f"--real-items {path}: categories {unknown} are not the generator's classes "
                          f"{list(CLASS_NAMES)}")


def _cmd_check(args) -> int:
    from detseg.data.io import load_dataset

    dataset = load_dataset(args.path, images=args.images)
    print(dataset.summary_table())
    if args.fast:
        return 0
    from detseg.data.verify import verify_dataset

    problems = verify_dataset(dataset)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if problems:
        raise DetsegError(f"{len(problems)} problem(s) found (listed above)")
    print("every image decodes, sizes match, no image is in two splits")
    return 0


def _cmd_convert(args) -> int:
    from detseg.data.dataset import clip_to_images
    from detseg.data.io import load_dataset, save_dataset

    out, source = Path(args.out).resolve(), Path(args.path).resolve()
    folder = source if source.is_dir() else source.parent
    own = {folder, folder.parent} if folder.name == "annotations" else {folder}  # converting in place
    if out.is_dir() and any(out.iterdir()) and out not in own and not args.exist_ok:
        raise DetsegError(f"--out {args.out} already holds files, which would mix with the conversion's (an older "
                          "split or label left behind): choose a new or empty folder, or pass --exist-ok")
    dataset = load_dataset(args.path, images=args.images)
    dataset, clipped = clip_to_images(dataset)
    if clipped.clipped or clipped.dropped:
        print(f"warning: {clipped}", file=sys.stderr)
    written = save_dataset(dataset, args.out, args.to)
    print(f"wrote {args.to.upper()} dataset to {written}")
    return 0
