"""``detseg predict --save-dataset DIR``: the pipeline's masks as a YOLO-seg dataset, ready to train on.

Layout of ``DIR`` (what ``detseg train`` and ultralytics read as it is)::

    data.yaml                 names from the detector; train: images/train, val: images/val; no ``path:``
                              key, so the folder can be moved (split folders resolve beside the yaml)
    images/{train,val}/<name> copies of the original files, byte for byte, never re-encoded and never hard
                              links (editing one must not edit the user's photo); video frames are the
                              one exception: written as JPEG (quality 95)
    labels/{train,val}/<stem>.txt  YOLO-seg lines ``class x1 y1 x2 y2 ...`` (normalised), the same lines as
                              ``--out``'s labels/; an image with no detections gets an empty file (a negative)
    autolabel.json            source, split sizes, negatives, images per split, how the split was made

Names come from the path relative to the source folder (``a/IMG_1.jpg`` -> ``a__IMG_1.jpg``), so
nested folders with equal file names stay apart; if two files still share a stem (``x.jpg``, ``x.png``)
(compared case-insensitively, as macOS and Windows compare names) the later one gets its suffix added
(``x_png.png``), and a name over 200 bytes is shortened as predict's are. The split is decided by a stable hash
(SHA-1) of the relative path, not by any random state: the same file lands in the same split in
every run and on every machine. If no image hashes into val, the one with the smallest hash
goes there, so a tiny set still trains.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
import yaml

from detseg.atomic import atomic_write_bytes, atomic_write_text, place_file
from detseg.errors import InputError
from detseg.pipeline.sources import fit_name, name_key, relative_in

#: what ultralytics' loader reads (ultralytics.data.utils.IMG_FORMATS, the ones detseg reads too)
TRAINABLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val")


def split_of(relative: str, val_fraction: float) -> str:
    """``"val"`` if the SHA-1 of the relative POSIX path falls below ``val_fraction``, else ``"train"``."""
    return "val" if _hash01(relative) < val_fraction else "train"


def _hash01(relative: str) -> float:
    digest = hashlib.sha1(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class MinMaskScore:
    """Mask step: drop detections whose ``data["mask_score"]`` is below ``threshold``; counts what it dropped.

    Args:
        threshold: the lowest mask score kept (SAM's predicted IoU; GrabCut/box give their own scores).

    Attributes:
        dropped: detections dropped so far.
    """

    def __init__(self, threshold: float):
        if not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
            raise InputError(f"min_mask_score must be a finite number, got {threshold!r} (NaN would drop everything)")
        self.threshold = threshold
        self.dropped = 0

    def __call__(self, dets: sv.Detections) -> sv.Detections:
        scores = dets.data.get("mask_score") if len(dets) else None
        if scores is None:
            return dets
        keep = np.asarray(scores, np.float64) >= self.threshold
        self.dropped += int((~keep).sum())
        return dets if keep.all() else dets[np.flatnonzero(keep)]


def _source_root(source) -> Path | None:
    """The folder relative paths are taken from: the source folder, or the common parent of a glob's files."""
    from detseg.pipeline.sources import Source, resolve_source

    try:
        src = source if isinstance(source, Source) else resolve_source(source)
    except InputError:
        return None
    if src.root is not None:
        return src.root
    files = [f for f in src.files if not src.is_video] or [Path(p) for p in src.arrays if isinstance(p, (str, Path))]
    if not files:
        return None
    return Path(os.path.commonpath([str(f.resolve().parent) for f in files]))


class DatasetWriter:
    """Collects predicted inputs into a YOLO-seg dataset under ``out`` (see the module docstring).

    Args:
        out: the dataset folder; must be new or empty (unless ``resume``).
        source: the predict source (folder, glob, file, video or list of paths), for relative names.
        class_names: ``{id: name}`` of the detector; written to data.yaml.
        val_fraction: share of images in val, in (0, 1).
        resume: allow a folder written by an earlier run of the same command: its ``autolabel.json`` (written
            when the dataset is started, then at the end) must name this source and this ``run_out``.
        run_out: the predict run's output folder (``--out``), whose finished inputs ``--resume`` adds again.

    Raises:
        InputError: bad ``val_fraction``, no class names, or ``out`` holds something else: files that are not a
            ``--save-dataset`` dataset, or one made from another source or by another run (whose names would be
            taken again and whose labels overwritten).
    """

    def __init__(self, out: str | Path, source, class_names: dict[int, str], val_fraction: float = 0.2,
                 resume: bool = False, run_out: str | Path | None = None):
        if not 0.0 < val_fraction < 1.0:
            raise InputError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}")
        if not class_names:
            raise InputError("--save-dataset needs a detector that names its classes (class_names)")
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--save-dataset {out}: exists and is not a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not resume:
            raise InputError(f"--save-dataset {out}: folder is not empty; pass a new or empty folder "
                             "(or --resume to add to the dataset of an earlier run)")
        self.source = source
        self.class_names = dict(sorted(class_names.items()))
        self.val_fraction = val_fraction
        self.root = _source_root(source)
        self.run_out = str(Path(run_out).resolve()) if run_out is not None else None
        self._claimed = False
        self.entries: dict[str, dict] = {}  # stem -> {"split", "image", "relative", "hash"}
        self.by_relative: dict[str, str] = {}
        self._keys: set[str] = set()  # name_key() of every stem in entries
        self.skipped: list[str] = []
        self.incomplete: list[str] = []  # inputs some of whose detections have no outline: left out
        self.video_frames = 0

    def _source_text(self) -> str:
        if isinstance(self.source, (list, tuple)):
            return "list"
        return str(Path(self.root).resolve()) if self.root is not None else str(self.source)

    def claim(self) -> None:
        """Start the dataset, or check that this run may add to it (``--resume``): its ``autolabel.json`` must name
        this source and this run's ``--out`` (names would be taken again and labels overwritten otherwise). A new
        dataset gets that record first, so an interrupted run is resumed by its own run only. Called by
        ``run_predict`` once the run's settings are checked, and by :meth:`add` / :meth:`finalize` if not yet.

        Raises:
            InputError: the folder is not a ``--save-dataset`` dataset, or another source's or another run's.
        """
        if self._claimed:
            return
        if self.out.is_dir() and any(self.out.iterdir()):
            try:
                record = json.loads((self.out / "autolabel.json").read_text())
                source, run_out = record["source"], record.get("run_out")  # run_out: since 2026-12-08
            except (OSError, ValueError, KeyError, TypeError):
                raise InputError(f"--save-dataset {self.out}: not a dataset written by detseg predict --save-dataset "
                                 "(no readable autolabel.json): pass a new or empty folder") from None
            mine = self._source_text()
            same = source == mine or (mine != "list" and Path(str(source)).resolve() == Path(mine))  # older records
            if not same:
                raise InputError(f"--save-dataset {self.out}: made from {source}, not from this run's source {mine}: "
                                 "pass a new or empty folder")
            if run_out is not None and self.run_out is not None and run_out != self.run_out:
                raise InputError(f"--save-dataset {self.out}: made by the run in {run_out}: --resume that run (--out "
                                 f"{run_out}), or pass a new or empty folder")
        else:
            atomic_write_text(self.out / "autolabel.json",
                              json.dumps({"source": self._source_text(), "run_out": self.run_out, "files": {}},
                                         indent=2) + "\n")
        self._claimed = True

    def _relative(self, path: str) -> str:
        """The path under the source folder as written (a symlink inside it is named where it lies, not where
        it points: a folder of links to one shared store keeps ``a/IMG_1.jpg`` and ``b/IMG_1.jpg`` apart),
        else where it resolves to, else its file name."""
        return relative_in(Path(path), self.root).as_posix() if self.root is not None else Path(path).name

    def _stem(self, relative: str, suffix: str) -> str:
        """A stem no earlier entry has, compared case-insensitively, shortened as predict's names are."""
        base = "__".join(Path(relative).with_suffix("").parts) or "_"
        stem = fit_name(base)
        if name_key(stem) in self._keys:
            base = f"{base}_{suffix.lstrip('.').lower()}"
            stem = fit_name(base)
        k = 2
        while name_key(stem) in self._keys:
            stem, k = fit_name(f"{base}_{k}"), k + 1
        return stem

    def add(self, path: str, labels: Path, image: np.ndarray | None = None, frame: int | None = None,
            detections: int | None = None) -> str | None:
        """Add one input: its file (or, for a video frame, the frame as JPEG) and labels.

        An input with fewer label lines than ``detections`` (a detection whose mask was empty or a speck has no
        outline to write) is left out and listed in the summary: in the dataset its object would be background,
        and an image whose every detection lost its outline would even count as a negative.

        Args:
            path: the input's path as the pipeline reports it (the video file for a frame).
            labels: the YOLO-seg label file predict just wrote for it (copied).
            image: the decoded frame (BGR), needed only for video frames.
            frame: a video frame's number (from 0); None for an image file.
            detections: how many detections the pipeline made on it (None: not checked).

        Returns:
            The dataset stem it was written under, or None if it was skipped (not trainable).
        """
        self.claim()
        is_frame = frame is not None and image is not None
        if is_frame:  # video frame: no original file to keep
            relative = f"{Path(path).stem}_{int(frame):06d}.jpg"
            suffix = ".jpg"
        else:
            relative = self._relative(path)
            suffix = Path(path).suffix.lower()
            if suffix not in TRAINABLE_SUFFIXES:
                self.skipped.append(path)
                return None
        if relative in self.by_relative:  # the same input again (e.g. --resume): same place
            stem = self.by_relative[relative]
        else:
            stem = self._stem(relative, suffix)
        if detections is not None and _count_lines(labels) < detections:
            self.incomplete.append(str(path) if not is_frame else f"{path}#{int(frame)}")
            self._keys.add(name_key(stem))  # its name stays taken: the other inputs keep theirs across --resume
            self.entries.pop(stem, None)
            self.by_relative.pop(relative, None)
            image_name = stem + (".jpg" if is_frame else suffix)
            for split in SPLITS:  # what an earlier run (--resume) wrote of it
                (self.out / "images" / split / image_name).unlink(missing_ok=True)
                (self.out / "labels" / split / f"{stem}.txt").unlink(missing_ok=True)
            return None
        split = split_of(relative, self.val_fraction)
        name = stem + (".jpg" if is_frame else suffix)
        target = self.out / "images" / split / name
        if is_frame:
            ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            atomic_write_bytes(target, jpg.tobytes())
            self.video_frames += 1
        else:
            place_file(path, target)
        place_file(labels, self.out / "labels" / split / f"{stem}.txt")
        other = "train" if split == "val" else "val"  # a resumed run may find it moved by _ensure_val
        (self.out / "images" / other / name).unlink(missing_ok=True)
        (self.out / "labels" / other / f"{stem}.txt").unlink(missing_ok=True)
        self.entries[stem] = {"split": split, "image": name, "relative": relative, "hash": _hash01(relative),
                              "instances": _count_lines(labels)}
        self.by_relative[relative] = stem
        self._keys.add(name_key(stem))
        return stem

    def _ensure_val(self) -> None:
        """Both splits non-empty where there are 2+ images (ultralytics finds no images in an empty split): the
        smallest-hash image moves to val when none hashed there, the largest-hash one to train when all did."""
        if len(self.entries) < 2:
            return
        for split, pick in (("val", min), ("train", max)):
            if any(e["split"] == split for e in self.entries.values()):
                continue
            stem = pick(self.entries, key=lambda s: self.entries[s]["hash"])
            entry = self.entries[stem]
            for kind, name in (("images", entry["image"]), ("labels", f"{stem}.txt")):
                dst = self.out / kind / split / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.out / kind / entry["split"] / name, dst)
            entry["split"] = split

    def finalize(self, dropped_low_mask_score: int | None = None) -> dict:
        """Write data.yaml and autolabel.json. Returns the dataset summary (also put in predict's summary.json)."""
        self.claim()
        self._ensure_val()
        for kind in ("images", "labels"):
            for split in SPLITS:
                (self.out / kind / split).mkdir(parents=True, exist_ok=True)
        used = {e["split"] for e in self.entries.values()}
        only = next(iter(used)) if len(used) == 1 else None  # one image: both keys name its folder
        cfg = {"train": f"images/{only or 'train'}", "val": f"images/{only or 'val'}", "nc": len(self.class_names),
               "names": {int(k): str(v) for k, v in self.class_names.items()}}
        header = ("# written by detseg predict --save-dataset: labels are the pipeline's masks, not ground truth.\n"
                  "# No `path:` key: ultralytics resolves the split folders beside this file, so it can be moved.\n")
        atomic_write_text(self.out / "data.yaml", header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        per_split = {s: [e for e in self.entries.values() if e["split"] == s] for s in SPLITS}
        summary = {
            "out": str(self.out),
            "images": {s: len(v) for s, v in per_split.items()},
            "negatives": {s: sum(e["instances"] == 0 for e in v) for s, v in per_split.items()},
            "instances": {s: sum(e["instances"] for e in v) for s, v in per_split.items()},
            "val_fraction": self.val_fraction,
            "split_rule": "SHA-1 of the path relative to the source folder; smallest hash to val if val is empty, "
                          "largest to train if train is",
            "video_frames_as_jpeg": self.video_frames,
            "skipped_not_trainable": self.skipped,
            "skipped_detections_without_outline": self.incomplete,
        }
        if dropped_low_mask_score is not None:
            summary["dropped_low_mask_score"] = dropped_low_mask_score
        record = {**summary, "source": self._source_text(), "run_out": self.run_out,
                  "files": {stem: {k: e[k] for k in ("split", "image", "relative")} for stem, e in
                            sorted(self.entries.items())}}
        atomic_write_text(self.out / "autolabel.json", json.dumps(record, indent=2) + "\n")
        return summary


def _count_lines(path: Path) -> int:
    return sum(1 for line in Path(path).read_text().splitlines() if line.strip())
