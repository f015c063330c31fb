"""The detseg command touches no network: ultralytics' online check and usage events are off for its process.

Each case runs in a fresh interpreter whose socket layer records and refuses every lookup and connection.
"""

import json
import subprocess
import sys

_BLOCKED_RUN = """
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network blocked by the test")
socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = lambda self, *a: refuse(*a)
socket.socket.connect_ex = lambda self, *a: refuse(*a)
rc = 0
if sys.argv[1] == "cli":
    from detseg.pipeline.cli import main
    rc = main(sys.argv[2:])
else:  # the control: ultralytics imported as a library, without detseg's settings
    import ultralytics.utils
print("ATTEMPTS " + json.dumps(attempts))
sys.exit(rc)
"""


def _run_blocked(*args, env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if k != "YOLO_OFFLINE"}
    env.update(env_extra or {})
    res = subprocess.run([sys.executable, "-c", _BLOCKED_RUN, *args], capture_output=True, text=True, env=env,
                         timeout=300)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("ATTEMPTS ")]
    assert line, res.stdout + res.stderr
    return res, json.loads(line[-1][len("ATTEMPTS "):])


def test_the_control_sees_ultralytics_reach_for_the_network():
    _, attempts = _run_blocked("library")
    assert attempts, "the socket patch would not notice a lookup: the test below could not fail"


def test_predict_val_and_train_attempt_no_connection(tiny_weights, tiny_dataset, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    commands = {
        "predict": ("cli", "predict", str(tiny_dataset / "images" / "val"), "--detector", str(tiny_weights),
                    "--segmenter", "box", "--imgsz", "64", "--quiet", "--out", str(tmp_path / "pred")),
        "val": ("cli", "val", "--weights", str(tiny_weights), "--data", str(tiny_dataset / "data.yaml"), "--imgsz",
                "64", "--device", "cpu", "--out", str(tmp_path / "val")),
        "train": ("cli", "train", "--data", str(tiny_dataset / "data.yaml"), "--model", "yolov8n.yaml", "--epochs",
                  "1", "--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0", "--out",
                  str(tmp_path / "train")),
    }
    with ThreadPoolExecutor(len(commands)) as pool:  # three interpreters at once: most of each is start-up
        results = dict(zip(commands, pool.map(lambda argv: _run_blocked(*argv), commands.values())))
    for name, (res, attempts) in results.items():
        assert res.returncode == 0, f"{name}: {res.stderr}"
        assert attempts == [], name


def test_a_user_who_set_yolo_offline_keeps_their_value(monkeypatch):
    from detseg import assets

    monkeypatch.setattr(assets, "_offline_set_here", False)
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    assets.silence_ultralytics_network()
    assert assets.os.environ["YOLO_OFFLINE"] == "0"
    with assets._online_for_this_download():
        assert assets.os.environ["YOLO_OFFLINE"] == "0"  # not ours to lift


def test_a_download_the_user_asked_for_is_allowed_online(monkeypatch):
    from detseg import assets

    monkeypatch.setattr(assets, "_offline_set_here", False)
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    assets.silence_ultralytics_network()
    assert assets.os.environ["YOLO_OFFLINE"] == "true"
    with assets._online_for_this_download():
        assert "YOLO_OFFLINE" not in assets.os.environ
    assert assets.os.environ["YOLO_OFFLINE"] == "true"
