"""The bad-input corpus: unusual and broken inputs a careful user tried, kept as tests.

Every case is generated on the fly from small files. Each must give the documented result:
one clear line and a non-zero exit for user errors (never a traceback), the run going on past
a bad item, and no input file ever touched. Cases that need a non-root user skip with a reason
where the platform cannot drop root's permission override.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat

import cv2
import numpy as np
import pytest
import yaml

from detseg.data.synth import generate_dataset
from detseg.errors import DetsegError, InputError
from detseg.pipeline.cli import main
from tests.helpers import textured_image

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def _images(folder, names, shape=(64, 80)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        ok, data = cv2.imencode(os.path.splitext(name)[1], textured_image(*shape, seed=i))
        (folder / name).write_bytes(data.tobytes())
    return folder


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "food"
    generate_dataset(out, {"train": 2, "val": 2}, seed=3, imgsz=64, progress=False)
    return out


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ bugs


@pytest.mark.parametrize("direction", ["coco-to-yolo", "yolo-to-yolo"])
def test_converting_into_the_source_folder_loses_nothing(small_ds, tmp_path, capsys, direction):
    ds = _copy(small_ds, tmp_path / "ds")
    before = {p: p.read_bytes() for p in (ds / "images").rglob("*.jpg")}
    source = ds / "annotations" / "val.json" if direction == "coco-to-yolo" else ds / "data.yaml"
    code, err = _run(capsys, "data", "convert", source, "--to", "yolo", "--out", ds)
    assert code == 0, err
    assert {p: p.read_bytes() for p in (ds / "images").rglob("*.jpg")} == before


def test_an_unreadable_file_is_reported_and_the_folder_run_goes_on(tmp_path, capsys, monkeypatch):
    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg", "c.jpg"])
    real = np.fromfile

    def denied(path, *args, **kwargs):
        if str(path).endswith("b.jpg"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(np, "fromfile", denied)
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0 and summary["processed"] == 2
    assert len(summary["failed"]) == 1 and "Permission denied" in summary["failed"][0]["error"]


@pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their mode; the case above mocks the error")
def test_a_permission_denied_image_for_real(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg"])
    (folder / "b.jpg").chmod(0)
    code, _ = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    assert code == 0 and len(json.loads((tmp_path / "out" / "summary.json").read_text())["failed"]) == 1


def test_hash_signs_in_paths_are_plain_characters(tmp_path, capsys):
    folder = _images(tmp_path / "batch#2", ["photo #1.jpg"])
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    assert code == 0, err
    assert (tmp_path / "out" / "annotated" / "photo #1.jpg").is_file()


def test_same_stems_in_one_folder_and_across_a_glob_keep_every_output(tmp_path, capsys):
    _images(tmp_path / "one", ["dup.jpg", "dup.png"])
    _images(tmp_path / "g" / "a", ["IMG_0001.jpg"])
    _images(tmp_path / "g" / "b", ["IMG_0001.jpg"])
    for source, out, expect in ((tmp_path / "one", "o1", {"dup_jpg", "dup_png"}),
                                (f"{tmp_path}/g/**/*.jpg", "o2", {"a__IMG_0001", "b__IMG_0001"})):
        code, err = _run(capsys, "predict", source, "--out", tmp_path / out, "--segmenter", "box", "-q")
        assert code == 0, err
        assert {p.stem for p in (tmp_path / out / "labels").glob("*.txt")} == expect
        code, err = _run(capsys, "predict", source, "--out", tmp_path / out, "--segmenter", "box", "-q", "--resume")
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        assert summary["resumed_skipped"] == 2 and summary["processed"] == 2
        images = json.loads((tmp_path / out / "images.json").read_text())["images"]
        assert len({im["id"] for im in images}) == 2


def test_a_coco_file_with_any_name_converts_to_a_trainable_yolo_dataset(small_ds, tmp_path, capsys):
    ds = _copy(small_ds, tmp_path / "ds")
    (ds / "annotations" / "val.json").rename(ds / "annotations" / "instances_default.json")
    code, err = _run(capsys, "data", "convert", ds / "annotations" / "instances_default.json", "--images",
                     ds / "images" / "val", "--to", "yolo", "--out", tmp_path / "y")
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert cfg["train"] == "images/train" and cfg["val"] == "images/train" and "path" not in cfg
    code, err = _run(capsys, "data", "check", tmp_path / "y")
    assert code == 0, err


def test_multimask_all_works_end_to_end_with_sam(tmp_path, capsys, mobile_sam_checkpoint):
    folder = _images(tmp_path / "in", ["a.jpg"], shape=(96, 128))
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", mobile_sam_checkpoint,
                     "--multimask", "all", "--device", "cpu", "-q", "--conf", "0.01")
    assert code == 0, err


def test_multimask_all_keeps_one_row_per_box_with_the_three_candidates(sam_all):
    import supervision as sv

    from detseg.keys import MASK_CANDIDATE_SCORES, MASK_CANDIDATES, MASK_SCORE

    image = textured_image(80, 96)
    dets = sv.Detections(xyxy=np.array([[5, 5, 50, 40], [30, 20, 90, 70]], np.float32))
    out = sam_all(image, dets)
    assert len(out) == 2 and out.mask.shape == (2, 80, 96)
    assert out.data[MASK_CANDIDATES].shape == (2, 3, 80, 96)
    best = out.data[MASK_CANDIDATE_SCORES].argmax(1)
    np.testing.assert_array_equal(out.mask, out.data[MASK_CANDIDATES][[0, 1], best])
    np.testing.assert_allclose(out.data[MASK_SCORE], out.data[MASK_CANDIDATE_SCORES].max(1))


@pytest.fixture(scope="module")
def sam_all(mobile_sam_checkpoint):
    from detseg.segmenter import SamSegmenter

    return SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense", multimask="all").load()


def test_multimask_with_a_weight_free_segmenter_is_an_error(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg"])
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "grabcut",
                     "--multimask", "all")
    assert code == 2 and "for SAM segmenters" in err


def test_a_copied_dataset_is_checked_where_it_is(small_ds, tmp_path, capsys):
    copy = _copy(small_ds, tmp_path / "copy")
    for label in (copy / "labels" / "val").glob("*.txt"):
        label.write_text("")  # the copy now has no val instances; the original still has some
    code, err = _run(capsys, "data", "check", copy)
    out = capsys.readouterr().out if False else None  # noqa: F841 - the table goes to stdout below
    from detseg.data.io import load_dataset

    assert code == 0, err
    ds = load_dataset(copy)
    assert all(r.path.is_relative_to(copy) for split in ds.splits.values() for r in split)
    assert sum(len(r.annotations) for r in ds.splits["val"]) == 0


def test_a_stale_absolute_path_in_a_copied_data_yaml_is_ignored(small_ds, tmp_path):
    from detseg.data.io import load_dataset

    copy = _copy(small_ds, tmp_path / "copy")
    cfg = yaml.safe_load((copy / "data.yaml").read_text())
    cfg["path"] = str(small_ds.resolve())  # what older versions wrote
    (copy / "data.yaml").write_text(yaml.safe_dump(cfg))
    ds = load_dataset(copy)
    assert all(r.path.is_relative_to(copy.resolve()) for r in ds.splits["train"])


def test_a_corrupt_local_mobile_sam_is_an_error_not_a_silent_fallback(tmp_path, capsys, monkeypatch):
    folder = _images(tmp_path / "in", ["a.jpg"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mobile_sam.pt").write_bytes(b"half a download")
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out")
    assert code == 2 and "mobile_sam.pt" in err and "GrabCut" not in err
    assert "weights_only" not in err  # never advise loading untrusted pickles


def test_image_ids_never_repeat_when_an_input_is_not_in_the_json(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["known.jpg", "other.jpg"])
    ids = {"images": [{"id": 1, "file_name": "zzz.jpg"}, {"id": 2, "file_name": "known.jpg"}]}
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q",
                     "--image-ids", tmp_path / "ids.json")
    assert code == 0, err
    images = {im["file_name"]: im["id"] for im in json.loads((tmp_path / "out" / "images.json").read_text())["images"]}
    assert images["known.jpg"] == 2 and images["other.jpg"] not in (1, 2)


def test_an_interrupted_video_run_publishes_no_truncated_video(tmp_path, monkeypatch):
    from detseg.data.synth import render_clip
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import run_predict
    from detseg.segmenter import BoxSegmenter
    from tests.helpers import FakeDetector

    video = render_clip(tmp_path / "clip.mp4", frames=8, imgsz=64)
    detector = FakeDetector()
    calls = {"n": 0}

    def interrupting(image):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return FakeDetector.__call__(detector, image)

    with pytest.raises(KeyboardInterrupt):
        run_predict(Pipeline(interrupting, BoxSegmenter()), video, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "annotated.mp4").exists()
    assert not list((tmp_path / "out").glob(".annotated.*"))


def test_tiff_orientation_is_applied_once(tmp_path):
    from PIL import Image, ImageOps

    from detseg.images import read_image

    pixels = textured_image(30, 50)[..., ::-1]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.ascontiguousarray(pixels)).save(tmp_path / "r.tif", exif=exif)
    Image.fromarray(np.ascontiguousarray(pixels)).save(tmp_path / "r.jpg", exif=exif, quality=95)
    for name in ("r.jpg", "r.tif"):  # JPEG: we rotate; TIFF: OpenCV's decoder does (and we must not again)
        shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / name)))[..., ::-1]
        image = read_image(tmp_path / name)
        assert image.shape[:2] == shown.shape[:2] == (50, 30)
        assert np.abs(image.astype(int) - shown).mean() < 3  # the same pixels, not a flipped copy


def test_a_symlink_loop_does_not_repeat_images(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg"])
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    for source in (folder, f"{folder}/**/*.jpg"):
        out = tmp_path / f"out{len(str(source))}"
        code, err = _run(capsys, "predict", source, "--out", out, "--segmenter", "box", "-q")
        assert code == 0, err
        assert json.loads((out / "summary.json").read_text())["processed"] == 2


@pytest.mark.parametrize("rle, message", [({"counts": [5, 5]}, "size"),
                                          ({"size": [64, 64], "counts": [1, 2, 3]}, "summing"),
                                          ({"size": [64, 64], "counts": 7}, "counts must be"),
                                          ({"size": [32, 32], "counts": [1024]}, "differs")])
def test_a_malformed_rle_is_caught_by_check_before_convert(small_ds, tmp_path, capsys, rle, message):
    ds = _copy(small_ds, tmp_path / "ds")
    coco = json.loads((ds / "annotations" / "val.json").read_text())
    coco["annotations"][0]["segmentation"] = rle
    (ds / "annotations" / "val.json").write_text(json.dumps(coco))
    for argv in (("data", "check", ds / "annotations" / "val.json"),
                 ("data", "convert", ds / "annotations" / "val.json", "--to", "yolo", "--out", tmp_path / "y")):
        code, err = _run(capsys, *argv)
        assert code == 2 and message in err
    assert not (tmp_path / "y").exists()  # nothing half-written


@pytest.mark.parametrize("kind", ["a file", "no permission"])
def test_an_unwritable_out_fails_before_the_models_load(tmp_path, capsys, kind, monkeypatch):
    folder = _images(tmp_path / "in", ["a.jpg"])
    out = tmp_path / "out"
    if kind == "a file":
        out.write_text("x")
    else:
        out.mkdir()
        real = os.open if False else None  # noqa: F841

        def refuse(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))

        monkeypatch.setattr("pathlib.Path.write_bytes", refuse)
    loaded = []
    monkeypatch.setattr("detseg.detectors.yolo.YoloDetector.load", lambda self: loaded.append(1) or self)
    code, err = _run(capsys, "predict", folder, "--out", out, "--segmenter", "box")
    assert code == 2 and "--out" in err and not loaded


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    folder = _images(tmp_path / "in", ["a.jpg"])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("detseg.pipeline.outputs.atomic_write_bytes", full)
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    assert code == 1 and "No space left on device" in err and err.count("\n") <= 2


def test_outputs_get_the_permissions_a_normal_write_gives(tmp_path):
    from detseg.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        from detseg import atomic

        atomic._umask.cache_clear()
        path = atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
        atomic._umask.cache_clear()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ------------------------------------------------------------------ one line, never a traceback


def _yaml_ds(small_ds, tmp_path, edit):
    ds = _copy(small_ds, tmp_path / "ds")
    edit(ds)
    return ds


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "data.yaml").write_bytes(b"names: [\xff\xfe]\ntrain: images/train\n"), "UTF-8"),
    (lambda d: (d / "data.yaml").write_text("nc: three\nnames: [a, b, c]\ntrain: images/train\n"), "nc"),
    (lambda d: next((d / "labels" / "train").glob("*.txt")).write_bytes(b"0 0.5 0.5 0.1 \xff\n"), "UTF-8"),
    (lambda d: (d / "labels" / "train" / "x.txt").mkdir() or
     _images(d / "images" / "train", ["x.jpg"]), "folder"),
    (lambda d: next((d / "labels" / "train").glob("*.txt")).write_text("0 0.1 0.1 0.1 0.1 0.1 0.1\n"),
     "polygon"),
])
def test_bad_yolo_datasets_are_one_line(small_ds, tmp_path, capsys, edit, message):
    ds = _yaml_ds(small_ds, tmp_path, edit)
    code, err = _run(capsys, "data", "check", ds / "data.yaml")
    assert code == 2 and message in err, err


@pytest.mark.parametrize("segmentation, bbox, message", [
    ([1, 2, 3, 4, 5, 6], None, "list of polygons"),
    ([["1", "2", "a", "4", "5", "6"]], None, "numbers"),
    (None, [1, "2", 3, 4], "four numbers"),
    (None, [1, 2, -3, 4], "negative"),
    ([[1, 1, 2, 2, 3, 3]], None, "zero area"),
    ([[1, 1, float("nan"), 2, 3, 9]], None, "NaN"),
])
def test_bad_coco_annotations_are_one_line(small_ds, tmp_path, capsys, segmentation, bbox, message):
    ds = _copy(small_ds, tmp_path / "ds")
    coco = json.loads((ds / "annotations" / "val.json").read_text())
    if segmentation is not None:
        coco["annotations"][0]["segmentation"] = segmentation
    if bbox is not None:
        coco["annotations"][0]["bbox"] = bbox
    (ds / "annotations" / "val.json").write_text(json.dumps(coco))
    code, err = _run(capsys, "data", "check", ds / "annotations" / "val.json")
    assert code == 2 and message in err, err


@pytest.mark.parametrize("argv, message", [
    (["--device", "banana"], "unknown device"),
    (["--device", "cuda"], "CUDA"),
    (["--stride", "0"], "--stride"),
    (["--max-frames", "0"], "--max-frames"),
    (["--segmenter", ","], "segmenter"),
])
def test_bad_predict_options_are_one_line_before_any_input(tmp_path, capsys, argv, message, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = _images(tmp_path / "in", ["a.jpg"])
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", *argv)
    assert code == 2 and message in err, err
    assert err.count("error") == 1


@pytest.mark.parametrize("source, message", [("", "empty source"), ("{tmp}/*.mp4", "only videos"),
                                             ("{tmp}/missing.jpg", "not found")])
def test_risky_sources_are_refused(tmp_path, capsys, source, message):
    from detseg.data.synth import render_clip

    render_clip(tmp_path / "v.mp4", frames=2, imgsz=32)
    code, err = _run(capsys, "predict", source.format(tmp=tmp_path), "--out", tmp_path / "out", "--segmenter", "box")
    assert code == 2 and message in err


def test_strict_with_a_processing_error_is_one_line(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg"])
    (folder / "b.jpg").write_bytes(b"garbage")
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "--strict", "-q")
    assert code == 2 and "b.jpg" in err


def test_out_inside_the_source_does_not_read_its_own_outputs(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg"])
    for again in ([], ["--exist-ok"]):  # the second run writes over the first, so its outputs are in the source
        code, err = _run(capsys, "predict", folder, "--out", folder / "out", "--segmenter", "box", "-q", *again)
        assert code == 0, err
    assert json.loads((folder / "out" / "summary.json").read_text())["processed"] == 1


def test_resume_refuses_outputs_made_with_other_settings(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg"])
    assert _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")[0] == 0
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "ellipse", "-q",
                     "--resume")
    assert code == 2 and "other settings" in err and "segmenter" in err


def test_two_runs_into_one_out_are_refused(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".detseg.lock").write_text(str(os.getpid()))  # a live run holds it
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    assert code == 2 and "another detseg run" in err
    (tmp_path / "out" / ".detseg.lock").write_text("999999999")  # a dead one's lock is taken over
    assert _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")[0] == 0


def test_evaluate_every_zero_is_one_line(small_ds, tmp_path, capsys):
    code, err = _run(capsys, "evaluate", "--data", small_ds, "--segmenter", "box", "--every", "0",
                     "--out", tmp_path / "e")
    assert code == 2 and "every" in err


@pytest.mark.parametrize("what", ["corrupt", "sam"])
def test_train_and_val_with_a_wrong_pt_are_one_line(small_ds, tmp_path, capsys, what, mobile_sam_checkpoint):
    weights = mobile_sam_checkpoint if what == "sam" else tmp_path / "bad.pt"
    if what == "corrupt":
        weights.write_bytes(os.urandom(256))
    for argv in (("train", "--data", small_ds / "data.yaml", "--model", weights, "--epochs", "1", "--imgsz", "32",
                  "--out", tmp_path / "t"),
                 ("val", "--weights", weights, "--data", small_ds / "data.yaml", "--out", tmp_path / "v")):
        code, err = _run(capsys, *argv)
        assert code == 2 and "not a loadable" in err, err
        assert "weights_only" not in err


# ------------------------------------------------------------------ the Python API


def test_api_refuses_a_float_image_in_0_255():
    from detseg.images import to_bgr8

    with pytest.raises(InputError, match=r"\[0, 1\]"):
        to_bgr8(np.full((4, 4, 3), 200.0))
    assert to_bgr8(np.full((4, 4, 3), 0.5)).max() == 128


def test_api_none_in_a_run_list_is_reported_not_fatal():
    from detseg.pipeline import Pipeline
    from detseg.segmenter import BoxSegmenter
    from tests.helpers import FakeDetector

    frames = list(Pipeline(FakeDetector(), BoxSegmenter()).run([textured_image(32, 32), None]))
    assert frames[0].ok and not frames[1].ok and "None" in frames[1].error


@pytest.mark.parametrize("kwargs", [{"margin": -1}, {"core": 1.5}, {"iterations": 0}])
def test_api_bad_grabcut_settings_are_input_errors(kwargs):
    from detseg.segmenter import GrabCutSegmenter

    with pytest.raises(InputError):
        GrabCutSegmenter(**kwargs)


def test_api_huge_images_are_refused_from_the_header(tmp_path):
    from PIL import Image

    from detseg.images import MAX_PIXELS, read_image

    side = int(MAX_PIXELS ** 0.5) + 10
    Image.new("1", (side, side)).save(tmp_path / "huge.png")  # 1-bit: a tiny file, a huge image
    with pytest.raises(DetsegError, match="MP"):
        read_image(tmp_path / "huge.png")


def test_api_error_messages_point_to_what_exists():
    from detseg.segmenter.base import check_image

    with pytest.raises(InputError) as info:
        check_image(np.zeros((4, 4), np.uint8))
    assert "pipeline.io" not in str(info.value) and "detseg.images.to_bgr8" in str(info.value)


@pytest.mark.parametrize("problem, message", [("truncated", "does not decode"), ("leak", "same image"),
                                              ("size", "annotations say")])
def test_data_check_finds_what_breaks_later_steps(small_ds, tmp_path, capsys, problem, message):
    ds = _copy(small_ds, tmp_path / "ds")
    target = ds
    if problem == "truncated":
        victim = next((ds / "images" / "train").glob("*.jpg"))
        victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
    elif problem == "leak":
        src = next((ds / "images" / "train").glob("*.jpg"))
        shutil.copy(src, ds / "images" / "val" / "copy.jpg")
        shutil.copy(ds / "labels" / "train" / f"{src.stem}.txt", ds / "labels" / "val" / "copy.txt")
    else:
        coco = json.loads((ds / "annotations" / "val.json").read_text())
        coco["images"][0]["width"] += 10
        (ds / "annotations" / "val.json").write_text(json.dumps(coco))
        target = ds / "annotations" / "val.json"
    code, err = _run(capsys, "data", "check", target)
    assert code == 2 and message in err, err
    assert _run(capsys, "data", "check", small_ds)[0] == 0  # the sound original passes


def test_a_video_shorter_than_announced_is_reported(tmp_path):
    from detseg.data.synth import render_clip
    from detseg.pipeline.sources import VideoProperties, iter_video

    video = render_clip(tmp_path / "clip.mp4", frames=6, imgsz=32)
    items = list(iter_video(video, properties=VideoProperties(10.0, 32, 32, frames=12)))
    assert [i.frame for i in items[:-1]] == list(range(6)) and all(i.image is not None for i in items[:-1])
    assert items[-1].image is None and "after frame 6 of the 12" in items[-1].error


def test_links_in_a_folder_are_followed_once_and_dangling_ones_reported(tmp_path, capsys):
    folder = _images(tmp_path / "in", ["a.jpg"])
    other = _images(tmp_path / "elsewhere", ["b.jpg"])
    (folder / "linked").symlink_to(other, target_is_directory=True)
    (folder / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0 and summary["processed"] == 2  # a.jpg and the linked folder's b.jpg
    assert any("dangling link" in note for note in summary["notes"])
