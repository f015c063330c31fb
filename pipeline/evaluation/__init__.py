"""Evaluation: COCO mask AP of pipeline configurations (:mod:`~detseg.pipeline.evaluation.evaluate`), its metrics
and plots, segmenters scored on ground-truth boxes (:mod:`~detseg.pipeline.evaluation.segmenter_eval`) and the
tracking quality of tracked video runs (:mod:`~detseg.pipeline.evaluation.track_eval`)."""
