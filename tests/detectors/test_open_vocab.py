"""Open-vocabulary detectors (YOLOE, YOLO-World) and class-agnostic NMS.

Models are built from ultralytics' ``.yaml`` (random weights) and their class embeddings are
set directly, so no text encoder is downloaded; random heads score everything ~1e-4, hence
the tiny confidence threshold.
"""

import json
import re
import sys
import types

import cv2
import numpy as np
import pytest
import torch

from detseg.detectors import YoloDetector
from detseg.detectors.yolo import CLIP_INSTALL, set_vocabulary
from detseg.errors import InputError, WeightsError
from detseg.pipeline import Pipeline
from detseg.pipeline.cli import main
from detseg.segmenter import BoxSegmenter
from tests.helpers import textured_image

NAMES = ["croissant", "cookie", "cupcake"]


@pytest.fixture(scope="module", params=["yoloe-11s-seg.yaml", "yolov8s-worldv2.yaml"])
def open_vocab_weights(request, tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("ov") / request.param.replace(".yaml", ".pt")
    YOLO(request.param).save(str(path))
    return path


def _detector(weights, classes=NAMES, embeddings="random", **kw):
    if embeddings == "random":
        embeddings = torch.randn(1, len(classes), 512, generator=torch.Generator().manual_seed(0)) * 5
    return YoloDetector(str(weights), conf=1e-9, classes=classes, class_embeddings=embeddings, device="cpu",
                        imgsz=128, max_det=20, **kw)


def test_class_names_from_the_command_line_flow_into_the_masks(open_vocab_weights):
    detector = _detector(open_vocab_weights).load()
    assert detector.class_names == dict(enumerate(NAMES))
    image = textured_image(128, 160, seed=3)
    dets = Pipeline(detector, BoxSegmenter())(image)
    assert len(dets) > 0
    assert set(dets.data["class_name"]) <= set(NAMES)
    assert [NAMES[c] for c in dets.class_id] == list(dets.data["class_name"])
    assert dets.mask.shape == (len(dets), 128, 160)
    for box, mask in zip(dets.xyxy.round().astype(int), dets.mask):  # the box segmenter: mask == box
        x0, y0, x1, y1 = box
        assert mask[y0:y1, x0:x1].mean() > 0.95 and mask.sum() <= (x1 - x0 + 2) * (y1 - y0 + 2)


def test_another_vocabulary_gives_other_names(open_vocab_weights):
    detector = _detector(open_vocab_weights, classes=["bagel", "donut"]).load()
    dets = detector(textured_image(128, 160, seed=4))
    assert detector.class_names == {0: "bagel", 1: "donut"}
    assert set(dets.data["class_name"]) <= {"bagel", "donut"}


@pytest.mark.parametrize("classes", [["0", "1"], [""]])
def test_open_vocabulary_needs_names(open_vocab_weights, classes):
    with pytest.raises(InputError, match="class names"):
        _detector(open_vocab_weights, classes=classes, embeddings=None).load()


def test_embeddings_must_match_the_names(open_vocab_weights):
    with pytest.raises(InputError, match="shape"):
        _detector(open_vocab_weights, embeddings=torch.zeros(1, 2, 512)).load()


@pytest.fixture()
def clip_package(monkeypatch):
    """A stand-in for the `clip` package (not installed here), so the text encoder itself is reached."""
    monkeypatch.setitem(sys.modules, "clip", types.ModuleType("clip"))


@pytest.fixture()
def fake_text_encoder(monkeypatch, clip_package):
    """Text embeddings without CLIP: one fixed random vector per name, as the encoder returns them."""
    def text_embeddings(self, texts, *args, **kwargs):
        rows = [torch.randn(512, generator=torch.Generator().manual_seed(sum(map(ord, t)))) * 5 for t in texts]
        return torch.stack(rows)[None]

    for model in ("YOLOEModel", "WorldModel"):  # where the text encoder would be downloaded and run
        monkeypatch.setattr(f"ultralytics.nn.tasks.{model}.get_text_pe", text_embeddings)


def test_without_embeddings_offline_the_text_encoder_error_is_one_clear_message(open_vocab_weights, monkeypatch,
                                                                                clip_package):
    def no_download(*args, **kwargs):
        raise ConnectionError("no internet")

    for model in ("YOLOEModel", "WorldModel"):
        monkeypatch.setattr(f"ultralytics.nn.tasks.{model}.get_text_pe", no_download)
    with pytest.raises(WeightsError, match="text encoder.*internet"):
        _detector(open_vocab_weights, embeddings=None).load()


def test_without_the_clip_package_the_error_says_how_to_install_it(open_vocab_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "clip", None)  # `import clip` raises ImportError
    with pytest.raises(WeightsError, match=re.escape(CLIP_INSTALL)):
        _detector(open_vocab_weights, embeddings=None).load()


def test_names_the_model_already_has_need_no_text_encoder(open_vocab_weights, monkeypatch):
    model = _detector(open_vocab_weights).load()._model  # vocabulary set once, from embeddings
    monkeypatch.setitem(sys.modules, "clip", None)
    set_vocabulary(model, NAMES)  # the same names again: nothing to encode, so no error
    assert model.names == dict(enumerate(NAMES))
    with pytest.raises(WeightsError, match="clip"):  # other names do need the encoder
        set_vocabulary(model, ["bagel"])


@pytest.fixture()
def one_photo(tmp_path):
    path = tmp_path / "in" / "a.jpg"
    path.parent.mkdir()
    cv2.imwrite(str(path), textured_image(128, 160, seed=3))
    return path


def _predict_cli(weights, photo, out, classes):
    return main(["predict", str(photo), "--detector", str(weights), "--classes", classes, "--out", str(out),
                 "--segmenter", "box", "--conf", "0.000001", "--imgsz", "128", "--max-det", "5", "-q"])


def test_cli_class_names_flow_into_the_written_predictions(open_vocab_weights, one_photo, tmp_path,
                                                          fake_text_encoder):
    out = tmp_path / "out"
    assert _predict_cli(open_vocab_weights, one_photo, out, "bagel, donut") == 0
    images = json.loads((out / "images.json").read_text())
    assert [c["name"] for c in images["categories"]] == ["bagel", "donut"]
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= {c["id"] for c in images["categories"]}


def test_cli_without_the_clip_package_exits_with_one_line(open_vocab_weights, one_photo, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.setitem(sys.modules, "clip", None)
    assert _predict_cli(open_vocab_weights, one_photo, tmp_path / "out", "croissant,cookie") == 2
    err = capsys.readouterr().err
    assert CLIP_INSTALL in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("agnostic", [True, False])
def test_agnostic_nms_is_passed_to_ultralytics(open_vocab_weights, agnostic, monkeypatch):
    detector = _detector(open_vocab_weights, agnostic_nms=agnostic).load()
    seen = {}
    original = detector._model.predict

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(detector._model, "predict", spy)
    dets = detector(textured_image(128, 160, seed=5))
    assert seen["agnostic_nms"] is agnostic
    assert len(dets) > 0


def test_agnostic_nms_leaves_no_object_with_two_classes():
    """The shipped detector at a low threshold on a generated scene: many overlapping candidates."""
    import supervision as sv

    from detseg.data.synth.generate import render_scene

    image = render_scene(np.random.default_rng(5), 320, 320).image
    both = {}
    for agnostic in (True, False):
        dets = YoloDetector(conf=0.01, device="cpu", agnostic_nms=agnostic)(image)
        iou = sv.box_iou_batch(dets.xyxy, dets.xyxy)
        differ = dets.class_id[:, None] != dets.class_id[None, :]
        both[agnostic] = int((iou[differ] > 0.7).sum())
    assert both[True] == 0
    assert both[False] > 0  # this scene does produce two-class objects without it


def test_agnostic_nms_is_the_default():
    assert YoloDetector().agnostic_nms is True


def test_a_prompt_free_model_refusing_class_names_says_so(tmp_path):
    """A prompt-free YOLOE (-pf, its head given an LRPC) takes no class names: ultralytics' own reason, one
    InputError, not a note about the text encoder and the internet."""
    from ultralytics import YOLO

    model = YOLO("yoloe-11s-seg.yaml")
    model.model.model[-1].lrpc = torch.nn.ModuleList()  # what makes ultralytics treat it as prompt-free
    with pytest.raises(InputError, match="cannot take the classes.*Prompt-free model does not support"):
        set_vocabulary(model, NAMES, torch.zeros(1, 3, 512))
