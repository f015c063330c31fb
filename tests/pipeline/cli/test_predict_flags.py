"""`detseg predict` flags named as ultralytics names them, checked once up front."""

import json

import cv2
import pytest

from detseg.detectors.yolo import DEFAULT_CONF
from detseg.pipeline.cli import main
from tests.helpers import textured_image


@pytest.fixture()
def one_image(tmp_path):
    path = tmp_path / "in" / "a.jpg"
    path.parent.mkdir()
    cv2.imwrite(str(path), textured_image(96, 128))
    return path


def test_help_shows_defaults_and_the_ultralytics_names(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--conf", "--iou", "--imgsz", "--max-det", "--agnostic-nms", "--no-agnostic-nms", "-q", "-v",
                 "--vid-stride"):
        assert flag in text
    assert f"(default: {DEFAULT_CONF})" in text and "(default: 300)" in text
    assert "(default: None)" not in text and "(default: False)" not in text  # nothing said twice or for nothing


def test_every_predict_option_has_help_and_one_default_at_most():
    from detseg.pipeline.cli import build_parser

    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    for action in predict._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    text = predict.format_help()
    for block in text.split("\n  -")[1:]:
        assert " ".join(block.split()).count("(default") <= 1, block


@pytest.mark.parametrize("flags, message", [(["--conf", "1.5"], "--conf must be in"),
                                            (["--iou", "-0.1"], "--iou must be in"),
                                            (["--max-det", "0"], "--max-det must be"),
                                            (["--imgsz", "8"], "--imgsz must be in [32, 8192]")])
