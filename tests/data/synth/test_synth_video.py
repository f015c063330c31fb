"""The synthetic video generator: deterministic bytes, exact masks, MOTChallenge GT consistent with COCO."""

import json

import numpy as np
import pytest

from detseg.data.polygons import rle_to_mask
from detseg.data.synth.synth_video import generate_video, render_video_frames


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    generate_video(out, frames=24, width=256, height=160, seed=5, progress=False, size_range=(30, 50))
    return out


def test_same_seed_same_bytes(clip_dir, tmp_path):
    generate_video(tmp_path, frames=24, width=256, height=160, seed=5, progress=False, size_range=(30, 50))
    for name in ("video.mp4", "gt.txt", "annotations.json"):
        assert (tmp_path / name).read_bytes() == (clip_dir / name).read_bytes(), name
    other = tmp_path / "other"
    generate_video(other, frames=24, width=256, height=160, seed=6, progress=False, size_range=(30, 50))
    assert (other / "gt.txt").read_bytes() != (clip_dir / "gt.txt").read_bytes()


def test_masks_are_disjoint_and_ids_unique_per_frame():
    clip = render_video_frames(frames=30, width=256, height=160, seed=2, size_range=(30, 50))
    for frame in clip.frames:
        assert frame.masks.sum(0).max(initial=0) <= 1  # visible pixels belong to one item
        assert len(set(frame.track_ids.tolist())) == len(frame.track_ids)
        assert (frame.visibility > 0).all() and (frame.visibility <= 1).all()
    ids_per_frame = [set(f.track_ids.tolist()) for f in clip.frames]
    assert ids_per_frame[-1] - ids_per_frame[0], "items enter during the video"
    assert ids_per_frame[0] - ids_per_frame[-1] or len(clip.classes) > len(ids_per_frame[0]), "items come and go"


def test_gt_matches_coco_annotations(clip_dir):
    lines = [ln.split(",") for ln in (clip_dir / "gt.txt").read_text().splitlines()]
    coco = json.loads((clip_dir / "annotations.json").read_text())
    assert len(lines) == len(coco["annotations"]) > 0
    assert min(int(ln[0]) for ln in lines) == 1 and max(int(ln[0]) for ln in lines) <= 24
    by_key = {(a["image_id"], a["track_id"]): a for a in coco["annotations"]}
    for ln in lines:
        frame, tid, x, y, w, h, conf, cls, vis = ln
        ann = by_key[(int(frame), int(tid))]
        assert ann["category_id"] == int(cls) and conf == "1"
        mask = rle_to_mask(ann["segmentation"])
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()] == [int(v) for v in (x, y, w, h)]
        assert mask.sum() == ann["area"]
    assert {im["id"] for im in coco["images"]} == set(range(1, 25))


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    from detseg.pipeline.cli import main

    assert main(["data", "synth-video", "--out", str(tmp_path), "--frames", "0"]) == 2
    assert "synth-video" in capsys.readouterr().err
