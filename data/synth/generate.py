"""Synthetic food photos (croissant, cookie, cupcake) with exact instance masks.

Example:
    >>> import numpy as np
    >>> from detseg.data.synth.generate import render_scene
    >>> scene = render_scene(np.random.default_rng(0), 320, 320)
    >>> scene.image.shape, scene.image.dtype
    ((320, 320, 3), dtype('uint8'))
    >>> len(scene.masks) == len(scene.class_ids) >= 1
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detseg.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, place_file, temp_name
from detseg.data.polygons import instance_polygons, mask_to_rle, merge_polygons
from detseg.data.synth.food_items import CLASS_NAMES
from detseg.data.synth.scene import Scene, place_items
from detseg.data.synth.textures import background, lighting, per_channel, per_pixel
from detseg.data.yolo_format import yolo_line
from detseg.errors import InputError
from detseg.video_writer import VideoWriter

SPLITS = ("train", "val", "test")
# 2 (2026-12-08): each background photo belongs to one split (background_split), the photo-or-synthetic draw
# has a stream of its own, real cut-outs go into train only. Datasets made with --backgrounds by version 1
# (detseg up to commit dd1746a) differ from version 2's; pure synthetic ones have the same images and labels.
GENERATOR_VERSION = 2
# shares of the background photos each split draws from (by a hash of the file name; see background_split)
BACKGROUND_SHARES = (("train", 0.8), ("val", 0.1), ("test", 0.1))
def render_scene(rng: np.random.Generator, height: int = 640, width: int = 640) -> Scene:
    """Render one photo-like scene of 1 to 25 food items.

    Args:
        rng: the only source of randomness; the same state gives the same scene.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        A :class:`Scene` whose masks are exact: ``alpha >= 0.5`` of each item minus
        what later items cover. Fully hidden items are dropped.
    """
    h, w = height, width
    side = min(h, w)
    light, light_dir = lighting(rng, h, w)
    img = background(rng, h, w)
    img *= per_pixel(light)  # in place, here and below: the same operations, fewer temporaries
    ids = np.zeros((h, w), np.int16)  # 0 = background, k = k-th placed item

    n_items = int(rng.integers(1, 26))
    max_size = max(side * 0.5 / np.sqrt(max(1.0, n_items / 3)), 24.0)
    min_size = max(12.0, side * 0.03)
    placed = place_items(rng, img, ids, light, light_dir, n_items, min_size, max_size)

    # camera: white balance, blur, sensor noise
    img *= per_channel(rng.uniform(0.92, 1.08, 3).astype(np.float32), w)
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    # sensor noise: uniform with std ``sigma`` (several times cheaper to draw than normal)
    sigma = np.float32(rng.uniform(1, 6) * np.sqrt(12))
    img += per_pixel(sigma * (rng.random((h, w), dtype=np.float32) - 0.5))
    chroma = rng.random((h // 2 + 1, w // 2 + 1, 3), dtype=np.float32) - 0.5
    chroma = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_NEAREST)
    chroma *= sigma * 0.5
    img += chroma
    image = np.clip(img, 0, 255, out=img).astype(np.uint8)

    masks, class_ids = placed.masks(ids)
    return Scene(image, masks, class_ids, jpeg_quality=int(rng.integers(55, 96)))


def render_clip(path: str | Path, frames: int = 24, imgsz: int = 320, fps: float = 12.0, seed: int = 0) -> Path:
    """A short synthetic video: the camera pans across one larger rendered scene.

    Args:
        path: output ``.mp4`` (written to a temporary name, then renamed).
        frames: number of frames.
        imgsz: square frame side in pixels.
        fps: frames per second.
        seed: scene seed.

    Returns:
        The path written.
    """
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = render_scene(np.random.default_rng([seed, 99]), imgsz * 2, imgsz * 2)
    tmp = temp_name(path, ".part.mp4")
    with VideoWriter(tmp, fps) as writer:  # H.264: plays in browsers and notebooks
        for i in range(frames):
            t = i / max(frames - 1, 1)
            y, x = int(t * imgsz * 0.8), int(t * imgsz)
            writer.write(scene.image[y:y + imgsz, x:x + imgsz])
    os.replace(tmp, path)
    return path


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent stream per (seed, split, image): images never depend on each other."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _photo_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """Streams of the real-photo options, apart from :func:`_image_rng`: adding photos never
    changes the purely synthetic images of the same seed."""
    return np.random.default_rng([seed, SPLITS.index(split), index, stream])


def background_split(name: str) -> str:
    """The split a background photo is drawn for, from its file name alone (sha256 into
    :data:`BACKGROUND_SHARES`): the same photo lands in the same split whatever the seed, the other photos or
    the splits one call makes, so a photo behind a ``val`` composite is never behind a ``train`` one, in this
    dataset or in another made from the same folder."""
    u = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") / 2**64
    for split, share in BACKGROUND_SHARES:
        if u < share:
            return split
        u -= share
    return BACKGROUND_SHARES[-1][0]


def split_backgrounds(backgrounds, splits) -> tuple[dict[str, list[Path]], list[str]]:
    """Each split's own background photos (:func:`background_split`), and the splits that had none of their
    own and draw from all of them instead (too few photos to keep the splits apart)."""
    own = {s: [Path(b) for b in backgrounds if background_split(Path(b).name) == s] for s in splits}
    shared = [s for s in splits if not own[s]]
    for s in shared:
        own[s] = [Path(b) for b in backgrounds]
    return own, shared


def _jobs(seed, split, count, imgsz, masks_as, backgrounds, photo_fraction, real_items) -> list[tuple]:
    """One job per image; ``backgrounds`` are this split's own photos. Real cut-outs are pasted only into
    ``train`` composites: the labelled photos are training material (``--real-repeat`` puts them in train),
    so an item of theirs in a val or test image would be an item the model trained on."""
    jobs = []
    for i in range(count):
        photo = None
        if backgrounds:
            pick = _photo_rng(seed, split, i, 2)  # stream 0 would be _image_rng's own: the scene's first draws
            if pick.random() < photo_fraction:
                photo = str(backgrounds[int(pick.integers(len(backgrounds)))])
        items = real_items if photo and split == "train" else None
        jobs.append((seed, split, i, imgsz, masks_as, photo, items))
    return jobs


def _negatives(seed: int, split: str, count: int, backgrounds) -> list[Path]:
    """``count`` background-only photos for a split: a seeded shuffle of the split's ``backgrounds``, cycled."""
    if not count:
        return []
    order = np.random.default_rng([seed, SPLITS.index(split), 2**20]).permutation(len(backgrounds))
    return [Path(backgrounds[order[j % len(order)]]) for j in range(count)]


