"""Checkpoint averaging (SWA): the mean of the weights, recomputed batch-norm statistics, a loadable file."""

import numpy as np
import pytest
import torch

from detseg.detectors.average import average_checkpoints, average_weights, list_images, recalibrate_batchnorm
from detseg.errors import DatasetError, WeightsError


def _shifted_copy(src, dst, shift: float, batches: int):
    """The checkpoint ``src`` with ``shift`` added to every floating-point parameter and buffer, and
    every batch norm's ``num_batches_tracked`` set to ``batches``."""
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    model = ckpt["model"]
    with torch.no_grad():
        for t in model.state_dict().values():
            t.add_(shift) if t.is_floating_point() else t.fill_(batches)
    torch.save(ckpt, dst)
    return dst


@pytest.fixture(scope="module")
def checkpoints(tiny_weights, tmp_path_factory):
    """Three checkpoints of one architecture: the 1-epoch tiny detector, shifted by 0, +0.5 and -0.25."""
    tmp = tmp_path_factory.mktemp("avg")
    return [_shifted_copy(tiny_weights, tmp / f"c{i}.pt", s, 10 * (i + 1))
            for i, s in enumerate((0.0, 0.5, -0.25))]


def _state(path):
    from ultralytics.nn.tasks import load_checkpoint

    return load_checkpoint(path)[0].state_dict()


@pytest.mark.parametrize("count", [2, 3])
def test_average_weights_is_the_elementwise_mean(checkpoints, count):
    paths = checkpoints[:count]
    averaged = average_weights(paths).state_dict()
    states = [_state(p) for p in paths]
    for key, value in averaged.items():
        if value.is_floating_point():
            expected = torch.stack([s[key] for s in states]).mean(0)
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)
        else:  # integer buffers come from the last checkpoint
            assert torch.equal(value, states[-1][key]), key


@pytest.mark.parametrize("coefficients", [(0.25, 0.75), (1.0, 0.0), (0.2, 0.3, 0.5)])
def test_average_weights_weighted_is_the_weighted_sum(checkpoints, coefficients):
    paths = checkpoints[:len(coefficients)]
    mixed = average_weights(paths, coefficients=coefficients).state_dict()
    states = [_state(p) for p in paths]
    for key, value in mixed.items():
        if value.is_floating_point():
            expected = sum(c * s[key] for c, s in zip(coefficients, states))
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)
        else:
            assert torch.equal(value, states[-1][key]), key


@pytest.mark.parametrize("coefficients", [(0.5,), (0.5, 0.6), (-0.5, 1.5), (float("nan"), 1.0)])
def test_average_weights_rejects_bad_coefficients(checkpoints, coefficients):
    with pytest.raises(WeightsError, match="coefficients must be one non-negative number per checkpoint"):
        average_weights(checkpoints[:2], coefficients=coefficients)


@pytest.mark.parametrize("count", [0, 1])
def test_average_weights_needs_two(checkpoints, count):
    with pytest.raises(WeightsError, match=f"at least 2 checkpoints, got {count}"):
        average_weights(checkpoints[:count])


def test_average_weights_names_a_missing_file(checkpoints, tmp_path):
    with pytest.raises(WeightsError, match="nope.pt: checkpoint not found"):
        average_weights([checkpoints[0], tmp_path / "nope.pt"])


def test_average_weights_rejects_other_architectures(checkpoints, tmp_path):
    from ultralytics import YOLO

    other = YOLO("yolov8n.yaml")  # 80 classes: a different head
    other.save(tmp_path / "coco-shaped.pt")
    with pytest.raises(WeightsError, match="coco-shaped.pt: architecture differs"):
        average_weights([checkpoints[0], tmp_path / "coco-shaped.pt"])


@pytest.mark.parametrize("batches", [1, 2])
def test_recalibrate_batchnorm_gives_the_batch_statistics(checkpoints, tiny_dataset, batches):
    """Cumulative average: the first BN's running mean/var are the mean over batches of each batch's statistics."""
    import cv2
    from ultralytics.data.augment import LetterBox

    model = average_weights(checkpoints[:2])
    images = list_images(tiny_dataset / "images" / "train")
    assert len(images) % batches == 0
    first_bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    momentum = first_bn.momentum
    captured = []
    handle = first_bn.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach().clone()))
    try:
        used = recalibrate_batchnorm(model, images, imgsz=64, batch=len(images) // batches)
    finally:
        handle.remove()
    assert used == len(images) and len(captured) == batches and not model.training
    x = captured[0]
    assert x.shape[0] == len(images) // batches and x.shape[-1] == 32  # 64 px in, stride-2 stem
    means = torch.stack([c.mean((0, 2, 3)) for c in captured]).mean(0)
    variances = torch.stack([c.var((0, 2, 3), unbiased=True) for c in captured]).mean(0)
    torch.testing.assert_close(first_bn.running_mean, means, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first_bn.running_var, variances, rtol=1e-4, atol=1e-5)
    assert first_bn.momentum == momentum  # ultralytics' value restored after the pass
    # and the input really was the letterboxed RGB image, scaled to 0-1
    lb = LetterBox((64, 64), auto=False)(image=cv2.imread(str(images[0])))[..., ::-1] / 255.0
    stem = model.model[0].conv
    expected = stem(torch.from_numpy(lb.copy()).permute(2, 0, 1)[None].float())
    torch.testing.assert_close(x[:1], expected.detach(), rtol=1e-4, atol=1e-4)


def test_recalibrate_batchnorm_skips_unreadable_and_fails_on_none(checkpoints, tiny_dataset, tmp_path):
    model = average_weights(checkpoints[:2])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DatasetError, match="no readable image"):
        recalibrate_batchnorm(model, [bad], imgsz=64)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # statistics left as they were
    good = list_images(tiny_dataset / "images" / "train")[0]
    assert recalibrate_batchnorm(model, iter([bad, good]), imgsz=64) == 1


