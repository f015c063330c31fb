"""The CUDA paths: fp32 parity with the CPU, the box decoder vs the reference decoder, chunking,
half precision and the pipeline end to end on the GPU.

They run where ``torch.cuda.is_available()``; elsewhere pytest lists them as skipped with
that reason (``-ra``). Random weights, as everywhere in the suite.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from detseg.segmenter import SamSegmenter
from tests.helpers import FakeDetector, carry_boxes, textured_image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _boxes(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.05, 0.4, (n, 2)) * [w, h]
    xy = rng.uniform(0, 1, (n, 2)) * ([w, h] - size)
    return np.concatenate([xy, xy + size], 1).astype(np.float32)


def _iou(a, b):
    inter = (a & b).sum((1, 2))
    return inter / np.maximum((a | b).sum((1, 2)), 1)


@pytest.fixture(scope="module")
def gpu_sam(mobile_sam_checkpoint):
    return SamSegmenter(str(mobile_sam_checkpoint), device="cuda", output="dense").load()


@pytest.mark.parametrize("n", [0, 1, 70])  # 70: more than one chunk of 64
def test_cuda_fp32_masks_match_the_cpu(gpu_sam, sam, n):
    image = textured_image(300, 400, seed=1)
    boxes = _boxes(n, 300, 400)
    gpu_masks, gpu_scores = gpu_sam.predict_masks(image, boxes)
    cpu_masks, cpu_scores = sam.predict_masks(image, boxes)
    assert gpu_masks.shape == cpu_masks.shape == (n, 300, 400)
    if n:
        assert gpu_sam._chunk() == 64 and gpu_sam._upsample_on_device  # masks upsampled on the GPU
        # TF32 convolutions and other kernels: not the CPU's bits, the same masks but for a few edge pixels
        assert (gpu_masks == cpu_masks).mean(axis=(1, 2)).min() >= 0.995
        np.testing.assert_allclose(gpu_scores, cpu_scores, atol=2e-2)


def test_cuda_box_decoder_equals_the_reference_decoder(gpu_sam, mobile_sam_checkpoint):
    image = textured_image(256, 320, seed=2)
    boxes = _boxes(20, 256, 320, seed=2)
    reference = SamSegmenter(str(mobile_sam_checkpoint), device="cuda", output="dense", decoder="reference").load()
    ours, ours_scores = gpu_sam.predict_masks(image, boxes)
    ref, ref_scores = reference.predict_masks(image, boxes)
    assert (ours == ref).mean(axis=(1, 2)).min() >= 0.999
    np.testing.assert_allclose(ours_scores, ref_scores, atol=1e-3)


def test_cuda_chunk_sizes_agree(mobile_sam_checkpoint):
    image = textured_image(200, 300, seed=3)
    boxes = _boxes(9, 200, 300, seed=3)
    one = SamSegmenter(str(mobile_sam_checkpoint), device="cuda", output="dense", chunk_size=1).load()
    many = SamSegmenter(str(mobile_sam_checkpoint), device="cuda", output="dense", chunk_size=64).load()
    (m1, s1), (m64, s64) = one.predict_masks(image, boxes), many.predict_masks(image, boxes)
    assert (m1 == m64).mean() >= 0.9999
    np.testing.assert_allclose(s1, s64, atol=1e-3)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_half_precision_stays_close_to_fp32(gpu_sam, mobile_sam_checkpoint, precision):
    image = textured_image(320, 320, seed=4)
    boxes = _boxes(12, 320, 320, seed=4)
    half = SamSegmenter(str(mobile_sam_checkpoint), device="cuda", output="dense", precision=precision).load()
    masks, scores = half.predict_masks(image, boxes)
    full, full_scores = gpu_sam.predict_masks(image, boxes)
    assert masks.dtype == bool and np.isfinite(scores).all()
    assert _iou(masks, full).mean() >= 0.95


def test_cuda_compact_output_equals_dense(gpu_sam, mobile_sam_checkpoint):
    image = textured_image(1100, 1000, seed=5)  # >= 1 megapixel: "auto" output is compact
    boxes = _boxes(10, 1100, 1000, seed=5)
    compact = SamSegmenter(str(mobile_sam_checkpoint), device="cuda").load()
    masks, _ = compact.predict_masks(image, boxes)
    assert type(masks).__name__ == "CompactMask"
    dense, _ = gpu_sam.predict_masks(image, boxes)
    assert np.array_equal(masks.to_dense(), dense)


def test_pipeline_runs_on_cuda_like_on_the_cpu(gpu_sam, sam):
    from detseg.pipeline import Pipeline

    image = textured_image(240, 320, seed=6)
    on_gpu = Pipeline(FakeDetector(), gpu_sam)(image)
    on_cpu = Pipeline(FakeDetector(), sam)(image)
    assert len(on_gpu) == len(on_cpu) > 0
    np.testing.assert_array_equal(on_gpu.xyxy, on_cpu.xyxy)
    assert (on_gpu.mask == on_cpu.mask).mean() >= 0.995


def test_shipped_detector_finds_the_same_boxes_on_cuda():
    from detseg.detectors import YoloDetector
    from detseg.detectors.yolo import DEFAULT_WEIGHTS
    from detseg.images import read_image

    image = read_image(sorted((ROOT / "data" / "samples").rglob("*.jpg"))[0])
    weights = str(DEFAULT_WEIGHTS)
    on_gpu = YoloDetector(weights, device="cuda").load()(image)
    on_cpu = YoloDetector(weights, device="cpu").load()(image)
    assert len(on_gpu) == len(on_cpu) > 0
    np.testing.assert_allclose(on_gpu.xyxy, on_cpu.xyxy, atol=1.0)
    np.testing.assert_array_equal(on_gpu.class_id, on_cpu.class_id)


def test_cli_predict_on_cuda(tmp_path, mobile_sam_checkpoint):
    import json

    from detseg.pipeline.cli import main

    code = main(["predict", str(ROOT / "data" / "samples"), "--out", str(tmp_path / "out"), "--device", "cuda",
                 "--segmenter", str(mobile_sam_checkpoint), "--precision", "fp16"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["processed"] > 0 and not summary["failed"] and summary["instances"] > 0
    assert len(list((tmp_path / "out" / "annotated").glob("*.jpg"))) == summary["processed"]


def test_sam2_video_memory_on_cuda_carries_the_cpu_masks(sam2_checkpoint_present):
    """Keyframe mode's SAM 2 memory on the GPU: same objects and (nearly) the same carried masks as on
    the CPU, with random SAM 2.1-t weights whose presence head says "present"."""
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    frames = [textured_image(160, 256, seed=i) for i in range(3)]
    boxes = np.array([[40, 30, 150, 120], [120, 60, 250, 150]], np.float32)
    carried = {}
    for device in ("cpu", "cuda"):
        memory = Sam2VideoMemory(SamSegmenter(str(sam2_checkpoint_present), device=device, output="dense"))
        carried[device] = carry_boxes(memory, frames, boxes)
        assert memory.memory_bytes() > 0
        memory.remove(0)
        assert list(memory.objects) == [1]
    for on_cpu, on_gpu in zip(carried["cpu"], carried["cuda"]):
        assert on_cpu.any(axis=(1, 2)).all()
        assert _iou(on_cpu, on_gpu).min() >= 0.98
