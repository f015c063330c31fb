import json
import shutil
from pathlib import Path

import pytest
import yaml

from detseg.detectors.train import resolve_data_yaml, train
from detseg.errors import DatasetError, WeightsError


def test_one_epoch_offline_writes_weights_metrics_and_command(trained_run):
    run = trained_run.run_dir
    assert trained_run.best_weights.is_file() and trained_run.best_weights.stat().st_size > 1000
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"mAP50", "mAP50-95", "per_class"}
    assert 0.0 <= metrics["mAP50-95"] <= metrics["mAP50"] <= 1.0
    assert set(metrics["per_class"]) <= {"croissant", "cookie", "cupcake"}
    assert (run / "command.txt").read_text().strip()
    assert (run / "results.csv").is_file()
    assert not (run / "val").exists()  # no empty folder from a second validation


def test_training_validates_best_once_and_records_that(tiny_dataset, tmp_path, monkeypatch):
    import detseg.detectors.train as train_module

    def second_validation(*args, **kwargs):
        raise AssertionError("best.pt validated again after ultralytics' own final validation")

    monkeypatch.setattr(train_module, "evaluate_detector", second_validation)
    result = train(tiny_dataset / "data.yaml", model="yolov8n.yaml", epochs=1, imgsz=64, batch=4, device="cpu",
                   out=tmp_path / "run", workers=0, plots=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["mAP50-95"] <= metrics["mAP50"] <= 1.0 and metrics["weights"].endswith("best.pt")


def test_data_yaml_is_resolved_to_absolute_paths(tiny_dataset, tmp_path, monkeypatch):
    # as data/food.yaml: a relative `path` next to the yaml's folder, run from elsewhere
    (tmp_path / "cfg").mkdir()
    monkeypatch.chdir(tmp_path / "cfg")
    shutil.copytree(tiny_dataset, tmp_path / "datasets" / "food")
    src = tmp_path / "cfg" / "food.yaml"
    src.write_text("path: datasets/food\ntrain: images/train\nval: images/val\nnames: {0: a, 1: b, 2: c}\n")
    resolved = yaml.safe_load(resolve_data_yaml(src, tmp_path / "out").read_text())
    assert resolved["path"] == str((tmp_path / "datasets" / "food").resolve())
    assert resolved["train"] == str((tmp_path / "datasets" / "food" / "images" / "train").resolve())


def test_roboflow_style_paths_are_resolved(tiny_dataset, tmp_path):
    root = tmp_path / "export"
    shutil.copytree(tiny_dataset / "images" / "train", root / "train" / "images")
    shutil.copytree(tiny_dataset / "labels" / "train", root / "train" / "labels")
    shutil.copytree(tiny_dataset / "images" / "val", root / "valid" / "images")
    shutil.copytree(tiny_dataset / "labels" / "val", root / "valid" / "labels")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 3\nnames: [a, b, c]\n")
    resolved = yaml.safe_load(resolve_data_yaml(root / "data.yaml", tmp_path / "out").read_text())
    assert resolved["val"] == str((root / "valid" / "images").resolve())


def test_missing_dataset_file(tmp_path):
    with pytest.raises(DatasetError, match="dataset file not found"):
        train(tmp_path / "nope.yaml", epochs=1, out=tmp_path / "run")


def test_missing_split_folder(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DatasetError, match="train folder 'images/train' not found"):
        train(tmp_path / "data.yaml", epochs=1, out=tmp_path / "run")


def test_pretrained_name_offline_suggests_yaml(tiny_dataset, tmp_path, offline):
    with pytest.raises(WeightsError, match="yolov8n.pt is not in .* could not be downloaded"):
        train(tiny_dataset / "data.yaml", model="yolov8n.pt", epochs=1, out=tmp_path / "run")


def test_detseg_val_on_a_split_without_train(tiny_dataset, tiny_weights, tmp_path, capsys):
    """A held-out split generated alone (only `test:` in data.yaml) can be evaluated."""
    from detseg.data.synth.generate import generate_dataset
    from detseg.pipeline.cli import main

    generate_dataset(tmp_path / "held", {"test": 2}, seed=99, imgsz=128, progress=False)
    code = main(["val", "--weights", str(tiny_weights), "--data", str(tmp_path / "held" / "data.yaml"),
                 "--split", "test", "--imgsz", "64", "--device", "cpu", "--out", str(tmp_path / "v")])
    assert code == 0 and "mAP50-95" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "v" / "metrics_test.json").read_text())
    assert metrics["split"] == "test" and 0 <= metrics["mAP50-95"] <= 1


def test_a_finished_run_is_not_resumed(trained_run):
    """ultralytics strips last.pt when a run ends; resume=True on it would start a new run elsewhere."""
    with pytest.raises(WeightsError, match="has finished .* nothing to resume"):
        train(None, out=trained_run.run_dir, resume=True)


