"""The real bakery boxes: the shipped file's integrity, the split by site, the YOLO view, the checker."""

import copy
import csv
import json
from pathlib import Path

import pytest

from detseg.data.bakery import (
    BOXES_FILE,
    CATEGORIES,
    LOOKALIKE_CATEGORIES,
    LOOKALIKES_FILE,
    check_boxes,
    coco_box_in_photo,
    dev_sites,
    load_boxes,
    photos_of_split,
    split_of,
    write_yolo_split,
)
from detseg.errors import DatasetError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "real-bakery-photos"


@pytest.fixture(scope="module")
def shipped():
    return load_boxes()


def test_the_shipped_box_file_is_sound(shipped):
    assert check_boxes(shipped) == []
    assert [c["name"] for c in shipped["categories"]] == list(CATEGORIES)
    counts = {n: 0 for n in CATEGORIES}
    cat = {c["id"]: c["name"] for c in shipped["categories"]}
    for a in shipped["annotations"]:
        counts[cat[a["category_id"]]] += 1
    assert all(counts[n] >= 100 for n in ("croissant", "cookie", "cupcake")), counts  # real boxes of every class
    assert photos_of_split(shipped, "dev") and photos_of_split(shipped, "train")


def test_split_is_by_site_never_by_photo(shipped):
    sites = {"train": set(), "dev": set()}
    for im in shipped["images"]:
        assert im["split"] == split_of(im["repo"])
        sites[im["split"]].add(im["repo"])
    assert not sites["train"] & sites["dev"]
    assert sites["dev"] <= dev_sites()


@pytest.mark.skipif(not (SHARED / "photos.csv").is_file(), reason="real-bakery-photos not on this machine")
def test_every_photo_is_in_the_table_with_its_hash_and_size(shipped):
    from PIL import Image

    table: dict[str, list[dict]] = {}
    with (SHARED / "photos.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            table.setdefault(r["file"], []).append(r)  # 3 names are listed twice (two sources, one stored file)
    for im in shipped["images"]:
        rows = [r for r in table[im["file_name"]] if r["sha256"] == im["sha256"]]
        assert len(rows) == 1 and rows[0]["repo"] == im["repo"], im["file_name"]
        assert (im["width"], im["height"]) == (int(rows[0]["width"]), int(rows[0]["height"]))
        with Image.open(SHARED / "images" / im["file_name"]) as photo:
            assert photo.size == (im["width"], im["height"]), im["file_name"]  # boxes are in the stored photo's pixels
    # every photo showing one of the four kinds was boxed (a look-alike-only photo may have been left out only
    # if it was never screened; the file says which were)
    boxed = {im["file_name"] for im in shipped["images"]}
    main_kinds = {n for n, rows in table.items() if any(r["main"] != "lookalike" for r in rows)}
    assert main_kinds <= boxed


def _tiny() -> dict:
    return {"categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)],
            "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50, "sha256": "0" * 64,
                        "repo": "x/a", "split": "train"},
                       {"id": 2, "file_name": "b.jpg", "width": 100, "height": 50, "sha256": "1" * 64,
                        "repo": "x/b", "split": "train"},
                       {"id": 3, "file_name": "c.jpg", "width": 100, "height": 50, "sha256": "2" * 64,
                        "repo": "x/c", "split": "train"},
                       {"id": 4, "file_name": "d.jpg", "width": 100, "height": 50, "sha256": "3" * 64,
                        "repo": "x/d", "split": "dev"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20], "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [50, 10, 20, 20], "iscrowd": 0},
                            {"id": 3, "image_id": 3, "category_id": 2, "bbox": [0, 0, 100, 50], "iscrowd": 1}]}


