"""Beyond one process: the same run on Ray Data actors (:mod:`~detseg.pipeline.scale.ray_engine`), writing the
files the local run writes. Nothing here imports the command line."""
