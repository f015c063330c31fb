"""The benchmark scripts run as scripts (their names must not shadow the packages) and the
real-photo benchmark skips cleanly without the UJ dataset."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UJ = ROOT.parent / "shared" / "datasets" / "uj-staple-pantry-valid"


def _run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_real_photos_skips_cleanly_without_the_dataset(tmp_path):
    res = _run("benchmarks/real_photos.py", "--data", str(tmp_path / "absent"))
    assert res.returncode == 0 and res.stdout.startswith("skipped:")


@pytest.mark.skipif(not (UJ / "annotations.json").is_file(), reason="UJ dataset not on this machine")
def test_real_photos_reproduces_the_box_reference_on_a_subset():
    res = _run("benchmarks/real_photos.py", "--segmenters", "box", "--jitter", "0", "--every", "10")
    assert res.returncode == 0, res.stderr
    assert "| box | 0% |" in res.stdout


@pytest.mark.parametrize("script", ["segmenter.py", "pipeline.py", "detector.py", "synth.py", "scale.py",
                                    "distill.py", "real_detector.py", "video.py"])
def test_benchmark_scripts_start(script):
    res = _run(f"benchmarks/{script}", "--help")
    assert res.returncode == 0 and "usage" in res.stdout.lower(), res.stderr
