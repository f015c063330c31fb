#!/usr/bin/env bash
# Round 2 (model card): real bakery boxes + COCO features. How both candidates were trained, on a 2-core CPU.
# Run from the repository root with detseg installed and ../shared beside the checkout.
#   OUT     work folder (default runs/round2)
#   HOURS1  stage 1 budget (A only), HOURS2 stage 2 budget per candidate
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round2}" HOURS1="${HOURS1:-0.7}" HOURS2="${HOURS2:-1.4}" IMGSZ="${IMGSZ:-512}"

# Stage 1 (A): COCO-pretrained YOLOv5n backbone+neck into yolov5n.yaml, on 1,500 composites.
detseg data synth --out "$OUT/synth1" --train 1500 --val 200 --seed 27 --imgsz 512 --workers 2 \
    --backgrounds "$SHARED/datasets/uj-staple-pantry-train-images/images" --exclude data/real/uj-train-exclude.txt \
    --photo-fraction 0.85 --negatives 0.2 --real-items data/real/uj-train-cookies.json --real-repeat 2
detseg train --data "$OUT/synth1/data.yaml" --model yolov5n.yaml \
    --init "$SHARED/weights/yolov5n-coco/yolov5n-coco-state-dict.pt" --imgsz 512 --batch 16 --workers 2 \
    --time "$HOURS1" --epochs 300 --out "$OUT/stage1" --seed 27

# Stage 2 data: the train split's real photos (items x3, look-alike-only photos once as negatives),
# 600 of stage 1's composites; ultralytics' val = the dev split (sites never trained on).
python detectors/weights/make_round2_data.py --photos "$SHARED/datasets/real-bakery-photos" \
    --synth "$OUT/synth1" --out "$OUT/data" --repeat 3 --synth-images 600

# Stage 2, both candidates side by side with the same budget.
common=(--data "$OUT/data/data.yaml" --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS2" --epochs 300
        --seed 27 warmup_epochs=1 close_mosaic=2)
detseg train "${common[@]}" --model "$OUT/stage1/weights/last.pt" --out "$OUT/A" &
detseg train "${common[@]}" --model detectors/weights/food-yolov8n.pt --out "$OUT/B" &
wait
