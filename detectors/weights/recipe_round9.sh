#!/usr/bin/env bash
# Round 9 (model card): round 8's WiSE-FT mixtures (1 - a) * S + a * F again, with batch-norm statistics (i) mixed like
# every other tensor and (ii) recomputed on 512 photos drawn from all of F's training folders; judged as round 8.
# Needs round 8's folder (recipe_round8.sh: F trained, its data, the synthetic dev split). Run from the repository root.
set -euo pipefail
SHARED="${SHARED:-../shared}"
R8="${R8:-runs/round8}" OUT="${OUT:-runs/round9}" IMGSZ="${IMGSZ:-416}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"
START="${START:-detectors/weights/food-yolov5nu.pt}"   # S: the shipped detector (round 3)
mkdir -p "$OUT"

python - "$START" "$R8/F/weights/last.pt" "$R8/data/data.yaml" "$OUT" "$IMGSZ" <<'PY'
import sys
from pathlib import Path

import yaml

from detseg.detectors.average import average_checkpoints, list_images

start, tuned, data, out, imgsz = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
folders = yaml.safe_load(Path(data).read_text())["train"]
photos = sorted({p.resolve() for f in folders for p in list_images(f)})  # each distinct photo once (repeats are links)
print(f"{len(photos)} distinct training photos in {len(folders)} folders")
for a in (0.25, 0.5, 0.75):
    for form, images in (("mixed", None), ("recal", photos)):
        print(average_checkpoints([start, tuned], f"{out}/mix-a{int(a * 100)}-{form}.pt", images=images, imgsz=imgsz,
                                  max_images=512, seed=0, coefficients=(1 - a, a)))
PY

CANDIDATES=("$START")
for a in 25 50 75; do CANDIDATES+=("$OUT/mix-a$a-mixed.pt" "$OUT/mix-a$a-recal.pt"); done
python benchmarks/real_detector.py --bakery --split dev --weights "${CANDIDATES[@]}" | tee "$OUT/judge-bakery.txt"
python benchmarks/real_detector.py --labels data/real/uj-train-cookies-dev.json data/real/uj-train-cookies-unseen.json \
    --negatives data/real/uj-train-dev-negatives.txt --images "$UJ" --weights "${CANDIDATES[@]}" | tee "$OUT/judge-uj.txt"
for w in "${CANDIDATES[@]}"; do
    echo "== synthetic dev: $w"
    detseg val --model "$w" --data "$R8/synth-dev/data.yaml" --split test --imgsz 640
done 2>&1 | tee "$OUT/judge-synth.txt"
