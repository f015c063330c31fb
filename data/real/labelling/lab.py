"""Labelling aid for the real bakery photos (how data/real/bakery-boxes.json was drawn): python lab.py CMD ...

Photos are read from $LAB_PHOTOS (default ../shared/datasets/real-bakery-photos/images beside the checkout);
proposals.json (from propose.py), the per-photo box files (out/, or $LAB_OUT) and the pictures (view/) live in
$LAB_WORK (default runs/labelling).

  show FILE            -> view/FILE.prop.png: the photo with a pixel grid (lines every 50 px, labels every 100 px)
                          and the COCO model's proposals numbered; prints the proposals' coordinates.
  zoom FILE X1 Y1 X2 Y2 -> view/FILE.zoom.png: that region enlarged with a finer grid (every 10 px, labels every 50).
  check FILE           -> view/FILE.check.png: the boxes in out/FILE.json drawn by class (to verify your work).
  sheet FILE1 FILE2 ... -> view/sheet.png: up to 12 photos as thumbnails with their names (negatives screening).
"""

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[3]
ROOT = Path(os.environ.get("LAB_PHOTOS", REPO.parent / "shared" / "datasets" / "real-bakery-photos" / "images"))
HERE = Path(os.environ.get("LAB_WORK", "runs/labelling"))
OUTDIR = os.environ.get("LAB_OUT", "out")
PROPS = json.loads((HERE / "proposals.json").read_text())
(HERE / "view").mkdir(parents=True, exist_ok=True)
(HERE / OUTDIR).mkdir(parents=True, exist_ok=True)
COL = {
    "croissant": (0, 140, 255), "cookie": (255, 0, 200), "cupcake": (0, 220, 0), "muffin": (255, 200, 0),
    "cake": (200, 200, 200), "bread": (60, 60, 200), "pastry": (0, 255, 255), "tart": (128, 0, 128),
    "donut": (0, 100, 0), "macaron": (255, 128, 128), "dessert": (90, 90, 90),
}  # fmt: skip


def grid(img, step, label_every, scale=1.0, off=(0, 0)):
    h, w = img.shape[:2]
    ov = img.copy()
    for v in range(0, int(max(w, h) / scale) + off[0] + off[1] + step, step):
        for axis in (0, 1):
            o = off[axis]
            if v < o:
                continue
            p = int(round((v - o) * scale))
            if axis == 0 and p < w:
                cv2.line(ov, (p, 0), (p, h), (255, 255, 255), 1)
            if axis == 1 and p < h:
                cv2.line(ov, (0, p), (w, p), (255, 255, 255), 1)
    img = cv2.addWeighted(ov, 0.35, img, 0.65, 0)
    for v in range(0, int(max(w, h) / scale) + max(off) + label_every, label_every):
        px = int(round((v - off[0]) * scale))
        py = int(round((v - off[1]) * scale))
        for x, y in ([(px + 2, 12)] if 0 <= px < w else []) + ([(2, py + 12)] if 0 <= py < h else []):
            cv2.putText(img, str(v), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3)
            cv2.putText(img, str(v), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
    return img


def read(f):
    img = cv2.imread(str(ROOT / f))
    if img is None:
        sys.exit(f"cannot read {f}")
    return img


def main():
    cmd, f = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
    if cmd == "show":
        img = grid(read(f), 50, 100)
        for i, (x1, y1, x2, y2, c, n) in enumerate(PROPS.get(f, [])):
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), 2)
            cv2.putText(img, str(i), (x1 + 3, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3)
            cv2.putText(img, str(i), (x1 + 3, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1)
            print(f"p{i}: [{x1}, {y1}, {x2}, {y2}] {n} {c}")
        dst = HERE / "view" / (f + ".prop.png")
        cv2.imwrite(str(dst), img)
        print("size", read(f).shape[1], "x", read(f).shape[0], "->", dst)
    elif cmd == "zoom":
        x1, y1, x2, y2 = map(int, sys.argv[3:7])
        img = read(f)
        crop = img[max(0, y1) : y2, max(0, x1) : x2]
        s = min(4.0, 900 / max(crop.shape[:2]))
        crop = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        crop = grid(crop, 10, 50, s, (max(0, x1), max(0, y1)))
        p = HERE / OUTDIR / (f + ".json")
        if p.exists():
            for b in json.loads(p.read_text())["boxes"]:
                bx = [
                    int((b["xyxy"][0] - max(0, x1)) * s),
                    int((b["xyxy"][1] - max(0, y1)) * s),
                    int((b["xyxy"][2] - max(0, x1)) * s),
                    int((b["xyxy"][3] - max(0, y1)) * s),
                ]
                cv2.rectangle(crop, bx[:2], bx[2:], COL.get(b["cls"], (0, 0, 255)), 2)
        dst = HERE / "view" / (f + ".zoom.png")
        cv2.imwrite(str(dst), crop)
        print("->", dst)
    elif cmd == "check":
        img = read(f)
        d = json.loads((HERE / OUTDIR / (f + ".json")).read_text())
        for i, b in enumerate(d["boxes"]):
            x1, y1, x2, y2 = map(int, b["xyxy"])
            c = COL.get(b["cls"], (0, 0, 255))
            cv2.rectangle(img, (x1, y1), (x2, y2), c, 2)
            t = f"{i}{b['cls'][:2]}" + ("*" if b.get("crowd") else "")
            cv2.putText(img, t, (x1 + 3, y1 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3)
            cv2.putText(img, t, (x1 + 3, y1 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, c, 1)
        tag = Path(OUTDIR).name  # out (first labelling) or e.g. qa (the blind second look): separate pictures
        dst = HERE / "view" / (f + ("" if tag == "out" else "." + tag) + ".check.png")
        cv2.imwrite(str(dst), img)
        print(len(d["boxes"]), "boxes ->", dst)
    elif cmd == "sheet":
        tiles = []
        for g in sys.argv[2:14]:
            im = read(g)
            s = 300 / max(im.shape[:2])
            im = cv2.resize(im, None, fx=s, fy=s)
            t = np.full((330, 300, 3), 255, np.uint8)
            t[: im.shape[0], : im.shape[1]] = im
            cv2.putText(t, g[:45], (2, 322), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
            tiles.append(t)
        while len(tiles) % 4:
            tiles.append(np.full((330, 300, 3), 255, np.uint8))
        rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
        cv2.imwrite(str(HERE / "view" / "sheet.png"), np.vstack(rows))
        print("->", HERE / "view" / "sheet.png")


main()
