"""Generated items composited onto real photos: exact masks, unlabelled look-alikes, negatives."""

import filecmp
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detseg.data.synth.composite import (
    BLUR_SIGMAS,
    brightness_slope,
    fine_detail,
    matching_blur,
    noise_sigma,
    photo_lighting,
    render_on_photo,
)
from detseg.data.synth.distractors import COOKIE_VARIANTS, DISTRACTORS
from detseg.data.synth.generate import generate_dataset, list_backgrounds, place_items
from detseg.data.synth.real_items import cutout, load_box_labels, load_cutouts
from tests.helpers import textured_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three 'real photos' of different sizes and aspects (JPEG files)."""
    folder = tmp_path_factory.mktemp("photos")
    for i, (h, w) in enumerate(((120, 180), (200, 150), (90, 90))):
        cv2.imwrite(str(folder / f"photo{i}.jpg"), textured_image(h, w, seed=i))
    return folder


@pytest.mark.parametrize("seed", range(4))
def test_pasted_item_masks_are_exactly_the_pixels_the_items_cover(seed):
    """On a black canvas with neutral light, an item's pixels are its alpha: mask == alpha >= 0.5 after occlusion."""
    rng = np.random.default_rng(seed)
    img = np.zeros((160, 200, 3), np.float32)
    ids = np.zeros((160, 200), np.int16)
    light = np.ones((160, 200), np.float32)
    placed = place_items(rng, img, ids, light, (1.0, 0.0), 6, 20, 70)
    masks, class_ids = placed.masks(ids)
    assert len(masks) == len(class_ids) >= 1
    assert masks.sum(0).max() == 1 and masks.sum((1, 2)).min() > 0
    covered = masks.any(0)
    # every mask pixel was painted (no item is pure black); unpainted pixels belong to no mask
    assert (img.max(axis=2)[covered] > 0).all()
    painted = img.max(axis=2) > 1.0
    edge = cv2.dilate(covered.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~covered
    assert not (painted & ~covered & ~edge).any() or (painted & ~covered & ~edge).mean() < 0.002


def test_lookalikes_are_drawn_but_never_labelled():
    rng = np.random.default_rng(0)
    img = np.zeros((128, 128, 3), np.float32)
    ids = np.zeros((128, 128), np.int16)
    placed = place_items(rng, img, ids, np.ones((128, 128), np.float32), (0.0, 1.0), 5, 20, 50,
                         drawers=DISTRACTORS, label=False)
    assert img.max() > 0  # something was drawn
    assert not ids.any() and len(placed.masks(ids)[0]) == 0


@pytest.mark.parametrize("drawer", DISTRACTORS + COOKIE_VARIANTS, ids=lambda d: d.__name__)
def test_every_drawer_gives_a_float_bgr_canvas_and_alpha(drawer):
    colour, alpha = drawer(np.random.default_rng(1), 60.0)
    assert np.issubdtype(colour.dtype, np.floating) and colour.shape == (*alpha.shape, 3)
    assert 0 <= colour.min() and colour.max() <= 255 and 0 <= alpha.min() and alpha.max() <= 1
    assert (alpha >= 0.5).sum() > 0.1 * alpha.size


@pytest.mark.parametrize("max_items, distractor_rate", [(0, 1.0), (1, 0.0), (12, 0.7)])
def test_render_on_photo_keeps_the_photo_aspect_and_labels_only_items(max_items, distractor_rate):
    photo = textured_image(300, 450, seed=7)
    for seed in range(3):
        scene = render_on_photo(np.random.default_rng(seed), photo, 192, max_items=max_items,
                                distractor_rate=distractor_rate)
        assert scene.image.shape == (128, 192, 3)  # long side 192, aspect 3:2 kept
        assert scene.masks.shape[1:] == (128, 192) and len(scene.masks) == len(scene.class_ids)
        if max_items == 0:
            assert len(scene.masks) == 0
        if len(scene.masks):
            assert scene.masks.sum(0).max() == 1


def _smooth_photo(h=240, w=320, level=120.0, slope=0.0):
    """A grey photo with no detail: ``level`` brightness, ``slope`` brighter to the right."""
    ramp = level * (1 + slope * (np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]))
    return np.repeat(np.clip(np.broadcast_to(ramp, (h, w)), 0, 255)[..., None], 3, axis=2).astype(np.uint8)


