import json
import random
import shutil

import cv2
import numpy as np
import pytest
import yaml

from detseg.data.io import load_dataset
from detseg.errors import InputError
from detseg.pipeline import Pipeline
from detseg.pipeline.autolabel import DatasetWriter, split_of
from detseg.pipeline.predict import RunOptions, run_predict
from detseg.segmenter import BoxSegmenter
from tests.helpers import FakeDetector, textured_image


class DarkIsEmpty(FakeDetector):
    """FakeDetector that finds nothing in dark images (mean < 30): those become negatives."""

    def __call__(self, image):
        dets = super().__call__(image)
        return dets[np.zeros(0, int)] if image.mean() < 30 else dets


class ScoredBoxes(BoxSegmenter):
    """Box masks with mask scores 0.9, 0.3, 0.9, 0.3, ... so a threshold has something to drop."""

    def predict_masks(self, image, boxes):
        masks, _ = super().predict_masks(image, boxes)
        return masks, np.where(np.arange(len(boxes)) % 2 == 0, 0.9, 0.3).astype(np.float32)


@pytest.fixture
def nested(tmp_path):
    """a/IMG_1.jpg and b/IMG_1.jpg (same base name), x.jpg + a dark x.png (same stem), a dark negative, 12 more."""
    src = tmp_path / "src"
    for sub in ("a", "b", "c/d"):
        (src / sub).mkdir(parents=True)
    cv2.imwrite(str(src / "a" / "IMG_1.jpg"), textured_image(48, 64, 1))
    cv2.imwrite(str(src / "b" / "IMG_1.jpg"), textured_image(48, 64, 2))
    cv2.imwrite(str(src / "x.jpg"), textured_image(40, 40, 3))
    cv2.imwrite(str(src / "x.png"), np.full((40, 40, 3), 5, np.uint8))
    cv2.imwrite(str(src / "c" / "d" / "dark.png"), np.full((32, 48, 3), 5, np.uint8))
    for i in range(12):
        cv2.imwrite(str(src / "c" / f"img_{i:02d}.jpg"), textured_image(32, 32, 10 + i))
    return src


def _pairs(root):
    """{split: {stem: (image path, label path)}} of a saved dataset; fails on an unmatched file."""
    out = {}
    for split in ("train", "val"):
        images = {p.stem: p for p in (root / "images" / split).iterdir()}
        labels = {p.stem: p for p in (root / "labels" / split).iterdir()}
        assert set(images) == set(labels), split
        out[split] = {s: (images[s], labels[s]) for s in images}
    return out


def _save(src, tmp_path, name="ds", **kw):
    pipe = Pipeline(DarkIsEmpty(), kw.pop("segmenter", BoxSegmenter()))
    summary = run_predict(pipe, src, tmp_path / f"{name}-out",
                          RunOptions(save_dataset=tmp_path / name, progress=False, **kw))
    return summary, tmp_path / name


def test_nested_duplicate_names_give_unique_matching_pairs_of_original_files(nested, tmp_path):
    summary, ds = _save(nested, tmp_path)
    pairs = _pairs(ds)
    stems = [s for split in pairs.values() for s in split]
    assert len(stems) == len(set(stems)) == 17  # every input kept, none overwritten
    assert {"a__IMG_1", "b__IMG_1", "x", "x_png", "c__d__dark"} <= set(stems)
    record = json.loads((ds / "autolabel.json").read_text())
    for split in pairs.values():
        for stem, (image, label) in split.items():
            original = nested / record["files"][stem]["relative"]
            assert image.read_bytes() == original.read_bytes()  # never re-encoded
            assert image.suffix == original.suffix
            if stem not in ("x", "x_png"):  # predict's own labels/ has one x.txt for both; the dataset keeps both
                assert label.read_text() == (tmp_path / "ds-out" / "labels" / f"{stem}.txt").read_text()
    a = next(s[a_stem] for s in pairs.values() for a_stem in s if a_stem == "a__IMG_1")
    b = next(s[b_stem] for s in pairs.values() for b_stem in s if b_stem == "b__IMG_1")
    assert a[0].read_bytes() != b[0].read_bytes()
    assert summary["dataset"]["images"]["train"] + summary["dataset"]["images"]["val"] == 17
    cfg = yaml.safe_load((ds / "data.yaml").read_text())
    assert "path" not in cfg and cfg["names"] == {0: "croissant", 1: "cookie", 2: "cupcake"}
    assert cfg["train"] == "images/train" and cfg["val"] == "images/val"


