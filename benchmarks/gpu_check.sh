#!/usr/bin/env bash
# The project's GPU check, one short script for a lent GPU machine (see docs/benchmarks.md, "On a GPU").
# Runs tests/test_cuda.py and the --device cuda benchmarks; logs go to ${OUT:-runs/gpu_check}.
# Packages missing on the machine travel as wheels in .whl/ (benchmarks/gpu_env.sh installs them, no network).
set -uo pipefail
out="${OUT:-runs/gpu_check}"; mkdir -p "$out"
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, ultralytics, supervision; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__, 'supervision', supervision.__version__)" | tee -a "$out/gpu.txt"
timeout 240 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tee "$out/test_cuda.log"
timeout 150 python3 benchmarks/segmenter.py --device cuda 2>&1 | tee "$out/segmenter_cuda.log"
timeout 150 python3 benchmarks/pipeline.py --device cuda 2>&1 | tee "$out/pipeline_cuda.log"
timeout 180 python3 benchmarks/video.py --device cuda --frames 60 --sam2-frames 60 2>&1 | tee "$out/video_cuda.log"
