import json
import re
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from detseg.pipeline import Pipeline
from detseg.pipeline.cli import main
from detseg.pipeline.predict import RunOptions, run_predict
from detseg.pipeline.sources import video_info
from detseg.segmenter import BoxSegmenter, GrabCutSegmenter
from tests.helpers import FakeDetector, textured_image


@pytest.fixture
def image_folder(tmp_path):
    """Good images of several kinds plus every kind of bad file."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.jpg"), textured_image(60, 80, 1))
    cv2.imwrite(str(folder / "sub" / "b.png"), textured_image(50, 50, 2))
    cv2.imwrite(str(folder / "gray.png"), textured_image(40, 60, 3)[..., 0])
    rgba = np.dstack([textured_image(40, 60, 4), np.full((40, 60), 200, np.uint8)])
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    cv2.imwrite(str(folder / "deep.png"), textured_image(40, 60, 5).astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "one.png"), np.full((1, 1, 3), 128, np.uint8))
    # EXIF orientation 6: stored 40 wide x 60 high landscape... displayed rotated 90 degrees
    pil = Image.fromarray(textured_image(60, 40, 6)[..., ::-1])
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(folder / "exif.jpg", exif=exif)
    good = (folder / "a.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8garbage" * 10)
    (folder / "zero.png").write_bytes(b"")
    (folder / "notes.bin").write_bytes(b"hello")
    return folder


def _pipe():
    return Pipeline(FakeDetector(), BoxSegmenter())


def test_folder_run_goes_past_bad_files_and_lists_them(image_folder, tmp_path):
    out = tmp_path / "out"
    summary = run_predict(_pipe(), image_folder, out, RunOptions(progress=False, save_masks=True))
    failed = {f["path"].split("/")[-1] for f in summary["failed"]}
    assert {"corrupt.jpg", "zero.png", "notes.bin"} <= failed
    assert summary["processed"] == summary["inputs"] - len(failed)
    assert {"a", "sub__b", "gray", "rgba", "deep", "one", "exif"} <= {p.stem for p in (out / "annotated").iterdir()}
    exif = cv2.imread(str(out / "annotated" / "exif.jpg"))
    assert exif.shape[:2] == (40, 60)  # EXIF rotation applied
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*"))
    masks = cv2.imread(str(out / "masks" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert masks.dtype == np.uint16 and masks.shape == (60, 80) and set(np.unique(masks)) == {0, 1, 2}


def test_truncated_jpeg_is_either_decoded_or_reported(image_folder, tmp_path):
    summary = run_predict(_pipe(), image_folder, tmp_path / "out", RunOptions(progress=False))
    names = {f["path"].split("/")[-1] for f in summary["failed"]}
    done = {p.stem for p in (tmp_path / "out" / "parts").iterdir()}
    assert ("truncated.jpg" in names) != ("truncated" in done)


def test_outputs_load_in_pycocotools_and_ultralytics_formats(tmp_path):
    from pycocotools.coco import COCO

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"img{i}.jpg"), textured_image(64, 96, i))
    out = tmp_path / "out"
    summary = run_predict(_pipe(), folder, out, RunOptions(progress=False))
    assert summary["instances"] == 6 and summary["instances_per_class"] == {"croissant": 3, "cookie": 3,
                                                                             "cupcake": 0}
    gt = COCO(str(out / "images.json"))
    res = gt.loadRes(str(out / "predictions.json"))
    assert len(res.getAnnIds()) == 6
    ann = res.loadAnns(res.getAnnIds(imgIds=[1]))[0]
    assert res.annToMask(ann).sum() > 0 and ann["category_id"] in (1, 2)
    lines = (out / "labels" / "img0.txt").read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split()) >= 7 for line in lines)


def test_yolo_seg_labels_train_an_ultralytics_seg_model(tmp_path):
    from ultralytics import YOLO

    folder = tmp_path / "ds" / "images" / "train"
    folder.mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(folder / f"img{i}.jpg"), textured_image(64, 64, i))
    run_predict(_pipe(), folder, tmp_path / "pred", RunOptions(progress=False))
    shutil.copytree(tmp_path / "pred" / "labels", tmp_path / "ds" / "labels" / "train")
    (tmp_path / "ds" / "data.yaml").write_text(
        f"path: {tmp_path / 'ds'}\ntrain: images/train\nval: images/train\nnames: [croissant, cookie, cupcake]\n")
    model = YOLO("yolov8n-seg.yaml")
    model.train(data=str(tmp_path / "ds" / "data.yaml"), epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
                plots=False, project=str(tmp_path / "runs"), name="seg", verbose=False, val=False)
    assert (tmp_path / "runs" / "seg" / "weights" / "last.pt").is_file()


def test_large_image_uses_compact_masks(tmp_path):
    from detseg.segmenter.base import COMPACT_FROM_PIXELS

    big = np.zeros((1000, 1100, 3), np.uint8)  # just over the ~1 megapixel where "auto" output turns compact
    assert big.shape[0] * big.shape[1] >= COMPACT_FROM_PIXELS > 1000 * 1000
    big[200:600, 300:800] = (40, 120, 200)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    pipe = Pipeline(FakeDetector(), GrabCutSegmenter())
    frames = list(pipe.run(str(tmp_path / "big.png")))
    import supervision as sv

    assert frames[0].ok and isinstance(frames[0].detections.mask, sv.CompactMask)
    summary = run_predict(pipe, tmp_path / "big.png", tmp_path / "out", RunOptions(progress=False))
    assert summary["processed"] == 1


def test_interrupted_run_leaves_no_partial_files_and_resume_skips_done(image_folder, tmp_path):
    class Interrupting(FakeDetector):
        def __call__(self, image):
            if self.calls == 3:
                raise KeyboardInterrupt
            return super().__call__(image)

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_predict(Pipeline(Interrupting(), BoxSegmenter()), image_folder, out, RunOptions(progress=False))
    assert not list(out.rglob("*.part")) and not (out / "predictions.json").exists()
    done_before = {p.name for p in (out / "parts").iterdir()}
    assert len(done_before) == 3
    detector = FakeDetector()
    summary = run_predict(Pipeline(detector, BoxSegmenter()), image_folder, out,
                          RunOptions(resume=True, progress=False))
    assert summary["resumed_skipped"] == 3
    assert detector.calls == summary["processed"] - 3  # finished inputs are not even read again
    assert len(json.loads((out / "images.json").read_text())["images"]) == summary["processed"]


def test_leftovers_of_a_killed_run_are_removed_and_finished_outputs_kept(image_folder, tmp_path):
    """SIGKILL leaves temporary files (a half-written video, atomic writes' part files); the next run
    in that folder removes them and keeps what was finished."""
    out = tmp_path / "out"
    run_predict(_pipe(), image_folder, out, RunOptions(progress=False))
    finished = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "summary.json")
    stale = [out / ".annotated.mp4.detseg-99999.part.mp4", out / ".predictions.json.detseg-abc.part",
             out / "labels" / ".a.txt.detseg-x1.part", out / "parts" / ".a.json.detseg-12345.part"]
    for path in stale:
        path.write_bytes(b"half written")
    summary = run_predict(_pipe(), image_folder, out, RunOptions(resume=True, progress=False))
    assert summary["resumed_skipped"] == summary["processed"] > 0
    assert not any(p.exists() for p in stale)
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "summary.json") == finished


def test_a_users_own_part_files_are_never_removed(image_folder, tmp_path):
    """Only temporaries detseg names (``.NAME.detseg-XXXX.part``) are cleaned up, never a user's download."""
    out = tmp_path / "home"
    (out / "Downloads").mkdir(parents=True)
    (out / "labels").mkdir()
    mine = [out / "Downloads" / ".ubuntu.iso.part", out / ".movie.mkv.part", out / "labels" / ".notes.txt.part"]
    for path in mine:
        path.write_bytes(b"the user's")
    run_predict(_pipe(), image_folder, out, RunOptions(progress=False, exist_ok=True))
    assert all(p.read_bytes() == b"the user's" for p in mine)


@pytest.mark.parametrize("case", ["foreign", "earlier run"])
def test_a_non_empty_out_is_refused_without_resume_or_exist_ok(case, image_folder, tmp_path):
    from detseg.errors import InputError

    out = tmp_path / "out"
    if case == "foreign":
        (out / "labels").mkdir(parents=True)
        (out / "labels" / "a.txt").write_text("the user's labels")
        match = "files detseg did not write"
    else:
        run_predict(_pipe(), image_folder, out, RunOptions(progress=False))
        match = "earlier run's outputs; pass --resume"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=match):
        run_predict(_pipe(), image_folder, out, RunOptions(progress=False))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing written or removed
    if case == "earlier run":
        assert run_predict(_pipe(), image_folder, out, RunOptions(resume=True, progress=False))["resumed_skipped"] > 0
    assert run_predict(_pipe(), image_folder, out, RunOptions(exist_ok=True, progress=False))["processed"] > 0


