"""detseg export: ONNX / OpenVINO copies of a trained model give the .pt model's boxes and masks."""

from pathlib import Path

import numpy as np
import pytest

from detseg.detectors import YoloDetector
from detseg.detectors.export import check_runtime, export, exported_format, exported_metadata
from detseg.detectors.yolo_seg import YoloSegModel
from detseg.errors import InputError, WeightsError
from detseg.pipeline.cli import main

pytest.importorskip("onnxruntime", reason="the export extra is not installed")
pytest.importorskip("openvino", reason="the export extra is not installed")


@pytest.fixture(scope="module")
def food_seg(tmp_path_factory):
    """A -seg model that finds real boxes: a trained YOLOv8n's backbone and box head (the stage-D food detector
    shipped until round 3) in a 3-class yolov8n-seg (its mask head random). A 1-epoch student gives only
    near-identical full-frame boxes."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import SegmentationModel

    yolov8n = Path(__file__).resolve().parents[2] / "detectors" / "weights" / "candidates" / "stage-D-food-yolov8n.pt"
    torch.manual_seed(0)
    seg = SegmentationModel("yolov8n-seg.yaml", nc=3, verbose=False)
    seg.names = {0: "croissant", 1: "cookie", 2: "cupcake"}
    seg.load(YOLO(str(yolov8n)).model, verbose=False)  # every tensor of the same name and shape
    model = YOLO("yolov8n-seg.yaml")
    seg.args, seg.task = model.model.args, "segment"  # what YOLO(".yaml") gives its own model
    model.model = seg
    path = tmp_path_factory.mktemp("food-seg") / "food-seg.pt"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exports(food_seg, tmp_path_factory):
    """That model exported both ways at imgsz 320."""
    out = tmp_path_factory.mktemp("export")
    return {fmt: export(food_seg, fmt, imgsz=320, out=out / name)
            for fmt, name in (("onnx", "student.onnx"), ("openvino", "student_openvino_model"))}


def _network_outputs(weights, x):
    """The raw (predictions, mask prototypes) of a -seg model, through ultralytics' backend for its format."""
    import torch
    from ultralytics.nn.autobackend import AutoBackend

    y = AutoBackend(str(weights), device=torch.device("cpu"))(x)
    if isinstance(y[0], (list, tuple)):  # a PyTorch model also returns its training-time outputs
        y = y[0]
    return [np.asarray(t) for t in y]


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_export_matches_the_pt_network_on_random_weights(tmp_path, fmt):
    """Parity of the exported network: same input, same predictions and prototypes up to float32 rounding."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    YOLO("yolov8n-seg.yaml").save(tmp_path / "random-seg.pt")
    exported = export(tmp_path / "random-seg.pt", fmt, imgsz=64)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref, got = _network_outputs(tmp_path / "random-seg.pt", x), _network_outputs(exported, x)
    assert [a.shape for a in ref] == [b.shape for b in got] == [(1, 116, 84), (1, 32, 16, 16)]
    # each kind of output against its own scale: Winograd and fused ops change last bits, and OpenVINO's CPU
    # plugin computes in bf16 (8-bit mantissa, ~0.4%) where the CPU supports it, its default
    pred, pred_ref = got[0][0], ref[0][0]
    parts = {"boxes (pixels)": slice(0, 4), "class scores": slice(4, 84), "mask coefficients": slice(84, 116)}
    for name, rows in parts.items():
        a, b = pred_ref[rows], pred[rows]
        if name == "class scores":  # random heads give scores ~1e-5: compare the logits the sigmoid saw
            a, b = np.log(a / (1 - a)), np.log(b / (1 - b))
            np.testing.assert_allclose(b, a, atol=0.05, rtol=0, err_msg=name)
            continue
        np.testing.assert_allclose(b, a, atol=1e-2 * np.abs(a).max(), rtol=0, err_msg=name)
    np.testing.assert_allclose(got[1], ref[1], atol=1e-2 * np.abs(ref[1]).max(), rtol=0, err_msg="prototypes")


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_exported_model_gives_the_same_detections_and_masks(food_seg, exports, fmt):
    from detseg.data.synth.generate import render_scene

    image = render_scene(np.random.default_rng([3, 0]), 320, 320).image
    model = YoloSegModel(exports[fmt], conf=0.25, device="cpu").load()
    dets = model(image)
    ref = YoloSegModel(food_seg, conf=0.25, imgsz=320, device="cpu").load()(image)
    assert exported_format(exports[fmt]) == fmt
    assert model.class_names == YoloDetector(food_seg, device="cpu").class_names == {0: "croissant", 1: "cookie",
                                                                                      2: "cupcake"}
    assert len(ref) >= 3, "the comparison needs real, distinct detections"
    assert abs(len(dets) - len(ref)) <= 1  # a score at the cut may fall either side
    assert dets.mask.shape == (len(dets), *image.shape[:2]) and len(dets.confidence) == len(dets.xyxy)
    # each exported detection is one of the .pt model's: same class, same box and mask (IoU), close score
    # OpenVINO's CPU plugin computes in bf16 where the CPU has it (AMX / AVX512-BF16, as here): looser bounds.
    # Masks are pooled: the random mask head makes tiny masks whose edge pixels flip under bf16.
    min_iou = {"onnx": 0.98, "openvino": 0.9}[fmt]
    box_iou, inter, union = _box_iou(dets.xyxy, ref.xyxy), 0, 0
    for i in range(len(dets)):
        j = int(np.argmax(box_iou[i]))
        assert box_iou[i, j] > min_iou and dets.class_id[i] == ref.class_id[j]
        assert abs(dets.confidence[i] - ref.confidence[j]) < 0.03
        inter, union = inter + (dets.mask[i] & ref.mask[j]).sum(), union + (dets.mask[i] | ref.mask[j]).sum()
    assert union > 0 and inter / union > min_iou - 0.05
    masks, scores = model.predict_masks(image, dets.xyxy)
    assert np.array_equal(masks, dets.mask) and np.array_equal(scores, dets.confidence)


def _box_iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def test_export_reads_its_fixed_size_and_refuses_another(exports):
    assert list(exported_metadata(exports["onnx"])["imgsz"]) == [320, 320]
    assert exported_metadata(exports["openvino"])["task"] == "segment"
    with pytest.raises(InputError, match=r"exported for imgsz \[320, 320\].*--imgsz 640"):
        YoloDetector(exports["onnx"], imgsz=640, device="cpu").load()


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "openvino-xml"])
def test_an_export_refuses_augment_which_ultralytics_would_ignore(exports, fmt):
    path = next(exports["openvino"].glob("*.xml")) if fmt == "openvino-xml" else exports[fmt]
    with pytest.raises(InputError, match="augment.*exported model"):
        YoloDetector(str(path), device="cpu", augment=True).load()


def test_the_xml_file_of_an_openvino_export_is_read_as_the_export(exports):
    from detseg.detectors.export import exported_format

    xml = next(exports["openvino"].glob("*.xml"))
    assert exported_format(xml) == "openvino" and exported_metadata(xml)["task"] == "segment"
    detector = YoloDetector(str(xml), device="cpu").load()
    assert detector._imgsz == [320, 320]  # the size it was exported for, from its metadata


def test_missing_export_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="exported model not found"):
        YoloDetector(tmp_path / "nothing.onnx").load()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fmt": "tflite"}, "unknown export format 'tflite'"),
    ({"fmt": "onnx", "imgsz": 50}, "multiple of 32"),
    ({"fmt": "onnx", "half": True}, "openvino format only"),
    ({"fmt": "onnx", "out": "model.xml"}, "one .onnx file"),
    ({"fmt": "openvino", "out": "model"}, "ends in _openvino_model"),
])
def test_export_rejects_bad_options_before_loading(tiny_weights, tmp_path, kwargs, message):
    if "out" in kwargs:
        kwargs["out"] = tmp_path / kwargs["out"]
    beside = sorted(tiny_weights.parent.iterdir())
    with pytest.raises(InputError, match=message):
        export(tiny_weights, **kwargs)
    assert not list(tmp_path.iterdir()) and sorted(tiny_weights.parent.iterdir()) == beside


def test_missing_runtime_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(InputError, match=r'needs openvino: pip install "detseg\[export\]"'):
        check_runtime("openvino")


def test_cli_export_and_its_errors(tiny_weights, tmp_path, capsys):
    import logging

    from ultralytics.utils import LOGGER

    out = tmp_path / "det.onnx"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        assert main(["export", "--weights", str(tiny_weights), "--format", "onnx", "--imgsz", "64",
                     "--out", str(out)]) == 0
    finally:
        LOGGER.removeHandler(handler)
    printed = capsys.readouterr().out
    assert out.is_file() and f"exported: {out}" in printed and f"--model {out}" in printed
    assert records  # ultralytics still speaks, but never names the deleted private copy
    assert not [r for r in records if "detseg-export-" in r.getMessage() or "yolo predict" in r.getMessage()]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]  # the private copy is gone
    dets = YoloDetector(out, conf=0.001, device="cpu")(np.zeros((64, 64, 3), np.uint8))
    assert dets.mask is None and len(dets.xyxy) == len(dets.confidence)
    assert main(["export", "--weights", str(tmp_path / "missing.pt"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detseg: error:") and "missing.pt" in err[0]


def test_half_openvino_export_runs(tiny_weights, tmp_path):
    path = export(tiny_weights, "openvino", imgsz=64, half=True, out=tmp_path / "det_openvino_model")
    assert exported_metadata(path)["args"].get("quantize") in (16, "16", "fp16")
    dets = YoloDetector(path, conf=0.001, device="cpu")(np.zeros((64, 64, 3), np.uint8))
    assert len(dets.xyxy) == len(dets.confidence) == len(dets.class_id)


def test_export_defaults_to_the_training_size_and_replaces_an_old_export(tiny_weights, tmp_path):
    out = tmp_path / "det_openvino_model"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier export")
    assert export(tiny_weights, "openvino", out=out) == out  # no imgsz: the size it was trained at (64)
    assert list(exported_metadata(out)["imgsz"]) == [64, 64]
    assert not (out / "stale.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    with pytest.raises(InputError, match="one .onnx file"):
        export(tiny_weights, "onnx", out=out)  # a folder where a file should go


def test_openvino_export_needs_no_onnx_packages(tiny_weights, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxslim" else real(name, *a))
    path = export(tiny_weights, "openvino", out=tmp_path / "m_openvino_model")
    assert (path / "metadata.yaml").is_file()


def test_errors_name_the_users_file_not_a_temporary_copy(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="broken.pt") as info:
        export(bad, "onnx", imgsz=64)
    assert "detseg-export-" not in str(info.value)


def test_predict_cli_runs_an_exported_detector(exports, tiny_dataset, tmp_path):
    import json

    out = tmp_path / "run"
    assert main(["predict", str(tiny_dataset / "images" / "val"), "--detector", str(exports["openvino"]),
                 "--segmenter", "box", "--conf", "0.01", "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 3 and not summary.get("failed")
    assert json.loads((out / "run.json").read_text())["detector"] == str(exports["openvino"])


def test_detseg_val_measures_an_export_as_it_measures_the_pt(food_seg, exports, tiny_dataset, tmp_path, capsys):
    import json

    figures = {}
    for name, weights in (("pt", food_seg), ("openvino", exports["openvino"]), ("onnx", exports["onnx"])):
        code = main(["val", "--model", str(weights), "--data", str(tiny_dataset / "data.yaml"), "--imgsz", "320",
                     "--device", "cpu", "--out", str(tmp_path / name)])
        assert code == 0, capsys.readouterr().err
        figures[name] = json.loads((tmp_path / name / "metrics_val.json").read_text())
    assert figures["pt"]["mAP50"] > 0  # the borrowed box head finds the generated items
    for fmt in ("openvino", "onnx"):  # the same network; only ultralytics' batching (1 for an export) differs
        assert figures[fmt]["mAP50-95"] == pytest.approx(figures["pt"]["mAP50-95"], abs=0.03), fmt
        assert "mask" in figures[fmt]


def test_a_damaged_export_or_a_file_of_no_model_format_is_one_weights_error_at_load(tmp_path):
    """ultralytics opens exports lazily and takes any file name: both failed at the first image with a traceback."""
    (tmp_path / "fake.onnx").write_bytes(b"\x00not an onnx model" * 20)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WeightsError, match="fake.onnx is not a loadable ultralytics model"):
        YoloDetector(str(tmp_path / "fake.onnx"), device="cpu").load()
    with pytest.raises(WeightsError, match="notes.txt is not YOLO weights"):
        YoloDetector(str(tmp_path / "notes.txt"), device="cpu").load()
