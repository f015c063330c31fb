"""Keyframe mode on random-initialised SAM 2.1-t weights: runs, rows carry ids and their own masks,
objects that leave free their memory. Slow-ish (the SAM 2 encoder on a CPU): 4 frames."""

import gc
import json
import weakref

import numpy as np
import pytest
import supervision as sv

from detseg.data.synth_video import write_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def memory(tmp_path_factory):
    import torch

    from detseg.segmenter import SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory
    from detseg.segmenter.sam_loading import save_random_checkpoint

    ckpt = save_random_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2.1_t.pt", "sam2.1_t", seed=0)
    mem = Sam2VideoMemory(SamSegmenter(str(ckpt), device="cpu", output="dense"))
    # random weights call every object absent (empty masks): bias the presence head so rows exist
    with torch.no_grad():
        head = mem.model.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        last.bias.fill_(20.0)
    return mem


class Dropping:
    """Two items on the first two keyframes; the second is gone on later keyframes."""

    class_names = {0: "croissant", 1: "cookie", 2: "cupcake"}

    def __init__(self):
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        xyxy = np.array([[10, 10, 70, 60], [150, 60, 230, 140]], np.float32)[: 2 if self.calls <= 2 else 1]
        xyxy += 3 * self.calls
        cls = np.arange(len(xyxy))
        return sv.Detections(xyxy=xyxy, confidence=np.full(len(xyxy), 0.9, np.float32), class_id=cls,
                             data={"class_name": np.array([self.class_names[c] for c in cls])})


def test_keyframe_mode_runs_aligned_and_releases_memory(memory, tmp_path):
    from detseg.pipeline.keyframes import KeyframePipeline
    from detseg.pipeline.predict import run_predict

    rng = np.random.default_rng(0)
    frames = [(rng.random((160, 256, 3)) * 255).astype(np.uint8) for _ in range(6)]
    video = write_video(tmp_path / "clip.mp4", frames, 10)
    detector = Dropping()
    pipe = KeyframePipeline(detector, memory, every=2, fps=10)
    seen = []
    for frame in pipe.run(video):
        d = frame.detections
        assert len(d.tracker_id) == len(d.mask) == len(d.xyxy) == len(d.class_id)
        for row in range(len(d)):  # each row's box is its own mask's extent
            ys, xs = np.nonzero(d.mask[row])
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == d.xyxy[row].astype(int).tolist()
        seen.append((set(d.tracker_id.tolist()), set(memory.objects), memory.memory_bytes()))
        if frame.index == 3:
            gone = weakref.ref(memory.objects[2])  # the object that will leave, with its memory tensors
    assert detector.calls == 3  # keyframes 0, 2 and 4 only
    assert seen[0][1] == seen[1][1] == set()  # ByteTrack confirms a track on its second keyframe
    assert seen[2][1] == seen[3][1] == {1, 2}  # both objects carried through frame 3
    assert seen[4][1] == seen[5][1] == {1}  # the one that left was removed ...
    gc.collect()
    assert gone() is None  # ... and its memory freed
    assert seen[5][2] <= seen[3][2]  # one object with 4 memory frames: no more than two with 2 each
    assert seen[3][0] <= {1, 2} and seen[5][0] <= {1} and seen[3][0]

    # the same through detseg predict's writer: tracks.txt, ids in predictions.json
    memory.objects.clear()
    summary = run_predict(KeyframePipeline(Dropping(), memory, every=2, fps=10), video, tmp_path / "out",
                          progress=False)
    assert summary["tracking"]["keyframe_every"] == 2 and summary["processed"] == 6
    preds = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert all("track_id" in p for p in preds)
    assert len((tmp_path / "out" / "tracks.txt").read_text().splitlines()) == len(preds)


def test_memory_is_bounded_per_object(memory):
    memory.objects.clear()
    image = (np.random.default_rng(1).random((96, 128, 3)) * 255).astype(np.uint8)
    memory.set_frame(image, 0)
    memory.prompt(7, [10, 10, 60, 60])
    window = memory.model.num_maskmem * memory.model.memory_temporal_stride_for_eval
    obj = memory.objects[7]
    for f in range(1, window + 3):  # fake frames: reuse the encoded features, only the bookkeeping matters
        memory._frame["idx"] = f
        for o in memory.objects.values():
            o.last = None
        memory.propagate()
    assert len(obj.output_dict["non_cond_frame_outputs"]) <= window + 1
    assert len(obj.output_dict["cond_frame_outputs"]) == 1
