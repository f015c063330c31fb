"""detseg export: ONNX / OpenVINO copies of a trained model give the .pt model's boxes and masks."""

import numpy as np
import pytest

from detseg.detectors import YoloDetector
from detseg.detectors.export import check_runtime, export, exported_format, exported_metadata
from detseg.errors import InputError, WeightsError
from detseg.images import read_image
from detseg.pipeline.cli import main
from detseg.pipeline.student import YoloSegModel

pytest.importorskip("onnxruntime", reason="the export extra is not installed")
pytest.importorskip("openvino", reason="the export extra is not installed")


@pytest.fixture(scope="module")
def exports(seg_run, tmp_path_factory):
    """The 1-epoch -seg model exported both ways at imgsz 64 (the size it was trained at)."""
    out = tmp_path_factory.mktemp("export")
    return {fmt: export(seg_run.best_weights, fmt, imgsz=64, out=out / name)
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
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b, a, atol=5e-3 * np.abs(a).max(), rtol=0)  # Winograd, fused ops: last bits


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_exported_student_gives_aligned_detections_and_masks(seg_run, exports, tiny_dataset, fmt):
    image = read_image(sorted((tiny_dataset / "images" / "val").iterdir())[0])
    model = YoloSegModel(exports[fmt], conf=0.001, device="cpu").load()
    dets = model(image)
    ref = YoloSegModel(seg_run.best_weights, conf=0.001, imgsz=64, device="cpu").load()(image)
    assert exported_format(exports[fmt]) == fmt
    assert model.class_names == YoloDetector(seg_run.best_weights, device="cpu").class_names
    assert len(ref) > 0 and abs(len(dets) - len(ref)) <= max(1, len(ref) // 10)  # near-ties at the cut may differ
    assert dets.mask.shape == (len(dets), *image.shape[:2]) and len(dets.confidence) == len(dets.xyxy)
    masks, scores = model.predict_masks(image, dets.xyxy)
    assert np.array_equal(masks, dets.mask) and np.array_equal(scores, dets.confidence)


def test_export_reads_its_fixed_size_and_refuses_another(exports):
    assert list(exported_metadata(exports["onnx"])["imgsz"]) == [64, 64]
    assert exported_metadata(exports["openvino"])["task"] == "segment"
    with pytest.raises(InputError, match=r"exported for imgsz \[64, 64\].*--imgsz 640"):
        YoloDetector(exports["onnx"], imgsz=640, device="cpu").load()


def test_missing_export_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="exported model not found"):
        YoloDetector(tmp_path / "nothing.onnx").load()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fmt": "tflite"}, "unknown export format 'tflite'"),
    ({"fmt": "onnx", "imgsz": 50}, "multiple of 32"),
    ({"fmt": "onnx", "half": True}, "openvino format only"),
    ({"fmt": "onnx", "out": "model.xml"}, "one .onnx file"),
    ({"fmt": "openvino", "out": "model"}, "must end in _openvino_model"),
])
def test_export_rejects_bad_options_before_loading(tiny_weights, tmp_path, kwargs, message):
    if "out" in kwargs:
        kwargs["out"] = tmp_path / kwargs["out"]
    with pytest.raises(InputError, match=message):
        export(tiny_weights, **kwargs)
    assert not list(tmp_path.iterdir())


def test_missing_runtime_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(InputError, match=r'needs openvino: pip install "detseg\[export\]"'):
        check_runtime("openvino")


def test_cli_export_and_its_errors(tiny_weights, tmp_path, capsys):
    out = tmp_path / "det.onnx"
    assert main(["export", "--weights", str(tiny_weights), "--format", "onnx", "--imgsz", "64",
                 "--out", str(out)]) == 0
    assert out.is_file() and f"exported: {out}" in capsys.readouterr().out
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
