"""``yolov5n-seg.yaml``: ultralytics' YOLOv5u with a Segment head, derived on demand (random weights built here)."""

import pytest
import torch

from detseg.detectors.init_weights import init_checkpoint
from detseg.detectors.model_configs import is_derived, resolve_model_config
from tests.helpers import random_yolov5n_state_dict

NAMES = ["croissant", "cookie", "cupcake"]
MASK_BRANCHES = ("model.24.proto.", "model.24.cv4.")  # what Segment has and Detect has not


@pytest.fixture(scope="module")
def detector_sd():
    """A 3-class YOLOv5u-n detector (yolov5n.yaml) with random weights made distinct by a fixed seed."""
    return random_yolov5n_state_dict(nc=3, seed=5)


def test_derived_config_is_yolov5_with_a_segment_head(detector_sd, tmp_path):
    from ultralytics.nn.modules import Segment
    from ultralytics.nn.tasks import SegmentationModel

    path = resolve_model_config("yolov5n-seg.yaml", tmp_path)
    assert path == str(tmp_path / "yolov5n-seg.yaml") and (tmp_path / "yolov5n-seg.yaml").is_file()
    seg = SegmentationModel(path, nc=3, verbose=False)
    assert isinstance(seg.model[-1], Segment) and seg.yaml["scale"] == "n"
    own = seg.state_dict()
    for k, v in detector_sd.items():  # the whole detector, box head included, fits by name and shape
        assert own[k].shape == v.shape, k
    extra = [k for k in own if k not in detector_sd]
    assert extra and all(k.startswith(MASK_BRANCHES) for k in extra)
    small = SegmentationModel(resolve_model_config("yolov5s-seg.yaml", tmp_path), nc=3, verbose=False)
    assert sum(p.numel() for p in small.parameters()) > 2 * sum(p.numel() for p in seg.parameters())  # scale s


def test_init_from_a_yolov5u_detector_fills_all_but_the_mask_branches(detector_sd, tmp_path):
    from ultralytics import YOLO

    torch.save(detector_sd, tmp_path / "det.pt")
    report = init_checkpoint("yolov5n-seg.yaml", tmp_path / "det.pt", NAMES, tmp_path / "init.pt")
    assert sorted(report.copied) == sorted(detector_sd)
    assert report.fresh and all(k.startswith(MASK_BRANCHES) for k in report.fresh)
    model = YOLO(str(tmp_path / "init.pt"))
    assert model.task == "segment" and model.names == dict(enumerate(NAMES))
    own = model.model.state_dict()
    for k in ("model.0.conv.weight", "model.24.cv2.0.0.conv.weight", "model.24.cv3.2.2.bias"):
        assert torch.equal(own[k], detector_sd[k]), k


def test_other_names_and_existing_files_are_left_alone(tmp_path, monkeypatch):
    for name in ("yolov8n-seg.yaml", "yolov5n.yaml", "yolov5-seg.yaml", "weights.pt", tmp_path / "x.yaml"):
        assert resolve_model_config(name, tmp_path / "out") == name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolov5n-seg.yaml").write_text("# the user's own\n")
    assert not is_derived("yolov5n-seg.yaml")
    assert resolve_model_config("yolov5n-seg.yaml", tmp_path / "out") == "yolov5n-seg.yaml"
    assert not (tmp_path / "out").exists()


def test_train_segment_from_a_detector(seg_run, detector_sd, tmp_path):
    """``train(model="yolov5n-seg.yaml", task="segment", init=detector)``: one epoch, box and mask metrics."""
    from detseg.detectors.train import train

    torch.save(detector_sd, tmp_path / "det.pt")
    data = seg_run.run_dir.parent / "auto" / "data.yaml"  # the pipeline-labelled tiny dataset of seg_run
    result = train(data, model="yolov5n-seg.yaml", task="segment", init=tmp_path / "det.pt", epochs=1, imgsz=64,
                   batch=4, device="cpu", out=tmp_path / "run", workers=0, plots=False)
    assert (tmp_path / "run" / "yolov5n-seg.yaml").is_file() and result.best_weights.is_file()
    assert "mask" in result.metrics and "mAP50-95" in result.metrics["mask"]


def test_cli_refuses_it_for_the_detect_task_before_writing_anything(tiny_dataset, tmp_path, capsys):
    from detseg.pipeline.cli import main

    rc = main(["train", "--data", str(tiny_dataset / "data.yaml"), "--model", "yolov5n-seg.yaml",
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "yolov5n-seg.yaml is a segment model but --task is detect" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
