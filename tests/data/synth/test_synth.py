import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from detseg.data.polygons import coco_segmentation_to_mask, instance_polygons, mask_iou, polygons_to_mask
from detseg.data.synth.generate import _image_rng, generate_dataset, render_scene


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        generate_dataset(out, {"train": 3, "val": 2}, seed=11, imgsz=96, progress=False)
    assert _files(a) == _files(b)
    for rel in _files(a):  # data.yaml included: it holds no absolute path
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_a_moved_dataset_still_loads_from_its_new_place(tmp_path):
    from detseg.data.io import load_dataset

    generate_dataset(tmp_path / "a", {"train": 2, "val": 1}, seed=3, imgsz=64, progress=False)
    (tmp_path / "a").rename(tmp_path / "b")
    ds = load_dataset(tmp_path / "b")
    assert {r.path.parent for r in ds.splits["train"]} == {tmp_path / "b" / "images" / "train"}


def test_other_seed_gives_other_images(tmp_path):
    generate_dataset(tmp_path / "a", {"train": 1}, seed=1, imgsz=96, progress=False)
    generate_dataset(tmp_path / "b", {"train": 1}, seed=2, imgsz=96, progress=False)
    img = "images/train/train_000000.jpg"
    assert (tmp_path / "a" / img).read_bytes() != (tmp_path / "b" / img).read_bytes()


def test_layout_and_data_yaml(tiny_dataset):
    import yaml

    cfg = yaml.safe_load((tiny_dataset / "data.yaml").read_text())
    assert cfg["names"] == {0: "croissant", 1: "cookie", 2: "cupcake"}
    assert (cfg["train"], cfg["val"], cfg["test"]) == ("images/train", "images/val", "images/test")
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        assert len(list((tiny_dataset / "images" / split).glob("*.jpg"))) == n
        assert len(list((tiny_dataset / "labels" / split).glob("*.txt"))) == n
        assert (tiny_dataset / "annotations" / f"{split}.json").is_file()


@pytest.mark.parametrize("index", range(6))
def test_scene_masks_are_disjoint_and_nonempty(index):
    scene = render_scene(np.random.default_rng([5, 0, index]), 256, 256)
    assert scene.image.shape == (256, 256, 3) and scene.image.dtype == np.uint8
    assert len(scene.masks) == len(scene.class_ids) >= 1
    assert scene.masks.sum(axis=(1, 2)).min() > 0  # fully hidden items are dropped
    assert scene.masks.sum(0).max() == 1  # visible pixels belong to one instance only
    assert set(scene.class_ids) <= {0, 1, 2}


def test_traced_polygons_agree_with_exact_masks():
    ious_yolo, ious_coco = [], []
    for i in range(8):
        scene = render_scene(np.random.default_rng([9, 0, i]), 320, 320)
        for mask in scene.masks:
            parts = instance_polygons(mask)
            ious_yolo.append(mask_iou(polygons_to_mask(parts, 320, 320), mask))
            flat = [p.ravel().tolist() for p in parts]
            ious_coco.append(mask_iou(coco_segmentation_to_mask(flat, 320, 320), mask))
    assert np.mean(ious_yolo) >= 0.95, np.mean(ious_yolo)
    assert np.mean(ious_coco) >= 0.95, np.mean(ious_coco)


def test_polygons_keep_holes_and_parts():
    mask = np.zeros((60, 90), bool)
    mask[5:45, 5:45] = True
    mask[15:35, 15:35] = False  # a hole
    mask[10:30, 60:85] = True  # a second part
    parts = instance_polygons(mask)
    assert len(parts) == 2
    assert mask_iou(polygons_to_mask(parts, 60, 90), mask) > 0.9
    from detseg.data.polygons import merge_polygons

    merged = polygons_to_mask([merge_polygons(parts)], 60, 90)  # one YOLO-seg line
    assert not merged[25, 25], "the hole must stay empty"
    assert merged[20, 70] and merged[8, 8]
    assert mask_iou(merged, mask) > 0.9