def _scene_labels(scene: Scene, image_id: int, first_ann_id: int, masks_as: str) -> tuple[list[str], list[dict]]:
    """YOLO-seg lines and COCO annotations of one scene (polygons traced once per instance)."""
    h, w = scene.image.shape[:2]
    lines, anns = [], []
    for mask, cls in zip(scene.masks, scene.class_ids):
        parts = instance_polygons(mask)
        if not parts:
            continue
        lines.append(yolo_line(cls, merge_polygons(parts), w, h))
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))  # cheaper than nonzero()
        x0, y0, x1, y1 = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
        if masks_as == "rle":
            seg = mask_to_rle(mask)
        else:
            seg = [np.round(p.ravel().astype(np.float64), 2).tolist() for p in parts]
        anns.append(
            {
                "id": first_ann_id + len(anns),
                "image_id": image_id,
                "category_id": int(cls) + 1,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": int(np.count_nonzero(mask[y0:y1, x0:x1])),
                "segmentation": seg,
                "iscrowd": 0,
            }
        )
    return lines, anns


def coco_categories(names=CLASS_NAMES) -> list[dict]:
    """COCO categories for class names; category id = class index + 1 (0 stays free)."""
    return [{"id": i + 1, "name": n, "supercategory": "food"} for i, n in enumerate(names)]


