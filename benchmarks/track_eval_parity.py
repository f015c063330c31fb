"""detseg's tracking metrics (trackers.eval) against TrackEval's on 200 random sequences: the same figures?

    pip install trackeval        # only for this comparison; detseg itself no longer needs it
    python benchmarks/track_eval_parity.py

Each sequence: up to 5 objects over up to 29 frames, boxes missing at random, the tracker's boxes
jittered, 10% of them given another id, 10% dropped, up to 4 false boxes. Prints every metric
that differs by more than 1e-9 and the largest difference seen.
"""

import sys

import numpy as np

try:
    from trackeval.metrics import CLEAR, HOTA, Identity
except ImportError:
    sys.exit("this comparison needs TrackEval: pip install trackeval")

from detseg.pipeline.evaluation import track_eval

KEYS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "MOTP", "IDSW", "MT", "ML")


def trackeval_metrics(gt: np.ndarray, tracks: np.ndarray, frames: int) -> dict:
    """The same per-frame ids and IoUs as detseg's, through TrackEval's own classes."""
    gt_ids, track_ids, ious = track_eval._sequence_data(gt, tracks, frames)
    data = {"num_timesteps": frames, "num_gt_ids": len(np.unique(gt[:, 1])),
            "num_tracker_ids": len(np.unique(tracks[:, 1])), "num_gt_dets": len(gt),
            "num_tracker_dets": len(tracks), "gt_ids": gt_ids, "tracker_ids": track_ids, "similarity_scores": ious}
    hota = HOTA().eval_sequence(data)
    clear = CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)
    ident = Identity({"PRINT_CONFIG": False}).eval_sequence(data)
    out = {k: float(np.mean(hota[k])) for k in ("HOTA", "DetA", "AssA")}
    out.update(IDF1=float(ident["IDF1"]), **{k: float(clear[k]) for k in ("MOTA", "MOTP", "IDSW", "MT", "ML")})
    return out


def random_sequence(rng) -> tuple[np.ndarray, np.ndarray, int]:
    frames, objects = int(rng.integers(1, 30)), int(rng.integers(0, 6))
    rows = []
    for oid in range(objects):
        x, y = rng.uniform(0, 200, 2)
        w, h = rng.uniform(10, 60, 2)
        rows += [[f, oid + 1, x + f * rng.normal(0, 2), y, w, h, 1, 1] for f in range(1, frames + 1)
                 if rng.random() < 0.85]
    gt = np.array(rows, float).reshape(-1, 8)
    tracks = gt.copy()
    tracks[:, 2:4] += rng.normal(0, 6, (len(tracks), 2))
    swap = rng.random(len(tracks)) < 0.1
    tracks[swap, 1] = rng.integers(1, objects + 3, int(swap.sum()))
    tracks = tracks[rng.random(len(tracks)) < 0.9]
    false = rng.uniform(0, 200, (int(rng.integers(0, 5)), 8))
    false[:, 0], false[:, 1], false[:, 4:6] = rng.integers(1, frames + 1, len(false)), 99, 30
    return gt, np.concatenate([tracks, false]), frames


def main() -> None:
    rng = np.random.default_rng(0)
    worst = 0.0
    for trial in range(200):
        gt, tracks, frames = random_sequence(rng)
        ours, theirs = track_eval.tracking_metrics(gt, tracks, frames), trackeval_metrics(gt, tracks, frames)
        for k in KEYS:
            a, b = float(ours[k]), float(theirs[k])
            diff = 0.0 if (np.isnan(a) and np.isnan(b)) else abs(a - b)
            worst = max(worst, diff)
            if not diff <= 1e-9:
                print(f"sequence {trial}: {k} differs: trackers.eval {a}, TrackEval {b}")
    print(f"largest difference over 200 sequences, {len(KEYS)} metrics each: {worst:g}")


if __name__ == "__main__":
    main()