def test_the_root_and_the_home_folder_are_never_an_out(image_folder):
    from pathlib import Path

    from detseg.errors import InputError

    for out in (Path("/"), Path.home()):
        with pytest.raises(InputError, match="filesystem root|home folder"):
            run_predict(_pipe(), image_folder, out, RunOptions(progress=False, exist_ok=True))


def test_a_writing_error_surfaces_and_earlier_outputs_stay_complete(image_folder, tmp_path, monkeypatch):
    from detseg.pipeline.outputs import OutputWriter

    original, written = OutputWriter.write, []

    def failing_write(self, name, *args, **kwargs):  # outputs are written by a background thread
        if len(written) == 2:
            raise OSError("disk full")
        written.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(OutputWriter, "write", failing_write)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        run_predict(_pipe(), image_folder, out, RunOptions(progress=False))
    assert sorted(p.stem for p in (out / "parts").iterdir()) == sorted(written)
    assert not list(out.rglob("*.part")) and not (out / "predictions.json").exists()


def test_strict_stops_at_first_failure(image_folder, tmp_path):
    from detseg.errors import ImageReadError

    with pytest.raises(ImageReadError):
        run_predict(_pipe(), image_folder, tmp_path / "out", RunOptions(strict=True, progress=False))


def _video(path, frames=9, size=(96, 64), fps=12):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(textured_image(size[1], size[0], i))
    writer.release()
    return path


