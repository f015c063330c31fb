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
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
import yaml

from detseg.data.synth.generate import generate_dataset
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
    splits = {k: v for k, v in yaml.safe_load((ds / "data.yaml").read_text()).items() if k in ("train", "val", "test")}
    code, err = _run(capsys, "data", "convert", source, "--to", "yolo", "--out", ds)
    assert code == 0, err
    assert {p: p.read_bytes() for p in (ds / "images").rglob("*.jpg")} == before
    after = yaml.safe_load((ds / "data.yaml").read_text())
    assert {k: after[k] for k in splits} == {k: f"images/{k}" for k in splits}  # one split converted: none dropped


def test_converting_into_a_non_empty_folder_needs_exist_ok(small_ds, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(capsys, "data", "convert", small_ds, "--to", "yolo", "--out", out)
    assert code == 0, err
    code, err = _run(capsys, "data", "convert", small_ds / "annotations" / "val.json", "--to", "yolo", "--out", out)
    assert code == 2 and "already holds files" in err and "--exist-ok" in err
    code, err = _run(capsys, "data", "convert", small_ds / "annotations" / "val.json", "--to", "yolo", "--out", out,
                     "--exist-ok")
    assert code == 0, err


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


def test_multimask_best_works_end_to_end_with_sam_and_all_is_for_the_python_api(tmp_path, capsys,
                                                                                  mobile_sam_checkpoint):
    folder = _images(tmp_path / "in", ["a.jpg"], shape=(96, 128))
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", mobile_sam_checkpoint,
                     "--multimask", "best", "--device", "cpu", "-q", "--conf", "0.01")
    assert code == 0, err
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out2", "--segmenter", mobile_sam_checkpoint,
                     "--multimask", "all", "--device", "cpu", "-q")
    assert code == 2 and "use --multimask best" in err and not (tmp_path / "out2").exists()


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
                     "--multimask", "best")
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


def test_image_ids_are_matched_by_path_in_the_folder_then_by_a_unique_base_name(tmp_path, capsys):
    folder = _images(tmp_path / "in" / "a", ["x.jpg", "y.jpg"]).parent
    _images(folder / "b", ["x.jpg"])
    ids = {"images": [{"id": 7, "file_name": "a/x.jpg"}, {"id": 8, "file_name": "b/x.jpg"},
                      {"id": 9, "file_name": "elsewhere/y.jpg"}]}
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q",
                     "--image-ids", tmp_path / "ids.json")
    assert code == 0, err
    listed = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    images = {im["output_name"]: im["id"] for im in listed}
    assert images == {"a__x": 7, "b__x": 8, "a__y": 9}  # y.jpg: the one file_name of that base name


def test_resume_after_a_file_is_added_never_gives_two_images_one_id(tmp_path, capsys):
    from detseg.pipeline.outputs import read_part

    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg"])
    out = tmp_path / "out"
    assert _run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q")[0] == 0
    before = {p.stem: read_part(p)["image"]["id"] for p in (out / "parts").glob("*.json")}
    _images(folder, ["0.jpg"])  # sorts first: by its place it would take a.jpg's id
    code, err = _run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q", "--resume")
    assert code == 0, err
    images = {im["output_name"]: im["id"] for im in json.loads((out / "images.json").read_text())["images"]}
    assert {k: images[k] for k in before} == before  # finished inputs keep their ids
    assert len(set(images.values())) == 3
    predictions = json.loads((out / "predictions.json").read_text())
    assert {p["image_id"] for p in predictions} <= set(images.values())


def test_an_interrupted_video_run_publishes_no_truncated_video(tmp_path, monkeypatch):
    from detseg.data.synth.generate import render_clip
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
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
        run_predict(Pipeline(interrupting, BoxSegmenter()), video, tmp_path / "out", RunOptions(progress=False))
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


def test_a_glob_resumes_only_its_own_run_and_never_reads_its_outputs(tmp_path, capsys):
    _images(tmp_path / "a", ["x.jpg", "y.jpg"])
    _images(tmp_path / "b", ["x.jpg"])
    out = tmp_path / "o"
    assert _run(capsys, "predict", f"{tmp_path}/a/*.jpg", "--out", out, "--segmenter", "box", "-q")[0] == 0
    code, err = _run(capsys, "predict", f"{tmp_path}/b/*.jpg", "--out", out, "--segmenter", "box", "-q", "--resume")
    assert code == 2 and "other settings (source" in err  # b/x.jpg is not a/x.jpg
    code, err = _run(capsys, "predict", f"{tmp_path}/a/*.jpg", "--out", out, "--segmenter", "box", "-q", "--resume")
    assert code == 0, err
    # a glob over a folder that holds --out: the run's own annotated images are not inputs
    root = _images(tmp_path / "p", ["m.jpg"])
    _images(root / "sub", ["n.jpg"])
    for flags in ([], ["--exist-ok"]):
        code, err = _run(capsys, "predict", f"{root}/**/*.jpg", "--out", root / "pred", "--segmenter", "box", "-q",
                         *flags)
        assert code == 0, err
        summary = json.loads((root / "pred" / "summary.json").read_text())
        assert (summary["inputs"], summary["processed"]) == (2, 2)
    names = {im["file_name"] for im in json.loads((root / "pred" / "images.json").read_text())["images"]}
    assert names == {"m.jpg", "sub/n.jpg"}  # relative to the matches' common folder, as for a folder
    from detseg.pipeline.predict import _same

    now = {"kind": "glob", "path": f"{tmp_path}/a/*.jpg", "files": 2}
    assert _same({"kind": "glob", "path": None, "files": 2}, now)  # a run.json from before patterns were recorded
    assert not _same({**now, "path": f"{tmp_path}/b/*.jpg"}, now)


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
                                          ({"size": [32, 32], "counts": [1024]}, "differs"),
                                          ({"size": [64, 64], "counts": "Xl4:"}, "does not decode"),  # 5,010 px
                                          ({"size": [64, 64], "counts": "1"}, "does not decode"),  # 1 px of 4,096
                                          ({"size": [64, 64], "counts": "0\x7f"}, "does not decode")])
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


@pytest.mark.parametrize("device, ok", [("0", True), ("cuda:0", True), ("0,1", False), ("1", False),
                                        ("0,0", True), ("cuda:1", False)])
def test_every_gpu_index_of_a_device_is_checked(monkeypatch, device, ok):
    import torch

    from detseg.assets import resolve_device
    from detseg.errors import InputError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU
    if ok:
        assert resolve_device(device) == device
    else:
        with pytest.raises(InputError, match="this machine has 1 CUDA GPU"):
            resolve_device(device)


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
    from detseg.data.synth.generate import render_clip

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


