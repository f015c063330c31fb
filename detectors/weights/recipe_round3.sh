#!/usr/bin/env bash
# Round 3 (model card), as run on 2026-12-06 on a 2-core CPU: round 2's A trained on with more negatives.
# Run from the repository root with detseg installed and ../shared beside the checkout.
#   OUT    work folder (default runs/round3)
#   HOURS  training budget (this run: 1.75)
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round3}" HOURS="${HOURS:-1.75}" IMGSZ="${IMGSZ:-416}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"
mkdir -p "$OUT"

# Never trained on: photos showing the classes, the UJ dev negatives, and the UJ cookie photos outside
# uj-train-cookies-fit.json (the dev and unseen ones).
{ cat data/real/uj-train-exclude.txt data/real/uj-train-dev-negatives.txt
  python -c "import json,sys; [print(i['file_name']) for f in sys.argv[1:] for i in json.load(open(f))['images']]" \
      data/real/uj-train-cookies.json data/real/uj-train-cookies-unseen.json; } > "$OUT/exclude.txt"

# 300 new composites, backgrounds and real cookie cut-outs from the fit photos only.
detseg data synth --out "$OUT/synth" --train 300 --val 0 --seed 33 --imgsz 512 --workers 2 \
    --backgrounds "$UJ" --exclude "$OUT/exclude.txt" --photo-fraction 0.85 --negatives 0.0 \
    --real-items data/real/uj-train-cookies-fit.json --real-repeat 2

# Bakery train split (items x2, look-alike-only photos x3), 300 cookie-free UJ photos, the 23 UJ fit
# photos x2, the composites; ultralytics' val = the bakery dev split.
python detectors/weights/make_round2_data.py --photos "$SHARED/datasets/real-bakery-photos" \
    --synth "$OUT/synth" --out "$OUT/data" --repeat 2 --synth-images 300 --negative-repeat 3 \
    --uj-images "$UJ" --uj-negatives 300 --uj-exclude "$OUT/exclude.txt" data/real/uj-train-cookies.json \
    data/real/uj-train-cookies-unseen.json --uj-items data/real/uj-train-cookies-fit.json --uj-items-repeat 2

# Candidate C: from round 2's A, checkpoints every 2 epochs (the rule's candidates).
detseg train --data "$OUT/data/data.yaml" --model detectors/weights/candidates/round2-A-yolov5nu.pt \
    --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS" --epochs 300 --seed 33 --out "$OUT/C" \
    warmup_epochs=1 close_mosaic=2 save_period=2

# The rule's candidates on the two dev checks (model card, "Round 3: what happened"): epoch8/10/12/14/16.pt,
# best.pt, last.pt; never the UJ validation photos.
W="$OUT/C/weights"
python benchmarks/real_detector.py --bakery --split dev \
    --weights "$W"/epoch{8,10,12,14,16}.pt "$W/best.pt" "$W/last.pt"
python benchmarks/real_detector.py --labels data/real/uj-train-cookies-dev.json data/real/uj-train-cookies-unseen.json \
    --negatives data/real/uj-train-dev-negatives.txt --images "$UJ" \
    --weights "$W"/epoch{8,10,12,14,16}.pt "$W/best.pt" "$W/last.pt"

# The rule picked best.pt at confidence 0.35 (DEFAULT_CONF in detectors/yolo.py). ultralytics already stripped it
# (fp16, no optimizer): it ships as it is.
cp "$W/best.pt" detectors/weights/food-yolov5nu.pt
