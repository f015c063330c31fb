#!/usr/bin/env bash
# Round 11 (model card): the shipped detector trained on at 576 px on round 4's data (hard negatives mined at 576),
# round 5's gentle schedule; judged by round 4's rule, each candidate at its training size, S at 416 in the same runs.
# Run from the repository root with detseg installed and ../shared beside it.
#   STEP  all (default) | data | train | judge;  HOURS  the training budget;  RUN  the run folder under OUT
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round11}" HOURS="${HOURS:-1.2}" IMGSZ=576 STEP="${STEP:-all}" RUN="${RUN:-D11}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"
START="${START:-detectors/weights/food-yolov5nu.pt}"   # S: the shipped detector (round 3)

if [ "$STEP" = all ] || [ "$STEP" = data ]; then
    OUT="$OUT" IMGSZ="$IMGSZ" START="$START" TRAIN=0 bash detectors/weights/recipe_round4.sh
fi
if [ "$STEP" = all ] || [ "$STEP" = train ]; then
    detseg train --data "$OUT/data/data.yaml" --model "$START" \
        --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS" --epochs 300 --seed 111 --out "$OUT/$RUN" \
        optimizer=AdamW lr0=0.0003 warmup_epochs=0 close_mosaic=2 save_period=2
fi
if [ "$STEP" = all ] || [ "$STEP" = judge ]; then
    W="$OUT/$RUN/weights"
    # the second half of the run's epoch checkpoints (epochN.pt, N >= half of the last one), best.pt, last.pt
    last=$(ls "$W" | sed -n 's/^epoch\([0-9]*\)\.pt$/\1/p' | sort -n | tail -1)
    CANDIDATES=("$START")
    for f in $(ls "$W" | sed -n 's/^epoch\([0-9]*\)\.pt$/\1/p' | sort -n); do
        [ "$f" -ge $(( (last + 1) / 2 )) ] && CANDIDATES+=("$W/epoch$f.pt")
    done
    CANDIDATES+=("$W/best.pt" "$W/last.pt")
    python benchmarks/real_detector.py --bakery --split dev --weights "${CANDIDATES[@]}" | tee "$OUT/judge-bakery-$RUN.txt"
    python benchmarks/real_detector.py --labels data/real/uj-train-cookies-dev.json \
        data/real/uj-train-cookies-unseen.json --negatives data/real/uj-train-dev-negatives.txt --images "$UJ" \
        --weights "${CANDIDATES[@]}" | tee "$OUT/judge-uj-$RUN.txt"
fi