def test_resume_after_a_photo_is_added_processes_only_the_new_one(tmp_path, capsys, monkeypatch):
    """#30.15: --resume compares settings, not the file list; the same folder given relative or absolute."""
    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg"])
    assert _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")[0] == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())["source"]
    assert record == {"kind": "folder", "path": str(folder.resolve()), "files": 2}  # structured, not a repr
    _images(folder, ["c.jpg"])
    monkeypatch.chdir(tmp_path)  # now relative
    code, err = _run(capsys, "predict", "in", "--out", "out", "--segmenter", "box", "-q", "--resume")
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["processed"], summary["resumed_skipped"]) == (3, 2)  # processed counts every done input
    names = {im["file_name"] for im in json.loads((tmp_path / "out" / "images.json").read_text())["images"]}
    assert names == {"a.jpg", "b.jpg", "c.jpg"}
    assert json.loads((tmp_path / "out" / "run.json").read_text())["source"]["files"] == 3
    _images(tmp_path / "other", ["a.jpg"])
    code, err = _run(capsys, "predict", "other", "--out", "out", "--segmenter", "box", "-q", "--resume")
    assert code == 2 and "other settings (source:" in err and len(err.strip().splitlines()) == 1


def test_two_runs_into_one_out_are_refused(tmp_path, capsys):
    from detseg.pipeline.predict import _run_lock

    folder = _images(tmp_path / "in", ["a.jpg"])
    (tmp_path / "out").mkdir()
    lock = tmp_path / "out" / ".detseg.lock"
    with _run_lock(tmp_path / "out"):  # a live run holds it
        code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    assert code == 2 and "another detseg run" in err and len(err.strip().splitlines()) == 1
    assert f"pid {os.getpid()}" in err and f"delete {lock}" in err  # names the lock file and how to clear it
    lock.write_text("999999999")  # a dead one's lock is taken over
    assert _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")[0] == 0
    assert not lock.exists()


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
    from detseg.data.synth.generate import render_clip
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


# ------------------------------------------------------------------ option values: checked up front (issue 30, 9)


@pytest.fixture()
def no_work(monkeypatch):
    """Records any model load, dataset read or generator run: a bad option must stop before all of them."""
    calls = []

    def record(name):
        return lambda *a, **k: calls.append(name)

    monkeypatch.setattr("detseg.detectors.yolo.YoloDetector.load", record("YoloDetector.load"))
    monkeypatch.setattr("detseg.data.synth.generate.generate_dataset", record("generate_dataset"))
    monkeypatch.setattr("detseg.data.synth.synth_video.generate_video", record("generate_video"))
    monkeypatch.setattr("detseg.data.io.load_dataset", record("load_dataset"))
    monkeypatch.setattr("detseg.detectors.train.train", record("train"))
    monkeypatch.setattr("detseg.pipeline.scale.ray_engine.import_ray", record("import_ray"))
    return calls