def test_bad_values_fail_once_before_any_input(one_image, tmp_path, capsys, flags, message):
    code = main(["predict", str(one_image), "--out", str(tmp_path / "out"), "--segmenter", "box", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("error") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_detector_flags_reach_the_detector(one_image, tmp_path, monkeypatch):
    seen = {}
    from detseg.detectors import yolo

    original = yolo.YoloDetector.__init__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(yolo.YoloDetector, "__init__", spy)
    code = main(["predict", str(one_image), "--out", str(tmp_path / "out"), "--segmenter", "box", "-q",
                 "--iou", "0.5", "--imgsz", "320", "--max-det", "7", "--no-agnostic-nms", "--conf", "0.4",
                 "--augment"])
    assert code == 0
    got = (seen["iou"], seen["imgsz"], seen["max_det"], seen["agnostic_nms"], seen["conf"], seen["augment"])
    assert got == (0.5, 320, 7, False, 0.4, True)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["processed"] == 1
    assert json.loads((tmp_path / "out" / "run.json").read_text())["augment"] is True


@pytest.mark.parametrize("key, default", [("augment", False), ("sam_imgsz", None), ("save_masks", False),
                                          ("min_mask_score", None), ("categories", None), ("image_ids", None)])
def test_a_run_made_before_a_setting_existed_resumes_without_it(one_image, tmp_path, key, default):
    out = tmp_path / "out"
    run = ["predict", str(one_image), "--out", str(out), "--segmenter", "box", "-q"]
    assert main(run) == 0
    settings = json.loads((out / "run.json").read_text())
    assert settings.pop(key) is default
    (out / "run.json").write_text(json.dumps(settings))  # as a run.json written before the flag
    assert main([*run, "--resume"]) == 0


def test_a_run_with_augment_resumes_only_with_it(one_image, tmp_path):
    out = tmp_path / "out"
    run = ["predict", str(one_image), "--out", str(out), "--segmenter", "box", "-q"]
    assert main(run) == 0
    assert main([*run, "--resume", "--augment"]) != 0  # another setting: refused
    assert main([*run, "--augment", "--exist-ok"]) == 0
    assert main([*run, "--resume"]) != 0  # made with --augment: resuming without it is refused too


def test_quiet_prints_no_progress_and_verbose_names_each_failure(one_image, tmp_path, capsys):
    (one_image.parent / "broken.jpg").write_bytes(b"not an image")
    main(["predict", str(one_image.parent), "--out", str(tmp_path / "q"), "--segmenter", "box", "-q"])
    quiet = capsys.readouterr().err
    assert "predict" not in quiet and "segmenter:" not in quiet
    main(["predict", str(one_image.parent), "--out", str(tmp_path / "v"), "--segmenter", "box", "-v"])
    assert capsys.readouterr().err.count("broken.jpg") >= 2  # as it happens, and in the final list


@pytest.mark.parametrize("command, old, dest", [(["predict", "x.jpg", "--out", "o"], "--detector", "detector"),
                                                 (["evaluate", "--data", "d", "--out", "o"], "--detector", "detector"),
                                                 (["val", "--data", "d"], "--weights", "weights"),
                                                 (["export"], "--weights", "weights")])
def test_every_command_takes_model_as_ultralytics_names_it_and_keeps_the_old_name(command, old, dest):
    from detseg.pipeline.cli import build_parser

    parser = build_parser()
    for flag in ("--model", old):
        args = parser.parse_args([*command, flag, "w.pt"])
        assert getattr(args, dest) == "w.pt"


@pytest.mark.parametrize("module", ["detseg", "detseg.pipeline.cli"])
def test_python_dash_m_runs_the_command(module):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", module, "predict", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--conf" in done.stdout and "--imgsz" in done.stdout


def test_sam_imgsz_reaches_sam_and_is_recorded(one_image, tmp_path, capsys, mobile_sam_checkpoint):
    out = tmp_path / "out"
    run = ["predict", str(one_image), "--out", str(out), "--segmenter", str(mobile_sam_checkpoint), "--device", "cpu",
           "--conf", "0.01"]
    assert main([*run, "--sam-imgsz", "512"]) == 0
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("segmenter:")]
    assert len(note) == 1 and note[0].startswith("segmenter: mobile_sam from") and note[0].endswith("at 512 px")
    assert json.loads((out / "run.json").read_text())["sam_imgsz"] == 512
    assert main([*run, "--resume"]) != 0  # made at 512: SAM's own 1024 is another setting


@pytest.mark.parametrize("segmenter, flags, message", [
    ("box", ["--sam-imgsz", "512"], "sam_imgsz 512 is for SAM segmenters"),
    ("SAM", ["--sam-imgsz", "500"], "--sam-imgsz must be a multiple of 64"),
    ("SAM", ["--sam-imgsz", "0"], "--sam-imgsz must be"),
])
def test_bad_sam_imgsz_is_one_clear_error(one_image, tmp_path, capsys, mobile_sam_checkpoint, segmenter, flags,
                                          message):
    segmenter = str(mobile_sam_checkpoint) if segmenter == "SAM" else segmenter
    code = main(["predict", str(one_image), "--out", str(tmp_path / "out"), "--segmenter", segmenter, "--device",
                 "cpu", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not list((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize("flags", [["--multimask", "best"], ["--precision", "bf16"], ["--min-mask-score", "0.5"]])
def test_keyframe_mode_refuses_options_it_would_not_use(tmp_path, capsys, flags):
    from detseg.data.synth.synth_video import write_video

    video = write_video(tmp_path / "clip.mp4", [textured_image(64, 96, i) for i in range(2)], 10)
    code = main(["predict", str(video), "--out", str(tmp_path / "out"), "--keyframe-every", "2", *flags])
    err = capsys.readouterr().err
    assert code == 2 and f"{flags[0]} {flags[1]} does not apply to --keyframe-every" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, default", [
    (["evaluate"], "(default: gt)"), (["evaluate"], "(default: 0.001)"), (["val"], "(default: 16)"),
    (["data", "synth"], "(default: 100)"), (["data", "synth-video"], "(default: 60)"),
    (["train"], "(default: runs/train)"),
])
def test_every_subcommands_help_shows_its_defaults(argv, default, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    assert default in " ".join(capsys.readouterr().out.split())
