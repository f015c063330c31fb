"""Output names (issue 30, items 10 and 11): unique by construction, case-insensitively, deterministic,
today's form wherever nothing collides, and short enough for every file detseg writes under them."""

import json
import os
import random
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detseg.atomic import TEMP_TAG, atomic_write_bytes, temp_name
from detseg.pipeline.sources import (
    MAX_NAME_BYTES,
    Source,
    SourceItem,
    fit_name,
    resolve_source,
    unique_names,
)

ROOT = Path("/detseg-names-test-root")  # never created: unique_names only works on the paths


def names_of(relatives, root=ROOT, **kw):
    """``relative path -> output name`` of files at those paths under ``root``."""
    names = unique_names([root / r for r in relatives], root, **kw)
    return {r: names[str(root / r)] for r in relatives}


def nbytes(name):
    return len(name.encode("utf-8"))


def fold(name):
    """A name as a case-insensitive, normalising file system (macOS) sees it."""
    return unicodedata.normalize("NFC", name.casefold())


def assert_unique_and_short(names):
    keys = [fold(n) for n in names]
    assert len(set(keys)) == len(keys), names
    assert all(nbytes(n) <= MAX_NAME_BYTES for n in names), [nbytes(n) for n in names]


@pytest.mark.parametrize("relatives, expected", [
    # the three collisions of issue 30 item 10
    (["x.jpg", "x.JPG"], {"x.JPG": "x_jpg_1", "x.jpg": "x_jpg_2"}),
    (["a__b.jpg", "a/b.jpg"], {"a/b.jpg": "a__b_jpg_1", "a__b.jpg": "a__b_jpg_2"}),
    (["dup.jpg", "dup.png", "dup_jpg.png"], {"dup_jpg.png": "dup_jpg", "dup.png": "dup_png", "dup.jpg": "dup_jpg_1"}),
    # no collision: today's names, so --resume of existing runs finds its parts
    (["kitchen/IMG_1.jpg", "IMG_1.jpg", "b.png"], {"kitchen/IMG_1.jpg": "kitchen__IMG_1", "IMG_1.jpg": "IMG_1",
                                                   "b.png": "b"}),
    (["dup.jpg", "dup.png", "other.jpg"], {"dup.jpg": "dup_jpg", "dup.png": "dup_png", "other.jpg": "other"}),
    # three ways, and numbered names that skip a real file's name
    (["x.jpg", "X.jpg", "x.JPG"], {"X.jpg": "X_jpg_1", "x.JPG": "x_jpg_2", "x.jpg": "x_jpg_3"}),
    (["x.jpg", "x.JPG", "x_jpg_1.png"], {"x_jpg_1.png": "x_jpg_1", "x.JPG": "x_jpg_2", "x.jpg": "x_jpg_3"}),
    (["x.jpg", "X.JPG", "x_1.jpg"], {"x_1.jpg": "x_1", "X.JPG": "X_jpg_1", "x.jpg": "x_jpg_2"}),
    # a stem differing only in case from another file's stem
    (["Photo.jpg", "photo.png"], {"Photo.jpg": "Photo_jpg", "photo.png": "photo_png"}),
    # a file without an extension beside one with
    (["x", "x.jpg"], {"x": "x", "x.jpg": "x_jpg"}),
    # precomposed and decomposed accents are one name on macOS
    (["caf\u00e9.jpg", "cafe\u0301.jpg"], {"cafe\u0301.jpg": "cafe\u0301_jpg_1", "caf\u00e9.jpg": "caf\u00e9_jpg_2"}),
])
def test_colliding_names_are_suffixed_and_others_keep_todays_form(relatives, expected):
    names = names_of(relatives)
    assert names == expected
    assert_unique_and_short(names.values())
    for _ in range(5):  # whatever order the files are listed in
        shuffled = random.Random(_).sample(relatives, len(relatives))
        assert names_of(shuffled) == expected


def test_the_same_file_twice_runs_once_and_arrays_reserve_their_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "array_000000.jpg").write_bytes(b"")
    path = str(tmp_path / "array_000000.jpg")
    array = np.zeros((4, 4, 3), np.uint8)
    src = resolve_source([array, path, "array_000000.jpg", array, "./array_000000.jpg"])
    items = list(src.items())
    assert [i.name for i in items] == ["array_000000", "array_000000_jpg", "array_000003"]  # arrays: never merged
    assert src.warnings == ["2 repeated paths in the list run once (first: array_000000.jpg)"]
    assert resolve_source([path]).warnings == []


