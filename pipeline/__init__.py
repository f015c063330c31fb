"""The detector -> segmenter pipeline, its steps, the ``detseg`` CLI and evaluation."""

from __future__ import annotations

from detseg.pipeline.core import Pipeline
from detseg.pipeline.frame import Frame

__all__ = ["Pipeline", "Frame"]
