"""detectors/weights/make_round2_data.py's round-7 look-alike class: the merge of a look-alike box file into the
bakery boxes, and which label files count as photos with items (only lines of the three detector classes)."""

from pathlib import Path

import pytest

from detseg.data.bakery import CATEGORIES, LOOKALIKE_CATEGORIES, write_yolo_split
from tests.helpers import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("detectors/weights/make_round2_data.py")


def _image(i, name):
    return {"id": i, "file_name": name, "width": 100, "height": 50, "sha256": str(i) * 64, "repo": f"x/{name}",
            "split": "train"}


def _files(tmp_path):
    import json

    boxes = {"categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)],
             "images": [_image(1, "a.jpg"), _image(2, "b.jpg")],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 4, "bbox": [50, 10, 20, 20], "iscrowd": 0}]}
    looks = {"categories": [{"id": i + 1, "name": n} for i, n in enumerate(LOOKALIKE_CATEGORIES)],
             "images": [_image(7, "b.jpg")],
             "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 40, 50], "iscrowd": 0},
                             {"id": 2, "image_id": 7, "category_id": 5, "bbox": [60, 0, 40, 50], "iscrowd": 1}]}
    (tmp_path / "looks.json").write_text(json.dumps(looks))
    return boxes, tmp_path / "looks.json"


def test_lookalikes_and_muffins_become_class_3_crowds_left_out(script, tmp_path):
    boxes, looks = _files(tmp_path)
    merged, class_of = script._with_lookalikes(boxes, str(looks))
    assert class_of["croissant"] == 0 and class_of["cupcake"] == 2
    assert {class_of[n] for n in ("muffin", *LOOKALIKE_CATEGORIES)} == {3}
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in "ab":
        (photos / f"{n}.jpg").write_bytes(b"jpeg")
    write_yolo_split(merged, photos, tmp_path / "yolo", "train", class_of=class_of)
    labels = tmp_path / "yolo" / "labels"
    assert (labels / "a.txt").read_text() == "3 0.600000 0.400000 0.200000 0.400000\n"  # the muffin
    assert (labels / "b.txt").read_text() == "3 0.200000 0.500000 0.400000 1.000000\n"  # the cake; crowd dropped
    assert not script._has_items(labels / "a.txt") and not script._has_items(labels / "b.txt")
    (labels / "c.txt").write_text("3 0.5 0.5 0.1 0.1\n1 0.5 0.5 0.2 0.2\n")
    assert script._has_items(labels / "c.txt")


def test_a_lookalike_photo_missing_from_the_box_file_is_refused(script, tmp_path):
    boxes, looks = _files(tmp_path)
    boxes["images"].pop()  # b.jpg
    with pytest.raises(SystemExit, match="not in the box file"):
        script._with_lookalikes(boxes, str(looks))


def test_boxed_uj_photos_without_a_box_are_left_out_not_trained_as_negatives(script, tmp_path):
    import argparse
    import json

    uj = tmp_path / "uj"
    uj.mkdir()
    for name in ("boxed.jpg", "printed-only.jpg", "neg.jpg"):
        (uj / name).write_bytes(b"jpeg")
    items = {"categories": [{"id": 2, "name": "cookie"}],
             "images": [{"id": 1, "file_name": "boxed.jpg", "width": 100, "height": 50},
                        {"id": 2, "file_name": "printed-only.jpg", "width": 100, "height": 50}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 20]}]}
    (tmp_path / "items.json").write_text(json.dumps(items))
    args = argparse.Namespace(uj_images=str(uj), uj_exclude=[], uj_items=str(tmp_path / "items.json"),
                              uj_items_repeat=2, uj_negatives=0, seed=0)
    folders = script._uj_folders(args, tmp_path / "out")
    for folder in folders:
        assert sorted(p.name for p in Path(folder).iterdir()) == ["boxed.jpg"]
    labels = tmp_path / "out" / "uj-items-labels" / "labels"
    assert (labels / "boxed.txt").read_text().startswith("1 ") and not (labels / "printed-only.txt").exists()
