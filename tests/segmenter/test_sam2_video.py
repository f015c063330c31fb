"""Sam2VideoMemory against ultralytics' SAM2VideoPredictor on the same random SAM 2.1-t weights and video.

Both get two boxes on frame 0 and carry the objects through the next frames from memory. The
reference makes overlapping masks disjoint (``non_overlap_masks``: a pixel goes to one object);
ours keeps each object's own mask, as the image path does. So: every pixel where our masks do not
overlap is equal, and the union is equal everywhere. At imgsz 512 (a quarter of the work of 1024,
the same code path as ``--sam-imgsz 512``) on 160x256 frames, whose letterboxed content ends on a
whole low-res pixel: the case where the mask grid must stop at the content's edge (``upsample``).
"""

import numpy as np
import pytest

from detseg.data.synth.synth_video import write_video
from tests.helpers import carry_boxes, textured_image

pytestmark = pytest.mark.slow


def test_video_memory_parity_with_ultralytics_sam2_video_predictor(sam2_checkpoint_present, tmp_path):
    import cv2
    from ultralytics.models.sam import SAM2VideoPredictor

    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    video = write_video(tmp_path / "clip.mp4", [textured_image(160, 256, i) for i in range(3)], 10)
    boxes = np.array([[40, 30, 150, 120], [120, 60, 250, 150]], np.float32)  # they overlap
    predictor = SAM2VideoPredictor(overrides=dict(conf=0.0, model=str(sam2_checkpoint_present), imgsz=512,
                                                  device="cpu", verbose=False, save=False))
    reference = [r.masks.data.numpy() > 0.5 for r in predictor(source=str(video), bboxes=boxes.tolist(), stream=True)]

    memory = Sam2VideoMemory(SamSegmenter(str(sam2_checkpoint_present), device="cpu", output="dense", imgsz=512))
    capture, frames = cv2.VideoCapture(str(video)), []  # the decoded frames, as the reference reads them
    for _ in reference:
        ok, frame = capture.read()
        assert ok
        frames.append(frame)
    capture.release()
    ours = carry_boxes(memory, frames, boxes)

    assert len(reference) == 3 and memory.encoder_calls == 3
    for ref, got in zip(reference, ours):
        assert ref.shape == got.shape == (2, 160, 256)
        overlap = got[0] & got[1]
        assert got.any(axis=(1, 2)).all()  # the comparison is about real masks, not two empty ones
        for k in range(2):
            assert np.array_equal(ref[k][~overlap], got[k][~overlap])
        assert np.array_equal(ref[0] | ref[1], got[0] | got[1])
        assert not (ref[0] & ref[1]).any()  # the reference's rule, which ours does not apply
    assert all((o[0] & o[1]).any() for o in ours)  # the overlap case is exercised on every frame
    assert not np.array_equal(ours[0], ours[-1])  # masks change over time: memory, not a copy of frame 0


