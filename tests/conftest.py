"""Shared, session-scoped fixtures: everything expensive is built once per test run.

Nothing here downloads: datasets come from the project's own generator, SAM
checkpoints are random-initialised and written to a temp dir, YOLO models are built
from ``.yaml``.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: no online checks in tests


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A generated food dataset: 6 train, 3 val, 2 test images of 128x128 (polygons in COCO)."""
    from data.synth import generate_dataset

    out = tmp_path_factory.mktemp("food")
    generate_dataset(out, {"train": 6, "val": 3, "test": 2}, seed=7, imgsz=128, progress=False)
    return out
