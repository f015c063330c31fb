"""``detseg predict --engine ray``: the same run on Ray Data, with the same output files.

The driver resolves the source, assigns every input its output name and image id (as the
local engine does), skips inputs already done (``--resume``) and hands the rest to Ray Data:
``from_items`` of the file list, then ``map_batches`` on a pool of actors. Each actor builds
the detector and segmenter once, runs :meth:`Pipeline.run` on its batch (reading, detecting,
segmenting, reporting bad files exactly as locally) and writes each input's files with
:class:`~detseg.pipeline.outputs.OutputWriter` (atomic, the part file last), returning the
parts. The driver then assembles predictions.json, images.json and summary.json with the
same code as the local engine. A retried batch (an actor that died is restarted by Ray)
rewrites the same files with the same bytes, and only the parts of its successful attempt
reach the driver: nothing is lost or duplicated.

Example:
    >>> from detseg.pipeline.predict import RunOptions                                    # doctest: +SKIP
    >>> from detseg.pipeline.scale.ray_engine import PipelineSpec, RayOptions, predict   # doctest: +SKIP
    >>> spec = PipelineSpec(segmenter="mobile_sam.pt", device="cuda")
    >>> summary = predict(spec, "photos/", "runs/ray", RunOptions(save_masks=True),
    ...                   RayOptions(workers=4, gpus_per_worker=1))

On a cluster (``ray_address``) every worker must see the inputs and ``out`` at the same
paths (a shared file system).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from detseg.errors import DetsegError, InputError
from detseg.segmenter.factory import SamOptions

INSTALL_HINT = 'pip install "detseg[ray]"'

if TYPE_CHECKING:
    from detseg.pipeline.predict import RunOptions


class MissingDependencyError(DetsegError, ImportError):
    """An optional dependency (Ray) is not installed."""


def import_ray():
    """``ray`` and ``ray.data``, or a one-line :class:`MissingDependencyError` saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(f"--engine ray needs Ray Data, which is not installed ({e.name or e}): "
                                     f"{INSTALL_HINT}") from None
    return ray


@dataclass
class PipelineSpec:
    """A picklable recipe of a :class:`~detseg.pipeline.Pipeline`: each worker builds its own from it.

    Args:
        detector: YOLO weights (default: the shipped food detector).
        segmenter: what :func:`~detseg.segmenter.factory.build_segmenter` takes (``grabcut``, a SAM checkpoint...).
        device: ``auto``, ``cpu``, ``cuda``; a Ray worker sees only the GPUs Ray gave it.
        sam: :class:`~detseg.segmenter.factory.SamOptions` of a SAM segmenter (multimask, precision, input size).
        detector_options: other :class:`~detseg.detectors.YoloDetector` arguments (conf, iou, classes, ...).
    """

    detector: str | None = None
    segmenter: str = "grabcut"
    device: str = "auto"
    sam: SamOptions = field(default_factory=SamOptions)
    detector_options: dict = field(default_factory=dict)

    def with_absolute_paths(self) -> PipelineSpec:
        """The same recipe with a local weights file or folder named by its absolute path: a worker on a cluster
        node resolves a relative path against its own working directory, not the driver's. Names ultralytics
        downloads (``yolov8n.pt``, ``mobile_sam.pt`` where no such file is here) and ``grabcut`` stay as they are."""
        def absolute(value):
            return os.path.abspath(value) if value is not None and os.path.exists(value) else value

        return replace(self, detector=absolute(self.detector), segmenter=absolute(self.segmenter))

    def build_detector(self):
        from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector

        return YoloDetector(self.detector or DEFAULT_WEIGHTS, device=self.device, **self.detector_options).load()

    def __call__(self):
        """Build and load the pipeline (what a worker does once)."""
        from detseg.pipeline.factory import build_pipeline

        return build_pipeline(self.build_detector(), self.segmenter, self.device, self.sam)[0]


