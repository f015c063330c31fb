"""Every weights file the repository's code, scripts and notebooks name by path is in the repository.

The shipped detector was renamed once (``food-yolov8n.pt`` -> ``food-yolov5nu.pt``) and three scripts
and a GPU-only test kept the old name; nothing on the CPU ran them, so nothing failed. This test reads
the text instead.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"detectors/weights/[A-Za-z0-9_.\-/]+\.pt\b")
SKIP_DIRS = {"_lab", "runs", "site", "datasets", "venv", "build", "dist", "node_modules"}  # and every .hidden one


def _sources(folder=ROOT):
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            if not (path.name.startswith(".") or path.name in SKIP_DIRS or path.name.endswith(".egg-info")):
                yield from _sources(path)
        elif path.suffix in {".py", ".sh", ".ipynb"}:
            yield path


def _named_weights():
    found = {}
    for path in _sources():
        for name in NAMED.findall(path.read_text(errors="replace")):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_the_shipped_detector():
    assert "detectors/weights/food-yolov5nu.pt" in _named_weights()  # the pattern and the walk work


@pytest.mark.parametrize("name", sorted(_named_weights()))
def test_named_weights_exist(name):
    assert (ROOT / name).is_file(), f"{name} is named in {_named_weights()[name]} but is not in the repository"