@pytest.fixture
def photos(tmp_path):
    """Stand-ins for the four photos of :func:`_tiny` (the YOLO view only links them)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in "abcd":
        (folder / f"{n}.jpg").write_bytes(b"jpeg")
    return folder


@pytest.mark.parametrize("break_it, message", [
    (lambda c: c["annotations"][0].update(bbox=[90, 10, 20, 20]), "not inside"),
    (lambda c: c["annotations"][0].update(bbox=[10, 10, 0, 20]), "not inside"),
    (lambda c: c["annotations"][0].update(category_id=9), "unknown category_id"),
    (lambda c: c["annotations"][0].update(image_id=99), "unknown image_id"),
    (lambda c: c["images"][0].update(sha256="abc"), "sha256"),
    (lambda c: c["images"][0].update(file_name="../a.jpg"), "plain file name"),
    (lambda c: c["images"][1].update(file_name="a.jpg"), "twice"),
    (lambda c: c["images"][0].update(split="test"), "split"),
    (lambda c: c["categories"].pop(), "categories"),
])
def test_the_checker_finds_each_kind_of_problem(break_it, message):
    coco = copy.deepcopy(_tiny())
    assert check_boxes(coco) == []
    break_it(coco)
    assert any(message in p for p in check_boxes(coco))


def test_load_boxes_names_the_file_and_problem(tmp_path):
    bad = _tiny()
    bad["annotations"][0]["bbox"] = [95, 45, 10, 10]
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"b\.json: .*not inside"):
        load_boxes(tmp_path / "b.json")
    (tmp_path / "t.json").write_text("{trunc")
    with pytest.raises(DatasetError, match="cannot read"):
        load_boxes(tmp_path / "t.json")


def test_yolo_view_keeps_detector_classes_drops_muffins_and_crowds(tmp_path, photos):
    counts = write_yolo_split(_tiny(), photos, tmp_path / "yolo", "train")
    assert counts == {"images": 2, "boxes": 1, "negatives": 1, "skipped_crowd": 1}
    assert (tmp_path / "yolo" / "labels" / "a.txt").read_text() == "2 0.200000 0.400000 0.200000 0.400000\n"
    assert (tmp_path / "yolo" / "labels" / "b.txt").read_text() == ""  # a look-alike photo: a real negative
    assert not (tmp_path / "yolo" / "labels" / "c.txt").exists()  # crowd box: left out
    assert not (tmp_path / "yolo" / "labels" / "d.txt").exists()  # dev photo: not in the train view
    assert (tmp_path / "yolo" / "images" / "a.jpg").resolve() == (photos / "a.jpg").resolve()
    with pytest.raises(DatasetError, match="not found"):
        write_yolo_split(_tiny(), tmp_path / "nowhere", tmp_path / "yolo2", "train")


def test_yolo_view_with_a_class_map_trains_muffins_as_their_own_class(tmp_path, photos):
    counts = write_yolo_split(_tiny(), photos, tmp_path / "yolo", "train", class_of={"cupcake": 2, "muffin": 3})
    assert counts == {"images": 2, "boxes": 2, "negatives": 1, "skipped_crowd": 1}
    assert (tmp_path / "yolo" / "labels" / "a.txt").read_text().splitlines() == [
        "2 0.200000 0.400000 0.200000 0.400000", "3 0.600000 0.400000 0.200000 0.400000"]


def test_the_lookalike_box_file_boxes_only_train_lookalike_photos_of_the_box_file(shipped):
    looks = load_boxes(LOOKALIKES_FILE, LOOKALIKE_CATEGORIES)
    assert check_boxes(looks, LOOKALIKE_CATEGORIES) == []
    assert check_boxes(looks) != []  # not the four kinds' categories
    by_name = {im["file_name"]: im for im in shipped["images"]}
    with_items = {a["image_id"] for a in shipped["annotations"]}
    for im in looks["images"]:
        src = by_name[im["file_name"]]
        assert src["id"] not in with_items and src["split"] == im["split"] == "train", im["file_name"]
        assert (src["sha256"], src["width"], src["height"], src["repo"]) == (
            im["sha256"], im["width"], im["height"], im["repo"])
    assert len(looks["annotations"]) >= 200 and {a["image_id"] for a in looks["annotations"]}


def test_shipped_file_is_the_default(shipped):
    assert BOXES_FILE.name == "bakery-boxes.json" and shipped["images"]


@pytest.mark.parametrize("xyxy, expected", [
    ([10, 20, 110, 70], ([10.0, 20.0, 100.0, 50.0], False)),  # inside: unchanged
    ([-5, 20, 110, 90], ([0.0, 20.0, 110.0, 60.0], True)),  # over the left and bottom edges: clipped
    ([0, 0, 200, 80], ([0.0, 0.0, 200.0, 80.0], False)),  # the whole photo
    ([150, 10, 260, 60], ([150.0, 10.0, 50.0, 50.0], True)),
    ([210, 10, 260, 60], None),  # wholly outside
    ([50, 79.5, 90, 120], None),  # half a pixel left inside
])
def test_boxes_are_clipped_to_the_photo_as_coco_boxes(xyxy, expected):
    assert coco_box_in_photo(xyxy, 200, 80) == expected


@pytest.mark.parametrize("break_it, message", [
    (lambda c: c["images"][0].pop("width"), "width and height"),
    (lambda c: c["images"][0].update(height="50"), "width and height"),
    (lambda c: c["images"][0].update(id=[1]), "image id"),
    (lambda c: c["images"][0].pop("file_name"), "plain file name"),
    (lambda c: c["annotations"][0].update(image_id=[1]), "unknown image_id"),
    (lambda c: c["annotations"][0].update(category_id={"a": 1}), "unknown category_id"),
    (lambda c: c["annotations"][0].update(bbox=[10, 10, True, 20]), "bbox must be"),
    (lambda c: c["categories"].append({"id": [7], "name": "x"}), "category ids"),
    (lambda c: c["categories"][0].update(name=None), "categories must be"),
    (lambda c: c.update(images={"a": 1}), "'images' must be a list"),
    (lambda c: c["annotations"].append(5), "'annotations' must be a list"),
])
def test_a_malformed_box_file_gets_a_message_not_a_traceback(tmp_path, break_it, message):
    coco = copy.deepcopy(_tiny())
    break_it(coco)
    assert any(message in p for p in check_boxes(coco))
    (tmp_path / "b.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"b\.json: "):
        load_boxes(tmp_path / "b.json")


def test_a_box_file_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "b.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="COCO JSON object, got a list"):
        load_boxes(tmp_path / "b.json")


def test_yolo_view_written_again_drops_photos_no_longer_in_it(tmp_path, photos):
    out = tmp_path / "yolo"
    write_yolo_split(_tiny(), photos, out, "train")
    (out / "images" / "mine.jpg").write_bytes(b"a user's own file")
    changed = copy.deepcopy(_tiny())
    changed["images"][1]["split"] = "dev"  # b.jpg moves to dev: its link and label must go
    counts = write_yolo_split(changed, photos, out, "train")
    assert counts["images"] == 1
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.jpg", "mine.jpg"]  # regular files stay
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.txt"]
