"""``detseg predict``: run a pipeline over images, folders, globs or a video and write the outputs.

Bad inputs lose nothing: unreadable files are listed in ``summary.json`` and the run goes
on; the exit code is non-zero only if nothing could be processed (or, with ``strict``,
at the first failure). ``resume`` skips inputs whose outputs are complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from detseg.atomic import atomic_write_json, is_detseg_temp, temp_name
from detseg.data.validate import got, read_json
from detseg.errors import DatasetError, InputError
from detseg.pipeline.autolabel import DatasetWriter, MinMaskScore
from detseg.pipeline.core import Pipeline, stage_totals
from detseg.pipeline.outputs import OutputWriter
from detseg.pipeline.sources import Source, relative_in, resolve_source
from detseg.pipeline.video.tracked import tracking_for
from detseg.video_writer import VideoWriter

if TYPE_CHECKING:
    from detseg.pipeline.video.tracking import Tracker

RUN_SETTINGS = "run.json"  # what made the outputs in --out: --resume refuses other settings
# a run.json written before a setting was recorded ran with this value
SETTINGS_ADDED_LATER = {"augment": False, "save_masks": False, "min_mask_score": None, "categories": None,
                        "image_ids": None}


@dataclass(frozen=True)
class RunOptions:
    """The settings of one run of a pipeline over a source: :func:`run_predict` takes one, and so does the Ray
    engine (:func:`detseg.pipeline.scale.ray_engine.predict`, beside its own engine settings).

    ``out/run.json`` records what made the outputs: the source (``resume`` compares only its kind and path),
    the fields marked ``run_json`` below (``stride``, ``save_masks``, ``min_mask_score``, ``categories``, and
    ``image_ids`` as a digest) and ``settings``; ``resume`` refuses to finish a run whose record differs, naming
    each field that does (:meth:`run_json`). A run.json written before a field was recorded counts as having
    its default (``SETTINGS_ADDED_LATER``).

    Example:
        >>> from detseg.pipeline.predict import RunOptions, run_predict                         # doctest: +SKIP
        >>> run_predict(pipe, "clip.mp4", "runs/clip", RunOptions(stride=2, track=True))        # doctest: +SKIP

    Attributes:
        stride: videos: process every n-th frame.
        max_frames: videos: stop after this many processed frames.
        save_masks: also write PNG instance masks.
        resume: finish an earlier run in ``out``: skip inputs whose outputs are complete.
        exist_ok: write into a non-empty ``out`` that :func:`claim_output_folder` would refuse.
        strict: stop at the first input that fails.
        image_ids: ``file_name`` -> image id of a COCO dataset: predictions.json uses those ids (matched as
            :func:`_assign_image_ids` says).
        categories: a dataset's COCO categories: predictions.json uses their ids (matched by name).
        track: videos only: True for ByteTrack ids with default settings, or a
            :class:`~detseg.pipeline.video.tracking.Tracker`; a pipeline that assigns ``tracker_id`` itself
            (``assigns_track_ids``, e.g. the keyframe pipeline) is tracked whatever ``track`` says.
            Tracked runs also write ``tracks.txt`` and count distinct objects (:mod:`detseg.pipeline.video.tracked`).
        batch_size: images of a folder run through SAM's encoder together (:mod:`detseg.pipeline.batching`);
            the Ray engine's images per batch.
        save_dataset: also write a YOLO-seg dataset there (:mod:`detseg.pipeline.autolabel`), split
            ``val_fraction`` into val.
        val_fraction: the share of ``save_dataset``'s images in val.
        min_mask_score: drop detections whose mask score is below it, from every output; how many
            is ``summary["dropped_low_mask_score"]``.
        progress: a progress bar.
        verbose: also print each failed input as it happens.
        notes: lines for summary.json's ``notes``.
        settings: what else produced the outputs (detector, segmenter, thresholds: ``detseg predict`` records
            its options); written to run.json, key by key beside the fields above.
    """

    stride: int = field(default=1, metadata={"run_json": True})
    max_frames: int | None = None
    save_masks: bool = field(default=False, metadata={"run_json": True})
    resume: bool = False
    exist_ok: bool = False
    strict: bool = False
    image_ids: dict[str, int] | None = field(default=None, metadata={"run_json": True})
    categories: list[dict] | None = field(default=None, metadata={"run_json": True})
    track: bool | Tracker = False
    batch_size: int = 1
    save_dataset: str | Path | None = None
    val_fraction: float = 0.2
    min_mask_score: float | None = field(default=None, metadata={"run_json": True})
    progress: bool = True
    verbose: bool = False
    notes: Sequence[str] = ()
    settings: dict | None = None

    def run_json(self, source: dict) -> dict:
        """What run.json records: ``source`` (the source's record), the fields that describe the outputs, then
        ``settings``; ``resume`` compares each key (of the source only its kind and path)."""
        described = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("run_json")}
        if self.image_ids:  # a dataset's ids can be many: a digest of them says whether they changed
            text = json.dumps(sorted(self.image_ids.items()), separators=(",", ":"))
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            described["image_ids"] = f"{len(self.image_ids)} ids, sha256 {digest}"
        else:
            described["image_ids"] = None
        return {"source": source, **described, **(self.settings or {})}


def _assign_image_ids(src, image_ids: dict[str, int], kept: dict[str, int] | None = None) -> dict[str, int]:
    """``output name -> image id``, no id given twice.

    ``kept`` (``--resume``): ``output name -> id`` of inputs already done; they keep their ids and nobody else
    gets one of them (files added to or removed from a folder since would otherwise shift the ids). Other inputs
    take a dataset's id (``--image-ids``: ``file_name`` -> id) where it names them, matched by their path
    relative to the source folder (``sub/x.jpg``), or by base name where only one of the dataset's file names
    has it; the rest get fresh ids above all of the dataset's.
    """
    kept = kept or {}
    ids = dict(kept)
    taken = set(image_ids.values()) | set(kept.values())
    used = set(kept.values())
    by_base = Counter(Path(f).name for f in image_ids)
    base_id = {Path(f).name: i for f, i in image_ids.items() if by_base[Path(f).name] == 1}
    next_id = max(image_ids.values(), default=0) + 1
    for path in src.files if not src.is_video else []:
        name = src.names[str(path)]
        if name in kept:
            continue
        relative = relative_in(Path(path), Path(src.root)).as_posix() if src.root is not None else None
        given = image_ids.get(relative) if relative in image_ids else base_id.get(Path(path).name)
        if given is not None and given not in used:
            ids[name] = given
        else:
            while next_id in taken:
                next_id += 1
            ids[name] = next_id
            taken.add(next_id)
        used.add(ids[name])
    return ids


def _compared(value):
    """What ``--resume`` compares of a setting: all of it, but of the source only its kind and path (a file
    added to the folder since is a new input, not another run)."""
    if isinstance(value, dict) and {"kind", "path"} <= set(value):
        return {"kind": value["kind"], "path": value["path"]}
    return value


def _same(before, now) -> bool:
    """Whether ``--resume`` sees a setting unchanged. A run.json written before 2026-12-07 stored the source
    as the path given on the command line (``"arrays"`` for arrays): it matches the same path, resolved."""
    if isinstance(before, str) and isinstance(now, dict) and {"kind", "path"} <= set(now):
        if now["path"] is None:
            return before == "arrays" and now["kind"] == "arrays"
        return Path(before).resolve() == Path(now["path"])
    if isinstance(before, dict) and isinstance(now, dict) and before.get("kind") == now.get("kind") == "glob" \
            and before.get("path") is None:  # written before 2026-12-08, when a glob's pattern was not recorded
        return True
    return _compared(before) == _compared(now)


def _check_settings(out: Path, settings: dict, resume: bool) -> None:
    """Write ``settings`` (:meth:`RunOptions.run_json`) to run.json; with ``resume``, first compare them key by
    key with the earlier run's and refuse, naming every key that differs.

    A run that does not resume in a folder an earlier run wrote (``exist_ok``) starts its bookkeeping afresh: the
    earlier run's part files go, so a later ``--resume`` never counts an input as done with other settings.
    """
    path = out / RUN_SETTINGS
    if not resume and path.is_file() and (out / "parts").is_dir():
        for part in (out / "parts").glob("*.json"):
            part.unlink(missing_ok=True)
    if resume and path.is_file():
        try:
            before = read_json(path)
        except DatasetError as e:  # empty or truncated: atomic writes do not fsync, a power loss can leave one
            raise InputError(f"--resume: {e}; the earlier run's settings cannot be compared: delete that file to "
                             "resume anyway, or rerun without --resume") from None
        if not isinstance(before, dict):
            raise InputError(f"--resume: {path}: expected the settings object detseg writes, {got(before)}")
        earlier = {**SETTINGS_ADDED_LATER, **before}
        changed = {k: (earlier.get(k), v) for k, v in settings.items() if not _same(earlier.get(k), v)}
        if changed:
            detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise InputError(f"--resume: {out} was made with other settings ({detail}); "
                             "use another --out, or rerun without --resume")
    atomic_write_json(path, settings, indent=2)


LOCK_NAME = ".detseg.lock"  # in --out while a run writes there: "PID START_TIME" of the run holding it
_YOUNG_LOCK_SECONDS = 5.0  # fallback locks only: an empty lock this young is being written, not stale

try:
    import fcntl
except ImportError:  # Windows: the pid lock below
    fcntl = None


@contextlib.contextmanager
def _run_lock(out: Path):
    """One run at a time per output folder: a second one would overwrite the first's summary.

    The lock is ``out/.detseg.lock`` held with ``flock``: the kernel releases it when its process
    ends, however it ends, so a killed run's lock is never mistaken for a live one (even after its
    pid is reused), and taking it is atomic (two runs starting together: exactly one gets it). The
    file holds the holder's pid and start time, for the message. Where ``flock`` is unavailable,
    the file itself is the lock: created exclusively, the pid written at once, and taken over only
    when the process it names is gone or is another process under a reused pid (:func:`_holder_alive`).
    """
    lock = out / LOCK_NAME
    fd = _take_lock(lock, out)
    try:
        yield
    finally:
        try:  # remove the file only if it is still ours (a user may have deleted it and another run taken it)
            ours = os.path.samestat(os.fstat(fd), os.stat(lock))
        except OSError:
            ours = False
        if ours and fcntl is not None:  # removed while still held: a run waiting on it sees it is gone
            with contextlib.suppress(OSError):
                lock.unlink()
        os.close(fd)  # releases the flock
        if ours and fcntl is None:  # Windows removes no open file
            with contextlib.suppress(OSError):
                lock.unlink()


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None when there is no such process, or
    NaN when it exists but its start time cannot be read (psutil missing, access denied)."""
    try:
        import psutil
    except ImportError:
        return float("nan") if Path(f"/proc/{pid}").exists() else None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except (psutil.AccessDenied, OSError):
        return float("nan")