class PredictWorker:
    """A Ray Data actor: one pipeline and one :class:`OutputWriter`, built once; a batch of inputs in,
    their parts out (one row per input: ``index``, ``name``, ``part`` JSON or ``error``, ``seconds`` JSON)."""

    def __init__(self, factory, out: str, class_names: dict, save_masks: bool, categories, batch_size: int,
                 threads: int | None, root: str | None = None):
        if threads:
            import cv2
            import torch

            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
        from detseg.pipeline.core import Pipeline
        from detseg.pipeline.outputs import OutputWriter

        self.pipeline = factory if isinstance(factory, Pipeline) else factory()
        self.writer = OutputWriter(out, class_names, save_masks=save_masks, categories=categories, root=root)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        from detseg.pipeline.sources import Source

        paths = [str(p) for p in batch["path"]]
        index = {p: int(i) for p, i in zip(paths, batch["index"])}
        given = {p: str(g) for p, g in zip(paths, batch["given"])}
        ids = {str(n): int(i) for n, i in zip(batch["name"], batch["image_id"])}
        src = Source("glob", files=[Path(p) for p in paths], names=dict(zip(paths, (str(n) for n in batch["name"]))))
        rows = {"index": [], "name": [], "path": [], "part": [], "error": [], "seconds": []}
        extra = {"batch_size": self.batch_size} if self.batch_size > 1 else {}
        for frame in self.pipeline.run(src, **extra):
            part, error = "", frame.error
            if frame.ok:
                t = time.perf_counter()
                part = json.dumps(self.writer.write(frame.name, ids[frame.name], frame.path, frame.image,
                                                    frame.detections, given=given[frame.path]))
                frame.seconds["write"] = time.perf_counter() - t
            for key, value in (("index", index[frame.path]), ("name", frame.name), ("path", frame.path),
                               ("part", part), ("error", error), ("seconds", json.dumps(frame.seconds))):
                rows[key].append(value)
        return rows


#: seconds to wait for a TCP answer at ``--ray-address`` before saying nothing listens there
CONNECT_TIMEOUT = 10.0


def _start_ray(ray, address: str | None, workers: int, cpus_per_worker: float):
    """Join ``address``, or start a local instance sized for the workers. True when this call started Ray.

    A local instance serves this machine only: its servers bind to the loopback address, not to the
    machine's network address (Ray's single-machine mode, the one it uses on macOS and Windows). To
    serve other machines, start a cluster with ``ray start --head --node-ip-address=IP`` and pass
    ``--ray-address``. A ``host:port`` address is tried first, so a wrong one fails in seconds.
    """
    if address:
        _check_reachable(address)  # also when Ray already runs in this process: the address named must answer
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **options)
        return True
    from ray._private import ray_constants

    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False  # node address = loopback, for this start only
    try:
        ray.init(num_cpus=max(int(workers * cpus_per_worker + 0.999), 1), **options)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
    return True


def _check_reachable(address: str, timeout: float | None = None) -> None:
    """Raise a one-line :class:`InputError` unless something answers TCP at ``address``'s host and port.

    ``auto`` (Ray finds the cluster itself) is not checked; ``ray://host:port`` and ``host:port`` are.
    """
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: expected auto, host:port or ray://host:port")
    wait = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=wait).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise InputError(f"--ray-address {address}: no Ray cluster answers there ({why} within {wait:g} s); "
                         f"start one with `ray start --head` or leave --ray-address out for a local "
                         f"instance") from None


@dataclass(frozen=True)
class RayOptions:
    """The Ray engine's own settings; the run's (``save_masks``, ``resume``, ``batch_size``, ...) are a
    :class:`~detseg.pipeline.predict.RunOptions`.

    Attributes:
        workers: actors in the pool (each builds its own pipeline).
        gpus_per_worker, cpus_per_worker: Ray resources of each actor.
        threads_per_worker: torch / OpenCV threads in each actor (None: leave their defaults).
        ray_address: a running cluster to join (``auto``, ``ray://host:10001``); None starts a local instance
            (and stops it at the end) unless Ray is already initialised in this process.
        max_retries: restarts of a dead actor and retries of its batch.
    """

    workers: int = 2
    gpus_per_worker: float = 0
    cpus_per_worker: float = 1
    threads_per_worker: int | None = 1
    ray_address: str | None = None
    max_retries: int = 3


