import numpy as np
import pytest
import supervision as sv
import torch

from detseg.errors import InputError, WeightsError
from detseg.segmenter import SamSegmenter
from detseg.segmenter.upsample import Grid, upsample_full, upsample_mask, upsample_masks_on_device
from tests.helpers import textured_image


def _reference(predictor, image, boxes):
    predictor.set_image(image)
    masks, _ = type(predictor).inference_features(predictor, predictor.features, src_shape=image.shape[:2],
                                                  bboxes=np.asarray(boxes, np.float32))
    return masks.cpu().numpy()


PARITY_CASES = [
    # (h, w, boxes): non-square, small, large, boxes touching the borders
    (240, 320, [[0, 0, 120, 90], [100, 50, 320, 240], [30, 30, 31, 200]]),
    (130, 500, [[0, 10, 499, 129], [200, 0, 260, 130]]),
    (1100, 700, [[0, 0, 700, 1100], [350, 400, 699, 1099], [10, 900, 200, 1100]]),
]


@pytest.mark.parametrize("h, w, boxes", PARITY_CASES)
def test_parity_with_ultralytics_predictor(sam, ultralytics_predictor, h, w, boxes):
    image = textured_image(h, w, seed=h)
    ours, _ = sam.predict_masks(image, boxes)
    ref = _reference(ultralytics_predictor, image, boxes)
    assert ours.shape == ref.shape == (len(boxes), h, w)
    for i in range(len(boxes)):
        agreement = (ours[i] == ref[i]).mean()
        assert agreement >= 0.9999, (i, agreement)  # a few pixels of float rounding
    assert ours.any(axis=(1, 2)).all()  # random weights: real, non-trivial masks