def _with_noise(photo, sigma, seed=0):
    noisy = photo.astype(np.float32) + np.random.default_rng(seed).normal(0, sigma, photo.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _busy_photo(h=240, w=320, seed=0):
    """A sharp photo with fine detail everywhere (a printed pattern)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _interior_noise(image, masks):
    """Immerkaer's noise estimate inside the labelled items, away from their edges."""
    inside = cv2.erode(masks.any(0).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    response = cv2.filter2D(image.astype(np.float32), -1, np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]]))
    return float(np.sqrt(np.pi / 2) * np.abs(response[inside]).mean() / 6)


def _shapes_photo(h=240, w=320, seed=0):
    """A noise-free photo with smooth shading and sharp-edged shapes (no pixel noise at all)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, (4, 5, 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            cv2.circle(img, centre, int(rng.integers(8, 40)), colour, -1)
        else:
            cv2.rectangle(img, centre, (centre[0] + int(rng.integers(10, 60)), centre[1] + int(rng.integers(10, 60))),
                          colour, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [0.0, 3.0, 8.0])
@pytest.mark.parametrize("content", ["smooth", "shapes"])
def test_noise_sigma_measures_the_noise_not_the_edges(sigma, content):
    photo = _smooth_photo(slope=0.4) if content == "smooth" else _shapes_photo()
    assert noise_sigma(_with_noise(photo, sigma)) == pytest.approx(sigma, abs=0.3 + 0.1 * sigma)


def test_fine_detail_falls_with_blur_and_matching_blur_follows_the_target():
    sharp = _busy_photo(seed=0).astype(np.float32)
    details = [fine_detail(cv2.GaussianBlur(sharp, (0, 0), s)) for s in (0.5, 1.0, 2.0)]
    assert details[0] > details[1] > details[2]
    items = _busy_photo(seed=1).astype(np.float32)  # other content of the same kind, blurs between the candidates
    everywhere = np.ones(items.shape[:2], bool)
    picked = [matching_blur(items, everywhere, fine_detail(cv2.GaussianBlur(sharp, (0, 0), s)))[0]
              for s in (0.4, 0.85, 1.7)]
    assert picked[0] in (0.3, 0.5) and picked[1] in (0.7, 1.0) and picked[2] in (1.4, 2.0)
    assert set(picked) <= set(BLUR_SIGMAS)


@pytest.mark.parametrize("slope, towards", [(0.6, (1.0, 0.0)), (-0.6, (-1.0, 0.0))])
def test_the_light_comes_from_the_photos_brighter_side(slope, towards):
    photo = _smooth_photo(slope=slope)
    assert brightness_slope(photo[..., 0].astype(np.float32))[0] == pytest.approx(slope, rel=0.05)
    for seed in range(8):  # the light points at the bright side, within 30 degrees
        _, _, light_dir = photo_lighting(np.random.default_rng(seed), photo)
        assert np.dot(light_dir, towards) >= np.cos(np.pi / 6) - 1e-6


def test_on_a_flat_photo_the_light_comes_from_anywhere():
    directions = [photo_lighting(np.random.default_rng(seed), _smooth_photo())[2] for seed in range(8)]
    assert max(d[0] for d in directions) > 0.5 and min(d[0] for d in directions) < -0.5


def _items_scene(photo, seed=3):
    return render_on_photo(np.random.default_rng(seed), photo, 320, max_items=8, distractor_rate=0.0)


def test_masks_are_the_items_whatever_the_photo_shows():
    """Labels come from the items drawn, never from the photo's pixels: same draw, same masks."""
    h, w = 240, 320
    photos = [textured_image(h, w, seed=1), np.zeros((h, w, 3), np.uint8), _with_noise(_smooth_photo(), 10),
              _busy_photo()]
    scenes = [_items_scene(photo) for photo in photos]
    assert len(scenes[0].masks) > 0
    for scene in scenes[1:]:
        assert np.array_equal(scene.masks, scenes[0].masks)
        assert np.array_equal(scene.class_ids, scenes[0].class_ids)