def test_a_list_path_written_with_dot_slash_keeps_its_own_name(tmp_path, monkeypatch):
    """``./p.jpg`` and ``p.jpg`` are one file: it is named ``p``, not an array's ``array_000000``."""
    monkeypatch.chdir(tmp_path)
    for name in ("p.jpg", "array_000000.jpg"):
        cv2.imwrite(name, np.zeros((4, 4, 3), np.uint8))
    items = list(resolve_source(["./p.jpg", "array_000000.jpg"]).items())
    assert [i.name for i in items] == ["p", "array_000000"]
    assert not any(i.error for i in items)


@pytest.mark.parametrize("stem, shortened", [
    ("a" * 200, False), ("a" * 201, True),  # ASCII: one byte a character
    ("\u00e9" * 100, False), ("\u00e9" * 101, True),  # two bytes a character: 202 bytes
    ("\u732b" * 66 + "ab", False), ("\u732b" * 67, True),  # CJK, three bytes: 200 and 201 bytes
    ("\U0001f950" * 50, False), ("\U0001f950" * 50 + "a", True),  # an emoji croissant, four bytes
])
def test_names_are_measured_in_utf8_bytes_and_cut_at_whole_characters(stem, shortened):
    name = names_of([f"{stem}.jpg"])[f"{stem}.jpg"]
    assert (name != stem) == shortened
    assert nbytes(name) <= MAX_NAME_BYTES
    if shortened:
        prefix, digest = name.rsplit("_", 1)
        assert stem.startswith(prefix) and len(digest) == 8 and int(digest, 16) >= 0
        assert nbytes(prefix) > MAX_NAME_BYTES - 4 - 9  # no more cut than a character's width
        assert fit_name(stem) == name  # stable: the same name on every run and machine


def test_long_names_differing_past_the_cut_stay_apart():
    a, b = "a" * 240 + "1.jpg", "a" * 240 + "2.jpg"
    c = "d1/" + "e" * 150 + "/" + "f" * 150 + ".jpg"  # each part short, flattened 309 bytes
    names = names_of([a, b, c, "d1/" + "e" * 150 + "/" + "F" * 150 + ".png"])
    assert_unique_and_short(names.values())
    assert names[a][:190] == names[b][:190] == "a" * 190
    assert names[c].startswith("d1__" + "e" * 150 + "__fff")


def test_the_budget_leaves_room_for_every_file_written_under_a_name(tmp_path):
    name = fit_name("\u00e9" * 300)
    assert nbytes(name) <= MAX_NAME_BYTES
    for ext in (".jpg", ".txt", ".png", ".json"):
        final = tmp_path / "out" / f"{name}{ext}"
        pid_temp = temp_name(final, ".part.mp4").name.replace(str(os.getpid()), "9" * 10)  # the longest pid
        random_temp = f".{final.name}.{TEMP_TAG}{'x' * 10}.part"  # what mkstemp makes, with 2 characters spare
        assert max(nbytes(pid_temp), nbytes(random_temp)) <= 255
        atomic_write_bytes(final, b"ok")  # the real file system agrees
        assert final.read_bytes() == b"ok"


def test_a_long_single_image_and_a_long_video_name_are_shortened(tmp_path):
    image = tmp_path / ("i" * 245 + ".jpg")
    image.write_bytes(b"")
    src = resolve_source(image)
    assert nbytes(src.names[str(image)]) <= MAX_NAME_BYTES
    video = Source("video", files=[tmp_path / ("v" * 245 + ".mp4")])
    names = {video.name_of(SourceItem(k, str(video.files[0]), None, frame=f)) for k, f in enumerate((0, 1, 10**7))}
    assert len(names) == 3 and all(nbytes(n) <= MAX_NAME_BYTES for n in names)
    short = Source("video", files=[tmp_path / "clip.mp4"])
    assert short.name_of(SourceItem(0, str(short.files[0]), None, frame=7)) == "clip_000007"  # as before


