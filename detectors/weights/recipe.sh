#!/usr/bin/env bash
# How the stage-D detector was made (shipped as food-yolov8n.pt until 2026-12-07, kept as
# detectors/weights/candidates/stage-D-food-yolov8n.pt; see README.md beside this file).
# Run from any folder with detseg installed; every setting can be overridden from the environment.
#   BACKGROUNDS  folder of the UJ Staple Pantry training photos (real backgrounds, negatives, cookie photos)
#   OUT          work folder (dataset and run)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data_dir="$(cd "$here/../../data" && pwd)"
BACKGROUNDS="${BACKGROUNDS:-$here/../../../shared/datasets/uj-staple-pantry-train-images/images}"
OUT="${OUT:-runs/food-real}"
TRAIN="${TRAIN:-6000}" VAL="${VAL:-400}" IMGSZ_SYNTH="${IMGSZ_SYNTH:-512}" SEED="${SEED:-11}"
WORKERS="${WORKERS:-2}" DEVICE="${DEVICE:-auto}" BATCH="${BATCH:-16}" HOURS="${HOURS:-0.1}"
START="${START:?set START to the detector to fine-tune (see README.md beside this file)}"
EXTRA="${EXTRA:-}" NEGATIVES="${NEGATIVES:-0.25}" REAL_REPEAT="${REAL_REPEAT:-4}"
REAL_ITEMS="${REAL_ITEMS:-$data_dir/real/uj-train-cookies.json}"

detseg data synth --out "$OUT/data" --train "$TRAIN" --val "$VAL" --seed "$SEED" --imgsz "$IMGSZ_SYNTH" \
    --workers "$WORKERS" --backgrounds "$BACKGROUNDS" --exclude "$data_dir/real/uj-train-exclude.txt" \
    --photo-fraction 0.85 --negatives "$NEGATIVES" --real-items "$REAL_ITEMS" --real-repeat "$REAL_REPEAT"
# shellcheck disable=SC2086
detseg train --data "$OUT/data/data.yaml" --model "$START" --imgsz 640 --batch "$BATCH" --device "$DEVICE" \
    --workers "$WORKERS" --time "$HOURS" --epochs 300 --out "$OUT/run" $EXTRA
