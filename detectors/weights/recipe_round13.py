"""Round 13 (model card): one confidence per class for the shipped detector, no training.

Runs the shipped file once at conf 0.05 on round 3's two dev sets (the bakery dev split; the UJ training-photo
dev check), then judges every triple ``(c_croissant, c_cookie, c_cupcake)`` from ``GRID`` by the rule written
in the model card before any per-class figure was measured, and prints the table and the choice.

    python detectors/weights/recipe_round13.py [--out runs/round13]

Reads ``../shared`` in place; skips cleanly without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _benchmark(name: str):
    """A script of ``benchmarks/`` (a folder of scripts, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rd = _benchmark("real_detector")

GRID = (0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.60)
REFERENCE = 0.35


def figures(triple, names, bakery, bakery_dets, uj, uj_dets) -> dict:
    """The rule's figures for one triple (thresholds in the order of the detector's class ids)."""
    thresholds = dict(zip(sorted(names), triple))
    b = rd.bakery_rates(bakery, rd.per_class(bakery_dets, thresholds), names, 0.0)
    u = rd.rates(uj, rd.per_class(uj_dets, thresholds), 0.0)
    return {"triple": list(triple),
            "lookalike_dets": round(b["false_per_lookalike_photo"] * b["lookalike_photos"]),
            "lookalike_photos": b["lookalike_photos"], "lookalike": b["false_per_lookalike_photo"],
            "items": b["recall"], "uj_false": u["false_per_free_photo"],
            "uj_found": round(u["cookie_recall"] * u["cookies"]), "uj_cookies": u["cookies"]}


def judge(rows: list[dict], ref: dict) -> list[dict]:
    """The model card's round 13 rule (1-3): marks each row eligible / improves and sorts by the choice order."""
    for r in rows:
        r["eligible"] = r["lookalike"] <= 0.5 and r["uj_false"] <= 0.5 and r["items"] >= 0.55
        not_worse = r["lookalike_dets"] <= ref["lookalike_dets"] and r["uj_found"] >= ref["uj_found"]
        margin = (ref["lookalike"] - r["lookalike"] >= 0.05 - 1e-9) or (r["uj_found"] - ref["uj_found"] >= 3)
        r["improves"] = r["eligible"] and not_worse and margin
        r["target_errors"] = (max(0.0, r["lookalike_dets"] - 0.3 * r["lookalike_photos"])
                              + max(0.0, 0.6 * r["uj_cookies"] - r["uj_found"]))
        r["distance"] = sum(abs(c - REFERENCE) for c in r["triple"])
    return sorted(rows, key=lambda r: (not r["improves"], r["target_errors"], -r["items"], r["uj_false"],
                                       round(r["distance"], 6), r["triple"][1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "detectors" / "weights" / "food-yolov5nu.pt"))
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--out", default="runs/round13")
    args = parser.parse_args(argv)
    shared = Path(args.shared) / "datasets"
    uj_images = shared / "uj-staple-pantry-train-images" / "images"
    if not (shared / "real-bakery-photos" / "images").is_dir() or not uj_images.is_dir():
        print(f"skipped: the dev photos are not under {shared}")
        return 0
    from detseg.data.bakery import BOXES_FILE, load_boxes
    from detseg.images import read_image

    real = ROOT / "data" / "real"
    bakery = rd.bakery_photos(load_boxes(BOXES_FILE), shared / "real-bakery-photos" / "images", "dev")
    uj = [p for f in ("uj-train-cookies-dev.json", "uj-train-cookies-unseen.json")
          for p in rd.load_box_photos(real / f, uj_images)]
    uj += rd.load_negative_photos(real / "uj-train-dev-negatives.txt", uj_images)
    detector = rd._detector(args.weights, rd.build_parser().parse_args([]))
    names = {int(k): v for k, v in detector.class_names.items()}
    bakery_dets = [detector(read_image(p["path"])) for p in bakery]
    uj_dets = [detector(read_image(p["path"])) for p in uj]

    ref = figures((REFERENCE,) * len(names), names, bakery, bakery_dets, uj, uj_dets)
    rows = judge([figures(t, names, bakery, bakery_dets, uj, uj_dets)
                  for t in itertools.product(GRID, repeat=len(names))], ref)
    print(f"classes {[names[k] for k in sorted(names)]}; {len(bakery)} bakery dev photos "
          f"({ref['lookalike_photos']} look-alike-only), {len(uj)} UJ dev photos ({ref['uj_cookies']} cookies)")
    head = f"{'triple':>20} {'look-alike':>11} {'items':>7} {'UJ false':>9} {'UJ found':>9} {'errors':>7}  rule"

    def line(r):
        verdict = "improves" if r["improves"] else ("eligible" if r["eligible"] else "not eligible")
        return (f"{str(tuple(r['triple'])):>20} {r['lookalike']:>5.2f} ({r['lookalike_dets']:>2}) {r['items']:>7.1%} "
                f"{r['uj_false']:>9.2f} {r['uj_found']:>4}/{r['uj_cookies']:<4} {r['target_errors']:>7.1f}  {verdict}")

    print("reference (shipped, uniform 0.35):")
    print(head)
    print(line(judge([dict(ref)], ref)[0]))
    print(f"first 25 of {len(rows)} in the rule's order ({sum(r['improves'] for r in rows)} improve, "
          f"{sum(r['eligible'] for r in rows)} eligible):")
    print(head)
    for r in rows[:25]:
        print(line(r))
    chosen = rows[0] if rows[0]["improves"] else None
    print("choice:", "none improves; nothing changes" if chosen is None else
          f"{dict(zip([names[k] for k in sorted(names)], chosen['triple']))}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "round13.json").write_text(json.dumps({"reference": ref, "rows": rows, "chosen": chosen}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
