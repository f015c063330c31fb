"""The composing object: detector -> (box steps) -> segmenter -> (mask steps).

Example:
    >>> import numpy as np
    >>> from detseg.pipeline import Pipeline
    >>> from detseg.pipeline.steps import MinConfidence
    >>> from detseg.detectors import BoxesDetector
    >>> from detseg.segmenter import BoxSegmenter
    >>> pipe = Pipeline(BoxesDetector([[10, 10, 40, 30]], class_names={0: "cookie"}), BoxSegmenter(),
    ...                 box_steps=[MinConfidence(0.5)])
    >>> dets = pipe(np.zeros((64, 64, 3), np.uint8))
    >>> dets.mask.shape, dets.data["class_name"].tolist()
    ((1, 64, 64), ['cookie'])
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator

import numpy as np
import supervision as sv

from detseg.images import as_bgr8
from detseg.keys import CLASS_NAME, MASK_SCORE
from detseg.pipeline.frame import Frame


def _check_step(obj, role: str, needs: tuple[str, ...] = ()) -> None:
    if isinstance(obj, type):  # MinConfidence for MinConfidence(0.5): callable, and wrong at the first image
        raise TypeError(f"{role} is the class {obj.__name__}, not an instance of it: pass {obj.__name__}(...)")
    if not callable(obj):
        raise TypeError(f"{role} {obj!r} ({type(obj).__name__}) is not callable; expected "
                        f"{'an object with ' + ', '.join(needs) + ' and ' if needs else ''}__call__")
    for attr in needs:
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"{role} {type(obj).__name__} has no {attr}(); a segmenter needs "
                            "__call__(image, detections) and predict_masks(image, boxes)")


def _checked(dets, role: str) -> sv.Detections:
    """A step's result, which must be ``sv.Detections`` (a step without ``return`` gives None)."""
    if not isinstance(dets, sv.Detections):
        raise TypeError(f"{role} returned {type(dets).__name__}, expected supervision.Detections")
    return dets


def _out_of_memory() -> tuple[type[BaseException], ...]:
    """Host and GPU out-of-memory errors (torch's is a RuntimeError, so it is named here)."""
    import sys

    torch = sys.modules.get("torch")  # a model that ran has imported it; never imported here for nothing
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return (MemoryError, oom) if isinstance(oom, type) else (MemoryError,)