@pytest.mark.parametrize("imgsz", [512, 768])
def test_smaller_input_parity_with_ultralytics_predictor_at_the_same_imgsz(mobile_sam_checkpoint, imgsz):
    """``imgsz``: ultralytics' predictor at the same input side (its ``set_imgsz``) gives the same masks; the
    low-res logits are imgsz / 4 square, and the masks differ from those at 1024 (the input really changed)."""
    from ultralytics.models.sam import Predictor

    h, w, boxes = PARITY_CASES[0]
    image = textured_image(h, w, seed=h)
    seg = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense", imgsz=imgsz)
    ours, scores = seg.predict_masks(image, boxes)
    predictor = Predictor(overrides=dict(conf=0.0, model=str(mobile_sam_checkpoint), imgsz=imgsz, device="cpu",
                                         verbose=False, save=False))
    ref = _reference(predictor, image, boxes)
    assert ours.shape == ref.shape == (len(boxes), h, w) and scores.shape == (len(boxes),)
    for i in range(len(boxes)):
        assert (ours[i] == ref[i]).mean() >= 0.9999
    assert ours.any(axis=(1, 2)).all()
    emb = seg.embed(image)
    logits, _ = seg.predict_torch(emb, torch.as_tensor(np.asarray(boxes, np.float32) * emb.scale))
    assert logits.shape == (len(boxes), 1, imgsz // 4, imgsz // 4) and emb.scale == imgsz / w
    at_1024, _ = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense").predict_masks(image, boxes)
    assert not np.array_equal(ours, at_1024)


@pytest.mark.parametrize("imgsz", [500, 128, 0, 512.0, "512", True])
def test_bad_imgsz_is_a_clear_error(mobile_sam_checkpoint, imgsz):
    with pytest.raises(InputError, match="imgsz must be a multiple of 64"):
        SamSegmenter(str(mobile_sam_checkpoint), device="cpu", imgsz=imgsz).load()


def test_a_numpy_integer_imgsz_is_taken(mobile_sam_checkpoint):
    segmenter = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", imgsz=np.int64(512)).load()
    assert segmenter.imgsz == 512 and type(segmenter.imgsz) is int and segmenter.low_res == 128


@pytest.mark.parametrize("shape", [(240, 320), (130, 500), (1100, 700), (97, 1013), (1024, 1024)])
def test_windowed_upsampling_equals_full_frame_bit_for_bit(shape):
    rng = np.random.default_rng(0)
    grid = Grid.build(shape)
    for _ in range(5):
        logits = rng.normal(-2, 1, (256, 256)).astype(np.float32)
        logits[rng.integers(0, 200):, rng.integers(0, 200):][:40, :60] += 4  # a positive blob
        crop, (y0, x0) = upsample_mask(logits, grid)
        full = upsample_full(logits, grid) > 0
        placed = np.zeros(shape, bool)
        if crop is not None:
            placed[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        assert np.array_equal(placed, full)


@pytest.mark.parametrize("shape", [(240, 320), (97, 1013), (1024, 1024)])
def test_upsampling_equals_the_plain_four_tap_formula_bit_for_bit(shape):
    logits = np.random.default_rng(2).normal(0, 1, (256, 256)).astype(np.float32)
    grid = Grid.build(shape)
    r, c = grid.rows, grid.cols
    wy, wx = r.w_hi[:, None], c.w_hi[None, :]
    top = logits[r.lo][:, c.lo] * (1 - wx) + logits[r.lo][:, c.hi] * wx
    bottom = logits[r.hi][:, c.lo] * (1 - wx) + logits[r.hi][:, c.hi] * wx
    assert np.array_equal(upsample_full(logits, grid), top * (1 - wy) + bottom * wy)


@pytest.mark.parametrize("shape", [(240, 320), (97, 1013), (1100, 700)])
@pytest.mark.parametrize("n", [0, 1, 7])
@pytest.mark.parametrize("parts", ["whole", "split"])
def test_device_upsampling_gives_the_host_crops_bit_for_bit(shape, n, parts):
    """The GPU path (torch ops, here on the CPU's torch) yields the numpy path's crops and corners."""
    rng = np.random.default_rng(n)
    logits = rng.normal(-2, 1, (n, 256, 256)).astype(np.float32)
    for i in range(n):
        logits[i, rng.integers(0, 200):, rng.integers(0, 200):][:40, :60] += 4 + i
    if n:
        logits[0] = -5.0  # an empty mask keeps its row
    grid = Grid.build(shape)
    # split: one mask at a time, in bands of 5 rows (the memory bound at work)
    limit = 2**24 if parts == "whole" else 5 * shape[1]
    got = list(upsample_masks_on_device(torch.from_numpy(logits), grid, max_elements=limit))
    want = [upsample_mask(lg, grid) for lg in logits]
    assert len(got) == len(want) == n
    for (crop, corner), (ref_crop, ref_corner) in zip(got, want):
        assert corner == ref_corner
        assert (crop is None and ref_crop is None) or np.array_equal(crop, ref_crop)
    assert n == 0 or (got[0] == (None, None) and all(c is not None for c, _ in got[1:]))


def test_segmenter_on_device_path_equals_host_path(mobile_sam_checkpoint):
    """SamSegmenter with the device upsampler switched on (as on a GPU) gives the same masks, compact too."""
    image = textured_image(300, 400, seed=8)
    boxes = [[10, 10, 200, 150], [150, 100, 400, 300], [0, 0, 0, 50], [30, 40, 90, 280]]
    for output in ("dense", "compact"):
        host = SamSegmenter(str(mobile_sam_checkpoint), output=output, chunk_size=3).load()
        device = SamSegmenter(str(mobile_sam_checkpoint), output=output, chunk_size=3).load()
        assert not host._upsample_on_device  # a CPU picks the windowed numpy path
        device._upsample_on_device = True
        (ref, ref_scores), (masks, scores) = host.predict_masks(image, boxes), device.predict_masks(image, boxes)
        dense = (lambda m: m) if output == "dense" else (lambda m: m.to_dense())
        assert np.array_equal(dense(masks), dense(ref)) and dense(ref)[[0, 1, 3]].any(axis=(1, 2)).all()
        np.testing.assert_array_equal(scores, ref_scores)


def test_upsampling_matches_torch_interpolate():
    """Our sampling grid is the one of F.interpolate(bilinear, align_corners=False)."""
    logits = np.random.default_rng(1).normal(0, 1, (256, 256)).astype(np.float32)
    grid = Grid.build((512, 512))  # square: content covers all 256 low-res pixels
    ours = upsample_full(logits, grid)
    ref = torch.nn.functional.interpolate(torch.from_numpy(logits)[None, None], (512, 512), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("imgsz", [1024, 768, 512])
@pytest.mark.parametrize("shape", [(160, 256), (480, 640), (240, 320), (130, 500), (97, 1013), (1100, 700)])
def test_upsampling_equals_ultralytics_scale_masks(shape, imgsz):
    """The grid of ultralytics' SAM predictors (``ops.scale_masks`` with the letterbox ratio, no padding), content
    ending on a whole low-res pixel (it crops, then interpolates: the last rows take the content's edge) or
    mid-pixel (it samples the whole map), at every input side."""
    from ultralytics.utils import ops

    low = imgsz // 4
    logits = np.random.default_rng(3).normal(0, 1, (low, low)).astype(np.float32)
    logits[:, -8:] = logits[-8:, :] = 5.0  # letterbox padding that reads as object: wrong if sampled
    h, w = shape
    gain = min(imgsz / h, imgsz / w)
    ratio = [round(o * gain) * low / imgsz / o for o in shape]
    ref = ops.scale_masks(torch.from_numpy(logits)[None, None], shape, (ratio, (0, 0)), padding=False)[0, 0].numpy()
    ours = upsample_full(logits, Grid.build(shape, imgsz, low))
    np.testing.assert_allclose(ours, ref, atol=1e-3)  # float rounding (grid_sample's arithmetic) aside
    clear = np.abs(ref) > 1e-3
    assert np.array_equal((ours > 0)[clear], (ref > 0)[clear]) and clear.mean() > 0.99


def test_chunked_equals_unchunked(mobile_sam_checkpoint):
    image = textured_image(200, 300, seed=3)
    boxes = [[10, 10, 100, 100], [50, 60, 250, 190], [0, 0, 300, 200], [120, 20, 180, 90], [5, 100, 60, 199]]
    one = SamSegmenter(str(mobile_sam_checkpoint), chunk_size=1, output="dense")
    big = SamSegmenter(str(mobile_sam_checkpoint), chunk_size=64, output="dense")
    m1, s1 = one.predict_masks(image, boxes)
    m2, s2 = big.predict_masks(image, boxes)
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert (m1 == m2).mean() >= 0.99999


def test_compact_mask_equals_dense(mobile_sam_checkpoint, sam):
    image = textured_image(300, 400, seed=4)
    boxes = [[10, 10, 200, 150], [150, 100, 400, 300], [0, 0, 0, 50]]  # the last has zero area
    compact = SamSegmenter(str(mobile_sam_checkpoint), output="compact")
    cm, cs = compact.predict_masks(image, boxes)
    dense, ds = sam.predict_masks(image, boxes)
    assert isinstance(cm, sv.CompactMask) and cm.shape == dense.shape
    assert np.array_equal(cm.to_dense(), dense)
    np.testing.assert_array_equal(cs, ds)


def test_encoder_runs_once_per_distinct_image(mobile_sam_checkpoint):
    seg = SamSegmenter(str(mobile_sam_checkpoint), output="dense")
    image = textured_image(120, 160, seed=5)
    seg.predict_masks(image, [[0, 0, 50, 50]])
    seg.predict_masks(image, [[10, 10, 100, 100], [0, 0, 160, 120]])
    seg.embed(image.copy())  # same pixels, different array: still a hit
    assert seg.cache_info()["encoder_calls"] == 1
    assert seg.cache_info()["hits"] == 2
    edited = image.copy()
    edited[0, 0, 0] ^= 1  # one pixel changed: a new embedding, never a stale one
    seg.predict_masks(edited, [[0, 0, 50, 50]])
    assert seg.cache_info()["encoder_calls"] == 2


def test_cache_is_bounded_by_bytes(mobile_sam_checkpoint):
    one = SamSegmenter(str(mobile_sam_checkpoint)).embed(textured_image(64, 64, seed=9)).nbytes
    seg = SamSegmenter(str(mobile_sam_checkpoint), cache_bytes=int(2.5 * one))  # room for two embeddings
    for seed in range(3):
        seg.embed(textured_image(64, 64, seed=seed))
    info = seg.cache_info()
    assert info["entries"] == 2 and info["bytes"] == 2 * one
    seg.embed(textured_image(64, 64, seed=0))  # evicted (least recently used): encoded again
    assert seg.cache_info()["encoder_calls"] == 4


@pytest.mark.parametrize("n", [0, 1, 7])
def test_masks_align_with_boxes(sam, n):
    image = textured_image(100, 150, seed=6)
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 100, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 50, (n, 2))], axis=1)
    before = sam.cache_info()["encoder_calls"]
    masks, scores = sam.predict_masks(image, boxes)
    assert masks.shape == (n, 100, 150) and scores.shape == (n,)
    if n == 0:
        assert sam.cache_info()["encoder_calls"] == before  # no boxes: no encoder, no decoder
    # each mask is the one its box gives alone: order is kept
    for i in range(n):
        alone, _ = sam.predict_masks(image, boxes[i:i + 1])
        assert (alone[0] == masks[i]).mean() >= 0.9999