def test_an_interrupted_run_resumes_in_its_folder_after_a_move(tiny_dataset, tmp_path, monkeypatch, capsys):
    from ultralytics.engine.trainer import BaseTrainer

    from detseg.errors import InputError
    from detseg.pipeline.cli import main

    validate, calls = BaseTrainer.validate, []

    def interrupted_in_epoch_two(self):
        calls.append(self.epoch)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after epoch 1's last.pt, before epoch 2's
        return validate(self)

    monkeypatch.setattr(BaseTrainer, "validate", interrupted_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_dataset / "data.yaml", model="yolov8n.yaml", epochs=2, imgsz=64, batch=4, device="cpu",
              out=tmp_path / "run", workers=0, plots=False)
    resumed_with = []

    def recording(self):
        resumed_with.append((self.args.batch, self.args.imgsz, self.args.plots))
        return validate(self)

    monkeypatch.setattr(BaseTrainer, "validate", recording)
    shutil.move(tmp_path / "run", tmp_path / "moved")  # e.g. copied to another machine
    # settings the checkpoint decides: ultralytics would drop them without a word
    with pytest.raises(InputError, match=r"cannot take --epochs 5 \(the run's: 2\), --seed 3 \(the run's: 0\)"):
        train(None, out=tmp_path / "moved", resume=True, device="cpu", epochs=5, seed=3)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "moved"), "--resume", "--task", "segment"]) == 2
    assert "--task segment (the run's: detect)" in capsys.readouterr().err and not resumed_with
    # the run's own command line with --resume added goes on; what it does not read is named
    assert main(["train", "--data", str(tiny_dataset / "data.yaml"), "--model", "yolov8n.yaml", "--epochs", "2",
                 "--device", "cpu", "--workers", "0", "--batch", "2", "--out", str(tmp_path / "moved"),
                 "--resume"]) == 0
    assert "--data and --model not used" in capsys.readouterr().err
    assert resumed_with and resumed_with[0] == (2, 64, False)  # --batch reaches it; the rest are the run's
    assert not (tmp_path / "run").exists()
    rows = (tmp_path / "moved" / "results.csv").read_text().strip().splitlines()
    assert [r.split(",")[0].strip() for r in rows[1:]] == ["1", "2"]  # epoch 2 ran once, after epoch 1
    metrics = json.loads((tmp_path / "moved" / "metrics.json").read_text())
    assert 0.0 <= metrics["mAP50-95"] <= 1.0
    assert metrics["weights"] == str((tmp_path / "moved" / "weights" / "best.pt").resolve())


def test_a_blank_split_in_the_dataset_file_is_one_clear_error(tiny_dataset, tmp_path):
    (tmp_path / "data.yaml").write_text(f"path: {tiny_dataset}\ntrain: images/train\nval: images/val\ntest:\n"
                                        "names: [a, b, c]\n")
    with pytest.raises(DatasetError, match=r"missing or empty key\(s\) \['test'\]"):
        resolve_data_yaml(tmp_path / "data.yaml", tmp_path / "out", require=("test",))


def test_a_non_empty_out_is_refused_without_resume_or_exist_ok(tmp_path, capsys):
    from detseg.errors import DatasetError, InputError
    from detseg.pipeline.cli import main

    out = tmp_path / "run"
    (out / "weights").mkdir(parents=True)
    (out / "weights" / "epoch3.pt").write_bytes(b"an earlier run's checkpoint")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already holds files.*--resume.*--exist-ok"):
        train(tmp_path / "nope.yaml", epochs=1, out=out)
    assert (out / "weights" / "epoch3.pt").is_file()  # refused before anything was touched
    assert main(["train", "--data", str(tmp_path / "nope.yaml"), "--out", str(out)]) == 2
    assert "--exist-ok" in capsys.readouterr().err
    with pytest.raises(DatasetError):  # with --exist-ok it goes on (to the missing dataset)...
        train(tmp_path / "nope.yaml", epochs=1, out=out, exist_ok=True)
    assert not (out / "weights" / "epoch3.pt").exists()  # ...after removing the earlier run's weights
    assert (out / "notes.txt").read_text() == "mine"


def test_train_overrides_are_parsed_as_yaml_scalars():
    from detseg.pipeline.cli.train import parse_overrides

    assert parse_overrides(["lr0=0.002", "cos_lr=True", "close_mosaic=2", "optimizer=AdamW"]) == {
        "lr0": 0.002, "cos_lr": True, "close_mosaic": 2, "optimizer": "AdamW"}