@pytest.mark.parametrize("sigma", [0, 10, 20])
@pytest.mark.parametrize("content", ["smooth", "shapes"])
def test_pasted_items_are_as_noisy_as_the_photo_around_them(sigma, content):
    photo = _smooth_photo() if content == "smooth" else _shapes_photo(seed=2)
    scene = _items_scene(_with_noise(photo, sigma), seed=4)
    items = scene.masks.any(0).astype(np.uint8)
    grown = {k: cv2.dilate(items, np.ones((k, k), np.uint8)).astype(bool) for k in (7, 21, 25)}
    near, far = grown[21] & ~grown[7], ~grown[25]  # a ring 3-10 px outside the items; the rest
    inside, ring, background = (_interior_noise(scene.image, m[None]) for m in (scene.masks.any(0), near, far))
    if sigma:
        assert inside == pytest.approx(background, rel=0.3)
        assert ring == pytest.approx(background, rel=0.2)  # no halo of extra grain around a paste
    else:  # a noise-free photo: the items stay clean too (only the light noise over the whole frame)
        assert inside < 2.0 and ring < 2.0


def test_pasted_items_are_as_soft_as_the_photo():
    sharp, soft = _busy_photo(), cv2.GaussianBlur(_busy_photo(), (0, 0), 2.0)
    a, b = _items_scene(sharp), _items_scene(soft)
    assert fine_detail(b.image, b.masks.any(0)) < 0.9 * fine_detail(a.image, a.masks.any(0))


def test_same_seed_same_photo_same_scene():
    photo = textured_image(200, 260, seed=2)
    a, b = (render_on_photo(np.random.default_rng(9), photo, 160) for _ in range(2))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)


def test_dataset_with_backgrounds_negatives_and_real_items(photos, tmp_path):
    labels = {"images": [{"id": 1, "file_name": "photo0.jpg", "width": 180, "height": 120},
                         {"id": 2, "file_name": "photo1.jpg", "width": 150, "height": 200}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [30, 20, 60, 50]},
                              {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 40, 40]}],
              "categories": [{"id": 1, "name": "croissant"}, {"id": 2, "name": "cookie"},
                             {"id": 3, "name": "cupcake"}]}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    backgrounds = list_backgrounds(photos, exclude={"photo0.jpg"})
    assert [p.name for p in backgrounds] == ["photo1.jpg", "photo2.jpg"]
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        summary = generate_dataset(out, {"train": 6, "val": 2}, seed=4, imgsz=96, progress=False,
                                   backgrounds=backgrounds, photo_fraction=1.0, negatives=0.5,
                                   real_items=(str(tmp_path / "labels.json"), str(photos)), real_repeat=2)
        outs.append(out)
    a, b = outs
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)  # same seed, same bytes

    train = summary["splits"]["train"]
    assert train["photo_composites"] == 6 and train["background_photos"] == 3
    negatives = sorted((a / "images" / "train").glob("train_neg_*"))
    assert len(negatives) == 3
    for neg in negatives:  # the photo itself, untouched, with an empty label file
        assert neg.read_bytes() in {p.read_bytes() for p in backgrounds}
        assert (a / "labels" / "train" / f"{neg.stem}.txt").read_text() == ""
    real = sorted((a / "labels" / "train").glob("train_real_*.txt"))
    assert len(real) == 2  # photo0 twice; photo1 has no boxes and is left out
    rows = [list(map(float, line.split())) for line in real[0].read_text().splitlines()]
    np.testing.assert_allclose(rows, [[1, 60 / 180, 45 / 120, 60 / 180, 50 / 120],
                                      [1, 20 / 180, 20 / 120, 40 / 180, 40 / 120]], atol=1e-5)
    coco = json.loads((a / "annotations" / "train.json").read_text())
    assert len(coco["images"]) == train["images"] == 6 + 3 + 2
    from detseg.data.io import load_dataset

    ds = load_dataset(a / "data.yaml")
    assert len(ds.splits["train"]) == 11


