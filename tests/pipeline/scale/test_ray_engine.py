"""``--engine ray``: the same files as the local engine, bad inputs reported, --resume, a dead actor
retried, and one clear line without Ray. One local Ray instance serves the whole module."""

import json
import os
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from detseg.errors import InputError
from detseg.pipeline import Pipeline
from detseg.pipeline.cli import main
from detseg.pipeline.predict import RunOptions, run_predict
from detseg.segmenter import GrabCutSegmenter
from tests.helpers import FakeDetector, textured_image

ROOT = Path(__file__).resolve().parents[3]
TIMINGS = {"seconds_per_stage", "seconds_total", "images_per_second", "out", "engine", "workers"}


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    # the workers import the test helpers (the pickled fake detector) as the driver does
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "YOLO_OFFLINE": "true"}})
    yield ray
    ray.shutdown()


@pytest.fixture
def folder(tmp_path):
    """Six small images in two folders and a corrupt file."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(6):
        cv2.imwrite(str(src / ("sub" if i % 2 else "") / f"img{i}.jpg"), textured_image(48 + 8 * i, 64, i))
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8garbage" * 10)
    return src


def _pipe():
    return Pipeline(FakeDetector(), GrabCutSegmenter())


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "summary.json"}


def _summary(out: Path) -> dict:
    return {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k not in TIMINGS}


def test_ray_engine_writes_the_same_files_as_the_local_engine(ray_instance, folder, tmp_path):
    from detseg.pipeline.scale.ray_engine import RayOptions, predict

    local = run_predict(_pipe(), folder, tmp_path / "local", RunOptions(progress=False, save_masks=True))
    summary = predict(_pipe(), folder, tmp_path / "ray", RunOptions(save_masks=True, progress=False),
                      RayOptions(workers=2))
    files = _files(tmp_path / "ray")
    assert files == _files(tmp_path / "local")  # every file byte for byte
    assert len([f for f in files if f.startswith("annotated/")]) == 6
    assert _summary(tmp_path / "ray") == _summary(tmp_path / "local")
    assert summary["engine"] == "ray" and summary["processed"] == local["processed"] == 6
    # the corrupt file is reported, as locally, and the rest processed
    assert [Path(f["path"]).name for f in summary["failed"]] == ["corrupt.jpg"]
    assert "not a readable image" in summary["failed"][0]["error"]
    assert not list((tmp_path / "ray").rglob(".*"))  # no temporaries, no lock left


def test_resume_processes_only_the_missing_inputs(ray_instance, folder, tmp_path):
    from detseg.pipeline.scale.ray_engine import predict

    out = tmp_path / "ray"
    predict(_pipe(), folder, out, RunOptions(progress=False))
    before = _files(out)
    # an interrupted run: two inputs never finished (their part file, written last, is missing)
    for name in ("img0", "sub__img3"):
        (out / "parts" / f"{name}.json").unlink()
        (out / "annotated" / f"{name}.jpg").unlink()
    (out / "labels" / "img2.txt").write_text("kept: not processed again\n")  # a finished input's file
    summary = predict(_pipe(), folder, out, RunOptions(resume=True, progress=False))
    assert summary["resumed_skipped"] == 4 and summary["processed"] == 6
    assert (out / "labels" / "img2.txt").read_text() == "kept: not processed again\n"
    after = _files(out)
    assert {k: v for k, v in after.items() if k != "labels/img2.txt"} == \
        {k: v for k, v in before.items() if k != "labels/img2.txt"}


class DiesOnce(FakeDetector):
    """Kills its whole worker process the first time it sees a 72-pixel-high image (img3)."""

    def __init__(self, flag):
        super().__init__()
        self.flag = str(flag)

    def __call__(self, image):
        if image.shape[0] == 72:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os._exit(1)  # the actor dies mid-batch: Ray restarts it and retries the batch
            except FileExistsError:
                pass
        return super().__call__(image)


def test_an_actor_that_dies_is_restarted_and_nothing_is_lost_or_duplicated(ray_instance, folder, tmp_path):
    from detseg.pipeline.scale.ray_engine import predict

    flag = tmp_path / "died"
    run_predict(_pipe(), folder, tmp_path / "local", RunOptions(progress=False))
    summary = predict(Pipeline(DiesOnce(flag), GrabCutSegmenter()), folder, tmp_path / "ray",
                      RunOptions(batch_size=2, progress=False))
    assert flag.exists()  # it did die
    assert summary["processed"] == 6 and len(summary["failed"]) == 1
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    ids = [r["image_id"] for r in json.loads((tmp_path / "ray" / "predictions.json").read_text())]
    assert sorted(Counter(ids).values()) == [2] * 6  # two boxes for each of the six images, none twice


def test_cli_engine_ray_matches_the_local_cli(ray_instance, folder, tmp_path, capsys):
    args = [str(folder), "--segmenter", "box", "--quiet", "--imgsz", "64"]
    assert main(["predict", *args, "--out", str(tmp_path / "local")]) == 0
    assert main(["predict", *args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 0
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["engine"] == "ray"


def test_cli_engine_ray_keeps_a_seg_detectors_own_masks_as_the_local_cli(ray_instance, structured_seg_weights,
                                                                         folder, tmp_path, capsys):
    args = [str(folder), "--detector", str(structured_seg_weights), "--segmenter", "detector", "--conf", "0.0001",
            "--imgsz", "64", "--quiet"]
    assert main(["predict", *args, "--out", str(tmp_path / "local")]) == 0
    assert main(["predict", *args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 0
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert json.loads((tmp_path / "ray" / "predictions.json").read_text())  # masks were made, and match


def test_cli_engine_ray_notes_a_seg_detectors_own_masks_as_the_local_cli(ray_instance, structured_seg_weights,
                                                                          folder, tmp_path):
    args = [str(folder), "--detector", str(structured_seg_weights), "--segmenter", "box", "--imgsz", "64", "--quiet"]
    assert main(["predict", *args, "--out", str(tmp_path / "local")]) == 0
    assert main(["predict", *args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 0
    notes = {engine: json.loads((tmp_path / engine / "summary.json").read_text())["notes"]
             for engine in ("local", "ray")}
    assert notes["ray"] == notes["local"]
    assert any("--segmenter detector keeps its own masks" in note for note in notes["ray"])


def test_cli_engine_ray_refuses_a_video_in_one_line(ray_instance, tmp_path, capsys):
    import supervision as sv

    video = tmp_path / "clip.mp4"
    with sv.VideoSink(str(video), sv.VideoInfo(width=64, height=48, fps=5)) as sink:
        for i in range(3):
            sink.write_frame(textured_image(48, 64, i))
    assert main(["predict", str(video), "--out", str(tmp_path / "out"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--engine ray takes images" in err[0]


def test_python_api_refuses_arrays(ray_instance, tmp_path):
    from detseg.pipeline.scale.ray_engine import predict

    with pytest.raises(InputError, match="--engine local"):
        predict(_pipe(), [np.zeros((8, 8, 3), np.uint8)], tmp_path / "out", RunOptions(progress=False))


def test_without_ray_the_cli_says_how_to_install_it(folder, tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["predict", str(folder), "--out", str(tmp_path / "out"), "--engine", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert 'pip install "detseg[ray]"' in err[0]
    assert not (tmp_path / "out" / "summary.json").exists()


LISTENERS = """
import json, os, psutil, ray
from detseg.pipeline.scale.ray_engine import _start_ray
assert _start_ray(ray, None, 1, 1)
me = psutil.Process(os.getpid())
ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
found = sorted({c.laddr.ip for c in psutil.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.pid in ours})
ray.shutdown()
print(json.dumps(found))
"""


def test_a_local_instance_listens_on_the_loopback_address_only():
    import subprocess

    pytest.importorskip("ray")
    pytest.importorskip("psutil")
    res = subprocess.run([sys.executable, "-c", LISTENERS], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "RAY_ADDRESS": ""})
    assert res.returncode == 0, res.stderr[-2000:]
    addresses = json.loads(res.stdout.strip().splitlines()[-1])
    assert addresses  # Ray's servers were found: GCS, raylet, workers
    assert all(a in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for a in addresses), addresses


def test_a_ray_address_where_nothing_listens_fails_in_one_line_within_the_timeout():
    import socket
    import time

    from detseg.pipeline.scale.ray_engine import _check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _check_reachable(f"127.0.0.1:{port}")  # something listens: no error
        _check_reachable(f"ray://127.0.0.1:{port}")
    start = time.perf_counter()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):  # closed now
        with pytest.raises(InputError, match="no Ray cluster answers") as err:
            _check_reachable(address, timeout=2)
        assert "\n" not in str(err.value) and address in str(err.value)
    assert time.perf_counter() - start < 10
    with pytest.raises(InputError, match="expected auto, host:port"):
        _check_reachable("not-an-address")
    _check_reachable("auto")  # Ray finds the cluster itself


def test_cli_ray_address_where_nothing_listens_is_one_line(folder, tmp_path, capsys):
    import socket

    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["predict", str(folder), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}",
                 "--segmenter", "box", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("detseg: error:") and "no Ray cluster answers" in err[-1]


def test_run_options_the_ray_engine_does_not_implement_are_refused_by_name(folder, tmp_path):
    from detseg.pipeline.scale.ray_engine import predict

    with pytest.raises(InputError, match=r"^stride, save_dataset are not supported by the Ray engine"):
        predict(_pipe(), folder, tmp_path / "out", RunOptions(stride=2, save_dataset=tmp_path / "ds"))
    with pytest.raises(InputError, match=r"^min_mask_score is not supported"):  # 0 is given too
        predict(_pipe(), folder, tmp_path / "out", RunOptions(min_mask_score=0))
    assert not (tmp_path / "out").exists()


def test_relative_paths_reach_workers_whose_working_directory_is_elsewhere(ray_instance, folder, tmp_path,
                                                                          monkeypatch, capsys):
    """A worker on a cluster node does not share the driver's working directory; here the workers keep the one
    the instance started in while the driver moves: inputs, --out and a local weights file go as absolute paths."""
    from detseg.detectors import DEFAULT_WEIGHTS

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "det.pt").write_bytes(DEFAULT_WEIGHTS.read_bytes())
    args = ["--segmenter", "box", "--quiet", "--imgsz", "64", "--model", "w/det.pt"]
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "in", *args, "--out", "local"]) == 0
    assert main(["predict", "in", *args, "--out", "ray", "--engine", "ray", "--workers", "2"]) == 0
    assert "failed: " in capsys.readouterr().err  # the corrupt file, as locally, and only it
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    failed = json.loads((tmp_path / "ray" / "summary.json").read_text())["failed"]
    assert [f["path"] for f in failed] == [os.path.join("in", "corrupt.jpg")]  # named as given