def test_a_folder_of_symlinks_to_one_store_keeps_each_link_apart(tmp_path):
    """a/IMG_1.jpg and b/IMG_1.jpg link to files outside the folder (as a dataset view of links does): each is
    named and split by where it lies, so neither replaces the other."""
    store, src = tmp_path / "store", tmp_path / "view"
    store.mkdir()
    for sub, seed in (("a", 1), ("b", 2)):
        cv2.imwrite(str(store / f"{sub}.jpg"), textured_image(48, 64, seed))
        (src / sub).mkdir(parents=True)
        (src / sub / "IMG_1.jpg").symlink_to(store / f"{sub}.jpg")
    summary, ds = _save(src, tmp_path)
    record = json.loads((ds / "autolabel.json").read_text())["files"]
    assert sorted(e["relative"] for e in record.values()) == ["a/IMG_1.jpg", "b/IMG_1.jpg"]
    stems = [s for split in _pairs(ds).values() for s in split]
    assert sorted(stems) == ["a__IMG_1", "b__IMG_1"]


def test_same_stem_files_each_keep_their_own_labels(nested, tmp_path):
    """x.jpg (two detections) and the dark x.png (none) share predict's labels/x.txt; the dataset keeps both."""
    _, ds = _save(nested, tmp_path)
    pairs = {s: p for split in _pairs(ds).values() for s, p in split.items()}
    lines = pairs["x"][1].read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split()) >= 7 for line in lines)
    assert pairs["x_png"][1].read_text() == ""
    assert pairs["x_png"][0].read_bytes() == (nested / "x.png").read_bytes()


def test_split_is_a_stable_hash_of_the_relative_path(nested, tmp_path):
    random.seed(1)
    np.random.seed(1)
    _, first = _save(nested, tmp_path, "one")
    random.seed(2)
    np.random.seed(2)
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(nested, moved)
    _, second = _save(moved, tmp_path, "two")
    split1 = {s: split for split, d in _pairs(first).items() for s in d}
    split2 = {s: split for split, d in _pairs(second).items() for s in d}
    assert split1 == split2
    assert set(split1.values()) == {"train", "val"}
    record = json.loads((first / "autolabel.json").read_text())["files"]
    assert all(split_of(f["relative"], 0.2) == f["split"] for f in record.values())
    # a larger val fraction only moves images into val, never out of it
    assert {r for r in map(str, range(200)) if split_of(r, 0.2) == "val"} < \
           {r for r in map(str, range(200)) if split_of(r, 0.5) == "val"}
    assert 20 < sum(split_of(str(i), 0.2) == "val" for i in range(200)) < 60


def test_images_without_detections_are_kept_as_negatives(nested, tmp_path):
    summary, ds = _save(nested, tmp_path)
    pairs = {s: p for split in _pairs(ds).values() for s, p in split.items()}
    assert pairs["c__d__dark"][1].read_text() == ""
    assert sum(summary["dataset"]["negatives"].values()) == 2  # dark.png and x.png
    assert sum(summary["dataset"]["instances"].values()) == 2 * 15


def test_min_mask_score_drops_and_counts(nested, tmp_path):
    summary, ds = _save(nested, tmp_path, segmenter=ScoredBoxes(), min_mask_score=0.5)
    assert summary["dropped_low_mask_score"] == 15  # one of the two boxes of each of 15 detected images
    assert summary["dataset"]["dropped_low_mask_score"] == 15
    assert json.loads((tmp_path / "ds-out" / "summary.json").read_text())["dropped_low_mask_score"] == 15
    pairs = {s: p for split in _pairs(ds).values() for s, p in split.items()}
    negatives = ("c__d__dark", "x_png")
    assert all(len(pairs[s][1].read_text().splitlines()) == (0 if s in negatives else 1) for s in pairs)
    assert sum(summary["instances_per_class"].values()) == 15