def _one_line(code, err, message):
    assert code == 2 and message in err, err
    assert err.startswith("detseg: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, message", [
    # data synth
    (["data", "synth", "--imgsz", "16"], "--imgsz must be in [32, 8192], got 16"),
    (["data", "synth", "--imgsz", "60000"], "--imgsz must be in [32, 8192], got 60000"),
    (["data", "synth", "--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    (["data", "synth", "--train", "two"], "--train must be an integer >= 0, got 'two'"),
    (["data", "synth", "--photo-fraction", "nan"], "--photo-fraction must be a number in [0, 1]"),
    (["data", "synth", "--negatives=-inf"], "--negatives must be a number >= 0"),
    (["data", "synth", "--workers", "100000"], "--workers must be in [1, 256]"),
    # data synth-video
    (["data", "synth-video", "--fps", "0"], "--fps must be in (0, 1000], got 0"),
    (["data", "synth-video", "--fps", "nan"], "--fps must be a number in (0, 1000], got 'nan'"),
    (["data", "synth-video", "--width", "64"], "--width must be in [128, 8192], got 64"),
    (["data", "synth-video", "--height", "32"], "--height must be in [128, 8192], got 32"),
    (["data", "synth-video", "--frames", "0"], "synth-video: --frames must be >= 1"),
    (["data", "synth-video", "--frames", "100000"], "more than the 268,435,456"),
    # train, val, export
    (["train", "--data", "d.yaml", "--epochs", "0"], "train: --epochs must be >= 1, got 0"),
    (["train", "--data", "d.yaml", "--imgsz", "8"], "--imgsz must be in [32, 8192]"),
    (["train", "--data", "d.yaml", "--batch", "0"], "--batch must be an integer >= 1, -1 (AutoBatch)"),
    (["train", "--data", "d.yaml", "--time", "nan"], "--time must be a number > 0"),
    (["train", "--data", "d.yaml", "--workers", "-1"], "--workers must be >= 0"),
    (["val", "--weights", "w.pt", "--data", "d.yaml", "--batch", "0"], "val: --batch must be >= 1"),
    (["export", "--weights", "w.pt", "--imgsz", "1e9"], "--imgsz must be an image side"),
    # evaluate
    (["evaluate", "--data", "d.yaml", "--out", "e", "--conf", "7"], "evaluate: --conf must be in [0, 1], got 7"),
    (["evaluate", "--data", "d.yaml", "--out", "e", "--conf", "inf"], "--conf must be a number in [0, 1]"),
    # predict, both engines
    (["predict", "in", "--out", "o", "--batch", "0"], "--batch must be 'auto' or an integer >= 1, got '0'"),
    (["predict", "in", "--out", "o", "--min-mask-score", "nan"], "--min-mask-score must be a number in [0, 1]"),
    (["predict", "in", "--out", "o", "--min-mask-score=-1"], "--min-mask-score must be in [0, 1], got -1"),
    (["predict", "in", "--out", "o", "--min-mask-score", "3"], "--min-mask-score must be in [0, 1], got 3"),
    (["predict", "in", "--out", "o", "--val-fraction", "1.5"], "--val-fraction must be in [0, 1], got 1.5"),
    (["predict", "in", "--out", "o", "--iou", "nan"], "--iou must be a number in [0, 1]"),
    (["predict", "in", "--out", "o", "--keyframe-every", "0"], "--keyframe-every must be >= 1"),
    (["predict", "in", "--out", "o", "--sam-imgsz", "500"], "--sam-imgsz must be a multiple of 64 (e.g. 448 or 512)"),
    (["predict", "in", "--out", "o", "--sam-imgsz", "128"], "--sam-imgsz must be in [256, 8192], got 128"),
    (["predict", "in", "--out", "o", "--engine", "ray", "--workers", "0"], "--workers must be >= 1"),
    (["predict", "in", "--out", "o", "--engine", "ray", "--gpus-per-worker", "-1"],
     "--gpus-per-worker must be >= 0"),
    (["predict", "in", "--out", "o", "--engine", "ray", "--threads-per-worker", "nan"],
     "--threads-per-worker must be an integer >= 1"),
])
def test_bad_numbers_are_one_line_before_any_work(tmp_path, capsys, monkeypatch, no_work, argv, message):
    monkeypatch.chdir(tmp_path)
    if argv[:2] in (["data", "synth"], ["data", "synth-video"]):
        argv = [*argv, "--out", "o"]
    code, err = _run(capsys, *argv)
    _one_line(code, err, message)
    assert not no_work and not list(tmp_path.iterdir())  # nothing loaded, read, generated or created


@pytest.mark.parametrize("item, message", [
    ("lr0=abc", "lr0=abc: lr0 must be a number in [0, 1] (ultralytics' default: 0.01), got 'abc'"),
    ("lr0=.nan", "lr0 must be a number in [0, 1]"),
    ("box=inf", "box must be a finite number"),
    ("momentum=2", "momentum must be a number in [0, 1]"),
    ("close_mosaic=1.5", "close_mosaic must be an integer"),
    ("close_mosaic=true", "close_mosaic must be an integer"),
    ("cos_lr=1", "cos_lr must be true or false"),
    ("amp=ram", "amp must be true or false"),
    ("mosaic=", "mosaic must be a number"),
])
def test_training_overrides_of_the_wrong_type_are_one_line(tmp_path, capsys, no_work, item, message):
    code, err = _run(capsys, "train", "--data", tmp_path / "d.yaml", "--epochs", "1", item)
    _one_line(code, err, message)
    assert not no_work


def test_training_overrides_of_the_right_type_pass_as_ultralytics_wants_them():
    from detseg.pipeline.cli.train import parse_overrides

    assert parse_overrides(["lr0=1e-3", "warmup_epochs=1", "cache=ram", "pretrained=det.pt", "freeze=10",
                            "close_mosaic=2.0", "optimizer=SGD", "cos_lr=false"]) == {
        "lr0": 0.001, "warmup_epochs": 1, "cache": "ram", "pretrained": "det.pt", "freeze": 10,
        "close_mosaic": 2, "optimizer": "SGD", "cos_lr": False}


@pytest.mark.parametrize("argv, message", [
    (["data", "synth"], "data synth: the following arguments are required: --out"),
    (["predict", "in", "--out", "o", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["data", "convert", "x", "--to", "voc", "--out", "o"], "argument --to: invalid choice: 'voc'"),
    (["nonsense"], "invalid choice: 'nonsense'"),
])
def test_command_line_mistakes_are_one_line_not_a_usage_block(tmp_path, capsys, monkeypatch, no_work, argv,
                                                              message):
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, *argv)
    _one_line(code, err, message)
    assert "--help" in err and "usage:" not in err and not no_work


def test_the_parser_types_are_exact_at_the_bounds():
    import argparse

    from detseg.pipeline.cli.options import auto_or_positive_int, finite_float, fraction, imgsz, train_batch

    assert fraction("0") == 0 and fraction("1") == 1 and imgsz("32") == 32 and imgsz("8192") == 8192
    assert auto_or_positive_int("AUTO") == "auto" and auto_or_positive_int("3") == 3
    assert train_batch("-1") == -1 and train_batch("0.7") == 0.7 and train_batch("16") == 16
    open_low = finite_float(0, lo_open=True)
    for parse, text in ((fraction, "1.0001"), (fraction, "-0"), (open_low, "0"), (imgsz, "31"), (imgsz, "64.0"),
                        (train_batch, "1.5"), (train_batch, "-2"), (fraction, "1e999")):
        if parse is fraction and text == "-0":
            assert parse(text) == 0  # -0 is 0
            continue
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            parse(text)


def test_a_video_frame_narrower_than_an_item_renders(tmp_path):
    from detseg.data.synth.synth_video import render_video_frames

    clip = render_video_frames(frames=2, width=64, height=64, seed=0)  # the API's minimum is 32; it crashed
    assert clip.frames[0].image.shape == (64, 64, 3)


# ------------------------------------------------------------------ the Ray engine refuses what it ignores (14)


@pytest.mark.parametrize("argv, message", [
    (["--save-dataset", "{tmp}/ds"], "--save-dataset is not supported with --engine ray"),
    (["--min-mask-score", "0.5"], "--min-mask-score is not supported with --engine ray"),
    (["--min-mask-score", "0", "--save-dataset", "{tmp}/ds"],
     "--save-dataset and --min-mask-score are not supported with --engine ray"),
    (["--strict"], "--strict is not supported with --engine ray"),
])
def test_the_ray_engine_refuses_options_it_would_ignore(tmp_path, capsys, no_work, argv, message):
    folder = _images(tmp_path / "in", ["a.jpg"])
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--engine", "ray", "--segmenter", "box",
                     *argv)
    _one_line(code, err, message)
    assert not no_work  # Ray never started, no model loaded
    assert not (tmp_path / "out").exists() and not (tmp_path / "ds").exists()


# ------------------------------------------------------------------ convert writes what check accepts (12)


def _edit_coco(ds, edit):
    path = ds / "annotations" / "val.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))
    return path


def _past_the_image(coco):
    im = coco["images"][0]
    w, h = im["width"], im["height"]
    anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
    anns[0]["bbox"] = [w - 10, h - 12, 30, 40]  # a box reaching past the right and bottom edges
    anns[0]["segmentation"] = []
    anns[1]["segmentation"] = [[-8, -5, 20, -5, 20, 20, -8, 20]]  # a polygon over the top-left corner
    anns[1]["bbox"] = [-8, -5, 28, 25]
    extra = dict(anns[0], id=10_000, bbox=[w + 5, 2, 10, 10], segmentation=[])  # wholly outside
    extra_poly = dict(anns[0], id=10_001, bbox=[2, h + 5, 10, 10],
                      segmentation=[[2, h + 5, 12, h + 5, 12, h + 15]])
    coco["annotations"] += [extra, extra_poly]


@pytest.mark.parametrize("to", ["yolo", "coco"])
def test_convert_clips_boxes_and_polygons_past_the_image_and_check_accepts_the_result(small_ds, tmp_path, capsys,
                                                                                        to):
    ds = _copy(small_ds, tmp_path / "ds")
    source = _edit_coco(ds, _past_the_image)
    code, err = _run(capsys, "data", "convert", source, "--to", to, "--out", tmp_path / "out")
    assert code == 0, err
    assert "clipped 2 box(es)/polygon(s)" in err and "dropped 2" in err and err.count("\n") == 1
    code, err = _run(capsys, "data", "check", tmp_path / "out" / ("annotations/val.json" if to == "coco" else ""))
    assert code == 0, err
    from detseg.data.io import load_dataset

    out = load_dataset(tmp_path / "out" / ("annotations/val.json" if to == "coco" else "data.yaml"))
    for r in out.splits["val"]:
        for a in r.annotations:
            assert a.xyxy.min() >= 0 and a.xyxy[2] <= r.width + 1e-3 and a.xyxy[3] <= r.height + 1e-3
            assert all(p.min() >= 0 and (p <= [r.width, r.height]).all() for p in a.polygons)


def test_convert_of_a_dataset_inside_its_images_says_nothing(small_ds, tmp_path, capsys):
    code, err = _run(capsys, "data", "convert", small_ds / "annotations" / "val.json", "--to", "yolo", "--out",
                     tmp_path / "y")
    assert code == 0 and "clipped" not in err, err


@pytest.mark.parametrize("size", [{"width": 0}, {"height": 0}, {"width": -4}])
def test_convert_refuses_an_image_of_width_or_height_zero_in_one_line(small_ds, tmp_path, capsys, size):
    ds = _copy(small_ds, tmp_path / "ds")
    name = json.loads((ds / "annotations" / "val.json").read_text())["images"][0]["file_name"]
    source = _edit_coco(ds, lambda coco: coco["images"][0].update(size))
    for argv in (("data", "convert", source, "--to", "yolo", "--out", tmp_path / "y"), ("data", "check", source)):
        code, err = _run(capsys, *argv)
        _one_line(code, err, "width and height must be positive")
        assert name in err
    assert not (tmp_path / "y").exists()


def test_api_clip_polygon():
    from detseg.data.polygons import clip_polygon

    square = np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]], np.float32)
    clipped = clip_polygon(square, 10, 10)
    assert sorted(map(tuple, clipped.tolist())) == [(0, 0), (0, 5), (5, 0), (5, 5)]
    inside = np.array([[1, 1], [8, 1], [4, 7]], np.float32)
    np.testing.assert_array_equal(clip_polygon(inside, 10, 10), inside)
    assert len(clip_polygon(inside + 20, 10, 10)) < 3


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), "0.5"])
def test_api_min_mask_score_refuses_what_is_not_a_finite_number(threshold):
    from detseg.pipeline.autolabel import MinMaskScore

    with pytest.raises(InputError, match="min_mask_score must be a finite number"):
        MinMaskScore(threshold)


