import numpy as np
import pytest
import supervision as sv

from detseg.detectors import BoxesDetector, YoloDetector
from detseg.errors import InputError, WeightsError


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return YoloDetector(str(tiny_weights), conf=0.001, device="cpu").load()


def _image(seed=0, shape=(96, 128, 3)):
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def test_outputs_types_shapes_and_class_names(detector):
    dets = detector(_image())
    assert isinstance(dets, sv.Detections)
    assert dets.xyxy.shape == (len(dets), 4) and dets.confidence.shape == (len(dets),)
    assert dets.mask is None
    assert detector.class_names == {0: "croissant", 1: "cookie", 2: "cupcake"}
    assert set(dets.data["class_name"]) <= {"croissant", "cookie", "cupcake"}
    names = [detector.class_names[c] for c in dets.class_id]
    assert list(dets.data["class_name"]) == names
    assert (dets.xyxy[:, 2] <= 128 + 1e-3).all() and (dets.xyxy[:, 3] <= 96 + 1e-3).all()


def test_list_input_is_one_batch_with_one_result_each(detector):
    images = [_image(0), _image(1), _image(2)]
    batch = detector(images)
    assert isinstance(batch, list) and len(batch) == 3
    for image, dets in zip(images, batch):
        single = detector(image)
        np.testing.assert_allclose(dets.xyxy, single.xyxy, atol=1e-3)


@pytest.mark.parametrize(("augment", "passes"), [(False, 1), (True, 3)])
def test_augment_runs_the_three_scales_and_keeps_boxes_inside_the_image(tiny_weights, augment, passes):
    det = YoloDetector(str(tiny_weights), conf=0.001, device="cpu", augment=augment).load()
    calls = []
    first_layer = det._model.model.model[0]
    hook = first_layer.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape[-2:])))
    try:
        dets = det(_image())
    finally:
        hook.remove()
    assert len(calls) == passes  # one forward pass per scale: 1, 0.83, 0.67
    assert isinstance(dets, sv.Detections)
    assert (dets.xyxy[:, 2] <= 128 + 1e-3).all() and (dets.xyxy[:, 3] <= 96 + 1e-3).all()


def test_augment_is_refused_where_ultralytics_would_run_one_scale(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "seg.pt"
    YOLO("yolov8n-seg.yaml").save(str(path))
    with pytest.raises(InputError, match="augment.*Segment head"):
        YoloDetector(str(path), device="cpu", augment=True).load()
    YoloDetector(str(path), device="cpu").load()  # without augment the same model is fine


def test_blank_image_gives_empty_detections(tiny_weights):
    dets = YoloDetector(str(tiny_weights), conf=0.99, device="cpu")(np.zeros((64, 64, 3), np.uint8))
    assert len(dets) == 0 and dets.xyxy.shape == (0, 4) and "class_name" in dets.data


@pytest.mark.parametrize(
    "image",
    [
        np.full((60, 80), 128, np.uint8),  # grayscale
        np.full((60, 80, 4), 128, np.uint8),  # BGRA
        np.full((60, 80, 3), 30000, np.uint16),  # 16-bit
    ],
    ids=["gray", "rgba", "16bit"],
)
def test_other_pixel_formats_are_handled(detector, image):
    dets = detector(image)
    assert isinstance(dets, sv.Detections)


def test_classes_by_name_or_id(tiny_weights):
    by_name = YoloDetector(str(tiny_weights), conf=0.001, classes=["cookie"], device="cpu")(_image())
    assert set(by_name.class_id) <= {1}
    by_id = YoloDetector(str(tiny_weights), conf=0.001, classes=[0, 2], device="cpu")(_image())
    assert set(by_id.class_id) <= {0, 2}


def test_unknown_class_name(tiny_weights):
    detector = YoloDetector(str(tiny_weights), classes=["bagel"])
    with pytest.raises(InputError, match="unknown class name 'bagel'.*croissant"):
        detector.load()
    # a failed load leaves nothing half-built: every later call (a folder's next image) says the same
    for _ in range(2):
        with pytest.raises(InputError, match="unknown class name 'bagel'"):
            detector(_image())


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        YoloDetector(str(tmp_path / "missing.pt")).load()


def test_unreadable_weights_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="not a loadable ultralytics model"):
        YoloDetector(str(bad)).load()


def test_classification_model_is_rejected(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "cls.pt"
    YOLO("yolov8n-cls.yaml").save(str(path))
    with pytest.raises(WeightsError, match="'classify' model"):
        YoloDetector(str(path)).load()


def test_downloadable_name_offline_suggests_yaml(offline):
    with pytest.raises(WeightsError, match="yolov8n.pt is not in .*could not be downloaded.*yolov8n.yaml"):
        YoloDetector("yolov8n.pt").load()


@pytest.mark.parametrize("n", [0, 1, 3])
def test_boxes_detector_returns_given_boxes(n):
    boxes = np.arange(n * 4, dtype=np.float32).reshape(n, 4) + [0, 0, 10, 10]
    det = BoxesDetector(boxes, class_ids=[1] * n, class_names={1: "cookie"})
    dets = det(_image())
    assert len(dets) == n
    np.testing.assert_array_equal(dets.xyxy, boxes)
    assert list(dets.data["class_name"]) == ["cookie"] * n


def test_boxes_detector_from_dataset_recognises_images(tiny_dataset):
    from detseg.data.io import load_dataset
    from detseg.images import read_image

    ds = load_dataset(tiny_dataset)
    det = BoxesDetector(dataset=ds, split="val")
    record = ds.splits["val"][1]
    dets = det(read_image(record.path))
    np.testing.assert_allclose(dets.xyxy, np.stack([a.xyxy for a in record.annotations]))
    assert list(dets.class_id) == [a.class_id for a in record.annotations]
    with pytest.raises(InputError, match="not in the dataset"):
        det(_image())


def test_seg_model_gives_boxes_without_masks(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "seg.pt"
    YOLO("yolov8n-seg.yaml").save(str(path))
    detector = YoloDetector(str(path), conf=0.0001, device="cpu", imgsz=64)
    dets = detector(_image())
    assert detector.load()._model.task == "segment"
    assert isinstance(dets, sv.Detections) and dets.mask is None


def test_the_first_call_runs_at_the_callers_thread_count_like_every_later_one(tiny_weights):
    """#30.16: ultralytics' first predict sets torch to cores - 1 threads before its first batch."""
    import torch
    from ultralytics.utils import NUM_THREADS

    before = torch.get_num_threads()
    wanted = NUM_THREADS + 1  # anything but what select_device sets
    seen = []
    try:
        torch.set_num_threads(wanted)
        detector = YoloDetector(str(tiny_weights), conf=0.001, device="cpu").load()
        detector._model.model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
        for _ in range(3):
            detector(_image())
        assert seen and set(seen) == {wanted}, seen
        assert torch.get_num_threads() == wanted
        assert not detector._model.callbacks.get("on_predict_start", [])[1:]  # no restore piled up per call
    finally:
        torch.set_num_threads(before)