def test_zero_area_box_keeps_its_row(sam):
    image = textured_image(100, 150, seed=7)
    boxes = [[10, 10, 80, 80], [40, 40, 40, 90], [200, 200, 300, 300], [20, 30, 140, 95]]
    masks, scores = sam.predict_masks(image, boxes)
    assert len(masks) == 4
    assert not masks[1].any() and not masks[2].any()  # zero area; outside the image
    assert scores[1] == 0 and scores[2] == 0
    assert masks[0].any() and masks[3].any()


def test_call_attaches_masks_to_detections(sam):
    image = textured_image(100, 150, seed=8)
    dets = sv.Detections(xyxy=np.array([[10, 10, 80, 80], [20, 30, 140, 95]], np.float32),
                         confidence=np.array([0.9, 0.4]), class_id=np.array([2, 0]),
                         data={"class_name": np.array(["cupcake", "croissant"])})
    out = sam(image, dets)
    assert len(out) == 2 and out.mask.shape == (2, 100, 150)
    np.testing.assert_array_equal(out.class_id, [2, 0])
    np.testing.assert_array_equal(out.data["class_name"], ["cupcake", "croissant"])
    assert out.data["mask_score"].shape == (2,)


@pytest.mark.parametrize("mode, factor", [("all", 3), ("best", 1)])
def test_multimask_modes(mobile_sam_checkpoint, mode, factor):
    image = textured_image(100, 150, seed=9)
    boxes = [[10, 10, 80, 80], [20, 30, 140, 95]]
    seg = SamSegmenter(str(mobile_sam_checkpoint), multimask=mode, output="dense")
    masks, scores = seg.predict_masks(image, boxes)
    assert masks.shape == (2 * factor, 100, 150) and scores.shape == (2 * factor,)
    if mode == "best":
        three = SamSegmenter(str(mobile_sam_checkpoint), multimask="all", output="dense")
        _, all_scores = three.predict_masks(image, boxes)
        np.testing.assert_allclose(scores, all_scores.reshape(2, 3).max(1), atol=1e-5)


