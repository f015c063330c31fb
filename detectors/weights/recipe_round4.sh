#!/usr/bin/env bash
# Round 4 (model card): the shipped round-3 detector trained on with mined hard negatives and bakery cookies
# composited into pantry scenes. Run from the repository root with detseg installed and ../shared beside it.
#   OUT    work folder (default runs/round4)
#   HOURS  training budget
#   LOOKALIKES  a look-alike box file to train as class 3 (round 7: data/real/bakery-lookalikes.json; default none)
#   TRAIN  0: make the data only (round 7 trains on it with recipe_round7.sh)
set -euo pipefail
SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/round4}" HOURS="${HOURS:-1.3}" IMGSZ="${IMGSZ:-416}"
UJ="$SHARED/datasets/uj-staple-pantry-train-images/images"
BAKERY="$SHARED/datasets/real-bakery-photos"
START="${START:-detectors/weights/food-yolov5nu.pt}"   # round 3's shipped detector
LOOKALIKES="${LOOKALIKES:-}" TRAIN="${TRAIN:-1}"
mkdir -p "$OUT"

# Never trained on (as round 3): photos showing the classes, the UJ dev negatives, the UJ cookie photos outside
# uj-train-cookies-fit.json (the fit photos come back below as labelled photos, never as backgrounds).
{ cat data/real/uj-train-exclude.txt data/real/uj-train-dev-negatives.txt
  python -c "import json,sys; [print(i['file_name']) for f in sys.argv[1:] for i in json.load(open(f))['images']]" \
      data/real/uj-train-cookies.json data/real/uj-train-cookies-unseen.json; } > "$OUT/exclude.txt"

# The bakery train split's cookie boxes (never a dev-split photo), as cut-outs to paste into pantry photos.
python - "$OUT/bakery-train-cookies.json" <<'PY'
import json, sys
coco = json.load(open("data/real/bakery-boxes.json"))
cookie = next(c["id"] for c in coco["categories"] if c["name"] == "cookie")
train = {im["id"]: im for im in coco["images"] if im["split"] == "train"}
anns = [a for a in coco["annotations"] if a["image_id"] in train and a["category_id"] == cookie and not a.get("iscrowd")]
keep = sorted({a["image_id"] for a in anns})
json.dump({"categories": [{"id": cookie, "name": "cookie"}], "images": [train[i] for i in keep], "annotations": anns},
          open(sys.argv[1], "w"))
print(f"bakery train cookies: {len(anns)} boxes in {len(keep)} photos")
PY

# 400 new composites on cookie-free UJ backgrounds: 200 with the UJ fit cookies' cut-outs, 200 with bakery cookies'.
detseg data synth --out "$OUT/synth-uj" --train 200 --val 0 --seed 41 --imgsz 512 --workers 2 \
    --backgrounds "$UJ" --exclude "$OUT/exclude.txt" --photo-fraction 0.85 --negatives 0.0 \
    --real-items data/real/uj-train-cookies-fit.json
detseg data synth --out "$OUT/synth-bakery" --train 200 --val 0 --seed 42 --imgsz 512 --workers 2 \
    --backgrounds "$UJ" --exclude "$OUT/exclude.txt" --photo-fraction 0.85 --negatives 0.0 \
    --real-items "$OUT/bakery-train-cookies.json" --real-images "$BAKERY/images"

# Bakery train split (items x2, look-alike-only photos x3), 300 cookie-free UJ photos (a fresh draw: seed 4), the
# 23 UJ fit photos x3, the composites; ultralytics' val = the bakery dev split.
data() {
python detectors/weights/make_round2_data.py --photos "$BAKERY" \
    --synth "$OUT/synth-uj" "$OUT/synth-bakery" --synth-images 200 --out "$OUT/data" --repeat 2 --negative-repeat 3 \
    --uj-images "$UJ" --uj-negatives 300 --uj-exclude "$OUT/exclude.txt" --seed 4 \
    --uj-items data/real/uj-train-cookies-fit.json --uj-items-repeat 3 ${LOOKALIKES:+--lookalikes "$LOOKALIKES"} "$@"
}
data

# Hard negatives, mined with the start model (the first data call above made the look-alike folder mined here; the
# second call below only adds the mined folders to data.yaml, every link it makes again already exists) at conf 0.25 (its training size): the train split's look-alike-only
# photos it fires on (twice more an epoch), and up to 150 eligible cookie-free UJ photos it fires on.
mkdir -p "$OUT/hard-lookalike1/images" "$OUT/hard-uj/images"
python detectors/weights/mine_hard_negatives.py --weights "$START" --images "$OUT/data/real-train-negatives2/images" \
    --into "$OUT/hard-lookalike1/images" --conf 0.25 --imgsz "$IMGSZ" --max 1000
# their label files too (empty, or round 7's look-alike boxes): hardneg-NAME.jpg gets NAME.txt
mkdir -p "$OUT/hard-lookalike1/labels"
for img in "$OUT"/hard-lookalike1/images/hardneg-*; do
    [ -e "$img" ] || continue  # nothing mined
    name=$(basename "$img"); base=${name#hardneg-}
    ln -sfn "$(realpath "$OUT/data/real-train/labels/${base%.*}.txt")" "$OUT/hard-lookalike1/labels/${name%.*}.txt"
done
rm -rf "$OUT/hard-lookalike2" && cp -a "$OUT/hard-lookalike1" "$OUT/hard-lookalike2"
python detectors/weights/mine_hard_negatives.py --weights "$START" --images "$UJ" --exclude "$OUT/exclude.txt" \
    --into "$OUT/hard-uj/images" --conf 0.25 --imgsz "$IMGSZ" --max 150 --seed 2028
data --extra-train "$OUT/hard-lookalike1/images" "$OUT/hard-lookalike2/images" "$OUT/hard-uj/images"

[ "$TRAIN" = 0 ] && exit 0

# Candidate D4: from the start model, checkpoints every 2 epochs (the rule's candidates).
detseg train --data "$OUT/data/data.yaml" --model "$START" \
    --imgsz "$IMGSZ" --batch 16 --workers 2 --time "$HOURS" --epochs 300 --seed 44 --out "$OUT/D4" \
    warmup_epochs=1 close_mosaic=2 save_period=2

