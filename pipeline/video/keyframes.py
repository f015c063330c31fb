"""Keyframe mode: the detector (and SAM 2 box prompts) on every K-th frame, SAM 2's video memory between.

SAM 2's memory is the tracker: each object it carries is a track. On a keyframe the detector's boxes
are matched one to one (Hungarian, :func:`match_to_objects`) to the objects' boxes on the previous
processed frame (the extents of the masks SAM 2 carried there, one frame away, so fast items still
overlap; the keyframes themselves are K frames apart, which is why ByteTrack on keyframes alone
loses them). A matched object is re-anchored to its new box and takes its class and confidence; a
detection matching no object starts a new one (a new id) if its confidence reaches ``activation``;
an object no detection matched ends (its memory is freed) once it has been missed on more than
``max_missed`` keyframes in a row. New objects get their id and first mask on the keyframe that
first saw them. On the frames between, SAM 2 carries each object's mask from its memory; the row's
box is its mask's extent, its class and confidence those of its last keyframe. An object SAM 2
reports absent on a frame (empty mask) has no row on that frame.

Frames are streamed (:meth:`Source.items <detseg.pipeline.sources.Source.items>`): one frame's features and a
bounded memory per live object are held, whatever the video's length.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from detseg.errors import ImageReadError, InputError
from detseg.pipeline.frame import Frame
from detseg.segmenter.factory import WEIGHT_FREE, SamOptions


def match_to_objects(detections: np.ndarray, objects: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one matches of detection boxes to object boxes, maximising total IoU (Hungarian).

    Args:
        detections: ``(N, 4)`` xyxy boxes.
        objects: ``(M, 4)`` xyxy boxes.
        min_iou: pairs overlapping less are never matched.

    Returns:
        ``[(detection row, object row), ...]`` sorted by detection row.
    """
    if len(detections) == 0 or len(objects) == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    iou = sv.box_iou_batch(np.asarray(detections, np.float64), np.asarray(objects, np.float64))
    iou[iou < min_iou] = 0.0  # weak pairs must not outweigh a valid match in the total
    rows, cols = linear_sum_assignment(-iou)
    return sorted((int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] > 0)


@dataclass
class _Carried:
    """What the pipeline knows of one object SAM 2 carries."""

    class_id: int
    class_name: str
    confidence: float  # of its last keyframe
    box: np.ndarray  # xyxy on the last frame it had a mask: what the next keyframe matches against
    missed: int = 0  # keyframes in a row without a matching detection


