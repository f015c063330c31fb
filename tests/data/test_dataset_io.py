import json
import shutil

import numpy as np
import pytest

from detseg.data.io import load_dataset
from detseg.errors import DatasetError
from detseg.pipeline.cli import main


def _copy(src, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(src, dst)
    text = (dst / "data.yaml").read_text().splitlines()
    (dst / "data.yaml").write_text("\n".join(line for line in text if not line.startswith("path:")) + "\n")
    return dst


def test_load_generated_yolo_dataset(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    assert ds.format == "yolo" and ds.names == ["croissant", "cookie", "cupcake"]
    assert {s: len(r) for s, r in ds.splits.items()} == {"train": 6, "val": 3, "test": 2}
    coco = json.loads((tiny_dataset / "annotations" / "val.json").read_text())
    assert sum(len(r.annotations) for r in ds.splits["val"]) == len(coco["annotations"])


def test_yolo_and_coco_views_agree(tiny_dataset):
    yolo = load_dataset(tiny_dataset / "data.yaml")
    coco = load_dataset(tiny_dataset / "annotations" / "val.json")
    assert coco.format == "coco" and coco.names == yolo.names
    for ry, rc in zip(yolo.splits["val"], coco.splits["val"]):
        assert ry.path.name == rc.path.name
        assert [a.class_id for a in ry.annotations] == [a.class_id for a in rc.annotations]
        my = yolo.detections(ry).mask
        mc = coco.detections(rc).mask
        inter = (my & mc).sum((1, 2))
        union = (my | mc).sum((1, 2))
        assert np.mean(inter / union) > 0.97


@pytest.mark.parametrize("target", ["coco", "yolo"])
def test_convert_round_trip_keeps_instances(tiny_dataset, tmp_path, target):
    src = load_dataset(tiny_dataset)
    out = tmp_path / "out"
    assert main(["data", "convert", str(tiny_dataset), "--to", target, "--out", str(out)]) == 0
    back = load_dataset(out)
    assert back.names == src.names
    for split in src.splits:
        a = [[x.class_id for x in r.annotations] for r in src.splits[split]]
        b = [[x.class_id for x in r.annotations] for r in back.splits[split]]
        assert a == b
        boxes_a = np.concatenate([np.stack([x.xyxy for x in r.annotations]) for r in src.splits[split]])
        boxes_b = np.concatenate([np.stack([x.xyxy for x in r.annotations]) for r in back.splits[split]])
        assert np.abs(boxes_a - boxes_b).max() < 1.0


def test_roboflow_yolov8_export_layout(tiny_dataset, tmp_path):
    """data.yaml with ../train/images, ../valid/images as Roboflow writes it; box-only labels."""
    root = tmp_path / "export"
    for split, rf in (("train", "train"), ("val", "valid")):
        (root / rf / "images").mkdir(parents=True)
        (root / rf / "labels").mkdir(parents=True)
        for img in sorted((tiny_dataset / "images" / split).glob("*.jpg")):
            shutil.copy(img, root / rf / "images" / img.name)
            (root / rf / "labels" / (img.stem + ".txt")).write_text("1 0.5 0.5 0.25 0.5\n")
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\nnc: 3\nnames: ['croissant', 'cookie', 'cupcake']\n"
    )
    ds = load_dataset(root)
    assert set(ds.splits) == {"train", "val"}
    rec = ds.splits["val"][0]
    assert not rec.annotations[0].has_mask
    np.testing.assert_allclose(rec.annotations[0].xyxy, [48, 32, 80, 96])


def test_a_split_can_list_several_folders_as_ultralytics_allows(tiny_dataset, tmp_path, capsys):
    """train: [images/train, images/val] (two pools in one split); the same names in both folders are fine."""
    ds_dir = _copy(tiny_dataset, tmp_path)
    shutil.copytree(ds_dir / "images" / "train", ds_dir / "images" / "more")  # same file names, other folder
    shutil.copytree(ds_dir / "labels" / "train", ds_dir / "labels" / "more")
    text = (ds_dir / "data.yaml").read_text().replace("train: images/train", "train: [images/train, images/more]")
    (ds_dir / "data.yaml").write_text(text)
    one, both = load_dataset(tiny_dataset).splits["train"], load_dataset(ds_dir).splits["train"]
    assert len(both) == 2 * len(one) == 12
    assert [r.path.parent.name for r in both] == ["train"] * 6 + ["more"] * 6
    assert [r.image_id for r in both] == list(range(1, 13))
    assert [len(r.annotations) for r in both] == [len(r.annotations) for r in one] * 2
    assert main(["data", "check", str(ds_dir)]) == 0
    import yaml

    from detseg.detectors.train import resolve_data_yaml  # what `detseg train` hands ultralytics
    resolved = yaml.safe_load(resolve_data_yaml(ds_dir / "data.yaml", tmp_path / "run").read_text())
    assert resolved["train"] == [str(ds_dir / "images" / "train"), str(ds_dir / "images" / "more")]
    capsys.readouterr()
    assert main(["data", "convert", str(ds_dir), "--to", "coco", "--out", str(tmp_path / "c")]) == 2  # one folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train has two images named train_000000.jpg" in err[0]
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("[images/train, images/train]", "lists the folder 'images/train' twice"),
    ("[images/train, images/nope]", "train folder 'images/nope' not found"),
    ("[images/train, 3]", "must be a folder path or a list of folder paths"),
    ("[images/train, images/val]", "train and val share the folder"),  # val's images in train too: a leak
])
def test_bad_folder_lists_are_one_clear_error(tiny_dataset, tmp_path, capsys, value, message):
    ds_dir = _copy(tiny_dataset, tmp_path)
    text = (ds_dir / "data.yaml").read_text().replace("train: images/train", f"train: {value}")
    (ds_dir / "data.yaml").write_text(text)
    assert main(["data", "check", str(ds_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_image_without_label_is_allowed(tiny_dataset, tmp_path):
    ds_dir = _copy(tiny_dataset, tmp_path)
    (ds_dir / "labels" / "val" / "val_000001.txt").unlink()
    ds = load_dataset(ds_dir)
    assert ds.summary()["val"]["background_images"] == 1


def test_hidden_files_and_a_class_list_are_not_inputs_as_for_ultralytics(tiny_dataset, tmp_path):
    ds_dir = _copy(tiny_dataset, tmp_path)
    before = {s: len(r) for s, r in load_dataset(ds_dir).splits.items()}
    (ds_dir / "images" / "val" / "._val_000000.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS
    (ds_dir / "labels" / "val" / "classes.txt").write_text("croissant\ncookie\ncupcake\n")  # LabelImg
    (ds_dir / "labels" / "val" / ".ipynb_checkpoints").mkdir()
    (ds_dir / "labels" / "val" / ".ipynb_checkpoints" / "x-checkpoint.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert {s: len(r) for s, r in load_dataset(ds_dir).splits.items()} == before
    (ds_dir / "images" / "val" / "phone.heic").write_bytes(b"heic")
    (ds_dir / "labels" / "val" / "phone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match="its image phone.heic is not a format detseg reads"):
        load_dataset(ds_dir)


def _break(ds_dir, how):
    lbl = ds_dir / "labels" / "val" / "val_000000.txt"
    first = lbl.read_text().splitlines()[0].split()
    if how == "label without image":
        (ds_dir / "labels" / "val" / "ghost.txt").write_text("0 0.1 0.1 0.2 0.2\n")
    elif how == "class id 7 out of range":
        lbl.write_text("7 " + " ".join(first[1:]) + "\n")
    elif how == "malformed line":
        lbl.write_text("0 0.1 banana 0.3\n")
    elif how == "polygon with 2 point(s)":
        lbl.write_text(" ".join(first) + "\n0 0.1 0.1 0.2 0.2\n")
    elif how == "coordinates outside [0, 1]":
        lbl.write_text("0 0.1 0.1 1.5 0.2 0.3 0.4\n")
    elif how == "duplicate file name":
        shutil.copy(ds_dir / "images" / "val" / "val_000000.jpg", ds_dir / "images" / "val" / "val_000000.png")
    elif how == "missing key(s) names":
        text = (ds_dir / "data.yaml").read_text().split("names:")[0]
        (ds_dir / "data.yaml").write_text(text)
    elif how == "missing key(s) train, val, test":
        (ds_dir / "data.yaml").write_text("names: [a, b, c]\n")
    return lbl


@pytest.mark.parametrize(
    "how, where",
    [
        ("label without image", "ghost.txt"),
        ("class id 7 out of range", "val_000000.txt:1"),
        ("malformed line", "val_000000.txt:1"),
        ("polygon with 2 point(s)", "val_000000.txt:2"),
        ("coordinates outside [0, 1]", "val_000000.txt:1"),
        ("duplicate file name", "val_000000"),
        ("missing key(s) names", "data.yaml"),
        ("missing key(s) train, val, test", "data.yaml"),
    ],
)
def test_bad_yolo_input_names_file_and_line(tiny_dataset, tmp_path, capsys, how, where):
    ds_dir = _copy(tiny_dataset, tmp_path)
    _break(ds_dir, how)
    with pytest.raises(DatasetError) as err:
        load_dataset(ds_dir)
    assert how in str(err.value) and where in str(err.value)
    # the CLI prints one line, no traceback, non-zero exit
    assert main(["data", "check", str(ds_dir)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("detseg: error:") and how in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.pop("categories"), "missing key(s) categories"),
        (lambda c: c["annotations"][0].update(category_id=99), "category_id 99 is not in categories"),
        (lambda c: c["annotations"][0].update(image_id=12345), "image_id 12345 is not in images"),
        (lambda c: c["annotations"][0].update(segmentation=[[1, 2, 3, 4]]), "polygon with 2 point(s)"),
        (lambda c: c["images"].append(dict(c["images"][0], id=999)), "duplicate file name"),
        (lambda c: c["images"][0].update(file_name="../../../outside.jpg"), "leaves the image folder"),
        (lambda c: c["images"][0].update(file_name="/etc/hostname"), "leaves the image folder"),
        (lambda c: c["images"][0].update(file_name=7),
         "images[0].file_name: expected a non-empty string, got integer 7"),
    ],
)
def test_bad_coco_input(tiny_dataset, tmp_path, mutate, message):
    ds_dir = _copy(tiny_dataset, tmp_path)
    path = ds_dir / "annotations" / "val.json"
    coco = json.loads(path.read_text())
    mutate(coco)
    path.write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_dataset(path)


def test_check_prints_summary(tiny_dataset, capsys):
    assert main(["data", "check", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "croissant" in out and "train" in out and "val" in out


def test_missing_path_is_one_clear_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_as_supervision_dataset(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    sv_ds = ds.as_supervision("val")
    assert len(sv_ds) == 3 and sv_ds.classes == ds.names
    _, image, dets = sv_ds[0]
    assert image.shape == (128, 128, 3) and dets.mask.shape[1:] == (128, 128)


def test_a_coco_file_name_outside_the_dataset_is_never_copied(tiny_dataset, tmp_path, capsys):
    """``data convert`` would link the outside file into the new dataset: it is refused before anything is written."""
    ds_dir = _copy(tiny_dataset, tmp_path)
    secret = tmp_path / "secret.jpg"
    shutil.copy(next((ds_dir / "images" / "val").iterdir()), secret)
    path = ds_dir / "annotations" / "val.json"
    coco = json.loads(path.read_text())
    coco["images"][0]["file_name"] = "../../../secret.jpg"
    path.write_text(json.dumps(coco))
    assert main(["data", "convert", str(path), "--to", "yolo", "--out", str(tmp_path / "converted")]) == 2
    assert "leaves the image folder" in capsys.readouterr().err
    assert not (tmp_path / "converted").exists() or not list((tmp_path / "converted").rglob("secret*"))


def test_yaml_aliases_are_refused_before_they_expand(tiny_dataset, tmp_path, capsys):
    ds_dir = _copy(tiny_dataset, tmp_path)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    (ds_dir / "data.yaml").write_text((ds_dir / "data.yaml").read_text() + bomb)
    with pytest.raises(DatasetError, match="may not use YAML aliases"):
        load_dataset(ds_dir / "data.yaml")
    assert main(["data", "check", str(ds_dir / "data.yaml")]) == 2
    err = capsys.readouterr().err
    assert "aliases" in err and len(err.strip().splitlines()) == 1


def test_crowd_regions_survive_coco_and_are_left_out_of_yolo_labels(tiny_dataset, tmp_path):
    ds_dir = _copy(tiny_dataset, tmp_path)
    path = ds_dir / "annotations" / "val.json"
    coco = json.loads(path.read_text())
    crowd = coco["annotations"][0]
    crowd["iscrowd"] = 1
    path.write_text(json.dumps(coco))
    ds = load_dataset(path)
    assert [a.iscrowd for r in ds.splits["val"] for a in r.annotations].count(True) == 1
    assert main(["data", "convert", str(path), "--to", "coco", "--out", str(tmp_path / "c")]) == 0
    back = json.loads((tmp_path / "c" / "annotations" / "val.json").read_text())["annotations"]
    assert [a["iscrowd"] for a in back] == [a.get("iscrowd", 0) for a in coco["annotations"]]
    assert main(["data", "convert", str(path), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    yolo = load_dataset(tmp_path / "y")
    assert sum(len(r.annotations) for r in yolo.splits["val"]) == len(coco["annotations"]) - 1


def test_two_images_with_one_stem_are_refused_before_yolo_writes_a_label(tiny_dataset, tmp_path, capsys):
    ds_dir = _copy(tiny_dataset, tmp_path)
    path = ds_dir / "annotations" / "val.json"
    coco = json.loads(path.read_text())
    first = coco["images"][0]["file_name"]
    twin = first.rsplit(".", 1)[0] + ".png"
    shutil.copy(ds_dir / "images" / "val" / first, ds_dir / "images" / "val" / twin)
    coco["images"].append(dict(coco["images"][0], id=999, file_name=twin))
    path.write_text(json.dumps(coco))
    out = tmp_path / "y"
    assert main(["data", "convert", str(path), "--to", "yolo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "two images with the stem" in err and "Traceback" not in err
    assert not list(out.rglob("*.txt"))


@pytest.mark.parametrize("suffix, mode", [(".jpg", "RGB"), (".tif", "RGB"), (".tif", "L"), (".webp", "RGB")])
def test_a_phone_photo_turned_by_exif_is_measured_as_it_is_read(tmp_path, suffix, mode):
    """A portrait photo stored 60x40 with EXIF orientation 6: YOLO labels are normalised to the turned image
    (40x60, as read_image and ultralytics read it), and verify compares the turned size. (Pillow reports a
    TIFF's size already turned before it is loaded, and once loaded drops the tag; a gray one it then reports
    as stored.)"""
    from PIL import Image

    from detseg.data.verify import verify_dataset
    from detseg.images import read_image

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).convert(mode).save(tmp_path / "images" / "train" / f"r{suffix}",
                                                                       exif=exif)
    (tmp_path / "labels" / "train" / "r.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    record = load_dataset(tmp_path / "data.yaml").splits["train"][0]
    assert read_image(record.path).shape[:2] == (60, 40)
    assert (record.width, record.height) == (40, 60)
    np.testing.assert_allclose(record.annotations[0].xyxy, [10, 22.5, 30, 37.5])
    assert verify_dataset(load_dataset(tmp_path / "data.yaml"), progress=False) == []


def test_a_one_split_coco_file_becomes_a_yolo_dataset_ultralytics_accepts(tiny_dataset, tmp_path):
    import yaml
    from ultralytics.data.utils import check_det_dataset

    out = tmp_path / "y"
    assert main(["data", "convert", str(tiny_dataset / "annotations" / "val.json"), "--to", "yolo",
                 "--out", str(out)]) == 0
    cfg = yaml.safe_load((out / "data.yaml").read_text())
    assert cfg["train"] == cfg["val"] == "images/val"
    assert check_det_dataset(str(out / "data.yaml"), autodownload=False)["nc"] == 3


def test_linked_coco_images_keep_their_names_and_a_linked_leak_is_found(tiny_dataset, tmp_path):
    """git-annex / DVC folders: images are links into a store named by content hash."""
    from detseg.data.verify import verify_dataset

    store, ds_dir = tmp_path / "store", tmp_path / "linked"
    store.mkdir()
    (ds_dir / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        shutil.copy(tiny_dataset / "annotations" / f"{split}.json", ds_dir / "annotations")
        (ds_dir / "images" / split).mkdir(parents=True)
        for image in (tiny_dataset / "images" / split).iterdir():
            key = store / f"SHA256E-s{image.stat().st_size}--{image.stem}"  # no image suffix, as git-annex keys
            shutil.copy(image, key)
            (ds_dir / "images" / split / image.name).symlink_to(key)
    ds = load_dataset(ds_dir / "annotations" / "val.json")
    assert all(r.path.suffix == ".jpg" and r.path.parent == ds_dir / "images" / "val" for r in ds.splits["val"])
    out = tmp_path / "yolo"
    assert main(["data", "convert", str(ds_dir / "annotations" / "val.json"), "--to", "yolo", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == \
        sorted(p.name for p in (tiny_dataset / "images" / "val").iterdir())
    # one stored file linked from train and from val is a leak, not one image
    victim = next((ds_dir / "images" / "val").iterdir())
    train_link = next((ds_dir / "images" / "train").iterdir())
    train_link.unlink()
    train_link.symlink_to(victim.resolve())
    problems = verify_dataset(load_dataset(ds_dir), progress=False)
    assert any(str(train_link) in p and str(victim) in p and "is the same image as" in p for p in problems), problems


def test_converting_to_yolo_writes_one_form_per_split_and_keeps_thin_masks(tmp_path):
    """ultralytics refuses a segment split where some files hold boxes and others polygons: a box-only image in a
    split with outlines gets its box's four corners; a 1-px-wide mask (which traces to no polygon) keeps its box;
    a box of no area is left out (detseg's own check refuses it), and the output passes `data check`."""
    import cv2
    from ultralytics.data.utils import check_det_dataset

    from detseg.data.polygons import mask_to_rle

    images = tmp_path / "coco" / "images"
    images.mkdir(parents=True)
    from tests.helpers import textured_image

    for i, name in enumerate(("a.jpg", "b.jpg")):
        cv2.imwrite(str(images / name), textured_image(40, 60, seed=i))
    thin = np.zeros((40, 60), bool)
    thin[5:25, 30] = True  # a straw, one pixel wide
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 60, "height": 40},
                       {"id": 2, "file_name": "b.jpg", "width": 60, "height": 40}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 10, 10], "iscrowd": 0,
                 "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]},
                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [30, 5, 1, 20], "iscrowd": 0,
                 "segmentation": mask_to_rle(thin)},
                {"id": 3, "image_id": 1, "category_id": 1, "bbox": [4, 4, 0, 8], "iscrowd": 0, "segmentation": []},
                {"id": 4, "image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 10], "iscrowd": 0, "segmentation": []}]}
    (tmp_path / "coco" / "val.json").write_text(json.dumps(coco))
    assert main(["data", "convert", str(tmp_path / "coco" / "val.json"), "--to", "yolo", "--out",
                 str(tmp_path / "y")]) == 0
    a = (tmp_path / "y" / "labels" / "val" / "a.txt").read_text().splitlines()
    b = (tmp_path / "y" / "labels" / "val" / "b.txt").read_text().splitlines()
    assert len(a) == 2 and len(b) == 1  # the square and the straw; the no-area box is left out
    assert all(len(line.split()) >= 7 for line in a + b)  # polygons everywhere, no 5-column box line
    np.testing.assert_allclose([float(v) for v in b[0].split()[1:]],
                               [5 / 60, 5 / 40, 25 / 60, 5 / 40, 25 / 60, 15 / 40, 5 / 60, 15 / 40], atol=1e-5)
    assert main(["data", "check", str(tmp_path / "y" / "data.yaml")]) == 0  # (val also serves as train)
    assert check_det_dataset(str(tmp_path / "y" / "data.yaml"), autodownload=False)["nc"] == 1


def test_two_coco_files_of_one_split_in_a_folder_are_refused_not_one_dropped(tmp_path):
    import cv2

    from tests.helpers import textured_image

    (tmp_path / "annotations").mkdir()
    (tmp_path / "images" / "train").mkdir(parents=True)
    for i, stem in enumerate(("train", "train_extra")):
        name = f"{stem}.jpg"
        cv2.imwrite(str(tmp_path / "images" / "train" / name), textured_image(20, 20, seed=i))
        coco = {"images": [{"id": 1, "file_name": name, "width": 20, "height": 20}],
                "categories": [{"id": 1, "name": "thing"}], "annotations": []}
        (tmp_path / "annotations" / f"{stem}.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="split 'train' comes from two files: train.json and train_extra.json"):
        load_dataset(tmp_path)


def test_converting_to_yolo_refuses_an_image_whose_size_is_not_the_datasets(tmp_path):
    """A phone photo stored 60x40 with EXIF orientation 6 reads as 40x60; a COCO file giving 60x40 would get YOLO
    labels normalised by the wrong size."""
    from PIL import Image

    (tmp_path / "coco" / "images").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((40, 60, 3), 9, np.uint8)).save(tmp_path / "coco" / "images" / "a.jpg")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "coco" / "images" / "r.jpg", exif=exif)
    coco = {"images": [{"id": 2, "file_name": "a.jpg", "width": 60, "height": 40},
                       {"id": 1, "file_name": "r.jpg", "width": 60, "height": 40}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0,
                             "segmentation": []}]}
    (tmp_path / "coco" / "val.json").write_text(json.dumps(coco))
    from detseg.data.io import save_dataset

    with pytest.raises(DatasetError, match="says 60x40 but the image reads as 40x60"):
        save_dataset(load_dataset(tmp_path / "coco" / "val.json"), tmp_path / "y", "yolo")
    assert not (tmp_path / "y").exists() or not any((tmp_path / "y").rglob("*.*"))  # refused before writing


def test_a_repeated_label_line_is_one_instance_as_ultralytics_reads_it(tmp_path):
    from detseg.data.yolo_format import parse_label_file

    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
    anns = parse_label_file(tmp_path / "a.txt", 2, 100, 50)
    assert [a.class_id for a in anns] == [0, 1]  # the same box twice is one; another class on it is another


def test_a_roboflow_umbrella_category_is_not_a_class(tmp_path):
    """Roboflow's COCO export lists its project as category 0, the supercategory of every class, used by no
    annotation: kept, it became class 0 and moved every class up by one against Roboflow's own YOLO export."""
    import cv2

    from tests.helpers import textured_image

    (tmp_path / "train").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "a.jpg"), textured_image(40, 60, seed=1))
    coco = {"images": [{"id": 0, "file_name": "a.jpg", "width": 60, "height": 40}],
            "categories": [{"id": 0, "name": "foods", "supercategory": "none"},
                           {"id": 1, "name": "croissant", "supercategory": "foods"},
                           {"id": 2, "name": "cookie", "supercategory": "foods"}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 2, "bbox": [5, 5, 10, 10], "iscrowd": 0,
                             "area": 100, "segmentation": []}]}
    (tmp_path / "train" / "_annotations.coco.json").write_text(json.dumps(coco))
    ds = load_dataset(tmp_path)
    assert ds.names == ["croissant", "cookie"] and ds.category_ids == [1, 2]
    assert [a.class_id for a in ds.splits["train"][0].annotations] == [1]
    assert main(["data", "convert", str(tmp_path), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    assert (tmp_path / "y" / "labels" / "train" / "a.txt").read_text().startswith("1 ")  # cookie, as Roboflow's YOLO
    # a category that annotations use, or one that is not every other's supercategory, stays a class
    coco["categories"][0]["supercategory"] = "bakery"  # not a top-level umbrella: a class
    (tmp_path / "train" / "_annotations.coco.json").write_text(json.dumps(coco))
    assert load_dataset(tmp_path).names == ["foods", "croissant", "cookie"]
    coco["categories"][0]["supercategory"] = "none"
    coco["annotations"][0]["category_id"] = 0
    (tmp_path / "train" / "_annotations.coco.json").write_text(json.dumps(coco))
    assert load_dataset(tmp_path).names == ["foods", "croissant", "cookie"]
