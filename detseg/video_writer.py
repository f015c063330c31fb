"""MP4 files that browsers, Jupyter and VS Code play: H.264 (yuv420p) through PyAV's libx264.

OpenCV's ``cv2.VideoWriter`` (and ``sv.VideoSink``, built on it) writes MPEG-4 Part 2 (``mp4v``),
which those players refuse. PyAV comes with supervision and carries libx264; where the encoder is
missing the writer falls back to ``mp4v`` and says so once on stderr.

Example:
    >>> import numpy as np                                          # doctest: +SKIP
    >>> with VideoWriter("clip.mp4", fps=12) as video:              # doctest: +SKIP
    ...     video.write(np.zeros((240, 320, 3), np.uint8))         # BGR frames, all the same size
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

_warned = False


def h264_available() -> bool:
    """Whether PyAV with the libx264 encoder can be imported here."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


class VideoWriter:
    """Write BGR frames to an ``.mp4``: H.264 when PyAV's libx264 is there, else ``mp4v`` (one line on stderr).

    The frame size is taken from the first frame; every frame must have it. H.264 in yuv420p needs
    even sides: a frame with an odd side gets its last row or column repeated once.

    Args:
        path: the file to write (any name: the container is always MP4).
        fps: frames per second (> 0).

    Attributes:
        codec: ``"h264"`` or ``"mp4v"`` (after the first frame).
    """

    def __init__(self, path: str | Path, fps: float):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path, self.fps = Path(path), float(fps)
        self.codec: str | None = None
        self._container = self._stream = self._cv2 = None
        self._rate = Fraction(1)
        self._size: tuple[int, int] | None = None
        self._count = 0

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, width: int, height: int) -> None:
        global _warned
        self._size = (width, height)
        if h264_available():
            import av

            rate = self._rate = Fraction(self.fps).limit_denominator(1001)
            self._container = av.open(str(self.path), mode="w", format="mp4")
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = width + width % 2, height + height % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "23", "preset": "veryfast"}
            self.codec = "h264"
            return
        import cv2

        if not _warned:
            print("detseg: PyAV's libx264 encoder is missing, so videos are written as MPEG-4 Part 2 (mp4v), "
                  "which browsers do not play", file=sys.stderr)
            _warned = True
        self._cv2 = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        self.codec = "mp4v"

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame."""
        h, w = frame.shape[:2]
        if self._size is None:
            self._open(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"frame {self._count} is {w}x{h}, the video is {self._size[0]}x{self._size[1]}")
        frame = np.ascontiguousarray(frame)
        if self._cv2 is not None:
            self._cv2.write(frame)
        else:
            import av

            if w % 2 or h % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
            picture.pts = self._count
            picture.time_base = 1 / self._rate
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        self._count += 1

    def close(self) -> None:
        """Flush the encoder and close the file (nothing is written for a video with no frame)."""
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._stream = self._container = None
        if self._cv2 is not None:
            self._cv2.release()
            self._cv2 = None