def test_saved_dataset_loads_and_still_loads_after_moving(nested, tmp_path):
    from ultralytics.data.utils import check_det_dataset

    from detseg.detectors.train import resolve_data_yaml

    _, ds = _save(nested, tmp_path)
    loaded = load_dataset(ds)
    assert loaded.names == ["croissant", "cookie", "cupcake"]
    assert sum(len(r) for r in loaded.splits.values()) == 17
    moved = tmp_path / "moved" / "autolabelled"
    moved.parent.mkdir()
    shutil.move(str(ds), str(moved))
    again = load_dataset(moved / "data.yaml")
    assert {s: len(r) for s, r in again.splits.items()} == {s: len(r) for s, r in loaded.splits.items()}
    assert all(str(r.path).startswith(str(moved)) for rs in again.splits.values() for r in rs)
    polygons = [a for rs in again.splits.values() for r in rs for a in r.annotations]
    assert len(polygons) == 30 and all(a.polygons for a in polygons)
    info = check_det_dataset(str(moved / "data.yaml"))  # ultralytics resolves the splits beside the yaml
    assert str(info["train"]).startswith(str(moved.resolve()))
    assert yaml.safe_load(resolve_data_yaml(moved / "data.yaml", tmp_path / "r").read_text())["val"] == \
        str((moved / "images" / "val").resolve())


def test_writer_refuses_a_folder_with_something_else_in_it(nested, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        DatasetWriter(tmp_path / "full", nested, {0: "a"})
    with pytest.raises(InputError, match="between 0 and 1"):
        DatasetWriter(tmp_path / "new", nested, {0: "a"}, val_fraction=1.0)


def test_cli_save_dataset_reports_dropped_and_writes_dataset(nested, tmp_path, capsys):
    from detseg.pipeline.cli import main

    code = main(["predict", str(nested), "--out", str(tmp_path / "out"), "--segmenter", "grabcut", "--device", "cpu",
                 "--save-dataset", str(tmp_path / "ds"), "--min-mask-score", "1", "--conf", "0.001"])
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0 and f"dropped {summary['dropped_low_mask_score']} detection(s)" in err
    assert summary["instances"] == 0  # GrabCut scores its colour separation, < 1: all dropped, all negatives
    assert "17 without detections, kept as negatives" in err
    assert load_dataset(tmp_path / "ds").names == ["croissant", "cookie", "cupcake"]
    code = main(["predict", str(nested), "--out", str(tmp_path / "out2"), "--segmenter", "box",
                 "--save-dataset", str(tmp_path / "ds")])
    assert code == 2 and "folder is not empty" in capsys.readouterr().err


def test_video_frames_are_written_as_jpeg(tmp_path):
    from detseg.data.synth.generate import render_clip

    clip = render_clip(tmp_path / "clip.mp4", frames=6, imgsz=64)
    summary, ds = _save(clip, tmp_path, stride=2)
    stems = {s for split in _pairs(ds).values() for s in split}
    assert stems == {"clip_000000", "clip_000002", "clip_000004"}
    assert summary["dataset"]["video_frames_as_jpeg"] == 3
    image = next((ds / "images").rglob("clip_000002.jpg"))
    assert cv2.imread(str(image)).shape == (64, 64, 3)


def test_resume_adds_to_the_same_dataset_without_duplicates(nested, tmp_path):
    first, ds = _save(nested, tmp_path)
    before = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file() and p.name != "autolabel.json")
    pipe = Pipeline(DarkIsEmpty(), BoxSegmenter())
    again = run_predict(pipe, nested, tmp_path / "ds-out", RunOptions(save_dataset=ds, resume=True, progress=False))
    after = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file() and p.name != "autolabel.json")
    assert again["resumed_skipped"] == 17 and after == before
    assert again["dataset"]["images"] == first["dataset"]["images"]


class EmptySecondMask(BoxSegmenter):
    """Box masks, except that the second box of every image gets an empty mask (as SAM can on a tiny box)."""

    def predict_masks(self, image, boxes):
        masks, scores = super().predict_masks(image, boxes)
        masks = np.asarray(masks).copy()
        if len(masks) > 1:
            masks[1] = False
        return masks, scores


def test_an_image_whose_detection_lost_its_outline_is_left_out_not_half_labelled(nested, tmp_path):
    summary, ds = _save(nested, tmp_path, segmenter=EmptySecondMask())
    stems = {s for split in _pairs(ds).values() for s in split}
    assert stems == {"c__d__dark", "x_png"}  # the 15 images with a lost outline are left out; negatives stay
    assert len(summary["dataset"]["skipped_detections_without_outline"]) == 15
    assert sum(summary["dataset"]["negatives"].values()) == 2  # no image counted as a negative for it
    # --resume: inputs an earlier run left out stay out, named in the summary again
    again = run_predict(Pipeline(DarkIsEmpty(), EmptySecondMask()), nested, tmp_path / "ds-out",
                        RunOptions(save_dataset=ds, progress=False, resume=True))
    assert {s for split in _pairs(ds).values() for s in split} == stems
    assert len(again["dataset"]["skipped_detections_without_outline"]) == 15


