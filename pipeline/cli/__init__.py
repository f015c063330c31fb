"""The ``detseg`` command line: the parser, the top-level dispatch and the entry point.

Each command group has its own module: :mod:`~detseg.pipeline.cli.data` (``data synth / check / convert /
synth-video``), :mod:`~detseg.pipeline.cli.train` (``train``, ``val``, ``export``),
:mod:`~detseg.pipeline.cli.predict` (``predict``, both engines) and :mod:`~detseg.pipeline.cli.evaluate`
(``evaluate``, ``evaluate-video``); :mod:`~detseg.pipeline.cli.options` holds the range-checked option
types and the one-line parser. The command line is the only place that parses arguments and prints.

Every user error (bad path, bad dataset, missing weights, ...) is raised as a
:class:`detseg error <detseg.errors.DetsegError>` subclass and printed here as one line,
with exit code 2; only genuine bugs show a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detseg.errors import DetsegError
from detseg.pipeline.cli.options import OneLineParser, UsageError


def build_parser() -> argparse.ArgumentParser:
    # the command modules are imported here, not at import: prepare_environment must run before ultralytics loads
    from detseg import __version__
    from detseg.pipeline.cli.data import add_data_commands
    from detseg.pipeline.cli.evaluate import add_evaluate_command, add_evaluate_video_command
    from detseg.pipeline.cli.predict import add_predict_command
    from detseg.pipeline.cli.train import add_export_command, add_train_command, add_val_command

    parser = OneLineParser(prog="detseg", description="YOLO boxes + SAM masks = instance segmentation.")
    parser.add_argument("--version", action="version", version=f"detseg {__version__}")
    parser.add_argument("--trust-weights", action="store_true",
                        help="load .pt files whose pickle names code outside what ultralytics checkpoints contain "
                             "(only for files you trust; accepted anywhere on the line; sets DETSEG_TRUST_WEIGHTS=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in (add_data_commands, add_train_command, add_val_command, add_export_command, add_predict_command,
                     add_evaluate_command, add_evaluate_video_command):
        register(sub)
    return parser


def prepare_environment() -> None:
    """Settings a command-line run needs before ultralytics is first imported (the user's own win).

    - ``YOLO_AUTOINSTALL=false``: never install packages behind the user's back (ultralytics
      would, e.g. a HEIF plugin for a file Pillow cannot identify).
    - ``OMP_NUM_THREADS`` = the cores this process may use: ultralytics sets it to 1 when it is
      imported before torch, and torch then runs every op (training, detection, SAM) on one core.
    - ``YOLO_OFFLINE=true``: ultralytics then skips its online check (two DNS lookups per import) and,
      since it believes it is offline, sends no usage events, whatever its ``sync`` setting says.
      The user's settings file is not touched. Downloading a weights name the user asked for
      (``yolov8n.pt``) still works: :func:`detseg.assets.resolve_weights` lifts it for that download.
      A user who sets ``YOLO_OFFLINE`` themselves keeps their value.
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from detseg.assets import silence_ultralytics_network

    silence_ultralytics_network()
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``detseg`` console script. Returns the exit code."""
    prepare_environment()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--trust-weights" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        argv.remove("--trust-weights")  # accepted before or after the command name, like a global flag
        from detseg.pickle_scan import TRUST_ENV

        os.environ[TRUST_ENV] = "1"
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # every option's range is checked here, before any work
        out = getattr(args, "out", None)
        if out is not None and getattr(args, "out_is_folder", True) and Path(out).is_file():
            raise UsageError(f"--out {out} is a file, not a folder")  # every command's --out but export's
        return int(args.func(args) or 0)
    except DetsegError as e:
        print(f"detseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("detseg: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the machine, not the code: a full disk, a permission, a vanished file
        where = f": {e.filename}" if e.filename else ""
        print(f"detseg: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1

