"""The detector -> segmenter pipeline (:class:`Pipeline`), its steps, and one run over a source
(:func:`detseg.pipeline.predict.run_predict`); its wings: ``cli`` (the ``detseg`` command), ``evaluation``,
``video`` (tracking, keyframe mode) and ``scale`` (the Ray engine)."""

from __future__ import annotations

from detseg.pipeline.core import Pipeline
from detseg.pipeline.frame import Frame

__all__ = ["Pipeline", "Frame"]