def test_batched_propagation_equals_one_by_one(sam2_checkpoint_present):
    """Objects whose memories hold the same frames go through SAM 2 in one call; each object's masks
    and scores are those it gets alone (float rounding aside). An object prompted later has other
    memory frames and goes in its own call."""
    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    segmenter = SamSegmenter(str(sam2_checkpoint_present), device="cpu", output="dense", imgsz=512)  # ours vs ours
    frames = [textured_image(160, 256, seed=10 + i) for i in range(3)]
    boxes = np.array([[10, 10, 90, 80], [100, 40, 200, 130], [30, 90, 120, 150]], np.float32)
    late_box = np.array([150, 5, 250, 70], np.float32)
    results, calls, logits = {}, {}, {1: [], 16: []}
    for batch in (1, 16):
        memory = Sam2VideoMemory(segmenter, batch=batch)
        batch_sizes = []
        track_step = memory.model.track_step

        def counting(*args, _inner=track_step, _sizes=batch_sizes, **kwargs):
            _sizes.append(kwargs["current_vision_feats"][-1].shape[1])
            return _inner(*args, **kwargs)

        memory.model.track_step = counting
        try:
            results[batch] = []
            for index, frame in enumerate(frames):
                memory.set_frame(frame, index)
                if index == 0:
                    for obj_id, box in enumerate(boxes):
                        memory.prompt(obj_id, box)
                if index == 1:
                    memory.prompt(3, late_box)
                memory.propagate()
                results[batch].append(memory.masks())
                logits[batch].append({i: o.last["logits"].copy() for i, o in memory.objects.items()})
        finally:
            del memory.model.track_step  # the shared model's own method again
        calls[batch] = batch_sizes

    # prompts one by one (frame 0: objects 0-2, frame 1: object 3); propagation: objects 0-2 together on
    # frames 1 and 2, object 3 (other memory frames) alone on frame 2
    assert calls[16] == [1, 1, 1, 1, 3, 3, 1]
    assert calls[1] == [1] * 11
    for (ids_a, masks_a, scores_a), (ids_b, masks_b, scores_b) in zip(results[1], results[16]):
        assert ids_a == ids_b
        np.testing.assert_allclose(scores_a, scores_b, rtol=1e-3, atol=1e-3)
        assert masks_a.any(axis=(1, 2)).all()
        inter = (masks_a & masks_b).sum((1, 2))
        union = (masks_a | masks_b).sum((1, 2))
        assert (inter / union).min() >= 0.99
    assert len(results[16][-1][0]) == 4
    # low-res logits: batched = alone up to float rounding, and far apart between objects (random weights
    # give objects similar masks, so a mix-up of rows within a batch is caught here, not by the masks)
    for alone, batched in zip(logits[1], logits[16]):
        assert alone.keys() == batched.keys()
        gap = min(np.abs(alone[a] - alone[b]).max() for a in alone for b in alone if a < b)
        worst = max(np.abs(alone[i] - batched[i]).max() for i in alone)
        assert worst < 1e-4 < gap


def test_objects_present_checkpoint_biases_the_presence_head_and_needs_sam2(sam2_checkpoint_present, tmp_path):
    import torch

    from detseg.errors import InputError
    from detseg.segmenter.sam_loading import save_random_checkpoint

    state = torch.load(sam2_checkpoint_present)
    assert (state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] == 20.0).all()
    plain = torch.load(save_random_checkpoint(tmp_path / "plain.pt", "sam2.1_t", seed=0))
    changed = [k for k in plain if not torch.equal(plain[k], state[k])]
    assert changed == ["sam_mask_decoder.pred_obj_score_head.layers.2.bias"]  # the same weights otherwise
    with pytest.raises(InputError, match="SAM 2"):
        save_random_checkpoint(tmp_path / "m.pt", "mobile_sam", objects_present=True)


@pytest.mark.parametrize(("kwargs", "message"), [({"max_cond_frames": 0}, "max_cond_frames must be >= 1"),
                                                 ({"batch": 0}, "batch must be >= 1")])
def test_memory_settings_that_would_lose_the_prompt_are_refused_before_loading(kwargs, message):
    from detseg.errors import InputError
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    class NotLoaded:
        def load(self):
            raise AssertionError("the settings are checked before the model is loaded")

    with pytest.raises(InputError, match=message):
        Sam2VideoMemory(NotLoaded(), **kwargs)


def test_a_prompt_box_is_checked_and_clipped_as_the_image_path_does(sam2_checkpoint_present):
    from detseg.errors import InputError
    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    segmenter = SamSegmenter(str(sam2_checkpoint_present), device="cpu", output="dense", imgsz=512)
    frame = textured_image(160, 256, seed=3)
    results = []
    for box in ([-50, 10, 90, 80], [0, 10, 90, 80]):  # partly outside the frame, and that box clipped
        memory = Sam2VideoMemory(segmenter)
        memory.set_frame(frame, 0)
        memory.prompt(0, box)
        results.append(memory.masks())
    assert np.array_equal(results[0][1], results[1][1])
    for bad, message in (([0, 10, float("nan"), 80], "NaN"), ([90, 10, 0, 80], "inverted"),
                         ([[0, 0, 5, 5], [1, 1, 6, 6]], "one box")):
        with pytest.raises(InputError, match=message):
            memory.prompt(1, bad)


def test_a_prompt_box_wholly_off_the_frame_is_refused(sam2_checkpoint_present):
    from detseg.errors import InputError
    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory

    memory = Sam2VideoMemory(SamSegmenter(str(sam2_checkpoint_present), device="cpu", output="dense", imgsz=512))
    memory.set_frame(textured_image(160, 256, seed=3), 0)
    with pytest.raises(InputError, match="no area inside the 256x160 frame"):
        memory.prompt(0, [300, 10, 350, 80])