#: :class:`~detseg.pipeline.predict.RunOptions` fields the Ray engine does not implement: refused when set
UNSUPPORTED = ("stride", "max_frames", "strict", "track", "save_dataset", "min_mask_score", "verbose")


def predict(pipeline, source, out, options: RunOptions | None = None, engine: RayOptions | None = None, *,
            class_names: dict[int, str] | None = None) -> dict:
    """Run a pipeline over images on Ray Data and write what :func:`~detseg.pipeline.predict.run_predict` writes.

    Args:
        pipeline: a :class:`PipelineSpec` or any picklable zero-argument callable returning a
            :class:`~detseg.pipeline.Pipeline` (each actor calls it once), or a Pipeline (pickled to each actor).
        source: an image, a folder, a glob or a list of paths (no video).
        options: the run's settings, as for the local engine (``batch_size``: images per Ray batch; above 1 SAM
            encodes a batch's images together); the :data:`UNSUPPORTED` ones are refused.
        engine: workers, resources, cluster address, retries (:class:`RayOptions`).
        class_names: ``{id: name}`` of the outputs (default: the pipeline's detector's).

    Returns:
        The summary dict (also in ``out/summary.json``), with ``engine`` and ``workers`` added.

    Raises:
        MissingDependencyError: Ray is not installed.
        InputError: a video source, an unsupported option, or bad worker / batch settings.
    """
    from detseg.pipeline.outputs import OutputWriter
    from detseg.pipeline.predict import (
        RunOptions,
        _assign_image_ids,
        _check_settings,
        _remove_leftovers,
        _run_lock,
        build_summary,
        claim_output_folder,
    )
    from detseg.pipeline.sources import Source, resolve_source

    options = options if options is not None else RunOptions()
    engine = engine if engine is not None else RayOptions()
    defaults = RunOptions()
    unsupported = [name for name in UNSUPPORTED if getattr(options, name) not in (getattr(defaults, name), None)]
    if unsupported:
        raise InputError(f"{', '.join(unsupported)} {'is' if len(unsupported) == 1 else 'are'} not supported by the "
                         "Ray engine: use run_predict (--engine local)")
    ray = import_ray()
    workers, batch_size, notes = engine.workers, options.batch_size, list(options.notes)
    if workers < 1 or batch_size < 1 or engine.gpus_per_worker < 0 or engine.cpus_per_worker <= 0:
        raise InputError(f"workers and batch size must be >= 1, gpus >= 0 and cpus > 0 per worker; got {workers}, "
                         f"{batch_size}, {engine.gpus_per_worker} and {engine.cpus_per_worker}")
    src = source if isinstance(source, Source) else resolve_source(source)
    if src.is_video or src.arrays and any(not isinstance(a, (str, os.PathLike)) for a in src.arrays):
        raise InputError("--engine ray takes image files (an image, a folder, a glob or a list of paths); "
                         "run a video or in-memory arrays with --engine local")
    given, source_setting = src, src.record()  # as the local engine says
    if src.kind == "arrays":  # a list of paths
        src = Source("glob", files=[Path(p) for p in src.arrays], names=src.names)
    out = Path(out)
    claim_output_folder(out, resume=options.resume, exist_ok=options.exist_ok)
    out.mkdir(parents=True, exist_ok=True)
    if src.root is not None and out.resolve().is_relative_to(src.root.resolve()):  # never read our own outputs
        src.files = [f for f in src.files if not f.resolve().is_relative_to(out.resolve())]
    class_names = class_names if class_names is not None else _class_names_of(pipeline)
    with _run_lock(out):
        _check_settings(out, options.run_json(source_setting), options.resume)
        writer = OutputWriter(out, class_names, save_masks=options.save_masks, categories=options.categories,
                              root=src.root)
        parts, failures, seconds, todo, kept = [], [], [], [], {}
        for i, f in enumerate(src.files):
            name = src.names[str(f)]
            part, unusable = writer.finished(name) if options.resume else (None, "")
            if unusable:  # an empty or truncated part file (a power loss): that input is done again
                print(unusable, file=sys.stderr)
                notes = [*notes, unusable]
            if part is not None:
                parts.append(part)
                kept[name] = part["image"]["id"]
            else:  # absolute: a worker on another node does not share the driver's working directory
                todo.append({"index": i, "path": os.path.abspath(f), "given": str(f), "name": name})
        ids = _assign_image_ids(src, options.image_ids or {}, kept)
        for item in todo:
            item["image_id"] = ids[item["name"]]
        skipped = len(parts)
        start = time.perf_counter()
        if todo:
            started = _start_ray(ray, engine.ray_address, workers, engine.cpus_per_worker)
            if isinstance(pipeline, PipelineSpec):
                pipeline = pipeline.with_absolute_paths()
            try:
                rows = _run_actors(ray, todo, pipeline, Path(os.path.abspath(out)), class_names, options, engine,
                                   total=len(src.files), done=skipped,
                                   root=Path(os.path.abspath(src.root)) if src.root is not None else None)
            finally:
                if started:
                    ray.shutdown()
            for row in sorted(rows, key=lambda r: r["index"]):
                if row["error"]:  # the path as given, as the local engine reports it
                    failures.append({"path": str(src.files[row["index"]]), "error": row["error"]})
                else:
                    parts.append(json.loads(row["part"]))
                    seconds.append(json.loads(row["seconds"]))
        _remove_leftovers(out)  # what a killed actor left; no writer is alive now
        elapsed = time.perf_counter() - start
        summary = build_summary(given, out, class_names, parts, failures, skipped, seconds, elapsed, notes)
        summary.update(engine="ray", workers=workers)
        writer.finalize(parts, summary)
    return summary


