"""Agreement between the first labelling (data/real/bakery-boxes.json) and the blind second labelling of a 10% sample
(qa-second-look.json): boxes matched per photo (Hungarian on IoU), pairs with IoU >= 0.3 counted.

    python data/real/labelling/qa_compare.py [FIRST_COCO SECOND_JSON]

The look-alike boxes' second look: ``qa_compare.py data/real/bakery-lookalikes.json
data/real/labelling/qa-lookalikes-second-look.json``.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[3]
if len(sys.argv) not in (1, 3):
    sys.exit("usage: qa_compare.py [FIRST_COCO SECOND_JSON]")
FIRST_FILE, SECOND_FILE = (sys.argv[1:3] if len(sys.argv) == 3 else
                           (REPO / "data" / "real" / "bakery-boxes.json",
                            REPO / "data" / "real" / "labelling" / "qa-second-look.json"))
SECOND = json.loads(Path(SECOND_FILE).read_text())["boxes"]
FIRST_COCO = json.loads(Path(FIRST_FILE).read_text())


def _first_boxes() -> dict:
    """file -> [{"cls", "xyxy"}] from the shipped box file (the first labelling)."""
    cat = {c["id"]: c["name"] for c in FIRST_COCO["categories"]}
    name = {im["id"]: im["file_name"] for im in FIRST_COCO["images"]}
    out = {}
    for a in FIRST_COCO["annotations"]:
        x, y, w, h = a["bbox"]
        out.setdefault(name[a["image_id"]], []).append({"cls": cat[a["category_id"]], "xyxy": [x, y, x + w, y + h]})
    return out


FIRST = _first_boxes()


def iou(a, b):
    a, b = np.array(a, float), np.array(b, float)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), 2)

    def area(x):
        return np.prod(x[:, 2:] - x[:, :2], 1)

    return inter / (area(a)[:, None] + area(b)[None] - inter)


ious, same_cls, only_first, only_second, photos, disagree = [], 0, 0, 0, 0, []
for stem, B in sorted(SECOND.items()):
    A = FIRST.get(stem, [])
    photos += 1
    if not A or not B:
        only_first += len(A)
        only_second += len(B)
        if A or B:
            disagree.append(stem)
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
        disagree.append(stem)
ious = np.array(ious)
print(
    f"{photos} photos compared; {len(ious)} matched boxes (IoU>=0.3): "
    f"median IoU {np.median(ious) if len(ious) else 0:.3f}, "
    f"mean {ious.mean() if len(ious) else 0:.3f}, IoU>=0.5 {np.mean(ious >= 0.5) if len(ious) else 0:.1%}, "
    f"IoU>=0.75 {np.mean(ious >= 0.75) if len(ious) else 0:.1%}; same class {same_cls}/{len(ious)}; "
    f"boxes only in the first {only_first}, only in the second {only_second}"
)
print("disagreeing photos:", *disagree, sep="\n  ")