@pytest.mark.parametrize("item, message", [
    ("lr0", "is not KEY=VALUE"),
    ("not_an_arg=1", "unknown ultralytics training argument 'not_an_arg'"),
    ("epochs=5", "use --epochs"),
    ("exist_ok=false", "use --exist-ok"),
    ("name=exp", "the run folder is --out"),
])
def test_bad_train_overrides_are_clear_errors(item, message, capsys):
    from detseg.pipeline.cli import main

    assert main(["train", "--data", "missing.yaml", item]) == 2  # checked before the dataset is looked at
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_training_keeps_ultralytics_own_plots_offline(trained_run):
    for name in ("results.png", "confusion_matrix.png", "labels.jpg"):
        assert (trained_run.run_dir / name).is_file(), name


def test_detseg_val_never_writes_beside_the_weights(tiny_dataset, tiny_weights, tmp_path, monkeypatch, capsys):
    import shutil

    from detseg.pipeline.cli import main

    weights = tmp_path / "installed" / "best.pt"  # as in site-packages: a folder that must stay untouched
    weights.parent.mkdir()
    shutil.copy(tiny_weights, weights)
    monkeypatch.chdir(tmp_path)
    code = main(["val", "--weights", str(weights), "--data", str(tiny_dataset / "data.yaml"), "--imgsz", "64",
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in weights.parent.iterdir()) == ["best.pt"]
    assert (tmp_path / "runs" / "val" / "metrics_val.json").is_file()
    assert not (tmp_path / "runs" / "val" / "val").exists()


def test_detseg_val_runs_at_the_training_size_and_refuses_reordered_class_names(tiny_dataset, tiny_weights,
                                                                                  tmp_path, monkeypatch, capsys):
    from ultralytics.engine.model import Model

    from detseg.detectors.train import evaluate_detector
    from detseg.pipeline.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def record(self, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(Model, "val", record)
    for size, expected in ((None, None), (96, 96)):
        seen.clear()
        with pytest.raises(Stop):
            evaluate_detector(tiny_weights, tiny_dataset / "data.yaml", imgsz=size, out=tmp_path / "v")
        assert seen.get("imgsz") == expected  # None: ultralytics takes the checkpoint's own training size
    assert Path(seen["project"]).is_absolute()  # a relative one lands under ultralytics' runs_dir
    monkeypatch.undo()
    shuffled = tmp_path / "shuffled"
    shutil.copytree(tiny_dataset, shuffled)
    cfg = yaml.safe_load((shuffled / "data.yaml").read_text())
    cfg["names"] = {0: "cookie", 1: "croissant", 2: "cupcake"}  # as a Roboflow export sorts them
    cfg.pop("path", None)
    (shuffled / "data.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["val", "--model", str(tiny_weights), "--data", str(shuffled / "data.yaml"), "--device", "cpu",
                 "--out", str(tmp_path / "v2")]) == 2
    assert "are not the dataset's" in capsys.readouterr().err


class _FakeYolo:
    """Just the callback registry of an ultralytics model."""

    def __init__(self):
        self.callbacks = {}

    def add_callback(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)


def test_keep_torch_threads_undoes_select_device_at_each_event_and_on_exit():
    import torch

    from detseg.detectors.train import keep_torch_threads

    before = torch.get_num_threads()
    yolo = _FakeYolo()
    try:
        with keep_torch_threads(yolo, "on_train_start", "on_val_start"):
            assert set(yolo.callbacks) == {"on_train_start", "on_val_start"}
            torch.set_num_threads(before + 1)  # what ultralytics' select_device does (cores - 1)
            yolo.callbacks["on_train_start"][0](None)
            assert torch.get_num_threads() == before
            torch.set_num_threads(before + 1)
        assert torch.get_num_threads() == before
        assert yolo.callbacks == {"on_train_start": [], "on_val_start": []}  # none left behind to pile up
    finally:
        torch.set_num_threads(before)


def test_train_needs_data_unless_it_resumes(tmp_path, capsys):
    from detseg.pipeline.cli import main

    assert main(["train", "--out", str(tmp_path / "new")]) == 2
    assert "--data is required (a data.yaml), except with --resume" in capsys.readouterr().err
    # with --resume no --data is asked for: the run keeps its own (here there is no run to resume)
    assert main(["train", "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_run_with_a_time_budget_resumes_with_its_own_epochs_flag(tmp_path):
    """ultralytics refits a --time run's epochs after each epoch, so its checkpoint's differ from the command's."""
    from detseg.detectors.train import _check_resumed_settings
    from detseg.errors import InputError

    _check_resumed_settings({"epochs": 37, "time": 1.0, "seed": 0}, "detect", tmp_path, {"epochs": 100, "seed": 0})
    with pytest.raises(InputError, match=r"--epochs 100 \(the run's: 37\)"):
        _check_resumed_settings({"epochs": 37, "time": None, "seed": 0}, "detect", tmp_path, {"epochs": 100})
    with pytest.raises(InputError, match=r"--seed 1 \(the run's: 0\)"):  # --time changes only the epochs
        _check_resumed_settings({"epochs": 37, "time": 1.0, "seed": 0}, "detect", tmp_path, {"seed": 1})
