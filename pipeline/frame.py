"""One processed input of a pipeline run (:meth:`detseg.pipeline.Pipeline.run`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import supervision as sv


@dataclass
class Frame:
    """One processed input of :meth:`Pipeline.run`.

    Attributes:
        index: position in the source, counting inputs from 0.
        path: file the image came from ("" for arrays; the video file for video frames).
        image: ``(H, W, 3)`` uint8 BGR, or None when reading failed.
        detections: the result, or None when this input failed.
        error: why it failed ("" when it did not).
        seconds: time per stage for this input.
        frame: a video frame's own number, counted from 0 (None for images).
        name: a flat output name, unique within the run (see :func:`detseg.pipeline.sources.unique_names`).
    """

    index: int
    path: str
    image: np.ndarray | None
    detections: sv.Detections | None
    error: str = ""
    seconds: dict = field(default_factory=dict)
    frame: int | None = None
    name: str = ""

    @property
    def ok(self) -> bool:
        return not self.error
