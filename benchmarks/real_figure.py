"""Pictures of a detector (and segmenter) on real photos, for the README and the model card.

    python benchmarks/real_figure.py --images PHOTO [PHOTO ...] --out benchmarks/figures/real_photo.png \
        [--weights W] [--segmenter grabcut|mobile_sam.pt|box] [--title TEXT]

Each photo is run through the pipeline (the detector at its default confidence, then the segmenter)
and drawn with detseg's Annotator (masks, boxes, "class score" labels, legend); the pictures are laid
side by side at the same height. Photos are read where they are; only the drawn figure is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default=None, help="detector (default: the shipped one)")
    p.add_argument("--segmenter", default="grabcut")
    p.add_argument("--height", type=int, default=480, help="height of each picture in the figure")
    p.add_argument("--title", default=None, help="text written under the figure")
    args = p.parse_args(argv)
    missing = [i for i in args.images if not Path(i).is_file()]
    if missing:
        print(f"skipped: {missing[0]} not found")
        return 0
    from detseg.atomic import atomic_write_bytes
    from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector
    from detseg.images import read_image
    from detseg.pipeline import Pipeline
    from detseg.pipeline.outputs import Annotator
    from detseg.segmenter.factory import build_segmenter

    segmenter, _ = build_segmenter(args.segmenter)
    pipe = Pipeline(YoloDetector(args.weights or DEFAULT_WEIGHTS), segmenter)
    annotate = Annotator(pipe.detector.class_names)
    tiles = []
    for path in args.images:
        image = read_image(path)
        dets = pipe(image)
        print(f"{Path(path).name}: {len(dets)} detections "
              f"{sorted(zip(dets.data.get('class_name', []), np.round(dets.confidence, 2).tolist()))}")
        drawn = annotate(image, dets)
        scale = args.height / drawn.shape[0]
        tiles.append(cv2.resize(drawn, (round(drawn.shape[1] * scale), args.height), interpolation=cv2.INTER_AREA))
    figure = np.hstack([np.pad(t, ((0, 0), (0, 6), (0, 0)), constant_values=255) for t in tiles])[:, :-6]
    if args.title:
        band = np.full((28, figure.shape[1], 3), 255, np.uint8)
        cv2.putText(band, args.title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
        figure = np.vstack([figure, band])
    ok, png = cv2.imencode(".png" if args.out.endswith(".png") else ".jpg", figure)
    atomic_write_bytes(Path(args.out), png.tobytes())
    print(f"figure: {args.out} ({figure.shape[1]}x{figure.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
