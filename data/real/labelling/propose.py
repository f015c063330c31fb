"""Box proposals for the real bakery photos from the COCO-pretrained YOLOv5n (its own anchor-based COCO head).

    python propose.py PHOTOS_FOLDER runs/labelling/proposals.json [WEIGHTS_FOLDER]

Writes proposals.json: {file: [[x1,y1,x2,y2,conf,coco_class_name], ...]} (pixels of the stored photo): every
box of a COCO food class (or any class above 0.3) at confidence > 0.05 after NMS 0.5, at most 60 a photo.
YOLOv5's anchor-based COCO head is decoded here (ultralytics ships only the anchor-free head); the backbone
and neck run in ultralytics' yolov5n.yaml model.
"""

import csv
import json
import sys
from pathlib import Path

import cv2
import torch
import torchvision
from ultralytics.nn.tasks import DetectionModel

root = Path(sys.argv[1])
out = Path(sys.argv[2])
wdir = (
    Path(sys.argv[3])
    if len(sys.argv) > 3
    else Path(__file__).resolve().parents[4] / "shared" / "weights" / "yolov5n-coco"
)
sd = {k: v.float() for k, v in torch.load(wdir / "yolov5n-coco-state-dict.pt", weights_only=True).items()}
meta = json.loads((wdir / "yolov5n-coco-meta.json").read_text())
names = meta["names"] if isinstance(meta["names"], list) else [meta["names"][str(i)] for i in range(80)]
anchors = torch.tensor(meta["yaml"]["anchors"], dtype=torch.float32).view(3, 3, 2)
model = DetectionModel("yolov5n.yaml", nc=80, verbose=False)
missing = model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("model.24.")}, strict=False)
model.eval()
heads = [torch.nn.Conv2d(sd[f"model.24.m.{i}.weight"].shape[1], 255, 1) for i in range(3)]
for i, h in enumerate(heads):
    h.weight.data = sd[f"model.24.m.{i}.weight"]
    h.bias.data = sd[f"model.24.m.{i}.bias"]
feats = {}
for idx in (17, 20, 23):
    model.model[idx].register_forward_hook(lambda m, i, o, idx=idx: feats.__setitem__(idx, o))
FOOD = {
    "cake",
    "donut",
    "sandwich",
    "pizza",
    "hot dog",
    "banana",
    "apple",
    "orange",
    "bowl",
    "cup",
    "broccoli",
    "carrot",
    "teddy bear",
    "frisbee",
    "sports ball",
    "dining table",
}
FOOD -= {"dining table", "cup", "bowl"}
res = {}
rows = list(csv.DictReader(open(root / "photos.csv")))
for n, r in enumerate(rows):
    img = cv2.imread(str(root / "images" / r["file"]))
    h0, w0 = img.shape[:2]
    s = 640 / max(h0, w0)
    nh, nw = int(round(h0 * s)), int(round(w0 * s))
    ph, pw = (32 - nh % 32) % 32, (32 - nw % 32) % 32
    im = cv2.copyMakeBorder(cv2.resize(img, (nw, nh)), 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = torch.from_numpy(im[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        model(x)
        allp = []
        for i, (idx, stride) in enumerate(zip((17, 20, 23), (8, 16, 32))):
            p = heads[i](feats[idx])
            b, _, ny, nx = p.shape
            p = p.view(b, 3, 85, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
            xy = (p[..., :2] * 2 - 0.5 + grid) * stride
            wh = (p[..., 2:4] * 2) ** 2 * anchors[i].view(1, 3, 1, 1, 2)
            allp.append(torch.cat((xy, wh, p[..., 4:]), -1).view(-1, 85))
        p = torch.cat(allp)
        sc = p[:, 5:] * p[:, 4:5]
        conf, cls = sc.max(1)
        keep = conf > 0.05
        p, conf, cls = p[keep], conf[keep], cls[keep]
        boxes = torch.cat((p[:, :2] - p[:, 2:4] / 2, p[:, :2] + p[:, 2:4] / 2), 1) / s
        k = torchvision.ops.nms(boxes, conf, 0.5)[:60]
    out_rows = []
    for j in k.tolist():
        nm = names[int(cls[j])]
        if nm in FOOD or conf[j] > 0.3:
            x1, y1, x2, y2 = boxes[j].tolist()
            out_rows.append(
                [
                    round(max(0, x1)),
                    round(max(0, y1)),
                    round(min(w0, x2)),
                    round(min(h0, y2)),
                    round(float(conf[j]), 3),
                    nm,
                ]
            )
    res[r["file"]] = out_rows
    if n % 100 == 0:
        print(n, r["file"], out_rows[:3], flush=True)
out.write_text(json.dumps(res))
