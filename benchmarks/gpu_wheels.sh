#!/usr/bin/env bash
# Fetch the wheels that the gpu_*.sh scripts carry to a lent GPU machine: its image has torch, numpy,
# OpenCV, SciPy, pandas, ... but not these, and no network. Run here, from the repository root, with the
# project's venv (.venv, or PYTHON=...) so the versions match the ones tested; .whl/ is git-ignored.
set -euo pipefail
packages=(ultralytics ultralytics-thop ultralytics-platform supervision pycocotools pydeprecate defusedxml
          trackers)
python="${PYTHON:-.venv/bin/python}"
pins=$("$python" -c "import sys; from importlib.metadata import version
print(' '.join(f'{n}=={version(n)}' for n in sys.argv[1:]))" "${packages[@]}")
rm -rf .whl && mkdir -p .whl  # one version of each: two would stop the install there
# shellcheck disable=SC2086
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins
ls .whl
