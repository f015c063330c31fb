import numpy as np
import pytest
import supervision as sv

from detseg.pipeline import Pipeline
from detseg.pipeline.steps import (
    ClassAwareNMS,
    ClassFilter,
    FillHoles,
    LargestComponent,
    MaxBoxes,
    MinBoxSize,
    MinConfidence,
    MinMaskArea,
)
from detseg.segmenter import BoxSegmenter
from tests.helpers import CountingSegmenter, FakeDetector, textured_image


def test_pipeline_returns_labelled_masks_in_detector_order():
    pipe = Pipeline(FakeDetector(), BoxSegmenter())
    dets = pipe(textured_image(100, 200))
    assert dets.mask.shape == (2, 100, 200)
    np.testing.assert_allclose(dets.xyxy, [[20, 10, 100, 60], [80, 30, 180, 90]])
    assert list(dets.data["class_name"]) == ["croissant", "cookie"]
    assert dets.data["mask_score"].shape == (2,)
    assert dets.mask[0][10:60, 20:100].all() and not dets.mask[0][70:, :].any()


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        (dict(detector="not callable", segmenter=BoxSegmenter()), "detector 'not callable'"),
        (dict(detector=FakeDetector(), segmenter=lambda im, d: d), "segmenter function has no predict_masks"),
        (dict(detector=FakeDetector(), segmenter=BoxSegmenter(), box_steps=[MinConfidence(0.1), 3]), "box_steps[1]"),
        (dict(detector=FakeDetector(), segmenter=BoxSegmenter(), mask_steps=[None]), "mask_steps[0]"),
        (dict(detector=FakeDetector(), segmenter=BoxSegmenter(), box_steps=[MinConfidence]),
         "box_steps[0] is the class MinConfidence, not an instance of it: pass MinConfidence(...)"),
        (dict(detector=FakeDetector(), segmenter=BoxSegmenter), "segmenter is the class BoxSegmenter"),
    ],
)
def test_bad_steps_raise_type_error_naming_them(kwargs, bad):
    with pytest.raises(TypeError) as err:
        Pipeline(**kwargs)
    assert bad in str(err.value)


def test_no_detections_means_no_segmenter_call():
    seg = CountingSegmenter(BoxSegmenter())
    pipe = Pipeline(FakeDetector(fractions=np.zeros((0, 4)), confidence=()), seg)
    dets = pipe(textured_image(50, 60))
    assert len(dets) == 0 and dets.mask.shape == (0, 50, 60) and seg.calls == 0
    # a filter that removes everything also skips the segmenter
    pipe = Pipeline(FakeDetector(), seg, box_steps=[MinConfidence(0.99)])
    assert len(pipe(textured_image(50, 60))) == 0 and seg.calls == 0


def test_two_pipelines_do_not_interfere():
    a = Pipeline(FakeDetector(fractions=[(0, 0, 0.5, 0.5)], confidence=[0.9]), BoxSegmenter())
    b = Pipeline(FakeDetector(), BoxSegmenter(), box_steps=[MaxBoxes(1)])
    image = textured_image(40, 40)
    ra1, rb1, ra2 = a(image), b(image), a(image)
    assert len(ra1) == len(ra2) == 1 and len(rb1) == 1
    np.testing.assert_array_equal(ra1.mask, ra2.mask)
    assert a.box_steps == [] and len(b.box_steps) == 1


def test_pixel_formats_are_converted():
    pipe = Pipeline(FakeDetector(), BoxSegmenter())
    for image in (np.zeros((30, 40), np.uint8), np.zeros((30, 40, 4), np.uint8), np.zeros((30, 40, 3), np.uint16)):
        assert pipe(image).mask.shape == (2, 30, 40)


def _dets(n, conf=None, classes=None, boxes=None):
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 50, (n, 2))
    xyxy = np.asarray(boxes, np.float32) if boxes is not None else np.concatenate([xy, xy + 10], 1).astype(np.float32)
    class_id = np.asarray(classes if classes is not None else np.arange(n) % 3)
    names = np.array(["croissant", "cookie", "cupcake"])[class_id] if n else np.array([], dtype=str)
    return sv.Detections(xyxy=xyxy.reshape(-1, 4), confidence=np.asarray(conf if conf is not None else
                                                                          np.linspace(1, 0.1, n)),
                         class_id=class_id.astype(int), data={"class_name": names})


