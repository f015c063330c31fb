#!/usr/bin/env bash
# Round 2 (model card), as run on 2026-12-06 on a 2-core CPU: real bakery boxes + COCO features.
# Run from the repository root with detseg installed and ../shared beside the checkout.
#   OUT     work folder (default runs/round2)
#   HOURS1  stage 1 budget, HOURS2 stage 2 budget (this run: stage 1 stopped after epoch 5 of 1.1 h
#           when the boxes were ready, 42 minutes; stage 2 1.45 h)
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round2}" HOURS1="${HOURS1:-1.1}" HOURS2="${HOURS2:-1.45}" IMGSZ="${IMGSZ:-416}"

# Stage 1: COCO-pretrained YOLOv5n backbone+neck into yolov5n.yaml (YOLOv5u), on 1,500 composites.
detseg data synth --out "$OUT/synth1" --train 1500 --val 200 --seed 27 --imgsz 512 --workers 2 \
    --backgrounds "$SHARED/datasets/uj-staple-pantry-train-images/images" --exclude data/real/uj-train-exclude.txt \
    --photo-fraction 0.85 --negatives 0.2 --real-items data/real/uj-train-cookies.json --real-repeat 2
detseg train --data "$OUT/synth1/data.yaml" --model yolov5n.yaml \
    --init "$SHARED/weights/yolov5n-coco/yolov5n-coco-state-dict.pt" --imgsz "$IMGSZ" --batch 16 --workers 2 \
    --time "$HOURS1" --epochs 300 --out "$OUT/stage1" --seed 27

# Stage 2 data: the train split's real photos (items x2, look-alike-only photos once as negatives),
# 600 of stage 1's composites; ultralytics' val = the dev split (sites never trained on).
python detectors/weights/make_round2_data.py --photos "$SHARED/datasets/real-bakery-photos" \
    --synth "$OUT/synth1" --out "$OUT/data" --repeat 2 --synth-images 600

# Stage 2 (candidate A; B, YOLOv8n from the shipped detector, was not trained this round: model card).
detseg train --data "$OUT/data/data.yaml" --model "$OUT/stage1/weights/last.pt" --imgsz "$IMGSZ" --batch 16 \
    --workers 2 --time "$HOURS2" --epochs 300 --seed 27 --out "$OUT/A" warmup_epochs=1 close_mosaic=2