def test_average_checkpoints_writes_a_detector_yolo_loads(checkpoints, tiny_dataset, tmp_path):
    from ultralytics import YOLO

    out = average_checkpoints(checkpoints[:2], tmp_path / "avg.pt", images=tiny_dataset / "images" / "train",
                              imgsz=64, max_images=4)
    ckpt = torch.load(out, map_location="cpu", weights_only=False)
    assert ckpt["optimizer"] is None and ckpt["ema"] is None
    assert ckpt["averaged_from"] == [str(p) for p in checkpoints[:2]]
    assert ckpt["averaged_coefficients"] == [0.5, 0.5]
    assert ckpt["model"].names == _names(checkpoints[0])
    assert ckpt["train_metrics"] == {} and ckpt["train_results"] == {}  # one epoch's figures are not the average's
    # conv weights are averaged and untouched by the recalibration; batch-norm statistics are recomputed
    saved, first, second = _state(out), _state(checkpoints[0]), _state(checkpoints[1])
    key = "model.0.conv.weight"
    torch.testing.assert_close(saved[key], ((first[key] + second[key]) / 2).half().float())
    key = "model.0.bn.running_mean"
    assert not torch.allclose(saved[key], ((first[key] + second[key]) / 2).half().float(), atol=1e-2)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    result = YOLO(str(out)).predict(image, imgsz=64, device="cpu", verbose=False)[0]
    assert result.names == _names(checkpoints[0]) and result.boxes.xyxy.shape[1] == 4
    assert not list(tmp_path.glob(".*.part"))


def _names(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"].names


def test_average_weights_rejects_other_class_names(checkpoints, tmp_path):
    ckpt = torch.load(checkpoints[1], map_location="cpu", weights_only=False)
    ckpt["model"].names = {0: "a", 1: "b", 2: "c"}
    torch.save(ckpt, tmp_path / "renamed.pt")
    with pytest.raises(WeightsError, match="renamed.pt: class names"):
        average_weights([checkpoints[0], tmp_path / "renamed.pt"])


def test_list_images_rejects_a_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="image folder not found"):
        list_images(tmp_path / "absent")


def test_average_checkpoints_takes_a_list_of_images_as_its_folder(checkpoints, tiny_dataset, tmp_path):
    folder = tiny_dataset / "images" / "train"
    listed = list(reversed(list_images(folder)))  # any order: the draw sorts them
    kw = dict(imgsz=64, max_images=3, seed=5, coefficients=(0.25, 0.75))
    a = _state(average_checkpoints(checkpoints[:2], tmp_path / "from-folder.pt", images=folder, **kw))
    b = _state(average_checkpoints(checkpoints[:2], tmp_path / "from-list.pt", images=listed, **kw))
    c = _state(average_checkpoints(checkpoints[:2], tmp_path / "fewer.pt", images=listed[:2], **kw))
    key = "model.0.bn.running_mean"
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a[key], c[key])


def test_batchnorm_statistics_default_to_the_size_the_checkpoints_were_trained_at(checkpoints, tiny_dataset,
                                                                                   tmp_path, monkeypatch):
    import detseg.detectors.average as average

    sizes = []
    monkeypatch.setattr(average, "recalibrate_batchnorm", lambda model, paths, imgsz, batch: sizes.append(imgsz))
    trained = torch.load(checkpoints[1], map_location="cpu", weights_only=False)["train_args"]["imgsz"]
    average_checkpoints(checkpoints[:2], tmp_path / "a.pt", images=tiny_dataset / "images" / "train", max_images=2)
    average_checkpoints(checkpoints[:2], tmp_path / "b.pt", images=tiny_dataset / "images" / "train", max_images=2,
                        imgsz=96)
    assert sizes == [trained, 96] and trained != 640