def _lock_text() -> bytes:
    started = _process_started(os.getpid())
    return f"{os.getpid()} {started!r}\n".encode()


def _read_lock(lock: Path) -> tuple[int | None, float | None]:
    """``(pid, start time)`` a lock file records (None where it does not say; an older detseg wrote the pid only)."""
    try:
        fields = lock.read_text(errors="replace").split()
    except OSError:
        return None, None
    pid = int(fields[0]) if fields and fields[0].isdigit() else None
    try:
        started = float(fields[1]) if len(fields) > 1 else None
    except ValueError:
        started = None
    return pid, started


def _busy(lock: Path, out: Path, pid: int | None, started: float | None) -> InputError:
    who = f"pid {pid}" if pid is not None else "pid not yet written"
    if started is not None and started == started:  # not NaN
        who += time.strftime(", started %Y-%m-%d %H:%M:%S", time.localtime(started))
    return InputError(f"another detseg run ({who}) is writing to {out} (its lock file {lock}); use another --out, "
                      f"or, if no detseg run is alive, delete {lock} and run again")


def _take_lock(lock: Path, out: Path) -> int:
    """Hold ``lock`` (see :func:`_run_lock`); returns its open descriptor. Raises InputError when a live run has it."""
    for _ in range(100):  # each retry follows another run's move (it removed or took the file): a few at most
        try:
            fd, created = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            try:
                fd, created = os.open(lock, os.O_RDWR), False
            except FileNotFoundError:  # removed in between by the run that held it
                continue
        try:
            if fcntl is None:
                raise OSError(errno.ENOSYS, "no flock")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: a live run holds it
            os.close(fd)
            raise _busy(lock, out, *_read_lock(lock)) from None
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            # no flock here (Windows, a file system without locks): the file is the lock, created exclusively
            if created:
                os.write(fd, _lock_text())
                return fd
            os.close(fd)
            if _holder_alive(lock):
                raise _busy(lock, out, *_read_lock(lock)) from None
            lock.unlink(missing_ok=True)  # left by a run that was killed
            continue
        try:  # the file locked must still be the lock file: a run that just finished removes it
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is None or not os.path.samestat(os.fstat(fd), current):
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, _lock_text())
        return fd
    raise _busy(lock, out, *_read_lock(lock))


