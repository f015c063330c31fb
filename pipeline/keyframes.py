"""Keyframe mode: the detector (and SAM 2 box prompts) on every K-th frame, SAM 2's video memory between.

On a keyframe the detector's boxes go through ByteTrack (:class:`~detseg.pipeline.tracking.Tracker`,
stepping by the keyframes' real time), and each tracked box prompts its object in SAM 2's memory
(:class:`~detseg.segmenter.sam2_video.Sam2VideoMemory`): a new track id starts a new object, a known
one is re-anchored to its new box, and an object whose track the keyframe no longer reports ends
(its memory is freed). ByteTrack confirms a track on its second matched keyframe, so an object
entering the view gets its id and its first masks up to K frames after the detector first saw it.
On the frames between, SAM 2 carries each object's mask from its memory;
the row's box is its mask's extent, its class and confidence those of its last keyframe. An object
SAM 2 reports absent on a frame (empty mask) has no row on that frame.

Frames are streamed (:meth:`Source.items <detseg.pipeline.sources.Source.items>`): one frame's features and a
bounded memory per live object are held, whatever the video's length.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import supervision as sv

from detseg.errors import ImageReadError, InputError
from detseg.pipeline.core import Frame
from detseg.pipeline.tracking import Tracker


class KeyframePipeline:
    """Tracked instance masks from detector keyframes + SAM 2 video memory.

    Duck-types :class:`~detseg.pipeline.core.Pipeline` for :func:`~detseg.pipeline.predict.run_predict`
    (``run``, ``detector``); its frames carry ``tracker_id`` (``assigns_track_ids``).

    Args:
        detector: ``image -> sv.Detections`` (xyxy, confidence, class_id, data["class_name"]).
        memory: a :class:`~detseg.segmenter.sam2_video.Sam2VideoMemory`.
        every: K, detector keyframes every K processed frames (1 = every frame).
        tracker: ids on keyframes (default: ByteTrack at ``fps`` that confirms a track on its first keyframe).
        fps: frames per second of the processed frames (for the default tracker).
    """

    assigns_track_ids = True

    def __init__(self, detector, memory, every: int = 5, tracker: Tracker | None = None, fps: float = 30.0):
        if every < 1:
            raise InputError(f"keyframe interval must be >= 1, got {every}")
        self.detector = detector
        self.memory = memory
        self.every = every
        self.tracker = tracker if tracker is not None else Tracker(fps=fps, min_frames=1)
        self.settings = {"mode": "keyframes + SAM 2 video memory", "keyframe_every": every,
                         "tracker": "bytetrack (roboflow trackers) on keyframes", "segmenter": memory.segmenter.arch}
        self._info: dict[int, tuple[int, str, float]] = {}  # track id -> class id, class name, confidence

    def _keyframe(self, image: np.ndarray, index: int) -> None:
        dets = self.detector(image)
        if not isinstance(dets, sv.Detections):
            raise TypeError(f"detector {type(self.detector).__name__} returned {type(dets).__name__}")
        tracked = self.tracker.update(dets, index)
        names = tracked.data.get("class_name", np.array([str(c) for c in tracked.class_id]))
        conf = tracked.confidence if tracked.confidence is not None else np.ones(len(tracked))
        live = set()
        for box, tid, cls, name, c in zip(tracked.xyxy, tracked.tracker_id, tracked.class_id, names, conf):
            self.memory.prompt(int(tid), box)
            self._info[int(tid)] = (int(cls), str(name), float(c))
            live.add(int(tid))
        for oid in [o for o in self.memory.objects if o not in live]:  # lost objects end
            self.memory.remove(oid)
            self._info.pop(oid, None)

    def process(self, image: np.ndarray, index: int, keyframe: bool) -> tuple[sv.Detections, dict]:
        """One frame (in order): returns the tracked rows and seconds per stage."""
        seconds = {}
        t = time.perf_counter()
        self.memory.set_frame(image, index)
        seconds["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        if keyframe:
            self._keyframe(image, index)
        seconds["detect_track_prompt"] = time.perf_counter() - t
        t = time.perf_counter()
        self.memory.propagate()
        ids, masks, scores = self.memory.masks()
        seconds["propagate"] = time.perf_counter() - t
        keep = [r for r in range(len(ids)) if masks[r].any()]
        h, w = image.shape[:2]
        if not keep:
            empty = sv.Detections(xyxy=np.zeros((0, 4), np.float32), mask=np.zeros((0, h, w), bool),
                                  confidence=np.zeros(0, np.float32), class_id=np.zeros(0, int),
                                  tracker_id=np.zeros(0, int),
                                  data={"class_name": np.array([], str), "mask_score": np.zeros(0, np.float32)})
            return empty, seconds
        boxes = []
        for r in keep:
            rows, cols = np.flatnonzero(masks[r].any(1)), np.flatnonzero(masks[r].any(0))
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        info = [self._info[ids[r]] for r in keep]
        dets = sv.Detections(xyxy=np.array(boxes, np.float32), mask=masks[keep],
                             confidence=np.array([i[2] for i in info], np.float32),
                             class_id=np.array([i[0] for i in info], int), tracker_id=np.array([ids[r] for r in keep]),
                             data={"class_name": np.array([i[1] for i in info]), "mask_score": scores[keep]})
        return dets, seconds

    def run(self, source, stride: int = 1, max_frames: int | None = None, strict: bool = False,
            only=None) -> Iterator[Frame]:
        """Frames of a video, lazily, like :meth:`Pipeline.run <detseg.pipeline.core.Pipeline.run>`."""
        from detseg.pipeline.sources import Source, resolve_source

        src = source if isinstance(source, Source) else resolve_source(source)
        for n, item in enumerate(src.items(stride=stride, max_frames=max_frames)):
            name = src.name_of(item)
            if item.error:
                if strict:
                    raise ImageReadError(item.error)
                yield Frame(item.index, item.path, None, None, item.error, frame=item.frame, name=name)
                continue
            dets, seconds = self.process(item.image, item.frame, keyframe=n % self.every == 0)
            seconds["read"] = item.seconds
            yield Frame(item.index, item.path, item.image, dets, "", seconds, frame=item.frame, name=name)


def build_keyframe_pipeline(detector, segmenter: str, every: int, device: str = "auto", fps: float = 30.0):
    """A :class:`KeyframePipeline` with the SAM 2 checkpoint ``segmenter`` ('auto': ``sam2.1_t.pt``).

    Returns:
        ``(pipeline, note)``; raises WeightsError / InputError for a missing or non-SAM 2 checkpoint.
    """
    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    checkpoint = "sam2.1_t.pt" if segmenter in ("auto", None) else segmenter
    if checkpoint in ("grabcut", "box", "ellipse"):
        raise InputError(f"--keyframe-every needs a SAM 2 --segmenter (e.g. sam2.1_t.pt), not {checkpoint!r}")
    memory = Sam2VideoMemory(SamSegmenter(checkpoint, device=device, output="dense"))
    note = f"keyframe mode: detector every {every} frames, SAM 2 ({memory.segmenter.arch}) video memory between"
    return KeyframePipeline(detector, memory, every=every, fps=fps), note
