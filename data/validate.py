"""What detseg's input-file validators share: reading a text or JSON file, checking a value's type, naming where.

Every validator stops at the first problem with one :class:`~detseg.errors.DatasetError` naming the file,
the place and the problem (``val.json: annotations[12].image_id: expected an integer, got list``; a
line-based file names the line: ``labels/a.txt:3: width is nan``), which the CLI prints as one line with
exit code 2, never a traceback. The validators live beside their readers:

- YOLO label files: :func:`detseg.data.yolo_format.parse_label_file`
- YOLO ``data.yaml``: :func:`detseg.data.yolo_format.validate_data_yaml`; its image list files
  (``train: train.txt``): :func:`detseg.data.yolo_format.read_image_list`
- COCO annotation files: :func:`detseg.data.coco_format.validate_coco`; COCO results (``predictions.json``):
  :func:`detseg.data.coco_format.validate_coco_results`
- MOTChallenge files (``gt.txt``, ``tracks.txt``): :func:`detseg.pipeline.evaluation.track_eval.load_mot`
- ``predict --image-ids`` / ``--categories`` files: :func:`detseg.pipeline.cli.predict.load_image_ids`,
  :func:`detseg.pipeline.cli.predict.load_categories`
- ``predict``'s part files (``--resume``): :func:`detseg.pipeline.outputs.read_part`
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from detseg.errors import DatasetError

_INT64 = 2**63


def type_name(value) -> str:
    """The JSON name of a value's type: object, list, string, integer, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (str, "string"), (list, "list"), (dict, "object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def got(value) -> str:
    """``got list``, ``got string '64'``, ``got number 1.5``: what a message says was found."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return f"got {type_name(value)} {shown}"
    return f"got {type_name(value)}"


def at(where: str, key) -> str:
    """``where`` one level down: ``at("annotations", 3) == "annotations[3]"``, ``at("images[0]", "id")``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def fail(path, where: str, what: str):
    """Raise the one-line DatasetError ``path: where: what``."""
    raise DatasetError(f"{where}: {what}" if where else what, path)


def key(obj: dict, name: str, path, where: str):
    """``obj[name]``, or a DatasetError naming the missing key."""
    if name not in obj:
        fail(path, where, f"missing key {name!r}")
    return obj[name]


def as_dict(value, path, where: str, what: str = "an object") -> dict:
    if not isinstance(value, dict):
        fail(path, where, f"expected {what}, {got(value)}")
    return value


def as_list(value, path, where: str, what: str = "a list") -> list:
    if not isinstance(value, list):
        fail(path, where, f"expected {what}, {got(value)}")
    return value


def as_str(value, path, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(path, where, f"expected a non-empty string, {got(value)}")
    return value


def as_int(value, path, where: str, minimum: int | None = None) -> int:
    """An integer (``3.0``, as some tools write one, reads as 3); booleans, fractions and strings refused."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        fail(path, where, f"expected an integer, {got(value)}")
    if abs(value) >= _INT64:
        fail(path, where, f"integer of {len(str(abs(value)))} digits out of range")
    if minimum is not None and value < minimum:
        fail(path, where, f"must be >= {minimum}, got {value}")
    return value


def as_number(value, path, where: str, minimum: float | None = None, name: str = "") -> float:
    """A finite number (``nan``, ``inf`` and ``1e400`` refused). ``name`` words the message: ``width is nan``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(path, where, f"expected a number, {got(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        number = math.inf
    if not math.isfinite(number):
        fail(path, where, f"{name or 'value'} is {number}: not a finite number")
    if minimum is not None and number < minimum:
        fail(path, where, f"{name or 'value'} is {'negative' if minimum == 0 else f'below {minimum}'} ({value})")
    return number


def leaves(folder: str | os.PathLike, relative: str) -> bool:
    """Whether ``relative`` (a path as a dataset file writes it) names something outside ``folder``:
    an absolute path, or one whose ``..`` climb out. Checked on the path as written (no link is followed)."""
    if Path(relative).is_absolute():
        return True
    base = os.path.abspath(folder)
    return not Path(os.path.normpath(os.path.join(base, relative))).is_relative_to(base)


def read_text(path) -> str:
    """A text file's content; one-line DatasetErrors for an unreadable or non-UTF-8 file (a BOM is allowed)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"unreadable ({e.strerror or e})", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"not UTF-8 text (byte {e.start})", path) from None


def read_json(path):
    """A JSON file's value; one-line DatasetErrors for an unreadable, empty, non-UTF-8, truncated or
    otherwise invalid file (naming the line and column)."""
    text = read_text(path)
    if not text.strip():
        raise DatasetError(f"empty file ({len(text.encode())} bytes): expected JSON", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        truncated = " (the file ends early: truncated?)" if not text[e.pos:].strip() else ""
        raise DatasetError(f"line {e.lineno} column {e.colno}: not valid JSON: {e.msg}{truncated}", path) from None
    except RecursionError:
        raise DatasetError("not usable JSON: nested too deeply", path) from None
    except ValueError as e:  # an integer of more digits than Python converts (4300)
        raise DatasetError("not usable JSON: " + ("an integer with too many digits" if "digits" in str(e) else str(e)),
                           path) from None