# ------------------------------------------------------------------ malformed dataset files: one line (30.8)


def _where(code, err, *parts):
    """One line, exit code 2, no traceback (``_run``), naming each of ``parts`` (the file, the place, the problem)."""
    assert code == 2 and err.startswith("detseg: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, (part, err)


def _label(ds):
    return sorted((ds / "labels" / "val").glob("*.txt"))[0]


@pytest.mark.parametrize("lines, where, message", [
    ("0 0.5 0.5 nan 0.1", 1, "width is nan"),
    ("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 inf 0.1", 2, "width is inf"),
    ("0 0.5 0.5 1e400 0.1", 1, "width is 1e400: not a finite number"),
    ("0 0.5 0.5 -0.2 0.1", 1, "width is negative (-0.2)"),
    ("0 0.5 0.5 0.2 -1e-3", 1, "height is negative"),
    ("nan 0.5 0.5 0.1 0.1", 1, "class id is nan"),
    ("-inf 0.5 0.5 0.1 0.1", 1, "class id is -inf"),
    ("0 1e400 0.1 0.2 0.1 0.3 0.3", 1, "x of point 1 is 1e400"),
    ("0 0.1 0.1 0.2 0.1 0.3 NaN", 1, "y of point 3 is NaN"),
    ("0 0.5 0.5 1e9 0.1", 1, "coordinates outside [0, 1]: width is 1e9"),
    ("7 0.5 0.5 0.1 0.1", 1, "class id 7 out of range"),
    ("0 0.5 0.5 0.1", 1, "malformed line: 3 coordinates"),
    ("0 0.5 zero 0.1 0.1", 1, "malformed line: y (box centre) 'zero' is not a number"),
])
@pytest.mark.parametrize("command", ["check", "evaluate"])
def test_a_malformed_yolo_label_line_is_one_line_naming_file_and_line(small_ds, tmp_path, capsys, lines, where,
                                                                      message, command):
    ds = _copy(small_ds, tmp_path / "ds")
    label = _label(ds)
    label.write_text(lines + "\n")
    argv = (("data", "check", ds) if command == "check" else
            ("evaluate", "--data", ds, "--segmenter", "box", "--out", tmp_path / "e", "--no-plots"))
    _where(*_run(capsys, *argv), f"{label.name}:{where}: {message}")
    assert not (tmp_path / "e").exists()


def _coco_file(ds, edit=None, raw=None):
    path = ds / "annotations" / "val.json"
    if raw is not None:
        path.write_bytes(raw(path.read_bytes()) if callable(raw) else raw)
    else:
        coco = json.loads(path.read_text())
        edit(coco)
        path.write_text(json.dumps(coco))
    return path


def _first_image_annotation(coco):
    return next(a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"])


@pytest.mark.parametrize("edit, raw, message", [
    # the cases seen (issue 30, 8)
    (lambda c: c["categories"][0].pop("id"), None, "categories[0]: missing key 'id'"),
    (lambda c: c["images"][0].update(file_name=5), None, "images[0].file_name: expected a non-empty string, got "
                                                          "integer 5"),
    (lambda c: c["images"].__setitem__(0, "val_000000.jpg"), None, "images[0]: expected an object, got string"),
    (lambda c: c["annotations"][3].update(image_id=[1]), None,
     "annotations[3].image_id: expected an integer, got list"),
    (None, b"5", "expected a COCO object"),
    (None, b"[{\"images\": []}]", "got list"),
    (None, b'{"images": [{"file_name": "caf\xe9.jpg"}]}', "not UTF-8 text (byte 30)"),
    (None, lambda data: data[: len(data) // 2], "not valid JSON"),
    (None, lambda data: data[:-1], "(the file ends early: truncated?)"),
    (None, b"", "empty file (0 bytes)"),
    # more of the same kind
    (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), None, "annotations[0].bbox: expected four numbers"),
    (lambda c: c["annotations"][0].update(bbox=[1, 2, float("nan"), 3]), None, "annotations[0].bbox[2]: width is nan"),
    (lambda c: c["annotations"][0].update(bbox=[1, 2, 3, float("inf")]), None, "bbox[3]: height is inf"),
    (lambda c: c["annotations"][0].update(bbox=[1, 2, -4, 3]), None, "bbox[2]: width is negative (-4)"),
    (lambda c: c["images"][1].update(id=c["images"][0]["id"]), None, "images[1].id: duplicate image id"),
    (lambda c: c["annotations"][0].update(image_id=999), None, "annotations[0].image_id: image_id 999 is not in "
                                                               "images"),
    (lambda c: c["annotations"][0].update(category_id="1"), None, "annotations[0].category_id: expected an integer, "
                                                                  "got string '1'"),
    (lambda c: c["categories"][1].update(id=c["categories"][0]["id"]), None, "categories[1].id: duplicate category"),
    (lambda c: c["categories"][0].update(name=["croissant"]), None, "categories[0].name: expected a non-empty string"),
    (lambda c: c["images"][0].update(width="64"), None, "images[0].width: expected an integer, got string '64'"),
    (lambda c: c["images"][0].pop("height"), None, "images[0]: missing key 'height'"),
    (lambda c: c.update(annotations={}), None, "annotations: expected a list, got object"),
    (lambda c: _first_image_annotation(c).update(segmentation=[[1, 2, 1e9, 3, 4, 5]]), None,
     "segmentation[0]: coordinates lie more than an image width or height outside the 64x64 image"),
    (lambda c: _first_image_annotation(c).update(bbox=[1, 2, 1e300, 3]), None, "bbox: coordinates lie more than"),
    (lambda c: c["annotations"][0].update(segmentation="polygon"), None, "annotations[0].segmentation: expected "
                                                                         "polygons or an RLE object, got string"),
    (None, b'{"images": [{"id": 1' + b"0" * 5000 + b"}]}", "an integer with too many digits"),
    (None, b"[" * 100_000, "nested too deeply"),
])
@pytest.mark.parametrize("command", ["check", "evaluate"])
def test_a_malformed_coco_file_is_one_line_naming_file_and_place(small_ds, tmp_path, capsys, edit, raw, message,
                                                                 command):
    ds = _copy(small_ds, tmp_path / "ds")
    path = _coco_file(ds, edit, raw)
    argv = (("data", "check", path) if command == "check" else
            ("evaluate", "--data", path, "--segmenter", "box", "--out", tmp_path / "e", "--no-plots"))
    _where(*_run(capsys, *argv), f"{path}: ", message)
    assert not (tmp_path / "e").exists()


def _list_dataset(ds, lines, extra=""):
    (ds / "train.txt").write_text("".join(f"{line}\n" for line in lines))
    (ds / "data.yaml").write_text(f"names: [croissant, cookie, cupcake]\ntrain: train.txt\nval: images/val\n{extra}")
    return ds / "data.yaml"


def test_a_yolo_image_list_inside_the_dataset_loads(small_ds, tmp_path, capsys):
    from detseg.data.io import load_dataset

    ds = _copy(small_ds, tmp_path / "ds")
    first, second = sorted((ds / "images" / "train").glob("*.jpg"))
    _list_dataset(ds, [f"./images/train/{first.name}", str(second.resolve()), ""])
    code, err = _run(capsys, "data", "check", ds)
    assert code == 0, err
    records = load_dataset(ds).splits["train"]
    assert [r.path.name for r in records] == [first.name, second.name] and all(r.annotations for r in records)


@pytest.mark.parametrize("entry, message", [
    ("../outside.jpg", "image path '../outside.jpg' leaves the dataset folder"),
    ("./images/../../outside.jpg", "leaves the dataset folder"),
    ("{outside}", "leaves the dataset folder"),  # an absolute path elsewhere
    ("./images/train/missing.jpg", "not found"),
    ("./images/train", "is not an image file name"),
    ("{first}", "listed twice (also line 1)"),
])
def test_a_yolo_image_list_naming_a_path_outside_the_dataset_is_refused(small_ds, tmp_path, capsys, entry, message):
    ds = _copy(small_ds, tmp_path / "ds")
    first = sorted((ds / "images" / "train").glob("*.jpg"))[0]
    shutil.copy(first, tmp_path / "outside.jpg")  # exists: refused for where it is, not for being missing
    entry = entry.format(outside=tmp_path / "outside.jpg", first=f"./images/train/{first.name}")
    _list_dataset(ds, [f"./images/train/{first.name}", entry])
    _where(*_run(capsys, "data", "check", ds), "train.txt:2: ", message)


@pytest.mark.parametrize("yaml_text, message", [
    ("names: [[croissant], cookie]\ntrain: images/train\n", "data.yaml: names[0]: expected a class name, got list"),
    ("names: {0: croissant, 1: null}\ntrain: images/train\n", "data.yaml: names.1: expected a class name, got null"),
    ("names: [a, b, c]\nnc: true\ntrain: images/train\n", "data.yaml: nc is True"),
    ("names: [a, b, c]\npath: 5\ntrain: images/train\n", "data.yaml: path: expected a folder path, got integer 5"),
    ("names: [a, b, c]\ntrain: data.yaml\n", "train folder 'data.yaml' is a file, not a folder or a .txt list"),
])
def test_a_malformed_data_yaml_is_one_line(small_ds, tmp_path, capsys, yaml_text, message):
    ds = _copy(small_ds, tmp_path / "ds")
    (ds / "data.yaml").write_text(yaml_text)
    _where(*_run(capsys, "data", "check", ds / "data.yaml"), message)


@pytest.mark.parametrize("text, option, message", [
    ('[{"id": 1, "file_name": "a.jpg"}]', "--image-ids", "expected a COCO JSON object"),  # a list of images
    ('{"images": {"a.jpg": 1}}', "--image-ids", "images: expected a list, got object"),
    ('{"images": [{"id": "1", "file_name": "a.jpg"}]}', "--image-ids", "images[0].id: expected an integer, got "
                                                                       "string '1'"),
    ('{"images": [{"id": 1}]}', "--image-ids", "images[0]: missing key 'file_name'"),
    ('{"images": [{"id": 1, "file_name": "../../a.jpg"}]}', "--image-ids", "images[0].file_name: '../../a.jpg' "
                                                                           "leaves the image folder"),
    ('{"images": [{"id": 1, "file_name": "/etc/a.jpg"}]}', "--image-ids", "leaves the image folder"),
    ('{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]}', "--image-ids",
     "images[1].id: duplicate image id 1"),
    ('{"images": [{"id": 1, "file_name": "a.jpg"}', "--image-ids", "truncated?"),
    ("", "--image-ids", "empty file (0 bytes)"),
    ('{"categories": [{"id": 1}]}', "--categories", "categories[0]: missing key 'name'"),
    ('{"categories": [{"id": [1], "name": "cookie"}]}', "--categories", "categories[0].id: expected an integer"),
])
def test_a_malformed_image_ids_file_is_one_line_before_any_model_loads(tmp_path, capsys, no_work, text, option,
                                                                        message):
    folder = _images(tmp_path / "in", ["a.jpg"])
    (tmp_path / "ids.json").write_text(text)
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q", option,
                     tmp_path / "ids.json")
    _where(code, err, f"{tmp_path / 'ids.json'}: ", message)
    assert not no_work  # refused before the detector loaded


@pytest.mark.parametrize("damage", [
    lambda text: "",  # zero bytes: the rename reached the disk, the data did not
    lambda text: text[: len(text) // 2],  # truncated
    lambda text: "[]",  # JSON, but not a part
    lambda text: json.dumps({**json.loads(text), "image": {"id": "one"}}),
])
def test_resume_redoes_an_input_whose_part_file_is_damaged_and_says_so(tmp_path, capsys, damage):
    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg"])
    out = tmp_path / "out"
    assert _run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q")[0] == 0
    before = json.loads((out / "predictions.json").read_text())
    part = out / "parts" / "a.json"
    part.write_text(damage(part.read_text()))
    code, err = _run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q", "--resume")
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("--resume: redoing a: its part file is unusable"), err
    assert str(part) in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_skipped"] == 1 and summary["processed"] == 2 and summary["failed"] == []
    assert json.loads((out / "predictions.json").read_text()) == before  # redone: the same results
    assert json.loads(part.read_text())["image"]["file_name"] == "a.jpg"


@pytest.mark.parametrize("text", ["", '{"detector": ', "[1, 2]"])
def test_resume_with_a_damaged_run_json_is_one_line(tmp_path, capsys, text):
    folder = _images(tmp_path / "in", ["a.jpg"])
    out = tmp_path / "out"
    assert _run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q")[0] == 0
    (out / "run.json").write_text(text)
    _where(*_run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q", "--resume"),
           f"--resume: {out / 'run.json'}: ")


@pytest.fixture(scope="module")
def video_gt_and_run(tmp_path_factory):
    """A 4-frame synth-video ground truth and a perfect tracked run made from it (tracks.txt, predictions.json)."""
    from detseg.data.synth.synth_video import generate_video

    root = tmp_path_factory.mktemp("video")
    generate_video(root / "gt", frames=4, width=128, height=128, seed=0)
    (root / "run").mkdir()
    shutil.copy(root / "gt" / "gt.txt", root / "run" / "tracks.txt")
    coco = json.loads((root / "gt" / "annotations.json").read_text())
    predictions = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9, "bbox": a["bbox"],
                    "segmentation": a["segmentation"]} for a in coco["annotations"]]
    (root / "run" / "predictions.json").write_text(json.dumps(predictions))
    return root


def _mot(path, edit):
    lines = path.read_text().splitlines()
    lines[1] = edit(lines[1].split(","))
    path.write_text("\n".join(lines) + "\n")


def _first_prediction(path, **changes):
    predictions = json.loads(path.read_text())
    predictions[0].update(changes)
    path.write_text(json.dumps(predictions))


@pytest.mark.parametrize("file, edit, message", [
    ("run/tracks.txt", lambda p: _mot(p, lambda f: ",".join([f[0], f[1], "nan", *f[3:]])), ":2: x is nan"),
    ("gt/gt.txt", lambda p: _mot(p, lambda f: ",".join([*f[:4], "1e400", *f[5:]])), ":2: width is 1e400"),
    ("gt/gt.txt", lambda p: _mot(p, lambda f: ",".join([*f[:4], "-3", *f[5:]])), ":2: width is negative (-3)"),
    ("gt/gt.txt", lambda p: _mot(p, lambda f: ",".join(f[:3])), ":2: 3 field(s); a MOT line is frame,id,x,y,w,h"),
    ("run/tracks.txt", lambda p: _mot(p, lambda f: ",".join(["0", *f[1:]])), ":2: frame is below 1 (0)"),
    ("run/tracks.txt", lambda p: _mot(p, lambda f: ",".join([f[0], "1.5", *f[2:]])), ":2: id 1.5 is not an integer"),
    ("gt/gt.txt", lambda p: _mot(p, lambda f: ",".join([f[0], "one", *f[2:]])), ":2: id 'one' is not a number"),
    ("gt/gt.txt", lambda p: p.write_bytes(b"1,1,\xff"), ": not UTF-8 text"),
    ("gt/gt.txt", lambda p: p.write_text("1,4,0,0,5,5,1,1\n2,4,0,0,5,5,1,1\n1,4,9,9,5,5,1,1\n"),
     ":3: id 4 appears twice in frame 1 (also line 1)"),
    ("gt/annotations.json", lambda p: p.write_text("[]"), ": expected a COCO object"),
    ("gt/annotations.json", lambda p: p.write_text(p.read_text()[:-10]), ": line 1 column "),
    ("gt/annotations.json", lambda p: _coco_edit(p, lambda c: c["annotations"][0].pop("area")),
     ": annotations[0]: missing key 'area'"),
    ("gt/annotations.json", lambda p: _coco_edit(p, lambda c: c["annotations"][2].update(id=c["annotations"][0]["id"])),
     ": annotations[2].id: duplicate annotation id"),
    ("run/predictions.json", lambda p: p.write_text("{}"), ": expected a list of COCO results"),
    ("run/predictions.json", lambda p: _first_prediction(p, image_id=999),
     ": [0].image_id: image_id 999 is not in the ground truth's images"),
    ("run/predictions.json", lambda p: _first_prediction(p, score=float("nan")), ": [0].score: score is nan"),
    ("run/predictions.json", lambda p: _first_prediction(p, bbox="x"), ": [0].bbox: expected four numbers"),
    ("run/predictions.json", lambda p: _first_prediction(p, segmentation={"size": [2, 2], "counts": "x"}),
     ": [0].segmentation: RLE size [2, 2] differs"),
])
def test_evaluate_video_with_a_malformed_file_is_one_line(video_gt_and_run, tmp_path, capsys, file, edit, message):
    root = _copy(video_gt_and_run, tmp_path / "v")
    edit(root / file)
    _where(*_run(capsys, "evaluate-video", root / "gt", root / "run", "--out", tmp_path / "m"),
           f"{root / file}{message}")
    assert _run(capsys, "evaluate-video", video_gt_and_run / "gt", video_gt_and_run / "run", "--out",
                tmp_path / "ok")[0] == 0  # the sound files pass


def _coco_edit(path, edit):
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))


