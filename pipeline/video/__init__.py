"""Videos: tracking ids (:mod:`~detseg.pipeline.video.tracking`, ByteTrack), what a tracked run writes on top of
the per-frame outputs (:mod:`~detseg.pipeline.video.tracked`) and keyframe mode, SAM 2's video memory between
detector keyframes (:mod:`~detseg.pipeline.video.keyframes`)."""