_NO_FLOCK = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


def _holder_alive(lock: Path) -> bool:
    """Without flock: whether the run a lock file names is alive: its pid runs and is the same process, i.e.
    started when the file says (or, in a file without a start time, no later than the file was written).
    An empty file younger than a few seconds is a lock being written: alive."""
    pid, started = _read_lock(lock)
    if pid is None:
        try:
            return time.time() - lock.stat().st_mtime < _YOUNG_LOCK_SECONDS
        except OSError:
            return False
    running = _process_started(pid)
    if running is None:
        return False
    if running != running:  # NaN: it runs, its start time is unknown
        return True
    if started is not None and started == started:
        return abs(running - started) < 1.0  # else the pid was reused by another process
    try:
        return running <= lock.stat().st_mtime + 1.0
    except OSError:
        return False


OUTPUT_FOLDERS = ("annotated", "labels", "masks", "parts")  # the sub-folders a run writes


def _remove_leftovers(out: Path) -> None:
    """Temporaries of a run that was killed (SIGKILL, power loss): its unfinished video and part files.

    Called under the run lock, so no live run owns them. Only files named as detseg names its
    temporaries (``.NAME.detseg-XXXX.part``) are removed, and only in ``out`` and the folders a run
    writes: a user's own ``.something.part`` (a browser download) is never touched, nor is anything
    finished.
    """
    for folder in (out, *(out / sub for sub in OUTPUT_FOLDERS)):
        if folder.is_dir():
            for stale in folder.iterdir():
                if is_detseg_temp(stale) and stale.is_file():
                    stale.unlink(missing_ok=True)