@pytest.mark.parametrize("n, fraction", [(1, 0.5), (2, 0.99), (3, 0.99)])
def test_a_tiny_dataset_has_images_in_both_splits_ultralytics_reads(tmp_path, n, fraction):
    from ultralytics.data.utils import check_det_dataset

    src = tmp_path / "src"
    src.mkdir()
    for i in range(n):
        cv2.imwrite(str(src / f"p{i}.jpg"), textured_image(40, 40, i))
    summary, ds = _save(src, tmp_path, val_fraction=fraction)  # 0.99: nearly everything hashes into val
    cfg = yaml.safe_load((ds / "data.yaml").read_text())
    for key in ("train", "val"):
        assert any((ds / cfg[key]).iterdir()), key  # never an empty split
    if n > 1:
        assert summary["dataset"]["images"]["train"] >= 1 and summary["dataset"]["images"]["val"] >= 1
    assert check_det_dataset(str(ds / "data.yaml"), autodownload=False)["nc"] == 3


def test_a_dataset_saved_inside_the_source_folder_is_never_read_back_as_input(nested, tmp_path):
    inside = nested / "ds"
    pipe = Pipeline(DarkIsEmpty(), BoxSegmenter())
    first = run_predict(pipe, nested, tmp_path / "out", RunOptions(save_dataset=inside, progress=False))
    again = run_predict(pipe, nested, tmp_path / "out", RunOptions(save_dataset=inside, progress=False, resume=True))
    assert again["inputs"] == first["inputs"] == 17  # the dataset's own copies are not new inputs
    assert sum(again["dataset"]["images"].values()) == 17


def test_resume_adds_only_to_the_dataset_this_run_started(nested, tmp_path):
    """--resume into a dataset of another source or another run would take its names again and overwrite its
    labels (ultralytics pairs labels by stem); a folder that is not such a dataset is refused too."""
    first, ds = _save(nested, tmp_path)
    pipe = Pipeline(DarkIsEmpty(), BoxSegmenter())
    other = tmp_path / "other"
    other.mkdir()
    cv2.imwrite(str(other / "x.png"), textured_image(40, 40, 1))
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=f"made from {nested}, not from this run's source {other}"):
        run_predict(pipe, other, tmp_path / "new-out", RunOptions(save_dataset=ds, resume=True, progress=False))
    with pytest.raises(InputError, match="made by the run in .*ds-out: --resume that run"):
        run_predict(pipe, nested, tmp_path / "new-out2", RunOptions(save_dataset=ds, resume=True, progress=False))
    assert {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before  # nothing touched
    labelled = tmp_path / "hand-labelled"
    (labelled / "labels").mkdir(parents=True)
    (labelled / "data.yaml").write_text("train: images\n")
    with pytest.raises(InputError, match="not a dataset written by detseg predict --save-dataset"):
        run_predict(pipe, nested, tmp_path / "ds-out", RunOptions(save_dataset=labelled, resume=True, progress=False))
    # the run that made it resumes it, also after it was interrupted before its end (the record is written first)
    again = run_predict(pipe, nested, tmp_path / "ds-out", RunOptions(save_dataset=ds, resume=True, progress=False))
    assert again["dataset"]["images"] == first["dataset"]["images"]


def test_the_same_source_given_relative_then_absolute_resumes_its_dataset(nested, tmp_path, monkeypatch):
    monkeypatch.chdir(nested.parent)
    pipe = Pipeline(DarkIsEmpty(), BoxSegmenter())
    first = run_predict(pipe, nested.name, tmp_path / "o", RunOptions(save_dataset=tmp_path / "ds", progress=False))
    again = run_predict(pipe, str(nested.resolve()), tmp_path / "o",
                        RunOptions(save_dataset=tmp_path / "ds", progress=False, resume=True))
    assert again["dataset"]["images"] == first["dataset"]["images"]
    # a run refused by its own settings check claims no dataset folder
    with pytest.raises(InputError, match="other settings"):
        run_predict(Pipeline(DarkIsEmpty(), BoxSegmenter()), tmp_path, tmp_path / "o",
                    RunOptions(save_dataset=tmp_path / "ds2", progress=False, resume=True))
    assert not (tmp_path / "ds2" / "autolabel.json").exists()
