"""Shared, session-scoped fixtures: everything expensive is built once per test run.

Nothing here downloads: datasets come from the project's own generator, SAM
checkpoints are random-initialised and written to a temp dir, YOLO models are built
from ``.yaml``.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: no online checks in tests

# ultralytics binds its log handler to the sys.stdout of its first import. First imported inside a test
# that uses capsys, it would keep writing to that test's stream, closed afterwards, and every later
# ultralytics log line would print "Logging error" to stderr (a test reading stderr then fails).
import ultralytics.utils  # noqa: E402, F401


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A generated food dataset: 6 train, 3 val, 2 test images of 128x128 (polygons in COCO)."""
    from detseg.data.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("food")
    generate_dataset(out, {"train": 6, "val": 3, "test": 2}, seed=7, imgsz=128, progress=False)
    return out


@pytest.fixture(scope="session")
def mobile_sam_checkpoint(tmp_path_factory):
    """A random-initialised MobileSAM state dict written to a temp dir (no download).

    Random weights give masks that cover large parts of the frame, which makes the
    exactness checks strict.
    """
    from detseg.segmenter.sam_loading import save_random_checkpoint

    return save_random_checkpoint(tmp_path_factory.mktemp("sam") / "mobile_sam.pt", "mobile_sam", seed=0)


@pytest.fixture(scope="session")
def sam2_checkpoint_present(tmp_path_factory):
    """Random SAM 2.1-t weights whose object-presence head says "present" (random heads call every
    object absent, so SAM 2's video memory would carry empty masks)."""
    from detseg.segmenter.sam_loading import save_random_checkpoint

    return save_random_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2.1_t.pt", "sam2.1_t", seed=0,
                                  objects_present=True)


@pytest.fixture(scope="session")
def sam(mobile_sam_checkpoint):
    from detseg.segmenter import SamSegmenter

    return SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense").load()


@pytest.fixture(scope="session")
def ultralytics_predictor(mobile_sam_checkpoint):
    """ultralytics' own SAM predictor on the same checkpoint: the reference path."""
    from ultralytics.models.sam import Predictor

    return Predictor(overrides=dict(conf=0.0, model=str(mobile_sam_checkpoint), imgsz=1024, device="cpu",
                                    verbose=False, save=False))


@pytest.fixture(scope="session")
def trained_run(tiny_dataset, tmp_path_factory):
    """detseg train: 1 epoch of yolov8n.yaml at imgsz 64 on the tiny generated set, offline."""
    from detseg.detectors.train import train

    out = tmp_path_factory.mktemp("train") / "run"
    return train(tiny_dataset / "data.yaml", model="yolov8n.yaml", epochs=1, imgsz=64, batch=4, device="cpu",
                 out=out, workers=0)


@pytest.fixture(scope="session")
def seg_run(tiny_dataset, tmp_path_factory):
    """1 epoch of yolov8n-seg.yaml at imgsz 64 on the tiny generated images, labelled by the pipeline, offline."""
    from detseg.detectors.train import train
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.segmenter import GrabCutSegmenter
    from tests.helpers import FakeDetector

    tmp = tmp_path_factory.mktemp("segtrain")
    run_predict(Pipeline(FakeDetector(), GrabCutSegmenter()), tiny_dataset / "images", tmp / "predict",
                RunOptions(save_dataset=tmp / "auto", progress=False))
    return train(tmp / "auto" / "data.yaml", model="yolov8n-seg.yaml", task="segment", epochs=1, imgsz=64,
                 batch=4, device="cpu", out=tmp / "run", workers=0)


@pytest.fixture(scope="session")
def tiny_weights(trained_run):
    return trained_run.best_weights


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights in the working folder and every ultralytics download failing, as on a machine without internet."""
    monkeypatch.chdir(tmp_path)

    def no_network(*args, **kwargs):
        raise ConnectionError("no internet")

    monkeypatch.setattr("ultralytics.utils.downloads.attempt_download_asset", no_network)


@pytest.fixture(scope="session")
def structured_seg_weights(seg_run, tmp_path_factory):
    """The 1-epoch student with random prototype and coefficient convs: its masks cover whole boxes
    otherwise (nothing to compare); these give partial masks with real edges."""
    import torch
    from ultralytics import YOLO

    model = YOLO(str(seg_run.best_weights))
    head = model.model.model[-1]
    torch.manual_seed(0)
    with torch.no_grad():
        for branch in head.cv4:
            branch[-1].weight.normal_(0, 0.5)
            branch[-1].bias.zero_()
        head.proto.cv3.conv.weight.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("structured") / "seg.pt"
    model.save(str(path))
    return path