def _release_gpu_memory(error: BaseException) -> None:
    """After a GPU out-of-memory error, hand torch's cached blocks back so one image at a time can fit."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and not isinstance(error, MemoryError) and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _empty_with_masks(detections: sv.Detections, shape) -> sv.Detections:
    out = detections[np.zeros(0, dtype=int)] if len(detections) else detections
    out.mask = np.zeros((0, *shape), bool)
    out.data[MASK_SCORE] = np.zeros(0, np.float32)
    out.data.setdefault(CLASS_NAME, np.array([], dtype=str))
    return out


class Pipeline:
    """Detector boxes -> segmenter masks, with optional steps between and after.

    Steps are checked here (a TypeError names a bad one); nothing else happens in the
    constructor. Every step is swappable by any object honouring its interface.

    Args:
        detector: ``image -> sv.Detections`` (xyxy, confidence, class_id, data["class_name"]).
        segmenter: ``(image, detections) -> sv.Detections`` with masks, and ``predict_masks``.
        box_steps: callables ``sv.Detections -> sv.Detections`` run on the boxes (filters, NMS).
        mask_steps: callables ``sv.Detections -> sv.Detections`` run on the masks (clean-up).
    """

    def __init__(self, detector, segmenter, box_steps: Iterable = (), mask_steps: Iterable = ()):
        _check_step(detector, "detector")
        _check_step(segmenter, "segmenter", needs=("predict_masks",))
        self.box_steps = list(box_steps)
        self.mask_steps = list(mask_steps)
        for i, step in enumerate(self.box_steps):
            _check_step(step, f"box_steps[{i}]")
        for i, step in enumerate(self.mask_steps):
            _check_step(step, f"mask_steps[{i}]")
        self.detector = detector
        self.segmenter = segmenter

    def process(self, image) -> tuple[sv.Detections, dict]:
        """Like ``__call__``, also returning seconds per stage (detect, box_steps, segment, mask_steps)."""
        image = as_bgr8(image)
        dets, seconds = self._detect(image)
        return self._segment(image, dets, seconds)

    def _detect(self, image: np.ndarray) -> tuple[sv.Detections, dict]:
        seconds = {}
        t = time.perf_counter()
        dets = self.detector(image)
        seconds["detect"] = time.perf_counter() - t
        if not isinstance(dets, sv.Detections):
            raise TypeError(f"detector {type(self.detector).__name__} returned {type(dets).__name__}, "
                            "expected supervision.Detections")
        t = time.perf_counter()
        for i, step in enumerate(self.box_steps):
            dets = _checked(step(dets), f"box_steps[{i}] {type(step).__name__}")
        seconds["box_steps"] = time.perf_counter() - t
        return dets, seconds

    def _segment(self, image: np.ndarray, dets: sv.Detections, seconds: dict) -> tuple[sv.Detections, dict]:
        if len(dets) == 0:  # nothing found: the segmenter does not run
            seconds["segment"] = seconds["mask_steps"] = 0.0
            return _empty_with_masks(dets, image.shape[:2]), seconds
        t = time.perf_counter()
        dets = _checked(self.segmenter(image, dets), f"segmenter {type(self.segmenter).__name__}")
        seconds["segment"] = time.perf_counter() - t + seconds.pop("embed_batch", 0.0)
        t = time.perf_counter()
        for i, step in enumerate(self.mask_steps):
            dets = _checked(step(dets), f"mask_steps[{i}] {type(step).__name__}")
        seconds["mask_steps"] = time.perf_counter() - t
        return dets, seconds

    def process_batch(self, images: list[np.ndarray]) -> list[tuple[sv.Detections, dict] | Exception]:
        """:meth:`process` for several images, their SAM embeddings computed in one encoder call.

        The detector runs on each image, then a segmenter with ``embed_batch`` (SAM) encodes the
        images that have boxes together, then each image's boxes are decoded. An image the
        project's checks reject (:class:`~detseg.errors.DetsegError`, memory) gives its
        exception in its place; the others are processed.
        """
        from detseg.errors import DetsegError

        skip = (DetsegError, *_out_of_memory())
        results: list = []
        for image in images:
            try:
                image = as_bgr8(image)
                results.append((image, *self._detect(image)))
            except skip as e:
                results.append(e)
        embed_batch = getattr(self.segmenter, "embed_batch", None)
        todo = [r for r in results if not isinstance(r, Exception) and len(r[1])]
        if embed_batch is not None and len(todo) > 1:
            t = time.perf_counter()
            try:
                embed_batch([r[0] for r in todo])
            except skip as e:  # e.g. a batch a GPU has no room for: each image is encoded on its own below
                _release_gpu_memory(e)
            share = (time.perf_counter() - t) / len(todo)
            for r in todo:  # the encoder's time, shared out, counts as segmenting time
                r[2]["embed_batch"] = share
        out: list = []
        for r in results:
            try:
                out.append(r if isinstance(r, Exception) else self._segment(*r))
            except skip as e:  # that image's own error; the others go on
                _release_gpu_memory(e)
                out.append(e)
        return out

    def __call__(self, image) -> sv.Detections:
        """Instance masks for one image.

        Args:
            image: an ``(H, W, 3)`` uint8 **BGR** array (grayscale, BGRA and 16-bit are converted), a
                ``PIL.Image`` (RGB, converted), or a path to an image file (read with EXIF orientation).

        Returns:
            ``sv.Detections``: the detector's xyxy, confidence, class_id, data["class_name"],
            plus ``mask`` (one per row) and ``data["mask_score"]``.
        """
        return self.process(image)[0]

    def run(self, source, stride: int = 1, max_frames: int | None = None, strict: bool = False,
            only: set[str] | None = None, batch_size: int = 1) -> Iterator[Frame]:
        """Process an image, folder, glob, video file, or a list of paths / arrays, lazily.

        Args:
            source: anything :func:`detseg.pipeline.sources.resolve_source` takes, or its result.
            stride, max_frames: videos: every ``stride``-th frame, at most ``max_frames``.
            strict: raise at the first failure instead of reporting it and going on.
            only: process only the files whose ``str(path)`` is in this set (``--resume``).
            batch_size: images read ahead and run through SAM's encoder together (:meth:`process_batch`);
                1 processes each image as it comes; ``"auto"``: 1 on a CPU, more on a GPU
                (:func:`~detseg.pipeline.batching.resolve_batch_size`).

        Inputs that cannot be read, or that the project's checks reject (a
        :class:`~detseg.errors.DetsegError`, or memory running out), yield a :class:`Frame`
        with ``error`` set and the run goes on; any other exception is a bug and propagates.
        """
        from detseg.pipeline.batching import resolve_batch_size, run_batched
        from detseg.pipeline.sources import Source, resolve_source

        size = resolve_batch_size(batch_size, self.segmenter)  # "auto" or an integer >= 1, else InputError
        src = source if isinstance(source, Source) else resolve_source(source)
        # one path for every batch size: with 1, each input is detected, segmented and yielded in turn
        yield from run_batched(self, src, src.items(stride=stride, max_frames=max_frames, only=only), size, strict)


def stage_totals(frames_seconds: Iterable[dict]) -> dict:
    """Sum per-stage seconds over frames."""
    totals = defaultdict(float)
    for seconds in frames_seconds:
        for k, v in seconds.items():
            totals[k] += v
    return dict(totals)
