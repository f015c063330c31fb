"""pyproject's dependency floors hold for what is installed: a floor above the tested version, or a package
imported but not declared, shows here rather than on a user's machine."""

import ast
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirements():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for group in project["optional-dependencies"].values() for r in group
             if not r.startswith("detseg")]
    return reqs


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_the_installed_version_meets_the_declared_range(req):
    try:
        installed = version(req.name)
    except PackageNotFoundError:
        pytest.skip(f"{req.name} is an extra not installed here")
    assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is outside {req.specifier}"


def test_every_third_party_import_of_the_package_is_declared():
    declared = {re.sub(r"[-_.]+", "-", r.name.lower()) for r in _requirements()}
    import_names = {"cv2": "opencv-python", "PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}
    stdlib_or_own = {"detseg", "__future__", "clip"}  # clip: optional, checked with an install hint (yolo.py)
    roots = [PYPROJECT.parent / d for d in ("detseg", "pipeline", "detectors", "segmenter", "data")]
    found = set()
    for root in roots:
        for path in root.rglob("*.py"):
            if "labelling" in path.parts:
                continue  # the labelling aid is a tool of this repository, not of the package
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    import sys

    third_party = {n for n in found if n not in sys.stdlib_module_names and n not in stdlib_or_own}
    missing = {n for n in third_party
               if re.sub(r"[-_.]+", "-", import_names.get(n, n).lower()) not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
