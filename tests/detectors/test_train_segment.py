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
    from detseg.images import read_image
    from detseg.pipeline.evaluate import evaluate
    from detseg.pipeline.student import YoloSegModel

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


@pytest.mark.parametrize("retina", [True, False])
def test_student_retina_masks_reach_ultralytics_and_keep_the_image_size(seg_run, tiny_dataset, retina):
    from detseg.images import read_image
    from detseg.pipeline.student import YoloSegModel

    student = YoloSegModel(seg_run.best_weights, conf=0.0001, imgsz=64, device="cpu", retina_masks=retina).load()
    seen, predict = [], student._model.predict
    student._model.predict = lambda *a, **k: seen.append(k) or predict(*a, **k)
    image = read_image(next((tiny_dataset / "images" / "val").iterdir()))
    dets = student(image)
    assert seen[0]["retina_masks"] is retina
    assert dets.mask.shape == (len(dets), *image.shape[:2]) and dets.mask.dtype == bool


def test_cli_train_segment_refuses_a_detect_config_in_one_line(tiny_dataset, tmp_path, capsys):
    from detseg.pipeline.cli import main

    code = main(["train", "--task", "segment", "--data", str(tiny_dataset / "data.yaml"), "--model", "yolov8n.yaml",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "yolov8n-seg.yaml" in err
