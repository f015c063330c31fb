"""`detseg train --init`: start a model from any weights that match it by name and shape (tiny files written here)."""

import pytest
import torch

from detseg.detectors.init_weights import copy_matching, init_checkpoint, read_tensors
from detseg.errors import WeightsError
from tests.helpers import random_yolov5n_state_dict

NAMES = ["croissant", "cookie", "cupcake"]


@pytest.fixture(scope="module")
def donor():
    """A yolov5n.yaml model with 80 classes (as COCO weights are), random weights made distinct by a fixed seed."""
    return random_yolov5n_state_dict(nc=80, seed=3)


def _backbone_and_neck(sd):
    return {k: v.half() for k, v in sd.items() if not k.startswith("model.24.")}  # fp16, as released


def test_state_dict_copies_every_matching_tensor_and_leaves_the_head_fresh(donor, tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(_backbone_and_neck(donor), path)
    report = init_checkpoint("yolov5n.yaml", path, NAMES, tmp_path / "init.pt")

    from ultralytics import YOLO

    model = YOLO(str(tmp_path / "init.pt"))  # ultralytics loads it as a checkpoint it will train from
    assert model.names == dict(enumerate(NAMES)) and model.task == "detect"
    own = model.model.state_dict()
    backbone = [k for k in own if not k.startswith("model.24.")]
    assert sorted(report.copied) == sorted(backbone)
    assert report.fresh and all(k.startswith("model.24.") for k in report.fresh)
    for k in backbone:
        assert torch.equal(own[k].float(), donor[k].half().float()), k
    assert f"copied {len(backbone)} of {len(own)} tensors" in report.summary()
    assert "model.24.*" in report.summary()


def test_same_name_other_shape_stays_fresh_and_is_reported(donor):
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov5n.yaml", nc=3, verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = copy_matching(model, donor, "coco.pt")  # the 80-class head has other shapes than the 3-class one
    after = model.state_dict()
    assert report.shape_mismatch, "the class convolutions differ in shape"
    for k in report.shape_mismatch:
        assert torch.equal(after[k], before[k])
    # head tensors whose shape does not depend on the class count (box branch) do match and are copied
    assert any(k.startswith("model.24.cv2") for k in report.copied)
    assert "matched by name but not shape" in report.summary()


def test_checkpoint_forms_are_read(donor, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    module = DetectionModel("yolov5n.yaml", nc=80, verbose=False)
    module.load_state_dict(donor)
    torch.save({"model": module.half(), "train_args": {}}, tmp_path / "ultralytics.pt")  # a pickled module
    torch.save({"state_dict": dict(donor)}, tmp_path / "lightning.pt")
    for name in ("ultralytics.pt", "lightning.pt"):
        tensors = read_tensors(tmp_path / name)
        assert set(tensors) == set(donor)
        assert torch.allclose(tensors["model.0.conv.weight"].float(), donor["model.0.conv.weight"], atol=1e-2)


def test_nothing_in_common_is_one_clear_error(tmp_path):
    torch.save({"encoder.layer.0.weight": torch.zeros(4, 4)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="no tensor in common"):
        init_checkpoint("yolov5n.yaml", tmp_path / "other.pt", NAMES, tmp_path / "init.pt")
    assert not (tmp_path / "init.pt").exists()


@pytest.mark.parametrize("payload", [[1, 2, 3], {"a": "text", "b": 3}, {}, torch.zeros(3)])
def test_a_file_that_is_not_a_dict_of_tensors_is_refused(payload, tmp_path):
    torch.save(payload, tmp_path / "x.pt")
    with pytest.raises(WeightsError, match="no dict of tensors"):
        read_tensors(tmp_path / "x.pt")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        read_tensors(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read"):
        read_tensors(tmp_path / "junk.pt")


def test_cli_train_from_init_prints_the_count_and_trains(donor, tiny_dataset, tmp_path, capsys):
    from detseg.pipeline.cli import main

    torch.save(_backbone_and_neck(donor), tmp_path / "sd.pt")
    out = tmp_path / "run"
    rc = main(["train", "--data", str(tiny_dataset / "data.yaml"), "--model", "yolov5n.yaml", "--init",
               str(tmp_path / "sd.pt"), "--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu",
               "--workers", "0", "--out", str(out), "--no-plots"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "init: copied 342 of " in printed
    assert (out / "weights" / "last.pt").is_file()
    # the run trained the model that --init built: its first convolution started from the donor's
    from ultralytics import YOLO

    start = YOLO(str(out / "init.pt")).model.state_dict()["model.0.conv.weight"].float()
    trained = YOLO(str(out / "weights" / "last.pt")).model.state_dict()["model.0.conv.weight"].float()
    fresh = YOLO("yolov5n.yaml").model.state_dict()["model.0.conv.weight"].float()
    assert (trained - start).abs().mean() < (trained - fresh).abs().mean()


def test_cli_init_needs_a_yaml_model(tiny_dataset, tiny_weights, tmp_path, capsys):
    from detseg.pipeline.cli import main

    torch.save({"x": torch.zeros(1)}, tmp_path / "sd.pt")
    rc = main(["train", "--data", str(tiny_dataset / "data.yaml"), "--model", str(tiny_weights), "--init",
               str(tmp_path / "sd.pt"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "--init starts a model built from a .yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("target, expected", [
    (["cupcake", "cookie", "croissant"], "matched by name for 3 of 3 classes"),  # the same classes, reordered
    (["bagel", "Cookie ", "croissant"], "matched by name for 2 of 3 classes"),  # some in common
    (["bagel", "donut", "muffin"], "no class name in common"),
    (NAMES, None),  # the same order: copied as they are
])
def test_class_rows_follow_the_class_names_of_a_checkpoint_that_has_them(tmp_path, target, expected):
    """A 3-class source whose class order differs starts each class from its own rows (ultralytics' `load` does
    the same for a .pt), never from the class that sat at the same position."""
    from ultralytics.nn.tasks import DetectionModel

    source = DetectionModel("yolov5n.yaml", nc=3, verbose=False)
    source.load_state_dict(random_yolov5n_state_dict(nc=3, seed=5))
    source.names = dict(enumerate(NAMES))
    torch.save({"model": source, "train_args": {}}, tmp_path / "src.pt")
    report = init_checkpoint("yolov5n.yaml", tmp_path / "src.pt", target, tmp_path / "init.pt")
    from ultralytics import YOLO

    own, src = YOLO(str(tmp_path / "init.pt")).model.state_dict(), source.state_dict()
    rows = [k for k in own if k.startswith("model.24.cv3.") and k.endswith((".2.weight", ".2.bias"))]
    assert len(rows) == 6  # three scales, weight and bias
    for k in rows:
        for t, name in enumerate(target):
            s = next((i for i, n in enumerate(NAMES) if n == name.strip().lower()), None)
            if s is not None:
                assert torch.equal(own[k][t], src[k][s]), (k, name)
            else:
                assert not any(torch.equal(own[k][t], src[k][i]) for i in range(3)), (k, name)  # fresh
    if expected:
        assert expected in report.summary()
    else:
        assert "class rows" not in report.summary() and all(k in report.copied for k in rows)


def test_class_rows_of_another_shape_are_said_to_start_fresh(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    source = DetectionModel("yolov8s.yaml", nc=3, verbose=False)  # class convolutions wider than yolov8n's
    source.names = dict(enumerate(reversed(NAMES)))
    torch.save({"model": source, "train_args": {}}, tmp_path / "s.pt")
    report = init_checkpoint("yolov8n.yaml", tmp_path / "s.pt", NAMES, tmp_path / "init.pt")
    assert "class weights start fresh (the source's class layers have another shape)" in report.summary()