def write_data_yaml(path: Path, splits: list[str], names=CLASS_NAMES) -> None:
    """An ultralytics dataset file: train, val, [test], names.

    No ``path:`` key: ultralytics and :func:`detseg.data.io.load_dataset` then resolve the
    split folders beside the data.yaml itself, so a copied or moved dataset stays valid.
    """
    lines = []
    for split in splits:
        lines.append(f"{split}: images/{split}")
    lines.append("names:")
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _render_image(job: tuple) -> tuple[bytes, list[str], list[dict], list[int], tuple[int, int]]:
    """One image of a dataset: JPEG bytes, YOLO-seg lines, COCO annotations (ids from 0), class ids, (w, h).

    Depends only on ``job`` (its own RNG stream), so workers give the same bytes as one process.
    """
    seed, split, index, imgsz, masks_as, photo, real_items = job
    if photo is None:
        scene = render_scene(_image_rng(seed, split, index), imgsz, imgsz)
    else:
        from detseg.data.synth.composite import render_on_photo
        from detseg.images import read_image

        extra = ()
        if real_items is not None:
            from detseg.data.synth.real_items import cutout_drawer, load_cutouts

            cutouts = load_cutouts(*real_items)
            extra = tuple((cutout_drawer(items), CLASS_NAMES.index(cls)) for cls, items in sorted(cutouts.items()))
        scene = render_on_photo(_photo_rng(seed, split, index, 1), read_image(photo), imgsz, extra_drawers=extra)
    ok, jpg = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality])
    lines, anns = _scene_labels(scene, index + 1, 0, masks_as)
    height, width = scene.image.shape[:2]
    return jpg.tobytes(), lines, anns, [int(c) for c in scene.class_ids], (width, height)


def _size_of(path: Path) -> tuple[int, int]:
    """(width, height) as ultralytics and image viewers see it (EXIF rotation applied)."""
    from detseg.images import open_pil, shown_size

    with open_pil(path) as im:
        return shown_size(im)