def _run_actors(ray, todo, pipeline, out, class_names, options: RunOptions, engine: RayOptions, total, done,
                root=None) -> list[dict]:
    from ray.data import DataContext
    from tqdm import tqdm

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # one bar, ours, counting inputs as the local engine does
    ctx.verbose_progress = False
    ds = ray.data.from_items(todo)
    workers, batch_size, max_retries = engine.workers, options.batch_size, engine.max_retries
    kwargs = dict(out=str(out), class_names=class_names, save_masks=options.save_masks, categories=options.categories,
                  batch_size=batch_size, threads=engine.threads_per_worker,
                  root=str(root) if root is not None else None)
    with warnings.catch_warnings():
        # Ray >= 2.60 calls max_restarts / max_task_retries deprecated "ray_remote_args" (its defaults: no limit);
        # a bound keeps an input that kills its actor every time from retrying forever
        warnings.simplefilter("ignore", DeprecationWarning)
        results = ds.map_batches(PredictWorker, fn_constructor_args=(pipeline,), fn_constructor_kwargs=kwargs,
                                 batch_size=batch_size, batch_format="numpy",
                                 compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=engine.cpus_per_worker,
                                 num_gpus=engine.gpus_per_worker or None, max_restarts=max_retries,
                                 max_task_retries=max_retries)
    rows = []
    # Ray Data's own INFO lines ("Starting execution of Dataset ...", "Execution plan ...") and its warning that
    # its progress bars are off (ours counts the inputs) say nothing a user acts on; its errors still show
    ray_data_log = logging.getLogger("ray.data")
    level = ray_data_log.level
    ray_data_log.setLevel(logging.ERROR)
    try:
        with tqdm(desc=f"predict (ray, {workers} workers)", unit="img", total=total, initial=done,
                  disable=not options.progress) as bar:
            for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
                batch_rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
                rows += [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in batch_rows]
                bar.update(len(batch_rows))
                failed = sum(1 for r in rows if r["error"])
                if failed:
                    bar.set_postfix(failed=failed)
    finally:
        ray_data_log.setLevel(level)
    return rows


def _class_names_of(pipeline) -> dict[int, str]:
    """``{id: name}`` of the pipeline's detector, built in the driver only where needed."""
    from detseg.pipeline.core import Pipeline

    if isinstance(pipeline, PipelineSpec):
        detector = pipeline.build_detector()
    elif isinstance(pipeline, Pipeline):
        detector = pipeline.detector
    else:
        detector = pipeline().detector
    return {int(k): str(v) for k, v in dict(getattr(detector, "class_names", None) or {}).items()}