def claim_output_folder(out: Path, *, resume: bool = False, exist_ok: bool = False) -> None:
    """Refuse an ``--out`` whose files this run could lose or mix with its own; one InputError saying why.

    - the filesystem root or the home folder: never an output folder;
    - an existing, non-empty folder written by an earlier run (it holds ``run.json``): only with
      ``resume`` (finish it) or ``exist_ok`` (write into it, as ultralytics' ``exist_ok``: files
      this run does not rewrite stay);
    - an existing, non-empty folder detseg did not write: only with ``exist_ok``.
    A new or empty folder is always fine.
    """
    resolved = out.expanduser().resolve()
    if resolved in (Path(resolved.anchor), Path.home().resolve()):
        what = "the filesystem root" if resolved == Path(resolved.anchor) else "your home folder"
        raise InputError(f"--out {out} is {what}; name a folder for this run's outputs (e.g. runs/predict)")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    entries = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
    if not entries or exist_ok:
        return
    if (out / RUN_SETTINGS).is_file():
        if not resume:
            raise InputError(f"--out {out} holds an earlier run's outputs; pass --resume to finish that run, "
                             "--exist-ok to write over it, or choose another --out")
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise InputError(f"--out {out} already holds files detseg did not write ({shown}); choose a new or empty "
                     "folder, or pass --exist-ok to write into it anyway")


