"""Tracked video runs of ``detseg predict``: what changes when a video is tracked.

On top of the per-frame outputs (:mod:`detseg.pipeline.outputs`), a tracked run writes::

    tracks.txt        MOTChallenge results frame,id,x,y,w,h,score,-1,-1,-1 (frame from 1; classes: predictions.json)
    predictions.json  every result also carries "track_id"
    annotated.mp4     one colour per track id, "#id class score" labels and a short trace
    summary.json      "instances_per_class" / "instances": distinct tracked objects (a track counts
                      once, as the class it was detected as most often), "frame_instances_per_class":
                      the per-frame sum, "tracks": number of track ids, "tracking": settings

Tracks seen in fewer than ``min_track_frames`` frames (default 3) are left out of the counts
(short flickers of false detections), not out of ``tracks.txt``; a run of fewer frames than that
(a one-frame video, ``--max-frames 2``) asks for a track in every frame it processed instead, so its
objects still count.
"""

from __future__ import annotations

import time
from pathlib import Path

from detseg.atomic import atomic_write_text
from detseg.pipeline.outputs import Annotator
from detseg.pipeline.video.tracking import Tracker, TrackLog


class VideoTracking:
    """Per-run tracking state: the tracker (None when the pipeline assigns ids), the log, the annotator."""

    def __init__(self, tracker: Tracker | None, class_names: dict[int, str], min_track_frames: int = 3,
                 settings: dict | None = None):
        self.tracker = tracker
        self.log = TrackLog(class_names)
        self.annotate = Annotator(class_names, by_track=True)
        self.min_track_frames = min_track_frames
        self.settings = settings or {}
        self.frames = 0  # frames tracked so far

    def update(self, frame) -> None:
        """Give ``frame.detections`` track ids (unless they have them) and log them; in frame order."""
        if self.tracker is not None:
            t = time.perf_counter()
            frame.detections = self.tracker.update(frame.detections, frame.frame)
            frame.seconds["track"] = time.perf_counter() - t
        self.log.add(frame.detections, frame.frame + 1)
        self.frames += 1

    def counted_min_frames(self) -> int:
        """Frames a track needs to count as an object: ``min_track_frames``, or all the frames of a run that
        processed fewer (else a one- or two-frame run would count none of what it tracked)."""
        return max(1, min(self.min_track_frames, self.frames))

    def finalize(self, out: Path, summary: dict) -> None:
        """Write ``tracks.txt`` and turn the summary's counts into distinct objects."""
        atomic_write_text(Path(out) / "tracks.txt", self.log.text())
        per_frame = summary.pop("instances_per_class")
        summary.pop("instances")
        min_frames = self.counted_min_frames()
        counts = self.log.objects_per_class(min_frames)
        summary["instances_per_class"] = counts
        summary["instances"] = sum(counts.values())
        summary["frame_instances_per_class"] = per_frame
        summary["frame_instances"] = sum(per_frame.values())
        summary["tracks"] = len(self.log.votes)
        summary["tracking"] = {**self.settings, "min_track_frames": min_frames}


def tracking_for(pipeline, source, track, fps: float | None = None) -> VideoTracking | None:
    """The tracking state of a video run, or None when the run is not tracked.

    Args:
        pipeline: the run's pipeline; ``assigns_track_ids = True`` means its detections already
            carry ``tracker_id`` (keyframe mode), so no tracker is added.
        source: the video path (its fps sets the tracker's time step, unless ``fps`` is given).
        track: False, True (ByteTrack, default settings) or a :class:`Tracker` (reset here, so one
            instance can serve video after video).
        fps: the video's frame rate, when the caller already knows it.
    """
    names = {int(k): str(v) for k, v in dict(getattr(pipeline.detector, "class_names", None) or {}).items()}
    if getattr(pipeline, "assigns_track_ids", False):
        return VideoTracking(None, names, settings=dict(getattr(pipeline, "settings", {})))
    if track is False or track is None:
        return None
    if track is True:
        if fps is None:
            from detseg.pipeline.sources import video_info

            fps = video_info(Path(source))["fps"]
        track = Tracker(fps=fps)
    else:  # a Tracker given by the caller may have run on another video: start it afresh (ids from 1)
        track.reset()
    settings = {"tracker": "bytetrack (roboflow trackers)", "fps": track.fps, "lost_seconds": track.lost_seconds,
                "activation": track.activation, "min_frames": track.min_frames, "match_iou": track.match_iou}
    return VideoTracking(track, names, settings=settings)