def test_save_dataset_images_are_copies_not_links_to_the_users_photos(tmp_path):
    """#30.7: editing an image of a --save-dataset (or convert/synth) output never edits the user's photo."""
    from detseg.atomic import place_file

    photo = tmp_path / "photos" / "a.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"original bytes")
    placed = place_file(photo, tmp_path / "dataset" / "images" / "train" / "a.jpg")
    assert placed.read_bytes() == b"original bytes" and photo.stat().st_nlink == 1
    placed.write_bytes(b"edited")
    assert photo.read_bytes() == b"original bytes"
    assert place_file(photo, photo) == photo and photo.read_bytes() == b"original bytes"  # onto itself: untouched


# ------------------------------------------------------------------ weak spots (issue 30, 17)


@pytest.mark.parametrize("frames, max_frames", [(1, None), (6, 2)])
def test_a_tracked_video_of_fewer_frames_than_min_track_frames_counts_its_objects(tmp_path, frames, max_frames):
    """#30.17.1: a one-frame video (or --max-frames 2) keeps its detections and counts the objects it tracked."""
    from detseg.data.synth.synth_video import generate_video
    from detseg.pipeline import Pipeline
    from detseg.pipeline.evaluation.track_eval import evaluate_video
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.segmenter import BoxSegmenter
    from tests.helpers import FakeDetector

    generate_video(tmp_path / "gt", frames=frames, width=96, height=64, progress=False)
    summary = run_predict(Pipeline(FakeDetector(), BoxSegmenter()), tmp_path / "gt" / "video.mp4", tmp_path / "out",
                          RunOptions(progress=False, track=True, max_frames=max_frames))
    processed = min(frames, max_frames or frames)
    assert summary["processed"] == processed and summary["frame_instances"] == 2 * processed
    assert summary["instances_per_class"] == {"croissant": 1, "cookie": 1, "cupcake": 0}
    assert summary["tracks"] == 2 and summary["tracking"]["min_track_frames"] == processed
    assert len((tmp_path / "out" / "tracks.txt").read_text().splitlines()) == 2 * processed
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(predictions) == 2 * processed and all(p["track_id"] for p in predictions)
    # evaluate-video counts the run's objects as its summary does, also when the run stopped early (--max-frames)
    counts = evaluate_video(tmp_path / "gt", tmp_path / "out")["counts"]["predicted"]
    assert sum(counts.values()) == summary["instances"] == 2