def writer_threads() -> int:
    """Threads writing a folder's outputs: one per 4 cores, 1 to 4 (1 on a 2-core machine, where the
    forward passes need the cores; 4 on a 16-core GPU machine, where writing is the bottleneck)."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def run_predict(pipeline: Pipeline, source, out: str | Path, options: RunOptions | None = None) -> dict:
    """Run ``pipeline`` on ``source`` and write everything under ``out``. Returns the summary dict.

    Args:
        source: anything :func:`~detseg.pipeline.sources.resolve_source` takes (resolved once here).
        options: the run's settings (:class:`RunOptions`; default: its defaults).

    Raises:
        InputError: ``out`` holds another run's outputs or files detseg did not write (see
            :func:`claim_output_folder`), the source is bad, or ``resume`` finds an earlier run with other
            settings, or ``min_mask_score`` / ``batch_size > 1`` with a pipeline that is not a
            :class:`Pipeline` (keyframe mode: SAM 2's memory carries each object from frame to frame).
    """
    options = options if options is not None else RunOptions()
    if not isinstance(pipeline, Pipeline):
        if options.min_mask_score is not None:
            raise InputError("--min-mask-score filters a Pipeline's masks; it does not apply in keyframe mode "
                             "(--keyframe-every), where SAM 2's memory carries each object between keyframes")
        if options.batch_size > 1:
            raise InputError(f"batch size {options.batch_size}: keyframe mode (--keyframe-every) takes frames "
                             "one by one; use a batch size of 1")
    src = source if isinstance(source, Source) else resolve_source(source)
    given, record = src, src.record()  # what summary.json and run.json say of the source: as given
    if src.kind == "arrays" and src.arrays and all(isinstance(a, (str, os.PathLike)) for a in src.arrays):
        # a list of paths runs as files, as on the Ray engine: image ids numbered (or from --image-ids) as for a
        # folder's files, and --resume skips the finished ones
        src = Source("glob", files=[Path(p) for p in src.arrays], names=src.names, warnings=src.warnings)
    out = Path(out)
    claim_output_folder(out, resume=options.resume, exist_ok=options.exist_ok)
    dataset = (DatasetWriter(options.save_dataset, src, _class_names(pipeline), options.val_fraction, options.resume,
                             run_out=out) if options.save_dataset else None)
    min_score = None
    if options.min_mask_score is not None:
        min_score = MinMaskScore(options.min_mask_score)
        pipeline = Pipeline(pipeline.detector, pipeline.segmenter, pipeline.box_steps,
                            [*pipeline.mask_steps, min_score])
    out.mkdir(parents=True, exist_ok=True)
    for ours in (out, *([Path(options.save_dataset)] if options.save_dataset else [])):  # never read our own outputs
        if src.root is not None and ours.resolve().is_relative_to(src.root.resolve()):
            src.files = [f for f in src.files if not f.resolve().is_relative_to(ours.resolve())]
    with _run_lock(out):
        _remove_leftovers(out)
        _check_settings(out, options.run_json(record), options.resume)
        if dataset is not None:
            dataset.claim()  # after the run's own settings: a refused run claims no dataset folder
        return _run(pipeline, src, out, options, dataset=dataset, min_score=min_score, given=given)


def _run(pipeline, src, out, options: RunOptions, dataset=None, min_score=None, given=None) -> dict:
    stride, max_frames, resume, notes = options.stride, options.max_frames, options.resume, list(options.notes)
    class_names = _class_names(pipeline)
    writer = OutputWriter(out, class_names, save_masks=options.save_masks, categories=options.categories,
                          root=src.root)
    video = src.is_video
    # the tracker is given each frame's own number and the video's rate: its clock is the video's, whatever --stride
    tracking = tracking_for(pipeline, src.files[0], options.track, fps=src.video.fps) if video else None
    parts, failures, seconds, skipped = [], [], [], 0
    start = time.perf_counter()
    total = None if video else (len(src.files) if src.kind != "arrays" else len(src.arrays))
    if video and src.video and src.video.frames:
        total = -(-src.video.frames // stride)
        total = min(total, max_frames) if max_frames else total
    bar = tqdm(desc="predict", unit="frame" if video else "img", total=total, disable=not options.progress)
    only, kept = None, {}
    if resume and not video and src.kind != "arrays":
        # skip finished inputs before reading them; every input keeps its name and image id
        only = set()
        for f in src.files:
            name = src.names[str(f)]
            part, unusable = writer.finished(name)
            if unusable:  # an empty or truncated part file (a power loss): that input is done again
                tqdm.write(unusable, file=sys.stderr)
                notes = [*notes, unusable]
            if part is not None:
                parts.append(part)
                kept[name] = part["image"]["id"]
                skipped += 1
                bar.update(1)
                if dataset is not None:
                    dataset.add(str(f), out / "labels" / f"{name}.txt", detections=len(part["results"]))
            else:
                only.add(str(f))
    ids = _assign_image_ids(src, options.image_ids or {}, kept)
    # outputs are written by background threads while the next input is detected and segmented (numpy,
    # OpenCV and torch release the GIL); a video has one (its frames go into one file, in order), a folder
    # one per 4 cores (on a GPU machine writing is the bottleneck); results are collected in input order
    video_state = {"sink": None, "tmp": None}
    writers = 1 if video else writer_threads()

    def write(frame, image_id: int) -> tuple[dict, dict]:
        t = time.perf_counter()
        annotated = None
        if video:
            annotate = tracking.annotate if tracking is not None else writer.annotate
            annotated = annotate(frame.image, frame.detections)
            if video_state["sink"] is None:
                h, w = frame.image.shape[:2]
                video_state["tmp"] = temp_name(out / "annotated.mp4", ".part.mp4")
                video_state["sink"] = VideoWriter(video_state["tmp"], fps=src.video.fps / stride)  # 29.97 stays 29.97
            video_state["sink"].write(annotated)
        part = writer.write(frame.name, image_id, frame.path, frame.image, frame.detections, annotated,
                            frame=frame.frame)
        frame.seconds["write"] = time.perf_counter() - t
        return part, frame.seconds

    pending: deque[tuple[Future, object]] = deque()

    def collect(limit: int) -> None:  # results in input order; a writing error surfaces here
        while len(pending) > limit:
            future, frame = pending.popleft()
            part, frame_seconds = future.result()
            parts.append(part)
            seconds.append(frame_seconds)
            if dataset is not None:  # in input order: the label file just written, beside the original image
                dataset.add(frame.path, out / "labels" / f"{frame.name}.txt", frame.image if video else None,
                            frame=frame.frame, detections=len(frame.detections))

    executor = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="detseg-write")
    completed = False
    try:
        for frame in pipeline.run(src, stride=stride, max_frames=max_frames, strict=options.strict, only=only,
                                  **({"batch_size": options.batch_size} if options.batch_size > 1 else {})):
            bar.update(1)
            image_id = ids.get(frame.name, frame.index + 1) if not video else frame.frame + 1
            if not frame.ok:
                failures.append({"path": frame.path or frame.name, "error": frame.error})
                bar.set_postfix(failed=len(failures))
                if options.verbose:
                    tqdm.write(f"failed: {frame.error}", file=sys.stderr)
                continue
            if tracking is not None:  # in frame order, before the frame is handed to the writing thread
                tracking.update(frame)
            pending.append((executor.submit(write, frame, image_id), frame))
            collect(limit=2 * writers)  # a few frames per writer wait to be written: memory stays bounded
        collect(limit=0)
        completed = True
    finally:
        executor.shutdown(wait=True)  # inputs already segmented are still written completely
        bar.close()
        if video_state["sink"] is not None:
            video_state["sink"].close()
            if completed:  # publish only a complete video under the final name, in this run's --out
                writer.check_out()
                os.replace(video_state["tmp"], out / "annotated.mp4")
            else:
                Path(video_state["tmp"]).unlink(missing_ok=True)
    elapsed = time.perf_counter() - start
    writer.check_written(parts)  # before anything more is written: no summary counts files that are gone
    summary = build_summary(given or src, out, class_names, parts, failures, skipped, seconds, elapsed, notes)
    if tracking is not None:
        tracking.finalize(out, summary)
    if min_score is not None:
        summary["dropped_low_mask_score"] = min_score.dropped
    if dataset is not None:
        summary["dataset"] = dataset.finalize(min_score.dropped if min_score is not None else None)
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
