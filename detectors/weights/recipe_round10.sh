#!/usr/bin/env bash
# Round 10 (model card): the shipped detector with NMS IoU 0.45, 0.5 and 0.6 against 0.7 (detseg's default), no
# training; judged by round 4's rule on round 3's two dev checks, one run per setting. Run from the repository root.
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round10}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"
WEIGHTS="${WEIGHTS:-detectors/weights/food-yolov5nu.pt}"
mkdir -p "$OUT"
for iou in 0.7 0.45 0.5 0.6; do
    echo "== NMS IoU $iou"
    python benchmarks/real_detector.py --bakery --split dev --weights "$WEIGHTS" --iou "$iou"
    python benchmarks/real_detector.py --labels data/real/uj-train-cookies-dev.json \
        data/real/uj-train-cookies-unseen.json --negatives data/real/uj-train-dev-negatives.txt --images "$UJ" \
        --weights "$WEIGHTS" --iou "$iou"
done 2>&1 | tee "$OUT/judge.txt"