# relative paths of a random folder tree: few letters and both cases, so names collide often;
# some long parts, so flattened names go past the budget
_part = st.one_of(
    st.text(alphabet="aAbB_\u00e9", min_size=1, max_size=4),
    st.text(alphabet="xX\u00e9\u732b", min_size=60, max_size=130),
).filter(lambda s: s not in (".", ".."))
_relative = st.builds(
    lambda parts, stem, ext: "/".join([*parts, stem + ext]),
    st.lists(_part, max_size=3), _part, st.sampled_from(["", ".jpg", ".JPG", ".png", ".Png"]),
)


@settings(max_examples=150, deadline=None)
@given(relatives=st.lists(_relative, min_size=1, max_size=12, unique=True), seed=st.integers(0, 2**16))
def test_any_tree_gets_unique_short_names_whatever_its_order(relatives, seed):
    names = names_of(relatives)
    assert_unique_and_short(names.values())
    shuffled = random.Random(seed).sample(relatives, len(relatives))
    assert names_of(shuffled) == names
    stems = {r: fit_name("__".join(Path(r).with_suffix("").parts)) for r in relatives}
    keys = [fold(s) for s in stems.values()]
    for r, stem in stems.items():  # a name nothing else would have is today's (shortened if too long)
        if keys.count(fold(stem)) == 1:
            assert names[r] == stem


def _write(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix if path.suffix.lower() in (".jpg", ".png") else ".jpg",
                            np.full((24, 32, 3), (40 + 20 * seed) % 256, np.uint8))
    path.write_bytes(data.tobytes())


def test_colliding_and_over_long_inputs_all_get_outputs_and_image_ids(tmp_path):
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.segmenter import BoxSegmenter
    from tests.helpers import FakeDetector

    folder = tmp_path / "in"
    relatives = ["x.jpg", "x.JPG", "a__b.jpg", "a/b.jpg", "dup.jpg", "dup.png", "dup_jpg.png",
                 "l" * 245 + ".jpg", "/".join(["n" * 100] * 3) + ".jpg"]
    for i, r in enumerate(relatives):
        _write(folder / r, i)
    out = tmp_path / "out"
    summary = run_predict(Pipeline(FakeDetector(), BoxSegmenter()), folder, out,
                          RunOptions(progress=False, save_dataset=tmp_path / "ds"))
    assert summary["processed"] == len(relatives) and not summary["failed"]
    images = json.loads((out / "images.json").read_text())["images"]
    assert sorted(im["file_name"] for im in images) == sorted(relatives)
    assert len({im["id"] for im in images}) == len({fold(im["output_name"]) for im in images}) == len(relatives)
    for kind, ext in (("annotated", ".jpg"), ("labels", ".txt"), ("parts", ".json")):
        assert len(list((out / kind).glob(f"*{ext}"))) == len(relatives)
    by_file = {im["file_name"]: im for im in images}
    assert by_file["x.jpg"]["width"] == 32 and by_file["dup_jpg.png"]["output_name"] == "dup_jpg"
    dataset = json.loads((tmp_path / "ds" / "autolabel.json").read_text())["files"]
    assert len({fold(s) for s in dataset}) == len(relatives)
    assert all(nbytes(s) <= MAX_NAME_BYTES for s in dataset)
    again = run_predict(Pipeline(FakeDetector(), BoxSegmenter()), folder, out, RunOptions(progress=False, resume=True))
    assert again["resumed_skipped"] == len(relatives)


def test_files_in_symlinked_subfolders_are_named_where_they_lie(tmp_path):
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.segmenter import BoxSegmenter
    from tests.helpers import FakeDetector, textured_image

    disk = tmp_path / "disk"
    for split in ("train", "val"):
        (disk / split).mkdir(parents=True)
        cv2.imwrite(str(disk / split / "0001.jpg"), textured_image(40, 60, len(split)))
    images = tmp_path / "images"
    images.mkdir()
    for split in ("train", "val"):
        (images / split).symlink_to(disk / split, target_is_directory=True)
    src = resolve_source(images)
    assert sorted(src.names.values()) == ["train__0001", "val__0001"]  # not 0001_jpg_1 / _2 by sort order
    run_predict(Pipeline(FakeDetector(), BoxSegmenter()), images, tmp_path / "out", RunOptions(progress=False))
    listed = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert sorted(im["file_name"] for im in listed) == ["train/0001.jpg", "val/0001.jpg"]
