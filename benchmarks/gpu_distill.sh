#!/usr/bin/env bash
# Train the distillation student (issue 15: YOLOv8n-seg on the teacher's labels) on a lent GPU machine.
# The teacher's labelled pool (--work's teacher-dataset/, written on the CPU by benchmarks/distill.py,
# 905 train + 95 val images) travels as .distill/teacher-dataset.tgz:
#   tar czf .distill/teacher-dataset.tgz -C runs/distill1000 --dereference teacher-dataset
# The student then goes through the CPU benchmark as it is:
#   python benchmarks/distill.py --student best.pt --work runs/distill1000 --predict-imgsz 320
# Results (weights, results.csv, metrics.json, command.txt) land in $OUT/student.tgz. HOURS caps the training
# (default 0.07; the README's student: HOURS=0.1364).
set -uo pipefail
repo="$PWD"; out="${OUT:-runs/gpu_distill}"; mkdir -p "$out" && out="$(cd "$out" && pwd)"  # the script cds away
# shellcheck source=benchmarks/gpu_env.sh
source benchmarks/gpu_env.sh || exit 1
work=/tmp/distill; mkdir -p "$work" && tar xzf .distill/teacher-dataset.tgz -C "$work" || exit 1
cd "$work" || exit 1
# shellcheck disable=SC2086
detseg train --task segment --data "$work/teacher-dataset/data.yaml" --model yolov8n-seg.yaml \
    --imgsz "${IMGSZ:-320}" --batch "${BATCH:-32}" --device "${DEVICE:-0}" --workers "${WORKERS:-16}" --epochs 300 --time "${HOURS:-0.07}" \
    --out "$work/student" --no-plots "pretrained=$repo/detectors/weights/candidates/stage-D-food-yolov8n.pt" cache=ram ${EXTRA:-} 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]\?$\|s/it\]\?$" | tee "$out/distill_train.log"
tar czf "$out/student.tgz" -C "$work/student" weights/best.pt weights/last.pt results.csv metrics.json args.yaml \
    command.txt
