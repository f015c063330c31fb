import pytest


@pytest.fixture(scope="session")
def trained_run(tiny_dataset, tmp_path_factory):
    """detseg train: 1 epoch of yolov8n.yaml at imgsz 64 on the tiny generated set, offline."""
    from detectors.train import train

    out = tmp_path_factory.mktemp("train") / "run"
    return train(tiny_dataset / "data.yaml", model="yolov8n.yaml", epochs=1, imgsz=64, batch=4, device="cpu",
                 out=out, workers=0)


@pytest.fixture(scope="session")
def tiny_weights(trained_run):
    return trained_run.best_weights
