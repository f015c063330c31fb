"""detseg: instance segmentation from an object detector and Segment Anything, no mask training.

The public face. Imports are lazy, so ``import detseg`` (or ``detseg.errors``) does not
import torch or ultralytics.

Example:
    >>> from detseg import Pipeline, YoloDetector, SamSegmenter   # doctest: +SKIP
    >>> pipe = Pipeline(YoloDetector("detectors/weights/food-yolov5nu.pt"), SamSegmenter("mobile_sam.pt"))
    >>> detections = pipe(image_bgr)   # sv.Detections: xyxy, confidence, class_id, mask, data["class_name"]
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("detseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_PUBLIC = {
    "Pipeline": "detseg.pipeline.core",
    "Frame": "detseg.pipeline.core",
    "YoloDetector": "detseg.detectors.yolo",
    "BoxesDetector": "detseg.detectors.boxes",
    "SamSegmenter": "detseg.segmenter.sam",
    "GrabCutSegmenter": "detseg.segmenter.grabcut",
    "BoxSegmenter": "detseg.segmenter.box",
    "EllipseSegmenter": "detseg.segmenter.box",
    "build_segmenter": "detseg.segmenter.factory",
    "DetsegError": "detseg.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'detseg' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