def test_video_options_given_with_images_are_noted_not_silently_ignored(tmp_path, capsys):
    """#30.17.2: --track, --stride and --max-frames with a folder: one note on stderr and in summary.json."""
    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg"])
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q", "--track",
                     "--stride", "2", "--max-frames", "1")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0 and summary["processed"] == 2  # every image: not every 2nd, not only the first
    note = "--track, --stride 2 and --max-frames 1 apply to videos only: ignored for a folder of images"
    assert f"note: {note}" in err.splitlines() and note in summary["notes"]
    assert not (tmp_path / "out" / "tracks.txt").exists()


def test_a_stride_given_with_an_image_is_noted_and_does_not_block_its_resume(tmp_path, capsys):
    image = _images(tmp_path / "in", ["a.jpg"]) / "a.jpg"
    code, err = _run(capsys, "predict", image, "--out", tmp_path / "out", "--segmenter", "box", "-q", "--stride", "3")
    assert code == 0 and "note: --stride 3 applies to videos only: ignored for an image" in err
    code, err = _run(capsys, "predict", image, "--out", tmp_path / "out", "--segmenter", "box", "-q", "--resume",
                     "--no-track")  # run.json recorded no stride for an image; --no-track does what it says
    assert code == 0 and "note:" not in err, err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["resumed_skipped"] == 1


