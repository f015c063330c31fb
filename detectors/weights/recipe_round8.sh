#!/usr/bin/env bash
# Round 8 (model card): the shipped detector S fine-tuned gently on round 4's data plus 400 plain generated scenes
# (F), then WiSE-FT mixtures (1 - a) * S + a * F, judged on the dev checks and a synthetic dev split. Run from the
# repository root with detseg installed and ../shared beside it.
#   OUT    work folder (default runs/round8)
#   HOURS  F's training budget
#   STEP   all (default), or judge: only the mixtures and the judging runs (after F has trained)
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round8}" HOURS="${HOURS:-0.9}" IMGSZ="${IMGSZ:-416}" STEP="${STEP:-all}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"
BAKERY="$SHARED/datasets/real-bakery-photos"
START="${START:-detectors/weights/food-yolov5nu.pt}"   # S: the shipped detector (round 3)

if [ "$STEP" = all ]; then
    # Round 4's data steps unchanged (its mining with S included), then the same data with the plain scenes added.
    OUT="$OUT" SHARED="$SHARED" IMGSZ="$IMGSZ" START="$START" TRAIN=0 bash detectors/weights/recipe_round4.sh
    detseg data synth --out "$OUT/synth-plain" --train 400 --val 0 --seed 81 --workers 2
    python detectors/weights/make_round2_data.py --photos "$BAKERY" \
        --synth "$OUT/synth-uj" "$OUT/synth-bakery" "$OUT/synth-plain" --synth-images 200 200 400 --out "$OUT/data" \
        --repeat 2 --negative-repeat 3 --uj-images "$UJ" --uj-negatives 300 --uj-exclude "$OUT/exclude.txt" --seed 4 \
        --uj-items data/real/uj-train-cookies-fit.json --uj-items-repeat 3 \
        --extra-train "$OUT/hard-lookalike1/images" "$OUT/hard-lookalike2/images" "$OUT/hard-uj/images"

    # F: round 5's gentle schedule, checkpoints every 2 epochs.
    detseg train --data "$OUT/data/data.yaml" --model "$START" \
        --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS" --epochs 300 --seed 88 --out "$OUT/F" \
        optimizer=AdamW lr0=0.0003 warmup_epochs=0 close_mosaic=2 save_period=2
fi

# The mixtures: every floating-point tensor (1 - a) * S + a * F, batch-norm statistics recomputed on 512 training photos.
python - "$START" "$OUT/F/weights/last.pt" "$OUT" "$IMGSZ" <<'PY'
import sys
from detseg.detectors.average import average_checkpoints
start, tuned, out, imgsz = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for a in (0.25, 0.5, 0.75):
    print(average_checkpoints([start, tuned], f"{out}/mix-a{int(a * 100)}.pt", images=f"{out}/data/real-train/images",
                              imgsz=imgsz, max_images=512, coefficients=(1 - a, a)))
PY

# Judging: S and the four candidates in one run per check.
CANDIDATES=("$START" "$OUT/F/weights/last.pt" "$OUT/mix-a25.pt" "$OUT/mix-a50.pt" "$OUT/mix-a75.pt")
python benchmarks/real_detector.py --bakery --split dev --weights "${CANDIDATES[@]}" | tee "$OUT/judge-bakery.txt"
python benchmarks/real_detector.py --labels data/real/uj-train-cookies-dev.json data/real/uj-train-cookies-unseen.json \
    --negatives data/real/uj-train-dev-negatives.txt --images "$UJ" --weights "${CANDIDATES[@]}" | tee "$OUT/judge-uj.txt"
[ -f "$OUT/synth-dev/data.yaml" ] || detseg data synth --out "$OUT/synth-dev" --train 0 --val 0 --test 300 --seed 2 --workers 2
for w in "${CANDIDATES[@]}"; do
    echo "== synthetic dev: $w"
    detseg val --model "$w" --data "$OUT/synth-dev/data.yaml" --split test --imgsz 640
done 2>&1 | tee "$OUT/judge-synth.txt"
