"""Import hygiene: every module imports on its own in a fresh interpreter (no import circle),
``import detseg`` has no heavy side effects, and only the ``detseg`` namespace is installed."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"detseg": "detseg", "detseg.pipeline": "pipeline", "detseg.detectors": "detectors",
            "detseg.segmenter": "segmenter", "detseg.data": "data"}


def _package_folders() -> dict[str, Path]:
    """Every package and its folder: the top-level ones and each sub-folder of theirs holding an ``__init__.py``
    (``detseg.pipeline.cli``: pipeline/cli, ``detseg.data.synth``: data/synth, ...)."""
    found = {}
    for package, folder in PACKAGES.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            found[".".join([package, *init.parent.relative_to(ROOT / folder).parts])] = init.parent
    return found


def _modules():
    names = []
    for package, folder in _package_folders().items():
        names.append(package)
        names += [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py"))
                  if p.stem not in ("__init__", "__main__")]
    return names


def test_pyproject_installs_every_package():
    """A sub-package missing from pyproject.toml's ``packages`` imports from the source tree but is not installed."""
    tomllib = pytest.importorskip("tomllib")
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(_package_folders())


def _import_alone(module, cwd):
    return module, subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                                  cwd=cwd)


def test_every_module_imports_on_its_own(tmp_path):
    # from an empty folder: the installed package, not whatever the current folder holds
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda m: _import_alone(m, tmp_path), _modules())
        failures = {m: r.stderr.strip().splitlines()[-1] for m, r in results if r.returncode}
    assert not failures


def test_import_detseg_does_not_import_torch_or_ultralytics(tmp_path):
    code = ("import sys, detseg, detseg.errors, detseg.data, detseg.segmenter, detseg.detectors; "
            "print(detseg.__version__); print(sorted(m for m in ('torch', 'ultralytics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    version, heavy = out.stdout.splitlines()
    assert version[0].isdigit() and heavy == "[]"


@pytest.mark.parametrize("shadow", ["data.py", "pipeline.py", "data/__init__.py"])
def test_a_users_own_data_or_pipeline_module_does_not_break_detseg(tmp_path, shadow):
    (tmp_path / shadow).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / shadow).write_text("raise ImportError('the user module, not detseg')\n")
    ok = subprocess.run([sys.executable, "-c", "from detseg import Pipeline; import detseg.pipeline.predict"],
                        capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    if shadow == "data.py":  # and detseg installs no top-level `data` of its own
        mine = subprocess.run([sys.executable, "-c", "import data"], capture_output=True, text=True, cwd=tmp_path)
        assert "the user module" in mine.stderr


def test_no_generic_top_level_names_are_installed():
    code = ("import importlib.util, os; os.chdir('/'); "
            "print([n for n in ('data', 'pipeline', 'detectors', 'segmenter') if importlib.util.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_m_detseg_and_version(tmp_path):
    out = subprocess.run([sys.executable, "-m", "detseg", "--version"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("detseg ")


def test_the_cli_keeps_every_core_for_torch_when_ultralytics_is_imported_first(tmp_path):
    # ultralytics sets OMP_NUM_THREADS=1 when imported before torch: one core for every torch op
    code = ("import os; from detseg.pipeline.cli import prepare_environment; prepare_environment(); "
            "import ultralytics, torch; print(torch.get_num_threads(), len(os.sched_getaffinity(0)))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    threads, cores = map(int, res.stdout.split())
    assert threads == cores


def _import_graph() -> dict[str, set[str]]:
    """module -> the detseg modules it imports anywhere in its code (top level or inside functions)."""
    import ast

    files = {}
    for package, folder in _package_folders().items():
        for path in folder.glob("*.py"):
            files[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    graph = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("detseg"):
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def test_no_import_circle_anywhere_in_the_package():
    """Not even through imports inside functions: a circle there is still two modules that need each other."""
    graph, circles = _import_graph(), []

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt == path[0]:
                circles.append(" -> ".join([*path, nxt]))
            elif nxt not in path and nxt > path[0]:  # each circle once, from its smallest module
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not circles, circles[:5]


def test_lower_floors_never_import_the_pipeline():
    """detseg/*.py, data/, detectors/ and segmenter/ sit below pipeline/; only the `python -m detseg` entry
    point reaches up, to the command line."""
    offenders = {name: sorted(t for t in targets if t.startswith("detseg.pipeline"))
                 for name, targets in _import_graph().items()
                 if not name.startswith("detseg.pipeline") and name != "detseg.__main__"}
    assert not {k: v for k, v in offenders.items() if v}


def test_only_the_command_line_imports_the_command_line():
    """pipeline/cli/ sits on top: no other module (the Ray engine, evaluation, ...) imports it; only the
    `python -m detseg` entry point does."""
    offenders = {name: sorted(t for t in targets if t.startswith("detseg.pipeline.cli"))
                 for name, targets in _import_graph().items()
                 if not name.startswith("detseg.pipeline.cli") and name != "detseg.__main__"}
    assert not {k: v for k, v in offenders.items() if v}
