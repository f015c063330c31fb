"""Images batched through SAM's encoder: the same embeddings, the cache filled, and the pipeline's
batched run giving the frames of the one-by-one run."""

import numpy as np
import pytest
import torch

from detseg.pipeline import Pipeline
from detseg.pipeline.batching import resolve_batch_size
from detseg.segmenter import BoxSegmenter, SamSegmenter
from tests.helpers import FakeDetector, textured_image


@pytest.fixture(scope="module")
def images():
    return [textured_image(96, 128, 1), textured_image(128, 80, 2)]


def test_batched_embedding_equals_one_by_one(mobile_sam_checkpoint, images):
    single = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense").load()
    batched = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense").load()
    one = [single.embed(im) for im in images]
    many = batched.embed_batch(images + [images[0]])  # a repeated image is encoded once
    assert batched.encoder_calls == 2 and len(many) == 3 and many[2] is many[0]
    for a, b in zip(one, many):
        scale = a.features.abs().max().item()
        assert torch.allclose(a.features, b.features, rtol=0, atol=1e-5 * scale)
        assert a.src_shape == b.src_shape and a.scale == b.scale and a.nbytes == b.nbytes
        assert b.features.untyped_storage().nbytes() == b.features.numel() * 4  # its own copy, not the batch's
    # the batch filled the cache: masks from it need no further encoder call
    masks, _ = batched.predict_masks(images[1], [[5, 5, 60, 90]])
    ref, _ = single.predict_masks(images[1], [[5, 5, 60, 90]])
    assert batched.encoder_calls == 2
    assert (masks != ref).mean() < 1e-3


def test_batched_pipeline_run_equals_one_by_one(mobile_sam_checkpoint, images, tmp_path):
    import cv2

    for i, im in enumerate(images):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), im)
    (tmp_path / "broken.png").write_bytes(b"nope")
    sam = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense")
    pipe = Pipeline(FakeDetector(), sam)
    one = list(pipe.run(tmp_path))
    sam.clear_cache()
    calls = sam.load().encoder_calls
    batched = list(pipe.run(tmp_path, batch_size=4))
    assert sam.encoder_calls - calls == 2
    assert [f.name for f in batched] == [f.name for f in one] and [f.ok for f in batched] == [False, True, True]
    for a, b in zip(one[1:], batched[1:]):
        assert np.array_equal(a.detections.xyxy, b.detections.xyxy)
        assert (a.detections.mask != b.detections.mask).mean() < 1e-3


def test_a_batch_is_encoded_once_even_without_a_cache(mobile_sam_checkpoint, images):
    sam = SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense", cache_bytes=0).load()
    results = Pipeline(FakeDetector(), sam).process_batch(images)
    assert sam.encoder_calls == len(images)  # one batched call's images, none encoded again for its boxes
    assert all(len(dets) == 2 for dets, _ in results)
    sam.clear_cache()  # what the batch held goes too
    sam.predict_masks(images[0], [[5, 5, 60, 90]])
    assert sam.encoder_calls == len(images) + 1


def test_batch_size_auto_is_one_on_a_cpu(mobile_sam_checkpoint):
    sam = SamSegmenter(str(mobile_sam_checkpoint), device="cpu").load()
    assert resolve_batch_size("auto", sam) == 1 and resolve_batch_size("auto", BoxSegmenter()) == 1
    assert resolve_batch_size("4", sam) == 4
    with pytest.raises(ValueError, match="integer >= 1"):
        resolve_batch_size("0", sam)
