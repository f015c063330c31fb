"""The detector -> segmenter pipeline, its steps, the ``detseg`` CLI and evaluation."""

from __future__ import annotations

from detseg.pipeline.core import Frame, Pipeline

__all__ = ["Pipeline", "Frame"]
