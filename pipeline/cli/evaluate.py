"""``detseg evaluate`` (COCO mask AP of pipeline configurations, :mod:`detseg.pipeline.evaluation.evaluate`)
and ``detseg evaluate-video`` (tracking quality of a tracked run, :mod:`detseg.pipeline.evaluation.track_eval`)."""

from __future__ import annotations

from pathlib import Path

from detseg.errors import InputError
from detseg.pipeline.cli.options import HelpFormatter, fraction, positive_int


def parse_class_map(spec: str | None) -> dict[str, str]:
    """``"det_a=ds_a,det_b=ds_b"`` -> ``{"det_a": "ds_a", ...}``."""
    if not spec:
        return {}
    pairs = {}
    for item in spec.split(","):
        if "=" not in item:
            raise InputError(f"--class-map entries look like detector_name=dataset_name, got {item!r}")
        k, v = item.split("=", 1)
        pairs[k.strip()] = v.strip()
    return pairs


def add_evaluate_command(sub) -> None:
    p = sub.add_parser("evaluate", formatter_class=HelpFormatter,
                       help="COCO mask AP of one or more pipeline configurations")
    p.add_argument("--data", required=True, help="YOLO data.yaml (or its folder) or COCO JSON")
    p.add_argument("--split", default=None, help="dataset split (default: val)")
    p.add_argument("--model", "--detector", dest="detector", default="gt",
                   help="YOLO weights, or gt for the ground-truth boxes (--detector is the old name)")
    p.add_argument("--segmenter", default="grabcut,box",
                   help="comma-separated: SAM checkpoint paths/names, grabcut, box, ellipse, detector (a -seg "
                        "detector's own masks)")
    p.add_argument("--class-map", default=None, help="detector_name=dataset_name,... when names differ")
    p.add_argument("--conf", type=fraction, default=0.001, help="detector confidence threshold")
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N, N or mps")
    p.add_argument("--every", type=positive_int, default=1, help="use every n-th image")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (PR curves, per-class AP)")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    from detseg.pipeline.evaluation.evaluate import evaluate, metrics_table

    report = evaluate(args.data, args.detector, [s.strip() for s in args.segmenter.split(",") if s.strip()],
                      split=args.split, out=args.out, class_map=parse_class_map(args.class_map), conf=args.conf,
                      device=args.device, every=args.every, plots=not args.no_plots)
    print(metrics_table(report))
    print(f"written to {args.out}: metrics.json, metrics.md, predictions, plots")
    return 0


def add_evaluate_video_command(sub) -> None:
    p = sub.add_parser("evaluate-video", formatter_class=HelpFormatter,
                       help="tracking quality (HOTA, IDF1, MOTA, ID switches) and per-frame mask AP "
                                              "of a tracked run against video ground truth")
    p.add_argument("gt", help="ground-truth folder: gt.txt + annotations.json (detseg data synth-video)")
    p.add_argument("run", help="run folder: tracks.txt + predictions.json (detseg predict VIDEO --track)")
    p.add_argument("--out", default=None,
                   help="write video_metrics.json and video_metrics.md here (default: the run folder)")
    p.set_defaults(func=_cmd_evaluate_video)


def _cmd_evaluate_video(args) -> int:
    from detseg.atomic import atomic_write_json, atomic_write_text
    from detseg.pipeline.evaluation.track_eval import evaluate_video, report_table

    report = evaluate_video(args.gt, args.run)
    out = Path(args.out or args.run)
    atomic_write_json(out / "video_metrics.json", report, indent=2)
    table = report_table(report)
    atomic_write_text(out / "video_metrics.md", table + "\n")
    print(table)
    if report["frames_not_run"]:
        print(f"{report['frames_not_run']} frames of the ground truth were not run (--stride / --max-frames) and "
              "are not scored")
    return 0