def test_the_run_lock_goes_to_exactly_one_of_runs_starting_together(tmp_path):
    """#30.17.3: taking the lock is atomic: of runs racing for one --out, exactly one gets it."""
    import threading

    from detseg.pipeline.predict import _run_lock

    for attempt in range(8):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        n, got, refused = 6, [], []
        start, tried = threading.Barrier(n, timeout=30), threading.Barrier(n, timeout=30)

        def take():
            start.wait()
            try:
                with _run_lock(out):
                    got.append(1)
                    tried.wait()  # held until every other run has tried
                    return
            except InputError as e:
                refused.append(str(e))
            tried.wait()

        threads = [threading.Thread(target=take) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(got) == 1 and len(refused) == n - 1, refused
        assert all(str(out / ".detseg.lock") in message for message in refused)
        assert not (out / ".detseg.lock").exists()


@pytest.mark.parametrize("flock", [True, False])
def test_a_stale_lock_is_taken_over_even_when_its_pid_was_reused(tmp_path, monkeypatch, flock):
    """#30.17.3: a lock whose pid now belongs to another process is stale; a lock being written is live.
    With flock the kernel says whether its holder lives (the file's text never blocks); without, the pid
    and start time the file records do."""
    import psutil

    from detseg.pipeline import predict

    if not flock:
        monkeypatch.setattr(predict, "fcntl", None)
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".detseg.lock"
    started = psutil.Process().create_time()

    def taken(text, age=0.0) -> bool:
        lock.write_text(text)
        if age:
            os.utime(lock, (time.time() - age,) * 2)
        try:
            with predict._run_lock(out):
                assert lock.read_text().split() == [str(os.getpid()), repr(started)]
        except InputError as e:
            assert f"delete {lock}" in str(e)
            return False
        return True

    assert taken(f"{os.getpid()} {started - 3600!r}")  # this pid, another process's start time: reused
    assert taken("999999999 1.0") and taken("", age=60)  # gone; empty and old (killed before writing its pid)
    assert taken(str(os.getpid()), age=time.time() - started + 3600)  # an older detseg's lock, older than the pid
    live = [f"{os.getpid()} {started!r}", "", str(os.getpid())]  # the holder itself; being written; older format
    assert [taken(text) for text in live] == [flock] * 3


@pytest.mark.parametrize("change, message", [
    ("rm -rf", "was removed during the run"),
    ("rm -rf, mkdir", "was removed during the run"),
    ("rm a part file", "1 of the 3 part files"),
])
def test_out_changed_during_a_run_fails_instead_of_writing_a_summary_that_lies(tmp_path, capsys, monkeypatch,
                                                                                change, message):
    """#30.17.4: --out (or an earlier input's part file) removed mid-run: one line, no summary.json."""
    from detseg.pipeline import sources

    folder = _images(tmp_path / "in", ["a.jpg", "b.jpg", "c.jpg"])
    out, real = tmp_path / "out", sources.read_image

    def reading(path):
        if str(path).endswith("c.jpg"):  # once a and b are written
            deadline = time.monotonic() + 60
            while not all((out / "parts" / f"{n}.json").is_file() for n in "ab"):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            if change == "rm a part file":
                (out / "parts" / "a.json").unlink()
            else:
                shutil.rmtree(out)
                if "mkdir" in change:
                    out.mkdir()
        return real(path)

    monkeypatch.setattr(sources, "read_image", reading)
    code, err = _run(capsys, "predict", folder, "--out", out, "--segmenter", "box", "-q")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "summary.json").exists()