def read_name_list(path: str | Path) -> set[str]:
    """File names listed one per line in a text file; ``#`` starts a comment."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {ln.split("#")[0].strip() for ln in lines} - {""}


def list_backgrounds(folder: str | Path, exclude=()) -> list[Path]:
    """Image files under ``folder`` (sorted, recursive) minus those whose name is in ``exclude``.

    ``exclude`` holds file names, or a path to a text file with one name per line (``#``
    comments allowed): photos that show one of the classes must not be backgrounds.
    """
    from detseg.images import IMAGE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"backgrounds folder not found: {folder}")
    exclude = read_name_list(exclude) if isinstance(exclude, (str, Path)) else set(exclude)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in exclude)
    if not files:
        raise ValueError(f"no background images in {folder} (after excluding {len(exclude)} names)")
    return files


def _add_labelled_photos(out: Path, real_items, repeat: int, images: list, annotations: list, per_class: list):
    """Copy hand-labelled photos (box labels) into ``train``, each ``repeat`` times under its own name."""
    from detseg.data.synth.real_items import load_box_labels

    labels, folder = load_box_labels(real_items[0]), Path(real_items[1])
    for r in range(repeat):
        for k, (file_name, boxes) in enumerate(sorted(labels.items())):
            if not boxes:  # e.g. only a printed picture on a packet: neither a positive nor a safe negative
                continue
            src = folder / file_name
            name = f"train_real_{r:02d}_{k:04d}{src.suffix.lower()}"
            place_file(src, out / "images" / "train" / name)
            width, height = _size_of(src)
            lines = []
            image_id = len(images) + 1
            for cls_name, (u0, v0, u1, v1) in boxes:  # fractions of width / height
                c = CLASS_NAMES.index(cls_name)
                lines.append(f"{c} {(u0 + u1) / 2:.6f} {(v0 + v1) / 2:.6f} {u1 - u0:.6f} {v1 - v0:.6f}")
                x0, y0, bw, bh = u0 * width, v0 * height, (u1 - u0) * width, (v1 - v0) * height
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": c + 1,
                                    "bbox": [round(x0, 2), round(y0, 2), round(bw, 2), round(bh, 2)],
                                    "area": round(bw * bh, 2), "segmentation": [], "iscrowd": 0})
                per_class[c] += 1
            text = "\n".join(lines) + "\n" * bool(lines)
            atomic_write_text(out / "labels" / "train" / f"{Path(name).stem}.txt", text)
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core: no oversubscription


def generate_dataset(
    out: str | Path,
    counts: dict[str, int],
    seed: int = 0,
    imgsz: int = 640,
    masks_as: str = "polygon",
    progress: bool = True,
    workers: int = 1,
    backgrounds=None,
    photo_fraction: float = 0.8,
    negatives: float = 0.0,
    real_items: tuple[str, str] | None = None,
    real_repeat: int = 0,
) -> dict:
    """Generate a synthetic food dataset in the fixed layout (see ``detseg data synth --help``).

    Args:
        out: output folder.
        counts: images per split, e.g. ``{"train": 100, "val": 20}``; keys from :data:`SPLITS`.
        seed: same seed and arguments give byte-identical files.
        imgsz: square image side in pixels.
        masks_as: COCO segmentation as ``"polygon"`` (one polygon per part, holes bridged) or ``"rle"`` (exact).
        progress: show a tqdm bar.
        workers: processes rendering images in parallel; the files are the same for any number.
        backgrounds: real photos (paths) to composite the items onto (:mod:`detseg.data.synth.composite`),
            with unlabelled look-alike foods among them; see :func:`list_backgrounds`. Each photo belongs
            to one split (:func:`background_split`: 80 / 10 / 10% by file name), for its composites and its
            negatives; a split with none of its own draws from all of them, with a warning.
        photo_fraction: share of the images composited on a real photo when ``backgrounds``
            are given; the rest are fully synthetic scenes.
        negatives: with ``backgrounds``, add ``round(negatives * count)`` background-only real
            photos per split, copied as they are, with empty
            label files: ultralytics trains on them as negatives.
        real_items: ``(labels_json, images_dir)``: hand-labelled real photos (COCO boxes). Their
            items are cut out and pasted into the ``train`` photo composites beside the drawn ones
            (:mod:`detseg.data.synth.real_items`); val and test composites get drawn items only.
        real_repeat: also put each labelled photo itself into ``train`` this many times (box labels).

    Returns:
        A summary dict: the generator version, and for each split its images, instances per class,
        photo composites, negatives and the background photos it drew from.
    """
    if masks_as not in ("polygon", "rle"):
        raise ValueError(f"masks_as must be 'polygon' or 'rle', got {masks_as!r}")
    unknown = set(counts) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; expected some of {SPLITS}")
    if imgsz < 32:
        raise ValueError(f"imgsz must be at least 32, got {imgsz}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 <= photo_fraction <= 1 or negatives < 0:
        raise ValueError(f"photo_fraction must be in [0, 1] and negatives >= 0, got {photo_fraction}, {negatives}")
    backgrounds = [Path(b) for b in backgrounds or ()]
    if negatives and not backgrounds:
        raise ValueError("negatives need backgrounds (real photos without any of the classes)")
    out = Path(out)
    _check_out(out)
    splits = [s for s in SPLITS if counts.get(s, 0) > 0]
    per_split, shared = split_backgrounds(backgrounds, splits) if backgrounds else ({s: [] for s in splits}, [])
    if shared and (photo_fraction > 0 or negatives > 0):  # photos are used: say which splits share them
        warnings.warn(f"{len(backgrounds)} background photo(s): split(s) {', '.join(shared)} got none of their "
                      f"own and draw from all of them, so their composites share backgrounds with the other "
                      f"splits (each photo belongs to one split by {BACKGROUND_SHARES}: give more photos)",
                      stacklevel=2)
    summary = {}
    n_neg = {s: round(counts[s] * negatives) if backgrounds else 0 for s in splits}
    total = sum(counts[s] + n_neg[s] for s in splits)
    bar = tqdm(total=total, desc="synth", unit="img", disable=not progress)
    pool = None
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
    try:
        for split in splits:
            images, annotations = [], []
            per_class = [0] * len(CLASS_NAMES)
            jobs = _jobs(seed, split, counts[split], imgsz, masks_as, per_split[split], photo_fraction, real_items)
            results = pool.imap(_render_image, jobs, chunksize=4) if pool else map(_render_image, jobs)
            for i, (jpg, lines, anns, class_ids, (width, height)) in enumerate(results):
                name = f"{split}_{i:06d}"
                atomic_write_bytes(out / "images" / split / f"{name}.jpg", jpg)
                atomic_write_text(out / "labels" / split / f"{name}.txt", "\n".join(lines) + ("\n" if lines else ""))
                images.append({"id": i + 1, "file_name": f"{name}.jpg", "width": width, "height": height})
                for ann in anns:
                    ann["id"] += len(annotations) + 1
                annotations += anns
                for c in class_ids:
                    per_class[c] += 1
                bar.update(1)
            for j, photo in enumerate(_negatives(seed, split, n_neg[split], per_split[split])):
                name = f"{split}_neg_{j:06d}{photo.suffix.lower()}"
                place_file(photo, out / "images" / split / name)
                atomic_write_text(out / "labels" / split / f"{Path(name).stem}.txt", "")
                width, height = _size_of(photo)
                images.append({"id": len(images) + 1, "file_name": name, "width": width, "height": height})
                bar.update(1)
            if split == "train" and real_items and real_repeat:
                _add_labelled_photos(out, real_items, real_repeat, images, annotations, per_class)
            coco = {
                "info": {"description": f"detseg synthetic food, split {split}, seed {seed}",
                         "version": str(GENERATOR_VERSION)},
                "images": images,
                "annotations": annotations,
                "categories": coco_categories(),
            }
            atomic_write_json(out / "annotations" / f"{split}.json", coco)
            summary[split] = {"images": len(images), "background_photos": n_neg[split],
                              "photo_composites": sum(photo is not None for *_, photo, _real in jobs),
                              "backgrounds_drawn_from": len(per_split[split]),
                              "backgrounds_shared": split in shared,
                              "instances": dict(zip(CLASS_NAMES, per_class))}
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
    write_data_yaml(out / "data.yaml", splits)
    _remove_stale(out, splits)
    return {"out": str(out), "seed": seed, "imgsz": imgsz, "generator_version": GENERATOR_VERSION, "splits": summary}


_OWN_DESCRIPTION = "detseg synthetic food, split "


def _is_synth_dataset(out: Path) -> bool:
    """True when ``out`` holds a dataset this generator wrote (its COCO files say so)."""
    import json

    for path in sorted((out / "annotations").glob("*.json")) if (out / "annotations").is_dir() else ():
        try:
            info = json.loads(path.read_text(encoding="utf-8")).get("info", {})
        except (OSError, ValueError, AttributeError):
            return False
        if str(info.get("description", "")).startswith(_OWN_DESCRIPTION):
            return True
    return False


def _check_out(out: Path) -> None:
    """Refuse a non-empty ``out`` that is not an earlier synthetic dataset: its files are not ours to replace."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_synth_dataset(out):
        raise InputError(f"--out {out} is not empty and holds no dataset written by detseg data synth: choose a new "
                         f"or empty folder (detseg replaces only a synthetic dataset of its own)")


def _remove_stale(out: Path, splits: list[str]) -> None:
    """After writing into an earlier synthetic dataset: remove what the earlier run wrote and this one did not.

    Only names this generator gives (``{split}_*`` in ``images/{split}`` and ``labels/{split}``, and
    ``annotations/{split}.json``) are candidates, so the YOLO view always matches the COCO view.
    """
    import json

    for split in SPLITS:
        coco_path = out / "annotations" / f"{split}.json"
        keep: set[str] = set()
        if split in splits:
            keep = {im["file_name"] for im in json.loads(coco_path.read_text(encoding="utf-8"))["images"]}
        elif coco_path.is_file():
            coco_path.unlink()
        stems = {Path(name).stem for name in keep}
        for folder, wanted in ((out / "images" / split, lambda p: p.name in keep),
                               (out / "labels" / split, lambda p: p.stem in stems)):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.is_file() and path.name.startswith(f"{split}_") and not wanted(path):
                    path.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()  # gone when empty