class KeyframePipeline:
    """Tracked instance masks from detector keyframes + SAM 2 video memory.

    Duck-types :class:`~detseg.pipeline.core.Pipeline` for :func:`~detseg.pipeline.predict.run_predict`
    (``run``, ``detector``); its frames carry ``tracker_id`` (``assigns_track_ids``), ids from 1.

    Args:
        detector: ``image -> sv.Detections`` (xyxy, confidence, class_id, data["class_name"]).
        memory: a :class:`~detseg.segmenter.sam2_video.Sam2VideoMemory` (or anything with its
            ``set_frame / prompt / propagate / remove / masks / objects``).
        every: K, detector keyframes every K processed frames (1 = every frame).
        match_iou: minimum IoU between a detection and an object's box on the previous frame to match them.
        activation: minimum confidence for a detection to start a new object (any matched
            detection re-anchors its object, as ByteTrack's second association keeps tracks alive).
        max_missed: keyframes in a row an object may go unmatched (a detector miss) and still be carried.
        fps: frames per second of the processed frames (recorded in the settings).

    The defaults start objects as per-frame tracking starts tracks (ByteTrack's activation 0.5), so a
    detector at ``conf`` 0.25 re-anchors objects with its weaker boxes but starts none from them.
    """

    assigns_track_ids = True

    def __init__(self, detector, memory, every: int = 5, match_iou: float = 0.3, activation: float = 0.5,
                 max_missed: int = 0, fps: float = 30.0):
        if every < 1:
            raise InputError(f"keyframe interval must be >= 1, got {every}")
        if not 0 <= match_iou <= 1 or max_missed < 0:
            raise InputError(f"match_iou must be in [0, 1] and max_missed >= 0, got {match_iou}, {max_missed}")
        self.detector = detector
        self.memory = memory
        self.every = every
        self.match_iou = match_iou
        self.activation = activation
        self.max_missed = max_missed
        self.fps = fps
        self.settings = {"mode": "keyframes + SAM 2 video memory", "keyframe_every": every,
                         "tracker": "SAM 2 memory; keyframe detections matched to its objects' boxes (Hungarian)",
                         "match_iou": match_iou, "activation": activation, "max_missed": max_missed, "fps": fps,
                         "segmenter": memory.segmenter.arch}
        self.reset()

    def reset(self) -> None:
        """Forget every object (ids start again at 1): called at the start of each :meth:`run`."""
        for oid in list(self.memory.objects):
            self.memory.remove(oid)
        self._carried: dict[int, _Carried] = {}  # object id -> its class, confidence, box, misses
        self._next_id = 1

    def _keyframe(self, image: np.ndarray) -> None:
        dets = self.detector(image)
        if not isinstance(dets, sv.Detections):
            raise TypeError(f"detector {type(self.detector).__name__} returned {type(dets).__name__}")
        names = dets.data.get("class_name", np.array([str(c) for c in dets.class_id]))
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets), np.float32)
        ids = list(self._carried)
        known = np.array([self._carried[i].box for i in ids], np.float32).reshape(-1, 4)
        matched = dict(match_to_objects(dets.xyxy, known, self.match_iou))
        prompted = set()
        for row in range(len(dets)):
            if row in matched:
                oid = ids[matched[row]]
            elif conf[row] >= self.activation:
                oid, self._next_id = self._next_id, self._next_id + 1
            else:
                continue
            self.memory.prompt(oid, dets.xyxy[row])
            self._carried[oid] = _Carried(int(dets.class_id[row]), str(names[row]), float(conf[row]),
                                          dets.xyxy[row].astype(np.float32))
            prompted.add(oid)
        for oid in [o for o in self._carried if o not in prompted]:
            self._carried[oid].missed += 1
            if self._carried[oid].missed > self.max_missed:  # lost: it ends and its memory is freed
                self.memory.remove(oid)
                del self._carried[oid]

    def process(self, image: np.ndarray, index: int, keyframe: bool) -> tuple[sv.Detections, dict]:
        """One frame (in order; ``index``: its place among the processed frames, 0, 1, 2, ... whatever the
        stride): returns the tracked rows and seconds per stage."""
        seconds = {}
        t = time.perf_counter()
        self.memory.set_frame(image, index)
        seconds["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        if keyframe:
            self._keyframe(image)
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
            self._carried[ids[r]].box = np.array(boxes[-1], np.float32)
        carried = [self._carried[ids[r]] for r in keep]
        dets = sv.Detections(xyxy=np.array(boxes, np.float32), mask=masks[keep],
                             confidence=np.array([c.confidence for c in carried], np.float32),
                             class_id=np.array([c.class_id for c in carried], int),
                             tracker_id=np.array([ids[r] for r in keep]),
                             data={"class_name": np.array([c.class_name for c in carried]), "mask_score": scores[keep]})
        return dets, seconds

    def run(self, source, stride: int = 1, max_frames: int | None = None, strict: bool = False,
            only=None) -> Iterator[Frame]:
        """Frames of a video, lazily, like :meth:`Pipeline.run <detseg.pipeline.core.Pipeline.run>`."""
        from detseg.pipeline.sources import Source, resolve_source

        src = source if isinstance(source, Source) else resolve_source(source)
        self.reset()
        step = 0  # the memory's frame index: processed frames, one apart (SAM 2 looks its memories up at
        # index - 1, - 2, ...; with --stride the video's own frame numbers would skip them)
        for n, item in enumerate(src.items(stride=stride, max_frames=max_frames)):
            name = src.name_of(item)
            if item.error:
                if strict:
                    raise ImageReadError(item.error)
                yield Frame(item.index, item.path, None, None, item.error, frame=item.frame, name=name)
                continue
            dets, seconds = self.process(item.image, step, keyframe=n % self.every == 0)
            step += 1
            seconds["read"] = item.seconds
            yield Frame(item.index, item.path, item.image, dets, "", seconds, frame=item.frame, name=name)


def build_keyframe_pipeline(detector, segmenter: str, every: int, device: str = "auto", fps: float = 30.0,
                            sam: SamOptions | None = None):
    """A :class:`KeyframePipeline` with the SAM 2 checkpoint ``segmenter`` ('auto': ``sam2.1_t.pt``), at the
    input side ``sam.imgsz`` (None: SAM 2's own, 1024).

    Returns:
        ``(pipeline, note)``; raises WeightsError / InputError for a missing or non-SAM 2 checkpoint, and
        InputError for ``sam`` options other than the input side (SAM 2's video memory gives one mask per
        object, in fp32).
    """
    from detseg.pipeline.factory import OWN_MASKS
    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    checkpoint = "sam2.1_t.pt" if segmenter in ("auto", None) else segmenter
    if checkpoint in (*WEIGHT_FREE, OWN_MASKS):
        raise InputError(f"--keyframe-every needs a SAM 2 --segmenter (e.g. sam2.1_t.pt), not {checkpoint!r}")
    sam = sam or SamOptions()
    unused = replace(sam, imgsz=None).changed()
    if unused:
        raise InputError(f"--{unused[0][0]} {unused[0][1]} does not apply to --keyframe-every: SAM 2's video "
                         "memory gives one mask per object, in fp32")
    memory = Sam2VideoMemory(SamSegmenter(checkpoint, device=device, output="dense", **sam.segmenter_kwargs()))
    note = (f"keyframe mode: detector every {every} frames, SAM 2 ({memory.segmenter.arch}{sam.size_note()}) video "
            "memory between")
    return KeyframePipeline(detector, memory, every=every, fps=fps), note