@pytest.mark.parametrize("n", [0, 1, 5])
def test_box_steps_on_empty_one_many(n):
    dets = _dets(n)
    assert len(ClassFilter(["cookie"])(dets)) == int(np.sum(dets.class_id == 1))
    assert len(ClassFilter([0, "cupcake"])(dets)) == int(np.sum(dets.class_id != 1))
    assert len(MinConfidence(0.5)(dets)) == int(np.sum(dets.confidence >= 0.5))
    assert len(MaxBoxes(2)(dets)) == min(n, 2)
    assert len(MinBoxSize(10.5)(dets)) == 0 and len(MinBoxSize(9.5)(dets)) == n  # all boxes are 10 x 10
    assert len(ClassAwareNMS(0.5)(dets)) == n  # random small boxes rarely overlap by > 0.5


def test_class_aware_nms_keeps_other_classes():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10]]
    dets = _dets(3, conf=[0.9, 0.8, 0.7], classes=[0, 0, 1], boxes=boxes)
    kept = ClassAwareNMS(0.5)(dets)
    assert sorted(kept.confidence.tolist()) == [0.7, 0.9]


def test_class_aware_nms_without_class_ids_suppresses_over_all_boxes():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]]
    dets = _dets(3, conf=[0.9, 0.8, 0.7], classes=[0, 0, 0], boxes=boxes)
    dets.class_id = None  # a class-agnostic detector's boxes (supervision's with_nms raised ValueError)
    kept = ClassAwareNMS(0.5)(dets)
    assert sorted(kept.confidence.tolist()) == [0.7, 0.9]


def test_max_boxes_keeps_the_most_confident_in_order():
    dets = _dets(4, conf=[0.2, 0.9, 0.5, 0.8])
    np.testing.assert_array_equal(MaxBoxes(2)(dets).confidence, [0.9, 0.8])


def _with_masks(masks, compact=False):
    masks = np.asarray(masks, bool)
    dets = _dets(len(masks))
    dets.mask = sv.CompactMask.from_dense(masks, np.array([[0, 0, masks.shape[2] - 1, masks.shape[1] - 1]] *
                                                          len(masks), np.float32), masks.shape[1:]) if compact \
        else masks
    return dets


@pytest.mark.parametrize("compact", [False, True], ids=["dense", "compact"])
def test_mask_steps(compact):
    ring = np.zeros((20, 20), bool)
    ring[2:12, 2:12] = True
    ring[5:8, 5:8] = False  # a hole
    ring[15:18, 15:18] = True  # a second, smaller part
    tiny = np.zeros((20, 20), bool)
    tiny[0, 0] = True
    dets = _with_masks([ring, tiny], compact)
    filled = FillHoles()(dets)
    assert np.asarray(filled.mask[0])[6, 6] and np.asarray(filled.mask[0])[16, 16]
    largest = LargestComponent()(dets)
    assert not np.asarray(largest.mask[0])[16, 16] and np.asarray(largest.mask[0])[3, 3]
    assert isinstance(largest.mask, sv.CompactMask) == compact
    assert len(MinMaskArea(5)(dets)) == 1


def test_run_embeds_each_image_once(sam):
    image = textured_image(80, 120, seed=1)
    before = sam.cache_info()["encoder_calls"]
    pipe = Pipeline(FakeDetector(), sam)
    frames = list(pipe.run([image, image.copy(), textured_image(80, 120, seed=2)]))
    assert [f.ok for f in frames] == [True, True, True]
    assert sam.cache_info()["encoder_calls"] - before == 2
    assert all(f.detections.mask.shape == (2, 80, 120) for f in frames)


