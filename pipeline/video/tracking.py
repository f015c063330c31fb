"""Tracking by detection on videos: roboflow ``trackers``' ByteTrack ids on the pipeline's detections,
and the tracked outputs of ``detseg predict VIDEO --track``.

Frame numbers: ``Frame.frame`` counts from 0 (the video's frame position); everything written
(``tracks.txt``, COCO ``image_id``, ``images.json``'s ``frame``) counts from 1, so frame ``n`` of
the files is the video's ``n``-th frame whatever ``--stride`` was.

``tracks.txt`` is MOTChallenge results: ``frame,id,x,y,w,h,score,-1,-1,-1`` with ``x y w h`` the box in
pixels (top-left and size), as TrackEval and roboflow ``trackers`` read and write them (TrackEval takes an 8th
column as the class and refuses any but pedestrian). Each row's class is in ``predictions.json`` (``image_id``
= frame, ``track_id``, ``category_id``).

Example:
    >>> import numpy as np, supervision as sv
    >>> from detseg.pipeline.video.tracking import Tracker
    >>> tracker = Tracker(fps=10)
    >>> box = lambda x: sv.Detections(xyxy=np.array([[x, 10, x + 40, 50]], float), confidence=np.array([0.9]),
    ...                               class_id=np.array([1]))
    >>> [tracker.update(box(10 + 2 * i), i).tracker_id.tolist() for i in range(3)]
    [[1], [1], [1]]
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import supervision as sv

from detseg.errors import InputError

NO_TRACK = 0  # tracker_id of a detection the tracker gave no track (kept in every per-frame output)


class Tracker:
    """ByteTrack (``trackers.ByteTrackTracker``) on ``sv.Detections``, rows and masks kept aligned.

    Every detection comes back, with its mask, class and ``data`` (supervision indexing), in the
    tracker's order: a tracked row has ``tracker_id >= 1`` (the package's ids + 1, as MOTChallenge
    counts ids from 1); a row the tracker leaves without a track has ``tracker_id`` 0 (:data:`NO_TRACK`:
    a low-confidence box matching no track, or with ``min_frames`` > 1 a track not yet confirmed).
    The tracker never removes a detection from a frame's outputs; ``tracks.txt`` and the counts of
    distinct objects hold the tracked rows only.

    With the default ``min_frames=1`` a track gets its id on its first frame (ultralytics' ByteTrack
    does the same on a video's first frame), so no object's first frame goes without an id;
    one-frame flickers are kept out of the object counts by ``min_track_frames``
    (:mod:`detseg.pipeline.video.tracked`), not by holding ids back.

    Args:
        fps: frames per second of the video; with frame numbers it gives ByteTrack real time
            steps, so ``--stride`` and detector keyframes keep the motion model right.
        lost_seconds: how long a track survives without detections (occlusion, missed boxes), beyond the step
            between two processed frames (``--stride`` / fps).
        activation: minimum confidence to start a track.
        min_frames: consecutive matched frames before a track gets an id (1: on its first frame).
        match_iou: minimum IoU between a track's prediction and a box to match them.
        high_conf: confidence separating ByteTrack's first (high) and second (low) association.
    """

    def __init__(self, fps: float = 30.0, lost_seconds: float = 1.0, activation: float = 0.5, min_frames: int = 1,
                 match_iou: float = 0.1, high_conf: float = 0.5):
        if fps <= 0 or lost_seconds < 0 or min_frames < 1:
            raise InputError(f"tracker needs fps > 0, lost_seconds >= 0 and min_frames >= 1, got {fps}, "
                             f"{lost_seconds}, {min_frames}")
        self.fps = float(fps)
        self.lost_seconds = lost_seconds
        self.activation = activation
        self.min_frames = min_frames
        self.match_iou = match_iou
        self.high_conf = high_conf
        self.reset()

    def reset(self) -> None:
        """Forget every track (ids start again at 1)."""
        from trackers import ByteTrackTracker

        self._tracker = ByteTrackTracker(lost_track_buffer=int(round(self.lost_seconds * 30)), frame_rate=self.fps,
                                         track_activation_threshold=self.activation,
                                         minimum_consecutive_frames=self.min_frames,
                                         minimum_iou_threshold=self.match_iou, high_conf_det_threshold=self.high_conf)
        self._last_frame: int | None = None

    def update(self, detections: sv.Detections, frame_index: int) -> sv.Detections:
        """Track ids for one frame's detections.

        Args:
            detections: xyxy pixels, confidence, class_id (masks and data ride along).
            frame_index: the frame's position in the video (from 0; must increase).

        Returns:
            The tracked rows (see the class docstring), ``tracker_id`` int >= 1.
        """
        if self._last_frame is not None and hasattr(self._tracker, "maximum_time_without_update"):
            # trackers prunes by time before matching, and a track matched on the previous processed frame is one
            # step old by then: with --stride 13 at 12 fps (a step over lost_seconds) every track was pruned and
            # each frame got new ids. The budget is lost_seconds beyond the step between processed frames.
            step = max(frame_index - self._last_frame, 1) / self.fps
            self._tracker.maximum_time_without_update = self.lost_seconds + step
        self._last_frame = frame_index
        result = self._tracker.update(detections, timestamp=frame_index / self.fps)
        if len(result) != len(detections):  # trackers returns every row (unmatched ones with -1); guard anyway
            raise RuntimeError(f"the tracker returned {len(result)} of {len(detections)} detections")
        if len(result) == 0:  # ByteTrack's empty result has no mask/data: keep the input's
            empty = detections[np.zeros(0, int)] if len(detections) else detections
            empty.tracker_id = np.zeros(0, int)
            return empty
        ids = np.asarray(result.tracker_id, int).copy()
        if self.min_frames <= 1:
            self._name_new_tracks(result.xyxy, ids)
        result.tracker_id = np.where(ids >= 0, ids + 1, NO_TRACK)  # trackers counts from 0; MOTChallenge from 1
        return result

    def _name_new_tracks(self, xyxy: np.ndarray, ids: np.ndarray) -> None:
        """Give the tracks this frame started their ids now, in place in ``ids``.

        ``trackers``' ByteTrack names a track on its second matched frame whatever
        ``minimum_consecutive_frames`` says, so an object's first frame would have no id. A new
        track starts at its detection's box; each row without an id whose box is a new track's
        gets that track's id (the id the package would have given it one frame later).
        """
        tracker = self._tracker
        if not hasattr(tracker, "_allocate_tracker_id"):  # another trackers release: ids from frame 2, as it gives
            return
        fresh = [t for t in tracker.tracks if t.tracker_id == -1 and t.number_of_successful_consecutive_updates == 1]
        for row in np.flatnonzero(ids < 0):
            for track in fresh:
                if track.tracker_id == -1 and np.allclose(track.get_state_bbox(), xyxy[row], atol=1e-3):
                    track.tracker_id = ids[row] = tracker._allocate_tracker_id()
                    break


def mot_lines(detections: sv.Detections, frame_number: int) -> list[str]:
    """MOTChallenge result lines ``frame,id,x,y,w,h,score,-1,-1,-1`` of one frame's tracked rows.

    Args:
        detections: rows with ``tracker_id`` (xyxy pixels).
        frame_number: the video's frame number, counted from 1.
    """
    if len(detections) == 0:
        return []
    detections = detections[np.asarray(detections.tracker_id) != NO_TRACK]
    conf = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    return [f"{frame_number},{int(tid)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{float(s):.4f},-1,-1,-1"
            for (x0, y0, x1, y1), tid, s in zip(detections.xyxy, detections.tracker_id, conf)]


class TrackLog:
    """What a tracked run has seen: MOT lines, and per track its frames and class votes.

    A track's class is the class it was detected as most often (ties: the first seen).
    """

    def __init__(self, class_names: dict[int, str]):
        self.class_names = class_names
        self.lines: list[str] = []
        self.votes: dict[int, Counter] = defaultdict(Counter)
        self.frames: Counter = Counter()

    def add(self, detections: sv.Detections, frame_number: int) -> None:
        self.lines.extend(mot_lines(detections, frame_number))
        cls = detections.class_id if detections.class_id is not None else np.zeros(len(detections), int)
        for tid, c in zip(detections.tracker_id, cls):
            if int(tid) == NO_TRACK:
                continue
            self.votes[int(tid)][int(c)] += 1
            self.frames[int(tid)] += 1

    def track_classes(self, min_frames: int = 1) -> dict[int, int]:
        """track id -> class id, for tracks seen in at least ``min_frames`` frames."""
        return {t: v.most_common(1)[0][0] for t, v in self.votes.items() if self.frames[t] >= min_frames}

    def objects_per_class(self, min_frames: int = 1) -> dict[str, int]:
        """Distinct tracked objects per class name (every class of the detector listed, 0 when unseen)."""
        counts = Counter(self.track_classes(min_frames).values())
        names = dict(self.class_names) or {c: str(c) for c in counts}
        return {names.get(c, str(c)): counts.get(c, 0) for c in sorted(set(names) | set(counts))}

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")