def test_cutouts_skip_items_cut_by_the_border_and_follow_resized_photos(photos, tmp_path):
    labels = {"images": [{"id": 1, "file_name": "photo0.jpg", "width": 360, "height": 240}],  # labelled at 2x
              "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [60, 40, 120, 100]},
                              {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 80, 80]}],
              "categories": [{"id": 2, "name": "cookie"}]}
    (tmp_path / "l.json").write_text(json.dumps(labels))
    assert load_box_labels(tmp_path / "l.json")["photo0.jpg"][0] == ("cookie", (60 / 360, 40 / 240, 0.5, 140 / 240))
    cutouts = load_cutouts(str(tmp_path / "l.json"), str(photos))
    assert list(cutouts) == ["cookie"] and len(cutouts["cookie"]) == 1  # the border box is not cut out
    colour, alpha = cutouts["cookie"][0]
    assert alpha.shape == (50 + 2, 60 + 2)  # the box on the 180x120 file, plus a 1-px feather margin
    assert alpha[26, 31] == 1.0 and alpha[0, 0] == 0.0  # an ellipse: full inside, empty in the corner


def test_cutout_is_the_inscribed_ellipse():
    colour, alpha = cutout(np.full((50, 50, 3), 100, np.uint8), (10, 10, 40, 30))
    assert colour.shape == (22, 32, 3) and alpha.shape == (22, 32)
    # the ellipse inscribed in the 30 x 20 box, its anti-aliased rim half a pixel out
    assert np.pi * 15 * 10 <= (alpha >= 0.5).sum() <= np.pi * 15.6 * 10.6


@pytest.mark.parametrize("photo_fraction, composites", [(0.0, 0), (1.0, 4)])
def test_summary_counts_the_photo_composites(photos, tmp_path, photo_fraction, composites):
    summary = generate_dataset(tmp_path / "out", {"train": 4}, seed=1, imgsz=64, progress=False,
                               backgrounds=list_backgrounds(photos), photo_fraction=photo_fraction)
    assert summary["splits"]["train"]["photo_composites"] == composites


def test_pure_synthetic_scenes_among_composites_draw_from_an_unconditioned_stream():
    """The photo-or-synthetic draw has its own stream. It once shared the scene's (``[seed, split, i, 0]`` and
    ``[seed, split, i]`` seed the same generator), so every synthetic scene of a --backgrounds dataset began
    with a draw above --photo-fraction: its light came from one narrow sector."""
    from detseg.data.synth.generate import _image_rng, _jobs

    jobs = _jobs(3, "train", 400, 64, "polygon", [Path("a.jpg"), Path("b.jpg")], 0.5, None)
    synthetic = [i for (_s, _split, i, *_rest, photo, _real) in jobs if photo is None]
    assert 150 < len(synthetic) < 250  # about half, as --photo-fraction 0.5 asks
    first = np.array([_image_rng(3, "train", i).random() for i in synthetic])
    assert first.min() < 0.1 and first.max() > 0.9  # the scenes' own first draws cover [0, 1)
    assert 0.4 < np.mean(first < 0.5) < 0.6


