"""Agreement between the first labelling (out/) and the blind second labelling (qa/): matched pairs by IoU."""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/labelling")  # holds out/ and qa/


def iou(a, b):
    a, b = np.array(a, float), np.array(b, float)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 2)
    def ar(x):
        return np.prod(x[:, 2:] - x[:, :2], 1)
    return inter / (ar(a)[:, None] + ar(b)[None] - inter)


ious, same_cls, only_first, only_second, photos, disagree = [], 0, 0, 0, 0, []
for q in sorted((HERE / "qa").glob("*.json")):
    f = HERE / "out" / q.name
    if not f.exists():
        continue
    A = json.loads(f.read_text())["boxes"]
    B = json.loads(q.read_text())["boxes"]
    photos += 1
    if not A or not B:
        only_first += len(A)
        only_second += len(B)
        if A or B:
            disagree.append(q.stem)
        continue
    m = iou([a["xyxy"] for a in A], [b["xyxy"] for b in B])
    r, c = linear_sum_assignment(-m)
    pairs = [(i, j) for i, j in zip(r, c) if m[i, j] >= 0.3]
    bad = False
    for i, j in pairs:
        ious.append(m[i, j])
        same_cls += A[i]["cls"] == B[j]["cls"]
        bad |= A[i]["cls"] != B[j]["cls"] or m[i, j] < 0.7
    only_first += len(A) - len(pairs)
    only_second += len(B) - len(pairs)
    if bad or len(pairs) != len(A) or len(pairs) != len(B):
        disagree.append(q.stem)
ious = np.array(ious)
print(
    f"{photos} photos compared; {len(ious)} matched boxes (IoU>=0.3): "
    f"median IoU {np.median(ious) if len(ious) else 0:.3f}, "
    f"mean {ious.mean() if len(ious) else 0:.3f}, IoU>=0.5 {np.mean(ious >= 0.5) if len(ious) else 0:.1%}, "
    f"IoU>=0.75 {np.mean(ious >= 0.75) if len(ious) else 0:.1%}; same class {same_cls}/{len(ious)}; "
    f"boxes only in the first {only_first}, only in the second {only_second}"
)
print("disagreeing photos:", *disagree, sep="\n  ")
