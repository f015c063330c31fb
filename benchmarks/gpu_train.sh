#!/usr/bin/env bash
# Retrain the shipped detector on a lent GPU machine (no network there): installs the carried
# wheels (.whl/) and detseg itself (benchmarks/gpu_env.sh), then runs detectors/weights/recipe.sh with GPU settings.
# Needs .bg/ (the UJ training photos) carried beside the repo; results land in $OUT.
set -uo pipefail
repo="$PWD"; out="${OUT:-runs/gpu_train}"; mkdir -p "$out" && out="$(cd "$out" && pwd)"  # the script cds away
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh || exit 1
mkdir -p /tmp/w && cd /tmp/w || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# START: stage D, the detector recipe.sh made and continues
START="${START:-$repo/detectors/weights/candidates/stage-D-food-yolov8n.pt}" BACKGROUNDS="$repo/.bg" OUT=/tmp/w/food \
    WORKERS="${WORKERS:-16}" DEVICE="${DEVICE:-0}" BATCH="${BATCH:-64}" HOURS="${HOURS:-0.1}" \
    TRAIN="${TRAIN:-6000}" VAL="${VAL:-400}" EXTRA="${EXTRA:-cache=ram}" NEGATIVES="${NEGATIVES:-0.25}" \
    REAL_REPEAT="${REAL_REPEAT:-4}" REAL_ITEMS="${REAL_ITEMS:-$repo/data/real/uj-train-cookies.json}" \
    bash "$repo/detectors/weights/recipe.sh" 2>&1 | grep -v "synth: \|it/s]$" | tee "$out/train.log"
run=/tmp/w/food/run
cp "$run/weights/best.pt" "$run/weights/last.pt" "$run/results.csv" "$run/metrics.json" "$run/args.yaml" "$out/" 2>/dev/null
[ "${HELDOUT:-300}" = 0 ] && exit 0
detseg data synth --out /tmp/w/heldout --train 0 --val 0 --test "${HELDOUT:-300}" --seed 1 --workers "${WORKERS:-16}" >/dev/null 2>&1
detseg val --weights "$run/weights/best.pt" --data /tmp/w/heldout/data.yaml --split test --imgsz 640 \
    --device "${DEVICE:-0}" 2>&1 | tee "$out/heldout_val.log"
