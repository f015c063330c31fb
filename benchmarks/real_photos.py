"""Box-prompted mask quality on real photos: UJ Staple Pantry (validation split, 199 photos).

Prompts are the ground-truth boxes (class-agnostic), so this measures the segmenter
alone. Prints AP50:95, AP50, AP75, paired mean IoU and segmenter ms per box for each
segmenter, exact boxes and boxes jittered by up to 10% of their size.

Usage:
    python benchmarks/real_photos.py [--segmenters box,ellipse,grabcut,PATH/TO/sam.pt] [--every 1]

Dataset: "The Staple Pantry Dataset (University of Johannesburg)", CC BY-SA 4.0, read in
place from ../shared/datasets/uj-staple-pantry-valid (skips cleanly when absent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "datasets" / "uj-staple-pantry-valid"


def make_segmenter(name: str):
    from detseg.segmenter import BoxSegmenter, EllipseSegmenter, GrabCutSegmenter, SamSegmenter

    if name == "box":
        return BoxSegmenter()
    if name == "ellipse":
        return EllipseSegmenter()
    if name == "grabcut":
        return GrabCutSegmenter()
    return SamSegmenter(name, output="dense").load()  # loaded here: ms/box times masks, not reading the checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT), help="folder with annotations.json and images/")
    parser.add_argument("--segmenters", default="box,ellipse,grabcut")
    parser.add_argument("--every", type=int, default=1, help="use every n-th image")
    parser.add_argument("--jitter", default="0,0.1", help="comma-separated box jitter fractions")
    args = parser.parse_args(argv)
    folder = Path(args.data)
    if not (folder / "annotations.json").is_file():
        print(f"skipped: {folder}/annotations.json not found (the UJ dataset is not on this machine)")
        return 0
    from detseg.data.io import load_dataset
    from detseg.pipeline.evaluation.segmenter_eval import evaluate_on_gt_boxes

    ds = load_dataset(folder / "annotations.json")
    rows = []
    for name in args.segmenters.split(","):
        for jitter in (float(j) for j in args.jitter.split(",")):
            m = evaluate_on_gt_boxes(ds, make_segmenter(name), jitter=jitter, every=args.every, progress=False)
            rows.append((Path(name).name, jitter, m))
            print(f"{Path(name).name:<12} jitter {jitter:4.2f}  AP {m['AP']:.3f}  AP50 {m['AP50']:.3f}  "
                  f"AP75 {m['AP75']:.3f}  mIoU {m['paired_miou']:.3f}  {m['ms_per_box']:.1f} ms/box  "
                  f"({m['images']} images, {m['boxes']} boxes)", flush=True)
    print("\n| segmenter | box jitter | mask AP50:95 | AP50 | AP75 | mean IoU | ms per box |")
    print("|---|---|---|---|---|---|---|")
    for name, jitter, m in rows:
        print(f"| {name} | {jitter:.0%} | {m['AP']:.3f} | {m['AP50']:.3f} | {m['AP75']:.3f} | "
              f"{m['paired_miou']:.3f} | {m['ms_per_box']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
