import pytest
import torch

from detseg.detectors.heads import add_classes, keep_classes
from detseg.errors import InputError, WeightsError


def _outputs(path, x):
    """The model's raw inference output ``(1, 4 + nc, anchors)``: boxes, then class scores (sigmoid)."""
    from ultralytics import YOLO

    model = YOLO(str(path)).model.float().eval()
    with torch.no_grad():
        out = model(x)
    return (out[0] if isinstance(out, (list, tuple)) else out), dict(model.names)


@pytest.fixture(scope="module")
def x():
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_add_classes_keeps_every_trained_row_and_appends_new_names(tiny_weights, tmp_path, x):
    ref, names = _outputs(tiny_weights, x)
    out = add_classes(tiny_weights, tmp_path / "wide.pt", ["other baked good", "bread"])
    got, got_names = _outputs(out, x)
    assert got_names == {**names, 3: "other baked good", 4: "bread"}
    assert got.shape[1] == ref.shape[1] + 2
    torch.testing.assert_close(got[:, : ref.shape[1]], ref, atol=2e-3, rtol=1e-2)  # fp16 round trip
    assert (got[:, ref.shape[1] :] < 0.5).all()  # new classes start at ultralytics' low prior


def test_keep_classes_reorders_and_drops_rows(tiny_weights, tmp_path, x):
    ref, names = _outputs(tiny_weights, x)
    out = keep_classes(tiny_weights, tmp_path / "two.pt", [2, 0])
    got, got_names = _outputs(out, x)
    assert got_names == {0: names[2], 1: names[0]}
    torch.testing.assert_close(got[:, :4], ref[:, :4], atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(got[:, 4], ref[:, 4 + 2], atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(got[:, 5], ref[:, 4 + 0], atol=2e-3, rtol=1e-2)


def test_add_then_keep_gives_back_the_same_scores(tiny_weights, tmp_path, x):
    ref, _ = _outputs(tiny_weights, x)
    wide = add_classes(tiny_weights, tmp_path / "wide.pt", ["other"])
    back, names = _outputs(keep_classes(wide, tmp_path / "back.pt", [0, 1, 2]), x)
    assert back.shape == ref.shape and len(names) == 3
    torch.testing.assert_close(back, ref, atol=1e-3, rtol=1e-2)


def test_a_widened_file_is_what_the_trainer_rebuilds_and_is_no_resumable_run(tiny_weights, tmp_path):
    """ultralytics' trainer builds a fresh model from the file's yaml for the dataset's classes and copies every
    tensor of matching name and shape: all of them must match, the new class rows included."""
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    wide, ckpt = load_checkpoint(add_classes(tiny_weights, tmp_path / "wide.pt", ["other"]))
    fresh = DetectionModel(wide.yaml, nc=4, verbose=False)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in wide.state_dict().items()}
    assert ckpt["epoch"] == -1 and ckpt["optimizer"] is None and ckpt["ema"] is None
    assert not ckpt["train_args"].get("data")  # the old dataset's classes no longer fit


@pytest.mark.parametrize("names", [[], ["cookie"], ["new", "new"], "other", [""], [3]],
                         ids=["none", "taken", "repeated", "a-string", "blank", "not-a-name"])
def test_add_classes_refuses_bad_names(tiny_weights, tmp_path, names):
    with pytest.raises(InputError):
        add_classes(tiny_weights, tmp_path / "w.pt", names)
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.parametrize("classes", [[], [0, 0], [7], ["cookie"], 0], ids=["none", "repeated", "unknown", "a-name",
                                                                          "not-a-list"])
def test_keep_classes_refuses_bad_ids(tiny_weights, tmp_path, classes):
    with pytest.raises(InputError):
        keep_classes(tiny_weights, tmp_path / "w.pt", classes)
    assert not (tmp_path / "w.pt").exists()


def test_a_segmentation_head_or_a_missing_file_is_refused(tmp_path):
    from ultralytics import YOLO

    seg = tmp_path / "seg.pt"
    YOLO("yolov8n-seg.yaml").save(str(seg))
    with pytest.raises(WeightsError, match="Detect head"):
        add_classes(seg, tmp_path / "w.pt", ["x"])
    with pytest.raises(WeightsError, match="not found"):
        keep_classes(tmp_path / "missing.pt", tmp_path / "w.pt", [0])
