import json

import numpy as np
import pytest

from detseg.detectors.train import metrics_summary, train
from detseg.errors import InputError, WeightsError


def test_segment_training_writes_box_and_mask_metrics(seg_run):
    metrics = json.loads((seg_run.run_dir / "metrics.json").read_text())
    assert metrics["task"] == "segment"
    for m in (metrics, metrics["mask"]):
        assert 0.0 <= m["mAP50-95"] <= m["mAP50"] <= 1.0
        assert set(m["per_class"]) <= {"croissant", "cookie", "cupcake"} and m["per_class"]
        assert all(set(c) == {"mAP50", "mAP50-95"} for c in m["per_class"].values())
    assert (seg_run.run_dir / "command.txt").read_text().strip()
    assert "mask50-95" in metrics_summary(metrics).splitlines()[0]
    from ultralytics import YOLO

    assert YOLO(str(seg_run.best_weights)).task == "segment"


def test_detect_config_with_segment_task_fails_before_training(tiny_dataset, tmp_path):
    with pytest.raises(WeightsError, match="is a detect model but --task is segment.*yolov8n-seg.yaml"):
        train(tiny_dataset / "data.yaml", model="yolov8n.yaml", task="segment", epochs=1, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_student_model_plugs_into_evaluate(seg_run, tiny_dataset):
    from detseg.detectors.yolo_seg import YoloSegModel
    from detseg.images import read_image
    from detseg.pipeline.evaluation.evaluate import evaluate

    student = YoloSegModel(seg_run.best_weights, conf=0.0001, imgsz=64, device="cpu").load()
    image = read_image(next((tiny_dataset / "images" / "val").iterdir()))
    dets = student(image)
    assert dets.mask is not None and dets.mask.shape == (len(dets), *image.shape[:2])
    assert len(dets) >= 2  # an untrained model at conf 0.0001 still returns boxes
    masks, scores = student.predict_masks(image, dets.xyxy)  # all rows in order, as evaluate passes them
    assert np.array_equal(masks, dets.mask) and np.allclose(scores, dets.confidence)
    _, first = np.unique(dets.xyxy, axis=0, return_index=True)  # untrained: boxes repeat; a subset of unique ones
    subset = np.sort(first)[::-1][:3]
    masks, _ = student.predict_masks(image, dets.xyxy[subset])
    assert np.array_equal(masks, dets.mask[subset])
    with pytest.raises(InputError, match="not one it predicted"):
        student.predict_masks(image, np.array([[1.5, 2.5, 3.5, 4.5]]))
    report = evaluate(tiny_dataset / "data.yaml", student, {"student": student}, split="val", progress=False)
    assert 0.0 <= report["configs"]["student"]["segm"]["AP"] <= 1.0


@pytest.mark.parametrize("mode", ["ultralytics", "retina", "box"])
def test_student_mask_modes_keep_the_image_size(seg_run, tiny_dataset, mode):
    from detseg.detectors.yolo_seg import YoloSegModel
    from detseg.images import read_image

    student = YoloSegModel(seg_run.best_weights, conf=0.0001, imgsz=64, device="cpu", mask_mode=mode).load()
    seen, predict = [], student._model.predict
    student._model.predict = lambda *a, **k: seen.append(k) or predict(*a, **k)
    image = read_image(next((tiny_dataset / "images" / "val").iterdir()))
    dets = student(image)
    if mode == "box":
        assert type(student._model.predictor).__name__ == "BoxMaskPredictor"
    else:
        assert seen[0]["retina_masks"] is (mode == "retina")
    assert len(dets) and dets.mask.shape == (len(dets), *image.shape[:2]) and dets.mask.dtype == bool
    assert dets.mask.any(axis=(1, 2)).all()
    for box, mask in zip(dets.xyxy, dets.mask):  # inside the box: columns x0 <= c < x1, rows likewise
        ys, xs = np.nonzero(mask)
        assert xs.min() >= np.ceil(box[0]) and xs.max() < np.ceil(box[2])
        assert ys.min() >= np.ceil(box[1]) and ys.max() < np.ceil(box[3])
    student(image)  # a second call keeps the same predictor (ultralytics rebuilds it for another class)
    assert type(student._model.predictor).__name__ == ("BoxMaskPredictor" if mode == "box" else "SegmentationPredictor")


def test_a_model_shared_with_a_box_mode_one_makes_the_masks_of_its_own_mode(seg_run, tiny_dataset):
    from detseg.detectors.yolo_seg import YoloSegModel
    from detseg.images import read_image

    image = read_image(next((tiny_dataset / "images" / "val").iterdir()))
    box = YoloSegModel(seg_run.best_weights, conf=0.0001, imgsz=64, device="cpu").load()
    box(image)  # the shared ultralytics model now holds a box-mask predictor
    shared = YoloSegModel.from_detector(box, mask_mode="ultralytics")(image)
    alone = YoloSegModel(seg_run.best_weights, conf=0.0001, imgsz=64, device="cpu", mask_mode="ultralytics").load()
    expected = alone(image)
    assert type(box._model.predictor).__name__ == "SegmentationPredictor"
    assert len(shared) == len(expected) > 0 and np.array_equal(shared.mask, expected.mask)


def test_mask_mode_is_checked():
    from detseg.detectors.yolo_seg import YoloSegModel
    from detseg.errors import InputError

    with pytest.raises(InputError, match="mask_mode must be one of"):
        YoloSegModel("x.pt", mask_mode="fast")


def _smooth_protos(rng, c, mh, mw):
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.standard_normal((1, c, 4, 4)).astype(np.float32))
    return F.interpolate(coarse, size=(mh, mw), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("image_shape, input_shape", [
    ((256, 256), (64, 64)),  # no letterbox padding, scale 4: one bilinear step either way
    ((256, 128), (64, 64)),  # padding of 4 prototype cells a side
    ((200, 120), (64, 64)),  # odd scale and a padding that is no whole cell: ultralytics resamples twice
    ((97, 131), (96, 128)),  # rectangle input (PyTorch's minimal letterbox)
])
def test_box_masks_match_ultralytics_retina_masks(image_shape, input_shape):
    """Parity with ultralytics' process_mask_native (its retina_masks) on smooth random prototypes: bit for bit
    where ultralytics resamples once; where it resamples twice, only pixels at the edge differ."""
    import torch
    from ultralytics.utils import ops

    from detseg.detectors.yolo_seg import box_masks

    rng = np.random.default_rng(0)
    protos = _smooth_protos(rng, 32, input_shape[0] // 4, input_shape[1] // 4)
    coefficients = torch.from_numpy(rng.standard_normal((6, 32)).astype(np.float32))
    h, w = image_shape
    x0, y0 = rng.uniform(0, w * 0.6, 6), rng.uniform(0, h * 0.6, 6)
    boxes = np.stack([x0, y0, x0 + rng.uniform(5, w * 0.4, 6), y0 + rng.uniform(5, h * 0.4, 6)], 1).astype(np.float32)
    boxes[0] = [0, 0, w, h]  # the whole image: every pixel compared
    theirs = ops.process_mask_native(protos, coefficients, torch.from_numpy(boxes), image_shape).numpy().astype(bool)
    ours = box_masks(protos.numpy(), coefficients.numpy(), boxes, image_shape, input_shape)
    assert ours.shape == theirs.shape == (6, h, w)
    if image_shape in ((256, 256), (256, 128)):
        assert np.array_equal(ours, theirs)
    else:
        assert (ours != theirs).mean() < 0.02  # of the image's pixels (the whole-image mask has ~1,000 edge pixels)
        edge = theirs[0] ^ np.roll(theirs[0], 1, 0) | theirs[0] ^ np.roll(theirs[0], 1, 1)
        near = np.zeros_like(edge)  # pixels within 2 of a mask edge
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                near |= np.roll(edge, (dy, dx), (0, 1))
        assert not ((ours[0] != theirs[0]) & ~near).any()


@pytest.mark.parametrize("n", [0, 1])
def test_box_masks_empty_and_degenerate_boxes(n):
    from detseg.detectors.yolo_seg import box_masks

    protos = np.ones((4, 16, 16), np.float32)
    boxes = np.array([[10, 10, 10.0, 30]] * n, np.float32).reshape(-1, 4)  # zero width
    masks = box_masks(protos, np.ones((n, 4), np.float32), boxes, (64, 64), (64, 64))
    assert masks.shape == (n, 64, 64) and not masks.any()


def test_cli_train_segment_refuses_a_detect_config_in_one_line(tiny_dataset, tmp_path, capsys):
    from detseg.pipeline.cli import main

    code = main(["train", "--task", "segment", "--data", str(tiny_dataset / "data.yaml"), "--model", "yolov8n.yaml",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "yolov8n-seg.yaml" in err


@pytest.mark.parametrize("shape", [(128, 128), (96, 160), (150, 90)])
def test_box_mode_matches_retina_masks_through_the_model(structured_seg_weights, tiny_dataset, shape):
    """The whole path (BoxMaskPredictor, scaled boxes, letterbox of any aspect) against ultralytics'
    retina_masks on the same model and image: the same rows, masks equal but for a few edge pixels."""
    import cv2

    from detseg.detectors.yolo_seg import YoloSegModel
    from detseg.images import read_image

    image = cv2.resize(read_image(next((tiny_dataset / "images" / "val").iterdir())), shape[::-1])
    ours, theirs = (YoloSegModel(structured_seg_weights, conf=0.0001, imgsz=64, device="cpu", mask_mode=m).load()(image)
                    for m in ("box", "retina"))
    assert len(ours) == len(theirs) > 0
    assert np.allclose(ours.xyxy, theirs.xyxy, atol=1e-3) and np.array_equal(ours.class_id, theirs.class_id)
    area = ((theirs.xyxy[:, 2] - theirs.xyxy[:, 0]) * (theirs.xyxy[:, 3] - theirs.xyxy[:, 1]))
    assert (theirs.mask.sum(axis=(1, 2)) < 0.5 * area).any()  # some masks are partial: edges to compare
    assert (ours.mask != theirs.mask).sum() / theirs.mask.sum() < 0.01


def test_cli_train_segment_on_a_box_only_dataset_is_one_line(tiny_dataset, tmp_path, capsys):
    import shutil

    from detseg.pipeline.cli import main

    boxes = tmp_path / "boxes"
    shutil.copytree(tiny_dataset, boxes)
    (boxes / "data.yaml").write_text("\n".join(ln for ln in (boxes / "data.yaml").read_text().splitlines()
                                               if not ln.startswith("path:")) + "\n")
    label = sorted((boxes / "labels" / "val").glob("*.txt"))[0]
    first = label.read_text().splitlines()[0].split()
    label.write_text(f"{first[0]} 0.5 0.5 0.2 0.2\n")  # one instance with only a box
    code = main(["train", "--task", "segment", "--data", str(boxes / "data.yaml"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "1 instance(s)" in err and "only a box" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
