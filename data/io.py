"""Loading and saving datasets in any supported format (YOLO, COCO, Roboflow exports).

Example:
    >>> from detseg.data.io import load_dataset, save_dataset   # doctest: +SKIP
    >>> ds = load_dataset("data/samples")
    >>> save_dataset(ds, "samples-coco", "coco")
"""

from __future__ import annotations

from pathlib import Path

from detseg.data.coco_format import load_coco, load_coco_folder, save_coco
from detseg.data.dataset import Dataset, clip_to_images
from detseg.data.yolo_format import load_yolo, save_yolo
from detseg.errors import DatasetError

FORMATS = ("yolo", "coco")


def load_dataset(path: str | Path, images: str | Path | None = None) -> Dataset:
    """Load a dataset from a YOLO ``data.yaml`` (or a folder holding one) or a COCO ``.json``.

    A folder without data.yaml but with ``annotations/*.json`` (detseg's own layout)
    or Roboflow COCO exports (``train/_annotations.coco.json``) loads as COCO.

    Raises:
        DatasetError: the path does not exist, or a file in it is malformed; the message
            names the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("dataset path does not exist", path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return load_coco(path, images)
        if path.suffix.lower() in (".yaml", ".yml"):
            return load_yolo(path)
        raise DatasetError("expected a data.yaml (YOLO) or a .json (COCO) file", path)
    for name in ("data.yaml", "data.yml"):
        if (path / name).is_file():
            return load_yolo(path / name)
    if list(path.glob("annotations/*.json")) or list(path.glob("*/_annotations.coco.json")):
        return load_coco_folder(path)
    raise DatasetError("no data.yaml, annotations/*.json or */_annotations.coco.json found in this folder", path)


def save_dataset(dataset: Dataset, out: str | Path, fmt: str) -> Path:
    """Write ``dataset`` under ``out`` as ``"yolo"`` (data.yaml, images/, labels/; returns the
    data.yaml path) or ``"coco"`` (annotations/{split}.json, images/{split}/; returns ``out``).

    Boxes and polygons are clipped to their image first (:func:`~detseg.data.dataset.clip_to_images`;
    call it yourself to learn how many were), so what is written passes ``detseg data check``.

    Raises:
        DatasetError: an unknown format, or an image whose width or height is not positive (named).
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")
    for records in dataset.splits.values():
        for r in records:
            if r.width <= 0 or r.height <= 0:
                raise DatasetError(f"image {r.path.name}: width and height must be positive, got "
                                   f"{r.width}x{r.height}", dataset.source)
    dataset, _ = clip_to_images(dataset)
    return save_yolo(dataset, Path(out)) if fmt == "yolo" else save_coco(dataset, Path(out))
