"""detectors/weights/mine_hard_negatives.py (stage D's recipe): photos a detector fires on become
background-only training images; exclusions, the cap and re-runs. A random-initialised YOLOv8n fires on
everything at a tiny confidence and on nothing at 0.99, which is all the script's logic needs."""

import cv2
import pytest

from tests.helpers import load_script, textured_image


@pytest.fixture(scope="module")
def mine():
    return load_script("detectors/weights/mine_hard_negatives.py").main


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("w") / "random-yolov8n.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"p{i}.jpg"), textured_image(64, 80, seed=i))
    (tmp_path / "train").mkdir()
    return folder


def _links(folder):
    return sorted(p.name for p in folder.glob("hardneg-*"))


def test_photos_it_fires_on_are_linked_with_exclusions_and_a_seeded_cap(mine, random_weights, photos, tmp_path):
    (tmp_path / "skip.txt").write_text("p0.jpg  # shows a cookie\n")
    into = tmp_path / "train"
    args = ["--weights", str(random_weights), "--images", str(photos), "--exclude", str(tmp_path / "skip.txt"),
            "--into", str(into), "--conf", "0.000001", "--imgsz", "64"]
    assert mine(args) == 0
    assert _links(into) == ["hardneg-p1.jpg", "hardneg-p2.jpg", "hardneg-p3.jpg", "hardneg-p4.jpg"]
    assert all((into / n).resolve() == (photos / n.removeprefix("hardneg-")).resolve() for n in _links(into))
    assert (into / "hardneg.txt").read_text().split() == ["p1.jpg", "p2.jpg", "p3.jpg", "p4.jpg"]

    assert mine([*args, "--max", "2", "--seed", "1"]) == 0  # a re-run replaces the previous links
    capped = _links(into)
    assert len(capped) == 2 and set(capped) <= {"hardneg-p1.jpg", "hardneg-p2.jpg", "hardneg-p3.jpg", "hardneg-p4.jpg"}
    assert mine([*args, "--max", "2", "--seed", "1"]) == 0 and _links(into) == capped  # same seed, same draw

    assert mine([*args[:-4], "--conf", "0.99", "--imgsz", "64"]) == 0  # fires on nothing
    assert _links(into) == [] and (into / "hardneg.txt").read_text() == ""


def test_a_missing_folder_is_one_line(mine, random_weights, photos, tmp_path, capsys):
    assert mine(["--weights", str(random_weights), "--images", str(photos), "--into", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "absent" in err and len(err.strip().splitlines()) == 1
