"""Range-checked ``type=`` functions for every numeric command-line option, and the one-line parser.

Each function turns the text of an option into a number or raises
:class:`argparse.ArgumentTypeError` with a message starting ``must be``; :class:`OneLineParser`
then reports ``detseg: error: <command>: --flag must be ..., got X`` on one line (exit code 2),
while the arguments are parsed: before any dataset is read or any model loads. ``nan`` and
``inf`` are refused wherever a finite number is meant.

Example:
    >>> p = OneLineParser(prog="detseg")
    >>> _ = p.add_argument("--conf", type=fraction, default=0.25)
    >>> p.parse_args(["--conf", "0.5"]).conf
    0.5
    >>> try:
    ...     p.parse_args(["--conf", "nan"])
    ... except UsageError as e:
    ...     print(f"detseg: error: {e}")
    detseg: error: --conf must be a number in [0, 1], got 'nan'

Training overrides (``KEY=VALUE`` after ``detseg train``'s options) are checked by
:func:`check_override` against the type of ultralytics' default for the key.
"""

from __future__ import annotations

import argparse
import math
import re

from detseg.errors import DetsegError

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by ultralytics) takes 32 bits
MIN_IMGSZ, MAX_IMGSZ = 32, 8192  # a model input / generated image side; 8192**2 RGB is 200 MB


class UsageError(DetsegError):
    """A bad command line: an unknown option, a missing argument, a value out of range."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """ultralytics-style ``--help``: a default is shown once, and only when it says something.

    argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: None)`` to every option without a
    default, and a second default to help that already states one; this formatter adds ``(default: X)``
    only where X is not None/False and the help does not already say "default".
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) or not text:
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one :class:`UsageError` line, not a usage block and ``SystemExit``.

    ``--help`` and ``--version`` still print and exit as usual. Subparsers made by
    ``add_subparsers`` are of this class too (argparse gives them the parent's class).
    """

    def error(self, message: str):
        match = re.fullmatch(r"argument ([^/:\s]+)(?:/\S+)?: (must be .*)", message, re.S)
        message = f"{match[1]} {match[2]}" if match else message
        command = self.prog.removeprefix("detseg").strip()
        hint = "" if match else f" (see detseg {command + ' ' if command else ''}--help)"
        raise UsageError(f"{command + ': ' if command else ''}{' '.join(message.split())}{hint}") from None


def _text(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _range_text(lo, hi, lo_open=False, hi_open=False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return "finite"


def int_range(lo: int | None = None, hi: int | None = None, what: str = "an integer"):
    """A ``type=`` function: an integer in ``[lo, hi]`` (either bound may be None)."""

    def parse(text):
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} {_range_text(lo, hi)}, got {_text(text)}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_range_text(lo, hi)}, got {value}")
        return value

    parse.__name__ = f"int_range({lo}, {hi})"
    return parse


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    """A ``type=`` function: a finite float in the range (closed unless ``lo_open`` / ``hi_open``)."""
    bounds = _range_text(lo, hi, lo_open, hi_open)

    def parse(text):
        try:
            value = float(str(text).strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {_text(text)}")
        if (lo is not None and (value < lo or lo_open and value == lo)) or \
                (hi is not None and (value > hi or hi_open and value == hi)):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value:g}")
        return value

    parse.__name__ = f"finite_float({lo}, {hi})"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
seed = int_range(0, MAX_SEED)
imgsz = int_range(MIN_IMGSZ, MAX_IMGSZ, what="an image side in pixels")
fraction = finite_float(0, 1)
non_negative_float = finite_float(0)
positive_float = finite_float(0, lo_open=True)


def sam_imgsz(text):
    """SAM's square input side (``--sam-imgsz``): a multiple of 64, at least 256 (its encoder's patch grid)."""
    value = int_range(256, MAX_IMGSZ, what="an integer")(text)
    if value % 64:
        raise argparse.ArgumentTypeError(f"must be a multiple of 64 (e.g. {value - value % 64} or "
                                         f"{value - value % 64 + 64}), got {value}")
    return value


def auto_or_positive_int(text):
    """``auto`` or an integer >= 1 (``--batch`` of ``detseg predict``)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an integer >= 1, got {_text(text)}") from None


def train_batch(text):
    """ultralytics' ``batch``: images per batch (>= 1), -1 for AutoBatch, or a GPU memory fraction in (0, 1)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    if value == -1 or (value >= 1 and value == int(value)):
        return int(value)
    if 0 < value < 1:
        return value
    raise argparse.ArgumentTypeError(f"must be an integer >= 1, -1 (AutoBatch) or a GPU memory fraction in "
                                     f"(0, 1), got {_text(text)}")


# ------------------------------------------------------------------ ultralytics KEY=VALUE overrides

_NUMBER = (int, float)
_NAMED_BOOLS = {"cache", "pretrained", "compile"}  # bool defaults that also take a name (ram, a .pt, a mode)


def check_override(key: str, value, text: str):
    """``value`` (``text`` read as YAML) for ultralytics' ``key``, checked against the type of its default.

    A bool default takes true/false (``cache``, ``pretrained`` and ``compile`` also a name);
    an int default an integer; a float default a finite number (a fraction key: in [0, 1]); a
    string default any text (taken as written). ``1e-3`` (a string to YAML 1.1) reads as a number.

    Raises:
        UsageError: one line naming the key, the value and the type wanted.
    """
    from ultralytics.cfg import CFG_BOOL_KEYS, CFG_FLOAT_KEYS, CFG_FRACTION_KEYS, CFG_INT_KEYS, DEFAULT_CFG_DICT

    default = DEFAULT_CFG_DICT[key]
    if isinstance(default, bool) or key in CFG_BOOL_KEYS:
        want = "true or false" + (" or a name" if key in _NAMED_BOOLS else "")
        if isinstance(value, bool):
            return value
        if key in _NAMED_BOOLS and isinstance(value, str):
            return text
    elif isinstance(default, str):
        return text  # a name (optimizer=SGD, tracker=...): the text as given
    elif key in CFG_FLOAT_KEYS or key in CFG_FRACTION_KEYS or isinstance(default, float):
        want = "a number in [0, 1]" if key in CFG_FRACTION_KEYS else "a finite number"
        number = _number(value, text)
        if number is not None and (key not in CFG_FRACTION_KEYS or 0 <= number <= 1):
            return number
    elif key in CFG_INT_KEYS or isinstance(default, int):
        want = "an integer"
        number = _number(value, text)
        if number is not None and number == int(number):
            return int(number)
    else:  # a None default without a known type (classes, freeze, ...): as YAML reads it
        return value
    raise UsageError(f"training override {key}={text}: {key} must be {want} (ultralytics' default: "
                     f"{default!r}), got {text!r}")


def _number(value, text: str) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, _NUMBER) and math.isfinite(value):
        return value
    return None
