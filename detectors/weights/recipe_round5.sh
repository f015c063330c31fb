#!/usr/bin/env bash
# Round 5 (model card): the shipped round-3 detector on round 4's data unchanged (run recipe_round4.sh's data
# steps first), a fifth of round 4's learning rate and no warm-up. Run from the repository root.
set -euo pipefail
OUT="${OUT:-runs/round4}" HOURS="${HOURS:-0.65}" IMGSZ="${IMGSZ:-416}"
START="${START:-detectors/weights/food-yolov5nu.pt}"
detseg train --data "$OUT/data/data.yaml" --model "$START" \
    --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS" --epochs 300 --seed 55 --out "$OUT/D5" \
    optimizer=AdamW lr0=0.0003 warmup_epochs=0 close_mosaic=2 save_period=2
