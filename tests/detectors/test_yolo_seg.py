"""A -seg detector's own masks as the segmenter step: ``--segmenter detector`` (``auto`` stays SAM / GrabCut)."""

import json

import numpy as np
import pytest

from detseg.errors import InputError
from detseg.images import read_image
from detseg.pipeline.cli import main

CONF = 0.0001  # the 1-epoch student's scores are tiny; this gives boxes with partial masks


@pytest.fixture(scope="module")
def image_path(tiny_dataset):
    return sorted((tiny_dataset / "images" / "val").iterdir())[0]


def _student(weights):
    from detseg.detectors.yolo_seg import YoloSegModel

    return YoloSegModel(weights, conf=CONF, imgsz=64, device="cpu").load()


def _rle_masks(out):
    from detseg.data.polygons import rle_to_mask

    return np.array([rle_to_mask(p["segmentation"]) for p in json.loads((out / "predictions.json").read_text())])


def test_predict_keeps_a_seg_detectors_own_masks_when_asked(structured_seg_weights, image_path, tmp_path, capsys):
    args = ["predict", str(image_path), "--detector", str(structured_seg_weights), "--imgsz", "64", "--conf",
            str(CONF), "--device", "cpu"]
    assert main([*args, "--segmenter", "detector", "--out", str(tmp_path / "own")]) == 0
    assert "the detector's own masks" in capsys.readouterr().err
    expected = _student(structured_seg_weights)(read_image(image_path))
    got = _rle_masks(tmp_path / "own")
    assert len(expected) > 0 and got.shape == expected.mask.shape
    assert np.array_equal(got, expected.mask)
    assert main([*args, "--segmenter", "box", "--out", str(tmp_path / "box")]) == 0  # boxes as masks: other masks
    assert "--segmenter detector keeps its own masks" in capsys.readouterr().err  # the note points at the option
    assert not np.array_equal(_rle_masks(tmp_path / "box"), got)


@pytest.mark.parametrize(("extra", "message"), [
    (["--segmenter", "detector"], "is a detect model"),  # the shipped detector has no masks
    (["--detector", "SEG", "--segmenter", "detector", "--precision", "bf16"], "precision 'bf16' is for SAM"),
    (["--detector", "SEG", "--segmenter", "detector", "--multimask", "best"], "multimask 'best' is for SAM"),
])
def test_own_masks_refuse_what_they_cannot_do_in_one_line(structured_seg_weights, image_path, tmp_path, capsys,
                                                         extra, message):
    extra = [str(structured_seg_weights) if a == "SEG" else a for a in extra]
    assert main(["predict", str(image_path), "--out", str(tmp_path / "out"), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_detector_masks_stay_aligned_through_box_steps(structured_seg_weights, image_path):
    from detseg.detectors.yolo_seg import DetectorMasks
    from detseg.pipeline import Pipeline
    from detseg.pipeline.steps import MinConfidence

    image = read_image(image_path)
    student = _student(structured_seg_weights)
    full = student(image)
    threshold = float(np.median(full.confidence))
    rows = full.confidence >= threshold
    dets = Pipeline(student, DetectorMasks(student), box_steps=[MinConfidence(threshold)])(image)
    assert 0 < len(dets) < len(full)
    assert np.array_equal(dets.mask, full.mask[rows]) and np.array_equal(dets.xyxy, full.xyxy[rows])
    assert np.allclose(dets.data["mask_score"], full.confidence[rows])


def test_detector_masks_refuse_detections_without_masks(structured_seg_weights, image_path):
    from detseg.detectors import YoloDetector
    from detseg.detectors.yolo_seg import DetectorMasks

    image = read_image(image_path)
    plain = YoloDetector(structured_seg_weights, conf=CONF, imgsz=64, device="cpu")
    assert plain.task == "segment"
    dets = plain(image)  # a YoloDetector drops a -seg model's masks
    with pytest.raises(InputError, match="carry no masks"):
        DetectorMasks(_student(structured_seg_weights))(image, dets)


def test_ray_workers_build_the_same_own_mask_pipeline(structured_seg_weights, image_path):
    from detseg.detectors.yolo_seg import DetectorMasks
    from detseg.pipeline.scale.ray_engine import PipelineSpec

    image = read_image(image_path)
    pipe = PipelineSpec(str(structured_seg_weights), "detector", "cpu", detector_options={"conf": CONF, "imgsz": 64})()
    assert isinstance(pipe.segmenter, DetectorMasks)
    assert np.array_equal(pipe(image).mask, _student(structured_seg_weights)(image).mask)


def test_evaluate_scores_the_detectors_own_masks_beside_other_segmenters(structured_seg_weights, tiny_dataset,
                                                                        tmp_path):
    from detseg.pipeline.evaluation.evaluate import evaluate

    report = evaluate(tiny_dataset / "data.yaml", str(structured_seg_weights), ["detector", "box"], split="val",
                      out=tmp_path / "ours", conf=CONF, device="cpu", progress=False, plots=False)
    student = _student(structured_seg_weights)  # evaluate's YoloDetector runs at the model's own size, 64
    evaluate(tiny_dataset / "data.yaml", student, {"student": student}, split="val", out=tmp_path / "reference",
             progress=False, plots=False)
    preds = {name: json.loads((tmp_path / run / name / "predictions.json").read_text())
             for run, name in (("ours", "detector"), ("ours", "box"), ("reference", "student"))}
    assert report["configs"]["detector"]["predictions"] > 0
    assert preds["detector"] == preds["student"]  # every mask (RLE), box, class and score
    masks = [[p["segmentation"] for p in preds[name]] for name in ("detector", "box")]
    assert masks[0] != masks[1]  # the same boxes, the box segmenter's other masks
    with pytest.raises(InputError, match="has none"):
        evaluate(tiny_dataset / "data.yaml", "gt", ["detector"], split="val", progress=False, plots=False)