def test_multimask_all_keeps_compact_masks_compact(mobile_sam_checkpoint):
    import supervision as sv

    image = textured_image(100, 150, seed=9)
    dets = sv.Detections(xyxy=np.array([[10, 10, 80, 80], [20, 30, 140, 95]], float), class_id=np.array([0, 1]))
    dense = SamSegmenter(str(mobile_sam_checkpoint), multimask="all", output="dense")(image, dets)
    compact = SamSegmenter(str(mobile_sam_checkpoint), multimask="all", output="compact")(image, dets)
    assert hasattr(compact.mask, "to_dense") and not isinstance(dense.mask, type(compact.mask))
    assert np.array_equal(compact.mask.to_dense(), dense.mask)
    assert np.array_equal(compact.data["mask_candidates"], dense.data["mask_candidates"])


def test_bf16_runs_and_roughly_agrees(mobile_sam_checkpoint):
    image = textured_image(120, 160, seed=10)
    boxes = [[10, 10, 100, 100], [30, 20, 150, 110]]
    # at a 512 input: bf16 without a bf16 unit on the CPU is slow, and the autocast path is the same at any size
    fp32, _ = SamSegmenter(str(mobile_sam_checkpoint), output="dense", imgsz=512).predict_masks(image, boxes)
    bf16, _ = SamSegmenter(str(mobile_sam_checkpoint), precision="bf16", output="dense",
                           imgsz=512).predict_masks(image, boxes)
    assert bf16.shape == fp32.shape and (bf16 == fp32).mean() > 0.8


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([[0, 0, float("nan"), 10]], "NaN or inf"),
        ([[50, 10, 20, 40]], "inverted"),
        ([[1, 2, 3]], "shape (N, 4)"),
        ([[1, 2, 3, 4], [5, 6]], "rows of 4 numbers each"),
        ([["a", 2, 3, 4]], "rows of 4 numbers each"),
    ],
)
def test_bad_boxes_raise_clear_errors(sam, boxes, message):
    with pytest.raises(InputError) as err:
        sam.predict_masks(textured_image(50, 50), boxes)
    assert message in str(err.value)


