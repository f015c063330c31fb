"""Detectors: image in, ``sv.Detections`` (xyxy, confidence, class_id, data["class_name"]) out.

Any callable ``image -> sv.Detections`` is a detector; these are the ones shipped.
Imports are lazy so that ``import detectors`` does not import torch.
"""

from __future__ import annotations

__all__ = ["YoloDetector", "BoxesDetector", "DEFAULT_WEIGHTS"]


def __getattr__(name):
    if name in ("YoloDetector", "DEFAULT_WEIGHTS"):
        from detseg.detectors import yolo

        return getattr(yolo, name)
    if name == "BoxesDetector":
        from detseg.detectors.boxes import BoxesDetector

        return BoxesDetector
    raise AttributeError(f"module 'detectors' has no attribute {name!r}")