def test_each_background_photo_belongs_to_one_split_by_its_name():
    from collections import Counter

    from detseg.data.synth.generate import background_split, split_backgrounds

    names = [f"photo_{i:05d}.jpg" for i in range(3000)]
    shares = Counter(background_split(n) for n in names)
    assert abs(shares["train"] / 3000 - 0.8) < 0.03 and abs(shares["val"] / 3000 - 0.1) < 0.02
    assert background_split("x/y/photo_00001.jpg".rsplit("/", 1)[1]) == background_split("photo_00001.jpg")
    own, shared = split_backgrounds([Path("d") / n for n in names[:200]], ["train", "val"])
    assert shared == [] and not {p.name for p in own["train"]} & {p.name for p in own["val"]}
    # the same photo is in the same split whatever else is in the folder and whichever splits are made
    own_val_only, _ = split_backgrounds([Path("e") / n for n in names[100:300]], ["val"])
    overlap = set(names[100:200])
    assert {p.name for p in own["val"]} & overlap == {p.name for p in own_val_only["val"]} & overlap != set()


def test_val_composites_and_negatives_never_use_a_train_background_nor_real_cutouts(tmp_path, monkeypatch):
    from detseg.data.synth.generate import _jobs, background_split, split_backgrounds

    folder = tmp_path / "bg"
    folder.mkdir()
    for i in range(40):
        cv2.imwrite(str(folder / f"bg{i:02d}.jpg"), textured_image(48, 64, seed=100 + i))
    backgrounds = list_backgrounds(folder)
    own, shared = split_backgrounds(backgrounds, ["train", "val"])
    assert shared == [] and own["val"]  # 40 photos: val has photos of its own
    real = ("labels.json", str(folder))
    for split in ("train", "val"):
        jobs = _jobs(5, split, 30, 64, "polygon", own[split], 1.0, real)
        assert {background_split(Path(photo).name) for *_, photo, _real in jobs} == {split}
        assert {r is not None for *_, _photo, r in jobs} == {split == "train"}  # cut-outs in train only
    import detseg.data.synth.generate as generate

    rendered, render = [], generate._render_image

    def recording(job):  # what generate_dataset hands each image (workers=1 renders in this process)
        rendered.append((job[1], job[5], job[6]))
        return render(job)

    monkeypatch.setattr(generate, "_render_image", recording)
    labels = {"images": [{"id": 1, "file_name": "bg00.jpg", "width": 64, "height": 48}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [10, 10, 30, 20]}],
              "categories": [{"id": 2, "name": "cookie"}]}
    (tmp_path / "cookies.json").write_text(json.dumps(labels))
    summary = generate_dataset(tmp_path / "out", {"train": 4, "val": 4}, seed=2, imgsz=64, progress=False,
                               backgrounds=backgrounds, photo_fraction=1.0, negatives=1.0,
                               real_items=(str(tmp_path / "cookies.json"), str(folder)))
    assert len(rendered) == 8
    assert all(background_split(Path(photo).name) == split for split, photo, _real in rendered)
    assert {(split, real is not None) for split, _photo, real in rendered} == {("train", True), ("val", False)}
    val_negatives = sorted((tmp_path / "out" / "images" / "val").glob("val_neg_*"))
    val_bytes = {p.read_bytes() for p in own["val"]}
    assert len(val_negatives) == 4 and all(n.read_bytes() in val_bytes for n in val_negatives)
    assert summary["splits"]["val"]["backgrounds_drawn_from"] == len(own["val"])
    assert summary["splits"]["val"]["backgrounds_shared"] is False and summary["generator_version"] == 2


def test_a_split_without_backgrounds_of_its_own_shares_them_and_says_so(photos, tmp_path):
    backgrounds = list_backgrounds(photos)  # three photos, all of them train's
    with pytest.warns(UserWarning, match="val got none of their own"):
        summary = generate_dataset(tmp_path / "out", {"train": 2, "val": 2}, seed=1, imgsz=64, progress=False,
                                   backgrounds=backgrounds, photo_fraction=1.0)
    assert summary["splits"]["val"]["backgrounds_shared"] is True
    assert summary["splits"]["val"]["photo_composites"] == 2