def test_a_path_a_pil_image_and_an_array_are_the_same_input(tmp_path):
    """As ultralytics' ``model(x)``: a path, a PIL image (RGB) and a BGR array give the detector the same BGR pixels."""
    import cv2
    from PIL import Image

    from detseg.errors import ImageReadError, InputError

    seen = []

    class Recording(FakeDetector):
        def __call__(self, image):
            seen.append(image.copy())
            return super().__call__(image)

    bgr = textured_image(30, 40)
    bgr[..., 0] = 200  # a blue cast: a swapped channel order would show
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    pipe = Pipeline(Recording(), BoxSegmenter())
    pil = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    for image in (bgr, tmp_path / "a.png", str(tmp_path / "a.png"), pil):
        assert pipe(image).mask.shape == (2, 30, 40)
    for got in seen:
        np.testing.assert_array_equal(got, bgr)
    with pytest.raises(ImageReadError, match="no such file"):
        pipe(tmp_path / "missing.png")
    with pytest.raises(InputError, match="numpy array"):
        pipe(3.5)


def test_a_step_that_returns_nothing_is_named():
    def forgets_to_return(dets):
        dets.confidence[:] = 1.0

    pipe = Pipeline(FakeDetector(), BoxSegmenter(), mask_steps=[forgets_to_return])
    with pytest.raises(TypeError, match=r"mask_steps\[0\] function returned NoneType, expected supervision"):
        pipe(textured_image(60, 80))


def test_a_batch_the_gpu_has_no_room_for_is_encoded_image_by_image():
    import torch

    class BatchTooBig(BoxSegmenter):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def embed_batch(self, images):
            self.batches += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 24.00 GiB")

    segmenter = BatchTooBig()
    images = [textured_image(60, 80, seed) for seed in range(3)]
    results = Pipeline(FakeDetector(), segmenter).process_batch(images)
    assert segmenter.batches == 1 and all(not isinstance(r, Exception) for r in results)
    assert [len(dets) for dets, _ in results] == [2, 2, 2]


def test_run_takes_batch_size_auto_and_refuses_nonsense():
    from detseg.errors import InputError

    pipe = Pipeline(FakeDetector(), BoxSegmenter())
    frames = list(pipe.run([textured_image(40, 60, 1), textured_image(40, 60, 2)], batch_size="auto"))
    assert [len(f.detections) for f in frames] == [2, 2]
    with pytest.raises(InputError, match="batch size must be 'auto' or an integer >= 1"):
        list(pipe.run([textured_image(40, 60, 1)], batch_size=0))


@pytest.mark.parametrize("step", [FillHoles(), LargestComponent()], ids=["fill_holes", "largest_component"])
def test_mask_steps_on_compact_masks_work_on_crops_and_equal_the_dense_result(step):
    rng = np.random.default_rng(0)
    masks = []
    for _ in range(6):
        m = np.zeros((90, 120), bool)
        x, y = rng.integers(0, 100), rng.integers(0, 70)
        m[y:y + 20, x:x + 20] = rng.random((20, 20))[: 90 - y, : 120 - x] > 0.35  # speckled: holes and parts
        masks.append(m)
    dense, compact = _with_masks(masks, False), _with_masks(masks, True)
    a, b = step(dense), step(compact)
    assert isinstance(b.mask, sv.CompactMask)
    np.testing.assert_array_equal(np.asarray(a.mask), b.mask.to_dense())


def test_mask_steps_on_a_large_photo_never_build_full_frames():
    import tracemalloc

    masks = np.zeros((3, 3000, 4000), bool)
    for i in range(3):
        masks[i, 100 * i:100 * i + 50, 200:260] = True
        masks[i, 100 * i + 20, 220] = False  # a hole
    compact = _dets(3)
    boxes = np.array([[200, 100 * i, 259, 100 * i + 49] for i in range(3)], np.float32)  # tight crops, as SAM's
    compact.mask = sv.CompactMask.from_dense(masks, boxes, masks.shape[1:])
    del masks
    tracemalloc.start()
    filled = FillHoles()(compact)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4e6  # one 12 MB full frame per row would be 36 MB
    assert filled.mask.crop(0)[20, 20] and filled.mask.shape == (3, 3000, 4000)