def test_video_run_writes_annotated_video_of_same_size_and_fps(tmp_path):
    video = _video(tmp_path / "clip.mp4")
    summary = run_predict(_pipe(), video, tmp_path / "out", RunOptions(progress=False))
    assert summary["processed"] == 9
    info = video_info(tmp_path / "out" / "annotated.mp4")
    assert (info["width"], info["height"], info["fps"], info["frames"]) == (96, 64, 12.0, 9)
    summary = run_predict(_pipe(), video, tmp_path / "out2", RunOptions(stride=2, max_frames=3, progress=False))
    assert summary["processed"] == 3
    assert sorted(p.stem for p in (tmp_path / "out2" / "labels").iterdir()) == \
        ["clip_000000", "clip_000002", "clip_000004"]
    # a stride keeps the playing speed, whatever the rate: 25 fps every 2nd frame is 12.5 fps, not 12
    run_predict(_pipe(), _video(tmp_path / "pal.mp4", frames=6, fps=25), tmp_path / "out3",
                RunOptions(stride=2, progress=False))
    info = video_info(tmp_path / "out3" / "annotated.mp4")
    assert (info["fps"], info["frames"]) == (12.5, 3)


@pytest.mark.parametrize("bad", ["missing_dir", "missing.mp4", "empty.mp4", "garbage.mp4", "emptydir"])
def test_bad_sources_give_one_clear_message(tmp_path, capsys, bad):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    (tmp_path / "emptydir").mkdir()
    code = main(["predict", str(tmp_path / bad), "--out", str(tmp_path / "out"), "--segmenter", "box"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("detseg: error:") == 1 and "Traceback" not in err


def test_nothing_processed_exits_non_zero(tmp_path, tiny_weights, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad.jpg").write_bytes(b"nope")
    code = main(["predict", str(folder), "--out", str(tmp_path / "out"), "--detector", str(tiny_weights),
                 "--segmenter", "box"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("bad.jpg") == 1, err  # said once, not as a failure and then as the error again
    assert "detseg: error: nothing could be processed: " in err and "failed:" not in err


def test_nothing_processed_of_many_lists_each_failure_once(tmp_path, tiny_weights, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"nope")
    code = main(["predict", str(folder), "--out", str(tmp_path / "out"), "--detector", str(tiny_weights),
                 "--segmenter", "box", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 3, err
    assert [line.startswith("failed: ") for line in err] == [True, True, False] and "a.jpg" in err[0] + err[1]
    assert err[2] == "detseg: error: nothing could be processed: all 2 inputs failed"


def test_cli_predict_with_yolo_and_grabcut(tmp_path, tiny_weights, tiny_dataset):
    code = main(["predict", str(tiny_dataset / "images" / "val"), "--out", str(tmp_path / "out"),
                 "--detector", str(tiny_weights), "--segmenter", "grabcut", "--conf", "0.001"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["processed"] == 3 and set(summary["seconds_per_stage"]) >= {"detect", "segment", "write"}
    assert len(list((tmp_path / "out" / "annotated").glob("*.jpg"))) == 3


def test_records_from_compact_masks_equal_records_from_dense_masks():
    import supervision as sv
    from supervision.detection.compact_mask import CompactMask

    from detseg.pipeline.outputs import detection_records
    from tests.data.test_polygons import _fragmented

    masks = np.zeros((4, 150, 200), bool)
    masks[0] = _fragmented(0)
    masks[1, 0:20, 180:200] = True  # touches the frame's corner
    masks[2, 40:90, 30:100] = True
    masks[2, 50:60, 40:50] = False  # a hole
    xyxy = np.array([[0, 0, 200, 150], [180, 0, 200, 20], [30, 40, 100, 90], [5, 5, 9, 9]], np.float32)
    dense = sv.Detections(xyxy=xyxy, confidence=np.full(4, 0.9), class_id=np.array([0, 1, 2, 0]), mask=masks)
    compact = sv.Detections(xyxy=xyxy, confidence=dense.confidence, class_id=dense.class_id,
                            mask=CompactMask.from_dense(masks, xyxy, (150, 200)))
    results, lines = detection_records(dense, 3, (150, 200))
    assert (results, lines) == detection_records(compact, 3, (150, 200))
    assert len(results) == 4 and len(lines) == 3  # the empty fourth mask has a result but no label line
    from detseg.data.polygons import rle_to_mask

    for entry, mask in zip(results, masks):
        assert np.array_equal(rle_to_mask(entry["segmentation"]), mask)


@pytest.mark.parametrize("writers", [2, 4])
def test_several_writer_threads_write_the_same_files_as_one(tmp_path, monkeypatch, writers):
    """A GPU machine writes a folder's outputs with several threads: same files, dataset included."""
    import detseg.pipeline.predict as predict

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i in range(9):
        cv2.imwrite(str(folder / ("sub" if i % 3 == 0 else "") / f"img{i}.jpg"), textured_image(48 + 8 * i, 64, i))
    (folder / "broken.jpg").write_bytes(b"not an image")
    runs = {}
    for n in (1, writers):
        monkeypatch.setattr(predict, "writer_threads", lambda n=n: n)
        out = tmp_path / f"out{n}"
        summary = run_predict(_pipe(), folder, out, RunOptions(progress=False, save_masks=True,
                                                               save_dataset=tmp_path / f"ds{n}", val_fraction=0.3))
        assert summary["processed"] == 9 and len(summary["failed"]) == 1
        runs[n] = {str(p.relative_to(tmp_path)).split("/", 1)[1]:  # autolabel.json names its folder and run's
                   p.read_bytes().replace(str(tmp_path / f"ds{n}").encode(), b"DS").replace(str(out).encode(), b"O")
                   for base in (out, tmp_path / f"ds{n}") for p in base.rglob("*")
                   if p.is_file() and p.name not in ("summary.json", "run.json")}
    assert len(runs[1]) > 40 and runs[1] == runs[writers]


def test_predictions_carry_the_segmenters_mask_score_beside_the_detectors_score(image_folder, tmp_path):
    import json

    from tests.helpers import FakeDetector

    class ScoredBoxes(BoxSegmenter):
        def __call__(self, image, dets):
            dets = super().__call__(image, dets)
            dets.data["mask_score"] = np.linspace(0.3, 0.6, len(dets))
            return dets

    run_predict(Pipeline(FakeDetector(), ScoredBoxes()), image_folder, tmp_path / "out", RunOptions(progress=False))
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert results and all(0.0 <= r["score"] <= 1.0 for r in results)
    assert sorted({round(r["mask_score"], 3) for r in results}) == [0.3, 0.6]


def test_images_json_keeps_each_images_path_within_the_source(tmp_path):
    """``a/x.jpg`` and ``b/x.jpg`` stay apart: file_name is the path under the source, output_name the flat name."""
    import json

    from tests.helpers import textured_image

    for sub in ("a", "b"):
        (tmp_path / "src" / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "src" / sub / "x.jpg"), textured_image(40, 60))
    run_predict(_pipe(), tmp_path / "src", tmp_path / "out", RunOptions(progress=False))
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert sorted(im["file_name"] for im in images) == ["a/x.jpg", "b/x.jpg"]
    for im in images:
        assert (tmp_path / "src" / im["file_name"]).is_file()
        assert (tmp_path / "out" / "labels" / f"{im['output_name']}.txt").is_file()


def test_run_json_is_written_from_the_run_options_and_resume_names_each_field_that_differs(image_folder, tmp_path):
    from dataclasses import replace

    from detseg.errors import InputError
    from detseg.pipeline.sources import resolve_source

    out = tmp_path / "out"
    options = RunOptions(progress=False, settings={"segmenter": "box", "conf": 0.25, "iou": 0.7})
    run_predict(_pipe(), image_folder, out, options)
    assert json.loads((out / "run.json").read_text()) == options.run_json(resolve_source(image_folder).record())
    # what does not describe the outputs (progress, notes, batch size) may change on --resume
    run_predict(_pipe(), image_folder, out, replace(options, resume=True, notes=("again",), batch_size=2))
    changed = replace(options, resume=True, stride=2, settings={"segmenter": "box", "conf": 0.5, "iou": 0.7})
    with pytest.raises(InputError, match=r"other settings \(stride: 1 -> 2, conf: 0.25 -> 0.5\)") as err:
        run_predict(_pipe(), image_folder, out, changed)
    assert "iou" not in str(err.value) and "segmenter" not in str(err.value)


def test_resume_accepts_a_run_json_from_before_the_source_was_structured(image_folder, tmp_path):
    """Earlier versions stored the source as the path given: the same folder resumes, another is refused."""
    from dataclasses import replace

    from detseg.errors import InputError

    out = tmp_path / "out"
    options = RunOptions(progress=False, settings={"segmenter": "box"})
    run_predict(_pipe(), image_folder, out, options)
    old = json.loads((out / "run.json").read_text())
    old["source"] = str(image_folder)
    (out / "run.json").write_text(json.dumps(old))
    run_predict(_pipe(), image_folder, out, replace(options, resume=True))
    assert json.loads((out / "run.json").read_text())["source"]["kind"] == "folder"
    old["source"] = str(tmp_path / "elsewhere")
    (out / "run.json").write_text(json.dumps(old))
    with pytest.raises(InputError, match="other settings \\(source: "):
        run_predict(_pipe(), image_folder, out, replace(options, resume=True))


def test_a_list_naming_one_image_twice_gives_one_image_entry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("a.jpg", textured_image(60, 80, 1))
    summary = run_predict(_pipe(), ["a.jpg", str(tmp_path / "a.jpg")], tmp_path / "out", RunOptions(progress=False))
    assert (summary["inputs"], summary["processed"]) == (1, 1)
    assert any("repeated path" in n for n in summary["notes"])
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [im["file_name"] for im in images["images"]] == ["a.jpg"]
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {p["image_id"] for p in predictions} == {images["images"][0]["id"]}


def test_a_list_of_paths_gets_ids_image_ids_and_resume_as_files_do_on_both_engines(tmp_path):
    """The Ray engine runs a list of paths as files; so does the local one: ids in order (not list places, which
    a repeated path leaves gaps in), --image-ids honoured, --resume skips finished inputs."""
    from dataclasses import replace

    for name in ("a", "b", "c"):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), textured_image(60, 80, ord(name)))
    paths = [str(tmp_path / n) for n in ("a.jpg", "b.jpg", "a.jpg", "c.jpg")]
    options = RunOptions(progress=False, image_ids={"c.jpg": 7})
    summary = run_predict(_pipe(), paths, tmp_path / "out", options)
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert {im["file_name"]: im["id"] for im in images} == {"a.jpg": 8, "b.jpg": 9, "c.jpg": 7}
    assert summary["kind"] == "arrays"  # summary and run.json say what was given
    again = run_predict(_pipe(), paths, tmp_path / "out", replace(options, resume=True))
    assert again["resumed_skipped"] == 3 and again["processed"] == 3


def test_resume_refuses_other_mask_outputs_and_ids_and_never_counts_an_earlier_runs_parts(image_folder, tmp_path):
    from dataclasses import replace

    from detseg.errors import InputError

    out = tmp_path / "out"
    options = RunOptions(progress=False, settings={"conf": 0.25})
    first = run_predict(_pipe(), image_folder, out, options)
    for changed, said in (({"save_masks": True}, "save_masks: False -> True"),
                          ({"min_mask_score": 0.8}, "min_mask_score: None -> 0.8"),
                          ({"categories": [{"id": 7, "name": "croissant"}]}, "categories: None ->"),
                          ({"image_ids": {"a.jpg": 5}}, "image_ids: None -> '1 ids, sha256 ")):
        with pytest.raises(InputError, match=re.escape(said)):
            run_predict(_pipe(), image_folder, out, replace(options, resume=True, **changed))

    class StopsAfterOne(FakeDetector):
        def __call__(self, image):
            if self.calls == 1:
                raise KeyboardInterrupt  # Ctrl-C on the second input
            return super().__call__(image)

    # --exist-ok with other settings, interrupted: a --resume with those settings must redo every other input
    other = replace(options, exist_ok=True, settings={"conf": 0.5})
    with pytest.raises(KeyboardInterrupt):
        run_predict(Pipeline(StopsAfterOne(), BoxSegmenter()), image_folder, out, other)
    again = run_predict(_pipe(), image_folder, out, replace(other, exist_ok=False, resume=True))
    assert again["resumed_skipped"] == 1 and again["processed"] == first["processed"]


def test_gray_bgra_and_16_bit_arrays_are_written_as_the_pipeline_saw_them(tmp_path):
    gray = textured_image(60, 80, 1)[..., 0]
    bgra = np.dstack([textured_image(60, 80, 2), np.full((60, 80), 255, np.uint8)])
    deep = textured_image(60, 80, 3).astype(np.uint16) * 257
    summary = run_predict(_pipe(), [gray, bgra, deep, np.zeros((0, 0, 3), np.uint8)], tmp_path / "out",
                          RunOptions(progress=False))
    assert summary["processed"] == 3 and len(summary["failed"]) == 1  # the empty array: its own error, the run goes on
    for i in range(3):
        annotated = cv2.imread(str(tmp_path / "out" / "annotated" / f"array_{i:06d}.jpg"))
        assert annotated.shape == (60, 80, 3)
    deep_jpg = cv2.imread(str(tmp_path / "out" / "annotated" / "array_000002.jpg")).astype(int)
    assert abs(deep_jpg[50:, :5].mean() - (deep[50:, :5] // 257).mean()) < 8  # scaled to 8 bits, not saturated


def test_a_list_may_hold_pil_images_and_anything_else_is_that_items_failure(tmp_path):
    pil = Image.fromarray(textured_image(60, 80, 4)[..., ::-1])  # RGB, as PIL holds it
    summary = run_predict(_pipe(), [pil, 42], tmp_path / "out", RunOptions(progress=False))
    assert summary["processed"] == 1 and len(summary["failed"]) == 1
    assert "got int" in summary["failed"][0]["error"]
    assert cv2.imread(str(tmp_path / "out" / "annotated" / "array_000000.jpg")).shape == (60, 80, 3)


def test_a_video_whose_container_guesses_its_rate_is_read_at_30_fps_with_no_frame_count(tmp_path, monkeypatch):
    import supervision as sv

    from detseg.pipeline.sources import resolve_source

    video = _video(tmp_path / "clip.mp4")
    real = sv.VideoInfo.from_video_path

    def webm_like(path):  # what OpenCV reports for a WebM without an average frame rate
        info = real(path)
        return sv.VideoInfo(width=info.width, height=info.height, fps=1000, total_frames=-9223372036854775807)

    monkeypatch.setattr(sv.VideoInfo, "from_video_path", staticmethod(webm_like))
    src = resolve_source(video)
    assert (src.video.fps, src.video.frames) == (30.0, 0)
    summary = run_predict(_pipe(), video, tmp_path / "out", RunOptions(progress=False))
    assert summary["processed"] == 9 and summary["failed"] == []  # no "truncated" failure from a bogus count
    assert video_info(tmp_path / "out" / "annotated.mp4")["fps"] == 30.0
