"""Weights files whose pickle would run code are refused before anything unpickles them."""

import os
import pickle

import pytest
import torch

from detseg.errors import WeightsError
from detseg.pickle_scan import TRUST_ENV, check_weights_file, unsafe_globals


class _Touch:
    """Unpickling this runs ``touch PATH``: what a crafted checkpoint does."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


class _CallsUltralyticsFunction:
    def __reduce__(self):
        from ultralytics.utils.checks import check_requirements

        return check_requirements, ("definitely-not-a-package",)


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Touch(marker), "train_args": {}}, path)
    return path, marker


def test_a_checkpoint_that_runs_a_command_is_refused_naming_the_global(evil, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = evil
    assert unsafe_globals(path) == [f"{os.system.__module__}.system"]
    with pytest.raises(WeightsError, match=r"refusing to load .*evil\.pt: its pickle imports (posix|nt)\.system"):
        check_weights_file(path)
    assert not marker.exists()


def test_every_loader_refuses_it_before_ultralytics_unpickles(evil, monkeypatch, tiny_dataset, tmp_path):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = evil
    from detseg.detectors import YoloDetector
    from detseg.detectors.init_weights import read_tensors
    from detseg.detectors.train import evaluate_detector, load_yolo, train

    with pytest.raises(WeightsError, match="refusing to load"):
        YoloDetector(path).load()
    with pytest.raises(WeightsError, match="refusing to load"):
        load_yolo(path)
    with pytest.raises(WeightsError, match="refusing to load"):
        evaluate_detector(path, tiny_dataset / "data.yaml", out=tmp_path / "val")
    with pytest.raises(WeightsError, match="refusing to load"):
        train(tiny_dataset / "data.yaml", model=path, epochs=1, out=tmp_path / "run")
    with pytest.raises(WeightsError, match="refusing to load"):
        read_tensors(path)  # --init: not a plain state dict, so it would need a full unpickle
    assert not marker.exists()


def test_the_cli_says_one_line_and_runs_nothing(evil, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = evil
    from detseg.pipeline.cli import main

    rc = main(["predict", str(tmp_path), "--detector", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "refusing to load" in err and "--trust-weights" in err and "Traceback" not in err
    assert not marker.exists()


def test_functions_of_allowed_modules_are_not_allowed(tmp_path):
    torch.save({"model": _CallsUltralyticsFunction()}, tmp_path / "f.pt")
    assert unsafe_globals(tmp_path / "f.pt") == ["ultralytics.utils.checks.check_requirements"]


def test_a_raw_pickle_cannot_be_scanned_and_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with (tmp_path / "raw.pt").open("wb") as f:
        pickle.dump(_Touch(tmp_path / "pwned"), f)
    with pytest.raises(WeightsError, match="not a torch zip checkpoint"):
        check_weights_file(tmp_path / "raw.pt")
    assert not (tmp_path / "pwned").exists()


def test_real_checkpoints_pass(tiny_weights):
    from detseg.detectors import DEFAULT_WEIGHTS

    assert unsafe_globals(DEFAULT_WEIGHTS) == []
    assert unsafe_globals(tiny_weights) == []  # written by ultralytics' trainer here


def test_trust_skips_the_check(evil, monkeypatch):
    path, marker = evil
    monkeypatch.setenv(TRUST_ENV, "1")
    check_weights_file(path)  # no error; nothing is loaded by the check itself
    assert not marker.exists()


def test_state_dicts_and_non_pickles_pass(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "sd.pt")
    check_weights_file(tmp_path / "sd.pt")
    (tmp_path / "m.yaml").write_text("nc: 3\n")
    check_weights_file(tmp_path / "m.yaml")


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_trust_weights_flag_is_accepted_before_or_after_the_command(where, monkeypatch, tmp_path, capsys):
    from detseg.pickle_scan import trusted
    from detseg.pipeline.cli import main

    monkeypatch.setenv(TRUST_ENV, "0")  # restored when the test ends
    assert not trusted()
    args = ["data", "check", str(tmp_path / "absent")]
    rc = main(["--trust-weights", *args] if where == "before" else [*args, "--trust-weights"])
    assert rc == 2 and "unrecognized" not in capsys.readouterr().err
    assert trusted()


def test_a_file_is_scanned_once_until_it_changes(tiny_weights, tmp_path, monkeypatch):
    """Resolving and then loading weights (train, val, export) reads the pickle once, not per step."""
    import shutil

    from detseg import pickle_scan

    weights = tmp_path / "w.pt"
    shutil.copy(tiny_weights, weights)
    calls = []
    real = pickle_scan.unsafe_globals
    monkeypatch.setattr(pickle_scan, "unsafe_globals", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    from detseg.assets import resolve_weights
    from detseg.detectors.train import load_yolo

    load_yolo(resolve_weights(weights))
    assert len(calls) == 1
    weights.write_bytes(weights.read_bytes() + b"\0")  # changed: scanned again
    pickle_scan.check_weights_file(weights)
    assert len(calls) == 2


class _CallsDetectionModel:
    """Calls an allowed ultralytics class instead of rebuilding a saved object: its model builder evaluates
    the config's ``activation`` string, so the file runs code although it imports only ultralytics names."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        from ultralytics.nn.tasks import DetectionModel

        cfg = {"nc": 1, "activation": f"__import__('pathlib').Path({self.marker!r}).touch() or torch.nn.SiLU()",
               "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[-1, 1, "Detect", ["nc"]]]}
        return DetectionModel, (cfg,)


def test_a_checkpoint_that_calls_an_ultralytics_class_runs_nothing(tmp_path, monkeypatch):
    from detseg.detectors import YoloDetector
    from detseg.detectors.checkpoint import load, load_yolo

    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / "pwned"
    path = tmp_path / "calls.pt"
    torch.save({"model": _CallsDetectionModel(marker), "train_args": {}}, path)
    assert unsafe_globals(path) == []  # the global scan alone lets it through: only ultralytics names
    for loader in (load_yolo, load, lambda p: YoloDetector(p, device="cpu").load()):
        with pytest.raises(WeightsError):
            loader(path)
        assert not marker.exists(), loader  # ultralytics' restricted mode built it without eval: refused
    import ultralytics.nn.tasks as tasks

    assert tasks.SAFE_LOAD is False  # restored after each load


def _legacy_checkpoint(path, monkeypatch, legacy: str):
    """A checkpoint naming the globals of an older ultralytics, as ultralytics' own loader meets them:
    ``"v10"``: the model's class is ``ultralytics.nn.tasks.YOLOv10DetectionModel`` (yolov10n.pt);
    ``"8.0"``: the model's ``args`` are an ``ultralytics.yolo.utils.IterableSimpleNamespace`` (8.0-era files)."""
    import sys
    import types

    import ultralytics.nn.tasks as tasks
    from ultralytics import YOLO
    from ultralytics.utils import IterableSimpleNamespace

    model = YOLO("yolov8n.yaml").model
    if legacy == "v10":
        cls = type("YOLOv10DetectionModel", (tasks.DetectionModel,), {"__module__": "ultralytics.nn.tasks"})
        monkeypatch.setattr(tasks, "YOLOv10DetectionModel", cls, raising=False)
        model.__class__ = cls
    else:
        module = types.ModuleType("ultralytics.yolo.utils")
        module.IterableSimpleNamespace = type("IterableSimpleNamespace", (IterableSimpleNamespace,),
                                              {"__module__": "ultralytics.yolo.utils"})
        monkeypatch.setitem(sys.modules, "ultralytics.yolo.utils", module)
        model.args = module.IterableSimpleNamespace(imgsz=64, task="detect")
    torch.save({"model": model.half(), "epoch": -1, "train_args": {"imgsz": 64}, "optimizer": None}, path)
    monkeypatch.undo()  # the old names are gone again, as in a process that never made the file


@pytest.mark.parametrize("legacy", ["v10", "8.0"])
def test_checkpoints_with_names_ultralytics_maps_load_without_trust(legacy, tmp_path, monkeypatch):
    from detseg.detectors.checkpoint import load_yolo

    path = tmp_path / f"{legacy}.pt"
    _legacy_checkpoint(path, monkeypatch, legacy)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    assert unsafe_globals(path) == []  # judged as what ultralytics loads them as
    assert type(load_yolo(path).model).__name__ == "DetectionModel"


def test_a_function_under_an_old_module_name_is_still_refused(tmp_path, monkeypatch):
    import sys
    import types

    module = types.ModuleType("ultralytics.yolo.utils.checks")

    def check_requirements(*args):
        return args

    check_requirements.__module__ = module.__name__
    check_requirements.__qualname__ = "check_requirements"
    module.check_requirements = check_requirements
    monkeypatch.setitem(sys.modules, module.__name__, module)
    torch.save({"model": check_requirements}, tmp_path / "f.pt")
    assert unsafe_globals(tmp_path / "f.pt") == ["ultralytics.yolo.utils.checks.check_requirements"]


def test_a_yolov9e_style_silence_layer_is_judged_as_the_identity_it_loads_as(tmp_path, monkeypatch):
    import ultralytics.nn.modules.block as block

    silence = type("Silence", (torch.nn.Identity,), {"__module__": "ultralytics.nn.modules.block"})
    monkeypatch.setattr(block, "Silence", silence, raising=False)
    torch.save({"model": torch.nn.Sequential(silence())}, tmp_path / "v9.pt")
    monkeypatch.undo()
    assert unsafe_globals(tmp_path / "v9.pt") == []