def _unusual_images(folder):
    """Files OpenCV decodes to pixels with no 8-bit reading: float outside [0, 1], signed and 32-bit integers."""
    rng = np.random.default_rng(0)
    arrays = {"float.tif": (rng.random((20, 30, 3)) * 1000).astype(np.float32),
              "signed.tif": rng.integers(-3000, 3000, (20, 30)).astype(np.int16),
              "sky.hdr": (rng.random((20, 30, 3)) * 5).astype(np.float32),
              "wide.tif": rng.integers(0, 9, (20, 30)).astype(np.int32)}
    for name, array in arrays.items():
        assert cv2.imwrite(str(folder / name), array)
    return folder


def test_float_int16_and_hdr_files_fail_as_inputs_naming_the_file_and_what_to_do(tmp_path, capsys):
    """#30.17.5: the message names the file and says to convert it to 8-bit; the folder run goes on."""
    folder = _unusual_images(_images(tmp_path / "in", ["a.jpg"]))
    code, err = _run(capsys, "predict", folder, "--out", tmp_path / "out", "--segmenter", "box", "-q")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0 and summary["processed"] == 1 and len(summary["failed"]) == 4
    for failure in summary["failed"]:
        assert failure["error"].startswith(f"{failure['path']}: ") and "to an ordinary 8-bit image" in failure["error"]
        assert "astype" not in failure["error"]  # no advice meant for the Python API
    assert "tone-map" in next(f["error"] for f in summary["failed"] if f["path"].endswith("sky.hdr"))
    code, err = _run(capsys, "predict", folder / "signed.tif", "--out", tmp_path / "one", "--segmenter", "box", "-q")
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("detseg: error:") and str(folder / "signed.tif") in last and "8-bit" in last


def test_float_files_in_0_1_and_16_bit_files_still_read(tmp_path):
    from detseg.images import read_image

    pixels = textured_image(20, 30)
    cv2.imwrite(str(tmp_path / "unit.tif"), pixels.astype(np.float32) / 255)
    cv2.imwrite(str(tmp_path / "deep.png"), pixels.astype(np.uint16) * 257)
    for name in ("unit.tif", "deep.png"):
        assert np.abs(read_image(tmp_path / name).astype(int) - pixels).max() <= 1


def _bomb(path, width, height):
    """A tiny file whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    if path.suffix == ".jpg":
        data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
        at = data.index(b"\xff\xc0") + 5  # SOF0: length, precision, then height and width
        data[at:at + 4] = struct.pack(">HH", height, width)
    else:  # PNG: IHDR's width and height, then its CRC
        data = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
        at = data.index(b"IHDR")
        data[at + 4:at + 12] = struct.pack(">II", width, height)
        data[at + 17:at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 17])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("name, width, height", [("bomb.jpg", 50000, 60000), ("bomb.png", 100000, 90000)])
def test_a_decompression_bomb_is_refused_with_its_declared_size_and_the_limit(tmp_path, name, width, height):
    """#30.17.6: the message states the header's width x height (not a made-up size) and the limit."""
    from detseg.images import read_image

    path = _bomb(tmp_path / name, width, height)
    assert path.stat().st_size < 1000
    with pytest.raises(DetsegError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and f"declares {width}x{height} pixels ({width * height / 1e6:,.0f} MP)" \
        in message and "(150 MP = 150,000,000 pixels)" in message


def test_a_lower_pillow_pixel_limit_does_not_refuse_an_image_within_detsegs(tmp_path, monkeypatch):
    from PIL import Image

    from detseg.images import read_image

    path = _images(tmp_path, ["small.jpg"]) / "small.jpg"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # another library's setting: 64x80 is past twice that
    assert read_image(path).shape == (64, 80, 3)


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_the_size_recorded_for_a_turned_photo_is_the_size_read(tmp_path, mode, suffix, orientation):
    """Dataset widths and heights (COCO, label checks) come from shown_size, the pixels from read_image: they
    must agree for every orientation and format (Pillow reports a TIFF's size already turned, other formats
    as stored)."""
    from PIL import Image

    from detseg.images import open_pil, read_image, shown_size

    exif = Image.Exif()
    exif[0x0112] = orientation
    pil = Image.fromarray(np.ascontiguousarray(textured_image(30, 50)[..., ::-1])).convert(mode)
    pil.save(tmp_path / f"p{suffix}", exif=exif)
    with open_pil(tmp_path / f"p{suffix}") as im:
        size = shown_size(im)
    image = read_image(tmp_path / f"p{suffix}")
    assert size == (image.shape[1], image.shape[0]) == ((30, 50) if orientation in (6, 8) else (50, 30))


def test_a_container_count_a_frame_or_two_high_is_not_a_truncated_video(tmp_path):
    """Containers estimate the count (duration x fps): two frames or 2% short is that estimate, not a cut file."""
    from detseg.data.synth.generate import render_clip
    from detseg.pipeline.sources import VideoProperties, iter_video

    video = render_clip(tmp_path / "clip.mp4", frames=98, imgsz=32)
    for stride, announced in ((1, 100), (3, 100), (1, 99)):
        items = list(iter_video(video, stride=stride, properties=VideoProperties(10.0, 32, 32, frames=announced)))
        assert all(i.image is not None for i in items) and items[-1].frame == (97 if stride == 1 else 96)
    items = list(iter_video(video, properties=VideoProperties(10.0, 32, 32, frames=120)))  # 22 frames short
    assert items[-1].image is None and "after frame 98 of the 120" in items[-1].error


@pytest.mark.parametrize("argv", [
    ["val", "--model", "w.pt", "--data", "d.yaml"],
    ["evaluate", "--data", "d.yaml", "--segmenter", "box"],
    ["data", "convert", "d.yaml", "--to", "coco"],
    ["train", "--data", "d.yaml"],
    ["evaluate-video", "gt", "run"],
])
def test_an_out_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys, argv, no_work):
    from detseg.pipeline.cli import main

    (tmp_path / "taken").write_text("a file")
    code = main([*argv, "--out", str(tmp_path / "taken")])
    _one_line(code, capsys.readouterr().err, "is a file, not a folder")
    assert no_work == []


def test_keyframe_mode_on_images_and_a_missing_ids_file_name_their_flag(tmp_path, capsys, no_work):
    from detseg.pipeline.cli import main

    folder = _images(tmp_path / "in", ["a.jpg"])
    code = main(["predict", str(folder), "--out", str(tmp_path / "o"), "--keyframe-every", "3"])
    _one_line(code, capsys.readouterr().err, "--keyframe-every 3 needs a video source")
    code = main(["predict", str(folder), "--out", str(tmp_path / "o2"), "--image-ids", str(tmp_path / "missing.json")])
    _one_line(code, capsys.readouterr().err, "--image-ids: ")
    assert no_work == []
