#!/usr/bin/env bash
# Round 7 (model card): a look-alike class. Round 4's data with the boxed look-alikes and the muffins of the bakery
# train split as class 3 "other baked good", the shipped detector widened to four classes, round 5's gentle
# schedule. Run from the repository root with detseg installed and ../shared beside it.
#   OUT    work folder (default runs/round7)
#   HOURS  training budget (this run: see the model card)
set -euo pipefail
OUT="${OUT:-runs/round7}" HOURS="${HOURS:-1.4}" IMGSZ="${IMGSZ:-416}"
START="${START:-detectors/weights/food-yolov5nu.pt}"
SHARED="${SHARED:-../shared}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"

# round 4's data steps, with the look-alike boxes (data/real/bakery-lookalikes.json) as class 3
OUT="$OUT" START="$START" LOOKALIKES=data/real/bakery-lookalikes.json TRAIN=0 bash detectors/weights/recipe_round4.sh

# the start: the shipped detector with a fourth class (its three class rows kept, the fourth fresh)
python -c "import sys; from detseg.detectors.heads import add_classes; add_classes(*sys.argv[1:3], [sys.argv[3]])" \
    "$START" "$OUT/start-4class.pt" "other baked good"

# Candidate D7: checkpoints every 2 epochs (the rule's candidates)
detseg train --data "$OUT/data/data.yaml" --model "$OUT/start-4class.pt" \
    --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS" --epochs 300 --seed 77 --out "$OUT/D7" \
    optimizer=AdamW lr0=0.0003 warmup_epochs=0 close_mosaic=2 save_period=2

# The rule's candidates: the epoch checkpoints of the second half of the run, best.pt and last.pt; two forms of each:
# (a) class 3 dropped (a three-class file), (b) kept, run with classes 0-2.
W="$OUT/D7/weights" A="$OUT/dropped"
mkdir -p "$A"
LAST=$(( $(wc -l < "$OUT/D7/results.csv") - 1 ))  # epochs trained (one row each)
CANDIDATES=()
for w in "$W"/epoch*.pt; do
    n=$(basename "$w" .pt); n=${n#epoch}
    if (( 2 * n >= LAST )); then CANDIDATES+=("$w"); fi
done
CANDIDATES+=("$W/best.pt" "$W/last.pt")
for w in "${CANDIDATES[@]}"; do
    python -c "import sys; from detseg.detectors.heads import keep_classes; keep_classes(sys.argv[1], sys.argv[2], [0, 1, 2])" \
        "$w" "$A/$(basename "$w")"
done
judge() {
    python benchmarks/real_detector.py --bakery --split dev "$@"
    python benchmarks/real_detector.py --labels data/real/uj-train-cookies-dev.json data/real/uj-train-cookies-unseen.json \
        --negatives data/real/uj-train-dev-negatives.txt --images "$UJ" "$@"
}
judge --weights "$START" "${CANDIDATES[@]/#$W/$A}" | tee "$OUT/judge-dropped.txt"
judge --weights "${CANDIDATES[@]}" --classes 0 1 2 | tee "$OUT/judge-kept.txt"
