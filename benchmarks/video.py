"""Tracking quality and speed on a generated video the detector never saw, measured in one run.

1. ``detseg data synth-video`` renders a clip (seed 11: not a seed of any training set; the shipped
   detector was trained on still images only) with exact masks and track ids.
2. Per-frame mode: shipped detector + ByteTrack + GrabCut masks through ``run_predict`` (what
   ``detseg predict VIDEO`` does), scored by ``detseg evaluate-video``: HOTA, IDF1, MOTA, ID
   switches, distinct counts vs truth, mask AP; tracking's share of the per-frame time.
3. SAM 2 on the first ``--sam2-frames`` frames (random-initialised SAM 2.1-t with its object-presence
   head biased to "present": no weights can be downloaded here, so its masks and hence its tracking
   figures mean nothing; its speed does not depend on the weights): keyframe mode (detector +
   prompts every K frames, SAM 2 memory between) vs the per-frame SAM 2 image pipeline (detector +
   SAM 2 encoder + box decoder on every frame),
   frames per second of each, and the peak object memory.

Usage:
    python benchmarks/video.py [--frames 60] [--sam2-frames 6] [--keyframe-every 5] [--threads 2] [--device cpu]
        [--sam2-batch 16] [--sam-imgsz 1024]

On a GPU (``--device cuda``) each SAM 2 mode first runs ``--keyframe-every`` + 1 frames untimed (CUDA context,
kernel selection), so neither mode pays the other's start-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sam2-frames", type=int, default=6)
    ap.add_argument("--keyframe-every", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ... (detector and SAM 2)")
    ap.add_argument("--sam2-batch", type=int, default=16, help="most carried objects propagated in one SAM 2 call")
    ap.add_argument("--sam-imgsz", type=int, default=1024, help="SAM 2's input side in both modes (imgsz)")
    args = ap.parse_args()

    import torch

    from detseg.data.synth.synth_video import generate_video
    from detseg.detectors import DEFAULT_WEIGHTS, YoloDetector
    from detseg.pipeline import Pipeline
    from detseg.pipeline.evaluation.track_eval import evaluate_video, report_table
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.pipeline.video.keyframes import KeyframePipeline
    from detseg.pipeline.video.tracking import Tracker
    from detseg.segmenter import GrabCutSegmenter, SamSegmenter
    from detseg.segmenter.sam2_video import Sam2VideoMemory
    from detseg.segmenter.sam_loading import save_random_checkpoint

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="detseg-video-"))
    gt = tmp / "gt"
    truth = generate_video(gt, frames=args.frames, seed=args.seed, progress=False)
    video = gt / "video.mp4"
    print(f"video: {args.frames} frames 640x384, {truth['objects']} objects {truth['objects_per_class']}")
    device = args.device
    warmup = 0 if device == "cpu" else args.keyframe_every + 1
    detector = YoloDetector(DEFAULT_WEIGHTS, conf=0.25, device=device).load()

    # --- per-frame detection + ByteTrack + GrabCut
    run = tmp / "bytetrack"
    summary = run_predict(Pipeline(detector, GrabCutSegmenter()), video, run,
                          RunOptions(progress=False, track=Tracker(fps=truth["fps"])))
    report = evaluate_video(gt, run)
    stages = summary["seconds_per_stage"]
    work = sum(v for k, v in stages.items() if k not in ("track", "write", "read"))
    print("\nper-frame detector + ByteTrack + GrabCut:")
    print(report_table(report))
    print(f"counts: true {report['counts']['true']} counted {report['counts']['predicted']} "
          f"(error {100 * report['counts']['relative_error']:.1f}%); DetA {report['DetA']:.3f} "
          f"AssA {report['AssA']:.3f} box AP50 {report['box']['AP50']:.3f}")
    print(f"tracking time: {1000 * stages.get('track', 0) / summary['processed']:.2f} ms/frame = "
          f"{100 * stages.get('track', 0) / work:.2f}% of detect+segment ({1000 * work / summary['processed']:.1f} "
          f"ms/frame)")

    # --- SAM 2: keyframe mode vs per-frame image pipeline, same frames
    # random weights' presence head calls every object absent, so keyframe mode would carry none:
    # biased to "present" (both modes get the same checkpoint), as real weights do for real objects
    ckpt = save_random_checkpoint(tmp / "sam2.1_t.pt", "sam2.1_t", objects_present=True)
    n = args.sam2_frames
    # loaded before the clock, as keyframe mode's Sam2VideoMemory loads its segmenter when it is built
    image_pipe = Pipeline(detector, SamSegmenter(str(ckpt), device=device, imgsz=args.sam_imgsz).load())
    if warmup:  # then its embedding cache is emptied: the timed run encodes every frame, as keyframe mode does
        run_predict(image_pipe, video, tmp / "warmup_frames", RunOptions(max_frames=warmup, progress=False))
        image_pipe.segmenter.clear_cache()
    t = time.perf_counter()
    per_frame = run_predict(image_pipe, video, tmp / "sam2_frames",
                            RunOptions(max_frames=n, progress=False, track=Tracker(fps=truth["fps"])))
    t_image = time.perf_counter() - t
    class PeakMemory(Sam2VideoMemory):  # records the objects' memory after each frame, and SAM 2 calls' batches
        peak, most_objects = 0, 0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batches = []  # objects per propagation call

        def _step(self, objs, point_inputs):
            if point_inputs is None:
                self.batches.append(len(objs))
            return super()._step(objs, point_inputs)

        def masks(self):
            out = super().masks()
            self.peak = max(self.peak, self.memory_bytes())
            self.most_objects = max(self.most_objects, len(self.objects))
            return out

    memory = PeakMemory(SamSegmenter(str(ckpt), device=device, output="dense", imgsz=args.sam_imgsz),
                        batch=args.sam2_batch)
    pipe = KeyframePipeline(detector, memory, every=args.keyframe_every, fps=truth["fps"])
    if warmup:  # the run resets the pipeline's objects and ids; the peak is taken from the timed run
        run_predict(pipe, video, tmp / "warmup_keyframes", RunOptions(max_frames=warmup, progress=False))
        memory.peak, memory.most_objects, memory.batches = 0, 0, []
    t = time.perf_counter()
    # both modes through run_predict, so both write the same outputs (annotated video, COCO, tracks)
    keyframes = run_predict(pipe, video, tmp / "sam2_keyframes", RunOptions(max_frames=n, progress=False))
    t_key = time.perf_counter() - t
    peak, objects = memory.peak, memory.most_objects
    where = f"{args.threads} CPU threads" if device == "cpu" else f"{torch.cuda.get_device_name(device)}"
    print(f"\nSAM 2.1-t (random weights) at {args.sam_imgsz} px, first {n} frames, {where}, both written by "
          "run_predict:")
    print(f"per-frame SAM 2 image pipeline: {n / t_image:.3f} fps ({per_frame['seconds_per_stage']})")
    print(f"keyframe mode k={args.keyframe_every}: {n / t_key:.3f} fps ({keyframes['seconds_per_stage']})")
    print(f"keyframe / per-frame fps: {t_image / t_key:.2f}x (target >= 2x)")
    ids = {line.split(",")[1] for line in (tmp / "sam2_keyframes" / "tracks.txt").read_text().splitlines()}
    print(f"keyframe mode carried up to {objects} objects at once, {len(ids)} distinct ids in tracks.txt "
          "(random SAM 2 masks: ids are not meaningful, only that objects are carried)")
    batches = memory.batches
    print(f"propagation: {sum(batches)} object-frames in {len(batches)} SAM 2 calls "
          f"({sum(batches) / max(len(batches), 1):.2f} objects per call, at most {max(batches, default=0)})")
    print(f"peak SAM 2 object memory: {peak / 2**20:.1f} MiB for up to {objects} objects "
          f"({peak / 2**20 / max(objects, 1):.2f} MiB per object)")
    (tmp / "report.json").write_text(json.dumps({"bytetrack": report, "sam2": {
        "frames": n, "image_fps": n / t_image, "keyframe_fps": n / t_key, "peak_bytes": peak}}, indent=2))
    print(f"\nfiles under {tmp}")


if __name__ == "__main__":
    main()