def test_bad_image_shows_expected_and_actual(sam):
    with pytest.raises(InputError, match=r"\(H, W, 3\) uint8 BGR, got shape \(50, 50\) dtype float64"):
        sam.predict_masks(np.zeros((50, 50)), [[0, 0, 10, 10]])


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found.*nowhere.pt.*grabcut"):
        SamSegmenter(str(tmp_path / "nowhere.pt")).load()


def test_unknown_name_offline_says_what_to_do(offline):
    with pytest.raises(WeightsError, match="mobile_sam.pt is not in .* could not be downloaded.*grabcut"):
        SamSegmenter("mobile_sam.pt").load()


def test_corrupt_or_wrong_checkpoint(tmp_path, mobile_sam_checkpoint):
    junk = tmp_path / "mobile_sam_junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable SAM checkpoint") as info:
        SamSegmenter(str(junk)).load()
    assert "weights_only" not in str(info.value)  # never torch's advice to unpickle untrusted files
    with pytest.raises(WeightsError, match="does not fit the sam_b architecture"):
        SamSegmenter(str(mobile_sam_checkpoint), arch="sam_b").load()
    with pytest.raises(WeightsError, match="cannot tell the SAM architecture"):
        renamed = tmp_path / "weights.pt"
        renamed.write_bytes(mobile_sam_checkpoint.read_bytes())
        SamSegmenter(str(renamed)).load()
    # any file name works when arch says which
    renamed_ok = SamSegmenter(str(tmp_path / "weights.pt"), arch="mobile_sam").load()
    assert renamed_ok.model is not None


def test_encoder_prepared_for_inference_gives_the_same_embedding(mobile_sam_checkpoint):
    import copy

    from detseg.segmenter.sam_loading import build_sam_model, prepare_encoder_for_inference

    model, _ = build_sam_model(str(mobile_sam_checkpoint))
    model = model.eval()
    generator = torch.Generator().manual_seed(0)
    for m in model.image_encoder.modules():  # trained-like BN statistics, so folding them is not trivial
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    prepared = copy.deepcopy(model)
    assert prepare_encoder_for_inference(prepared)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.image_encoder.modules())
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        ref = model.image_encoder(x)
        out = prepared.image_encoder(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, atol=1e-4 * max(1.0, ref.abs().max().item()))
    assert not prepare_encoder_for_inference(torch.nn.Module())  # not TinyViT: left alone


def test_logits_are_streamed_chunk_by_chunk(mobile_sam_checkpoint, monkeypatch):
    """Each chunk's low-res logits are upsampled before the next chunk is decoded: memory is
    bounded by the chunk, not by the number of boxes (2000 boxes kept ~7.7 GB of logits before)."""
    import detseg.segmenter.sam as sam_module

    seg = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense", chunk_size=2).load()
    events = []
    decode, upsample = seg._decode, sam_module.upsample_mask
    monkeypatch.setattr(seg, "_decode", lambda *a, **k: events.append("decode") or decode(*a, **k))
    monkeypatch.setattr(sam_module, "upsample_mask", lambda *a, **k: events.append("up") or upsample(*a, **k))
    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    boxes = np.array([[2, 2, 30, 30], [10, 10, 60, 50], [0, 0, 79, 63], [5, 20, 40, 60], [30, 5, 70, 40]], float)
    masks, scores = seg.predict_masks(image, boxes)
    assert events == ["decode", "up", "up", "decode", "up", "up", "decode", "up"]
    assert masks.shape == (5, 64, 80) and scores.shape == (5,) and (scores != 0).all()


@pytest.mark.parametrize("kwargs, message", [({"chunk_size": "abc"}, "chunk_size must be an integer"),
                                             ({"chunk_size": 2.5}, "chunk_size must be an integer"),
                                             ({"cache_bytes": "1GB"}, "cache_bytes must be an integer >= 0"),
                                             ({"cache_bytes": -1}, "cache_bytes must be an integer >= 0")])
def test_a_bad_chunk_size_or_cache_size_is_one_clear_error(mobile_sam_checkpoint, kwargs, message):
    from detseg.errors import InputError

    seg = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", **kwargs)
    with pytest.raises(InputError, match=message):
        seg.load()
        seg.predict_masks(np.zeros((32, 32, 3), np.uint8), [[1, 1, 20, 20]])