def test_coco_output_loads_in_pycocotools_and_areas_match(tmp_path):
    generate_dataset(tmp_path, {"val": 3}, seed=4, imgsz=128, masks_as="rle", progress=False)
    coco = COCO(str(tmp_path / "annotations" / "val.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["cookie", "croissant", "cupcake"]
    for img_id in coco.getImgIds():
        scene = render_scene(_image_rng(4, "val", img_id - 1), 128, 128)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        assert len(anns) == len(scene.masks)
        for ann, mask in zip(anns, scene.masks):
            decoded = coco.annToMask(ann).astype(bool)
            assert np.array_equal(decoded, mask)  # RLE is exact
            assert ann["area"] == mask.sum()


def test_coco_polygon_output_loads_in_pycocotools(tiny_dataset):
    coco = COCO(str(tiny_dataset / "annotations" / "train.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns
    areas = np.array([a["area"] for a in anns], float)
    poly_areas = np.array([coco.annToMask(a).sum() for a in anns], float)
    assert np.median(np.abs(poly_areas - areas) / areas) < 0.1


def test_yolo_output_loads_in_supervision(tiny_dataset):
    import supervision as sv

    ds = sv.DetectionDataset.from_yolo(
        images_directory_path=str(tiny_dataset / "images" / "val"),
        annotations_directory_path=str(tiny_dataset / "labels" / "val"),
        data_yaml_path=str(tiny_dataset / "data.yaml"),
        force_masks=True,
    )
    assert len(ds) == 3 and ds.classes == ["croissant", "cookie", "cupcake"]
    coco = json.loads((tiny_dataset / "annotations" / "val.json").read_text())
    for path, _, dets in ds:
        assert dets.mask is not None and len(dets) > 0
        name = path.split("/")[-1]
        image_id = next(i["id"] for i in coco["images"] if i["file_name"] == name)
        assert len(dets) == sum(a["image_id"] == image_id for a in coco["annotations"])


def test_workers_write_the_same_bytes_as_one_process(tmp_path):
    generate_dataset(tmp_path / "one", {"train": 5, "val": 2}, seed=4, imgsz=96, progress=False)
    generate_dataset(tmp_path / "two", {"train": 5, "val": 2}, seed=4, imgsz=96, progress=False, workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")
                   if p.is_file() and p.name != "data.yaml")
    assert len(files) == 2 * 7 + 2
    for rel in files:
        assert (tmp_path / "two" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes(), rel


def test_cli_synth_writes_the_layout(tmp_path, capsys):
    from detseg.pipeline.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--train", "2", "--val", "1", "--imgsz", "64",
                 "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["images"] == 2
    assert len(list((tmp_path / "d" / "images" / "train").glob("*.jpg"))) == 2
    assert (tmp_path / "d" / "annotations" / "val.json").is_file()


@pytest.mark.parametrize("args, message", [(["--train", "-1"], "--train must be >= 0"),
                                           (["--workers", "0"], "--workers must be in [1, 256]")])
def test_cli_synth_bad_numbers_are_clear_errors(tmp_path, capsys, args, message):
    from detseg.pipeline.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.fixture()
def photo_folder(tmp_path):
    import cv2

    from tests.helpers import textured_image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate(((120, 180), (150, 100), (90, 90))):
        cv2.imwrite(str(folder / f"p{i}.jpg"), textured_image(h, w, seed=i))
    return folder


def test_cli_synth_on_real_photos_with_negatives_exclusions_and_real_items(tmp_path, capsys, photo_folder):
    from detseg.pipeline.cli import main

    (tmp_path / "exclude.txt").write_text("# shows a cookie\np0.jpg\n")
    labels = {"images": [{"id": 1, "file_name": "p0.jpg", "width": 180, "height": 120}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [30, 20, 60, 50]}],
              "categories": [{"id": 2, "name": "cookie"}]}
    (tmp_path / "cookies.json").write_text(json.dumps(labels))
    out = tmp_path / "d"
    assert main(["data", "synth", "--out", str(out), "--train", "4", "--val", "0", "--imgsz", "96",
                 "--backgrounds", str(photo_folder), "--exclude", str(tmp_path / "exclude.txt"),
                 "--photo-fraction", "1", "--negatives", "0.5", "--real-items", str(tmp_path / "cookies.json"),
                 "--real-repeat", "1"]) == 0
    train = json.loads(capsys.readouterr().out)["splits"]["train"]
    assert train["photo_composites"] == 4 and train["background_photos"] == 2
    negatives = sorted((out / "images" / "train").glob("train_neg_*"))
    excluded = (photo_folder / "p0.jpg").read_bytes()
    assert len(negatives) == 2 and all(n.read_bytes() != excluded for n in negatives)  # p0 is never a negative
    assert all((out / "labels" / "train" / f"{n.stem}.txt").read_text() == "" for n in negatives)
    assert len(list((out / "labels" / "train").glob("train_real_*.txt"))) == 1


@pytest.mark.parametrize("args, message", [
    (["--negatives", "0.2"], "need --backgrounds"),
    (["--backgrounds", "{photos}", "--real-repeat", "2"], "--real-repeat must be >= 0 and needs --real-items"),
    (["--backgrounds", "{photos}", "--photo-fraction", "1.5"], "--photo-fraction must be in [0, 1]"),
    (["--backgrounds", "{photos}", "--real-items", "{tmp}/absent.json"], "--real-items: file not found"),
    (["--backgrounds", "{tmp}/absent"], "--backgrounds:"),
    (["--backgrounds", "{photos}", "--real-items", "{tmp}/biscuit.json"],
     "categories ['biscuit'] are not the generator's classes"),
    (["--backgrounds", "{photos}", "--real-items", "{tmp}/list.json"], "expected a COCO"),
    (["--backgrounds", "{photos}", "--real-items", "{tmp}/unknown-id.json"], "category_id 9 is not in categories"),
])
def test_cli_synth_real_photo_flags_fail_in_one_line(tmp_path, capsys, photo_folder, args, message):
    from detseg.pipeline.cli import main

    labels = {"images": [{"id": 1, "file_name": "p0.jpg", "width": 180, "height": 120}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [30, 20, 60, 50]}],
              "categories": [{"id": 2, "name": "biscuit"}]}
    (tmp_path / "biscuit.json").write_text(json.dumps(labels))
    (tmp_path / "list.json").write_text("[]")
    labels["categories"][0]["name"] = "cookie"
    labels["annotations"][0]["category_id"] = 9
    (tmp_path / "unknown-id.json").write_text(json.dumps(labels))
    args = [a.format(photos=photo_folder, tmp=tmp_path) for a in args]
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--train", "2", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_synth_into_an_earlier_synth_dataset_leaves_no_stale_files(tmp_path):
    """#30.13: a smaller run into the same folder: the YOLO view matches the new COCO view; other files stay."""
    import json

    out = tmp_path / "ds"
    generate_dataset(out, {"train": 4, "val": 2, "test": 1}, seed=1, imgsz=64, progress=False)
    (out / "README.md").write_text("mine")  # not the generator's: kept
    (out / "images" / "train" / "photo_of_mine.jpg").write_bytes(b"x")  # not a name it gives: kept
    generate_dataset(out, {"train": 2, "val": 1}, seed=2, imgsz=64, progress=False)
    for split, n in (("train", 2), ("val", 1)):
        coco = json.loads((out / "annotations" / f"{split}.json").read_text())
        ours = sorted(p.name for p in (out / "images" / split).iterdir() if p.name.startswith(f"{split}_"))
        assert ours == sorted(im["file_name"] for im in coco["images"]) and len(ours) == n
        assert sorted(p.stem for p in (out / "labels" / split).glob("*.txt")) == [Path(x).stem for x in ours]
    assert not (out / "annotations" / "test.json").exists() and not (out / "images" / "test").exists()
    assert (out / "README.md").read_text() == "mine" and (out / "images" / "train" / "photo_of_mine.jpg").exists()


def test_synth_refuses_a_folder_that_is_not_a_synth_dataset(tmp_path):
    from detseg.errors import InputError

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="not empty"):
        generate_dataset(tmp_path / "photos", {"train": 1}, seed=1, imgsz=64, progress=False)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["holiday.jpg"]


def test_a_background_photo_smaller_than_a_crop_is_used_whole():
    from detseg.data.synth.composite import random_crop

    tiny = np.full((5, 5, 3), 200, np.uint8)
    crop = random_crop(np.random.default_rng(0), tiny, 64)
    assert crop.shape == (64, 64, 3) and (crop == 200).all()  # all of it, resized up (was a crash)
