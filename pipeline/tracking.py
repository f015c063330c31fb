"""Tracking by detection on videos: roboflow ``trackers``' ByteTrack ids on the pipeline's detections,
and the tracked outputs of ``detseg predict VIDEO --track``.

Frame numbers: ``Frame.frame`` counts from 0 (the video's frame position); everything written
(``tracks.txt``, COCO ``image_id``, ``images.json``'s ``frame``) counts from 1, so frame ``n`` of
the files is the video's ``n``-th frame whatever ``--stride`` was.

``tracks.txt`` is MOTChallenge: ``frame,id,x,y,w,h,score,class,-1,-1`` with ``x y w h`` the box
in pixels (top-left and size) and ``class`` the COCO category id (class id + 1).

Example:
    >>> import numpy as np, supervision as sv
    >>> from detseg.pipeline.tracking import Tracker
    >>> tracker = Tracker(fps=10)
    >>> box = lambda x: sv.Detections(xyxy=np.array([[x, 10, x + 40, 50]], float), confidence=np.array([0.9]),
    ...                               class_id=np.array([1]))
    >>> [tracker.update(box(10 + 2 * i), i).tracker_id.tolist() for i in range(3)]
    [[], [1], [1]]
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import supervision as sv

from detseg.errors import InputError


class Tracker:
    """ByteTrack (``trackers.ByteTrackTracker``) on ``sv.Detections``, rows and masks kept aligned.

    Rows the tracker leaves without an id (a track's first frame before it is confirmed,
    unmatched low-confidence boxes) are dropped: every returned row has ``tracker_id >= 1``
    (the package's ids + 1, as MOTChallenge counts ids from 1).
    Rows come back in the tracker's order, with their masks and ``data`` (supervision indexing).

    Args:
        fps: frames per second of the video; with frame numbers it gives ByteTrack real time
            steps, so ``--stride`` and detector keyframes keep the motion model right.
        lost_seconds: how long a track survives without detections (occlusion, missed boxes).
        activation: minimum confidence to start a track.
        min_frames: consecutive matched frames before a track gets an id.
        match_iou: minimum IoU between a track's prediction and a box to match them.
        high_conf: confidence separating ByteTrack's first (high) and second (low) association.
    """

    def __init__(self, fps: float = 30.0, lost_seconds: float = 1.0, activation: float = 0.5, min_frames: int = 2,
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

    def update(self, detections: sv.Detections, frame_index: int) -> sv.Detections:
        """Track ids for one frame's detections.

        Args:
            detections: xyxy pixels, confidence, class_id (masks and data ride along).
            frame_index: the frame's position in the video (from 0; must increase).

        Returns:
            The tracked rows (see the class docstring), ``tracker_id`` int >= 1.
        """
        result = self._tracker.update(detections, timestamp=frame_index / self.fps)
        keep = np.flatnonzero(np.asarray(result.tracker_id) >= 0) if len(result) else np.zeros(0, int)
        if len(result) == 0 or len(keep) == 0:  # ByteTrack's empty result has no mask/data: keep the input's
            empty = detections[np.zeros(0, int)] if len(detections) else detections
            empty.tracker_id = np.zeros(0, int)
            return empty
        out = result[keep]
        out.tracker_id = np.asarray(out.tracker_id, int) + 1  # trackers counts from 0; MOTChallenge ids from 1
        return out


def mot_lines(detections: sv.Detections, frame_number: int) -> list[str]:
    """MOTChallenge lines ``frame,id,x,y,w,h,score,class,-1,-1`` of one frame's tracked rows.

    Args:
        detections: rows with ``tracker_id`` (xyxy pixels).
        frame_number: the video's frame number, counted from 1.
    """
    if len(detections) == 0:
        return []
    conf = detections.confidence if detections.confidence is not None else np.ones(len(detections))
    cls = detections.class_id if detections.class_id is not None else np.zeros(len(detections), int)
    lines = []
    for (x0, y0, x1, y1), tid, s, c in zip(detections.xyxy, detections.tracker_id, conf, cls):
        lines.append(f"{frame_number},{int(tid)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{float(s):.4f},"
                     f"{int(c) + 1},-1,-1")
    return lines


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
