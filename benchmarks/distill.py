"""Distillation, measured in one run: teacher pipeline vs a YOLOv8n-seg student trained on its labels.

Usage:
    nice -n 10 python benchmarks/distill.py [--n 300] [--epochs 30] [--time 0.4] [--student-imgsz 320]
    python benchmarks/distill.py --student W --work DIR [--predict-imgsz 416] [--val-sizes 320,416,512]

1. Generates ``--n`` synthetic images (seed ``--seed-train``); their labels are thrown away: the pool is
   "unlabelled". Generates ``--test`` held-out scenes with another seed (``--seed-test``), never trained on.
2. Teacher = the shipped detector (``detectors/weights/food-yolov5nu.pt``) + ``GrabCutSegmenter``; it
   labels the pool with ``detseg predict --save-dataset`` (``run_predict``).
3. Student = ``yolov8n-seg.yaml`` trained only on those labels with ``detseg train --task segment``
   (``--init stage-d``, the default, starts its backbone, neck and box head from the stage-D YOLOv8n, the
   teacher of the documented runs; ``--init teacher`` from the weights of today's teacher, a YOLOv5u, that
   fit; ``--init scratch`` from random weights); ``--time`` hours caps the training. ``--student-model
   yolov5n-seg.yaml`` (a YOLOv5u with a mask head, :mod:`detseg.detectors.model_configs`) with ``--init
   teacher`` takes all of today's teacher but the two mask branches.
4. Both are scored with ``detseg evaluate``'s machinery (pycocotools mask AP50:95 against the generator's
   exact masks) on the held-out scenes, at the same detector confidence (``--eval-conf``), and timed
   end to end (image in memory -> masks) at the operating confidence 0.25 on the same images, each model
   alone in a process of its own (as deployed) in whole runs over all of them, taking turns for
   ``--repeats`` rounds (ONNX Runtime's after all the others), its fastest run counting.
   The student's masks are made inside its boxes at the image's resolution (``YoloSegModel``'s default
   ``mask_mode="box"``); the same student with ultralytics' own mask post-processing is scored and
   timed beside it as the reference.

Prints the table and the targets (student AP >= 0.85x teacher at >= 10x its images/s); writes
``--work``/distill.json. ``--student W`` skips steps 1-3 for the pool and evaluates existing weights.

5. Deployment (skipped with ``--no-export``): both YOLO networks exported with ``detseg export`` to OpenVINO
   (the student also to ONNX); the exported student is scored again (its AP) and every variant timed in the
   same way. The fair deployed comparison is OpenVINO against OpenVINO: the teacher's detector
   gets the same runtime, its GrabCut stays what it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEACHER_WEIGHTS = ROOT / "detectors" / "weights" / "food-yolov5nu.pt"
STAGE_D_WEIGHTS = ROOT / "detectors" / "weights" / "candidates" / "stage-D-food-yolov8n.pt"  # the teacher until 12-07


def build_runner(kind: str, weights: str, conf: float, imgsz: int | None = None, mask_mode: str = "box"):
    """One timed model, built from picklable arguments (so a worker process can build its own):
    ``"teacher"``: detector ``weights`` + GrabCut; ``"student"``: the -seg ``weights`` with its own masks."""
    from detseg.detectors import YoloDetector
    from detseg.detectors.yolo_seg import YoloSegModel
    from detseg.pipeline import Pipeline
    from detseg.segmenter import GrabCutSegmenter

    if kind == "teacher":
        return Pipeline(YoloDetector(weights, conf=conf, device="cpu").load(), GrabCutSegmenter())
    options = {"imgsz": imgsz} if imgsz else {}  # an exported student carries its own size
    return YoloSegModel(weights, conf=conf, device="cpu", mask_mode=mask_mode, **options).load()


def _timing_worker(conn, spec: dict, image_paths: list, warmup: int, threads: int) -> None:
    """Builds one model in this process, warms it up, then times a whole run over the images per request."""
    import torch

    from detseg.images import read_image

    torch.set_num_threads(threads)
    run = build_runner(**spec)
    images = [read_image(p) for p in image_paths]
    for image in images[:warmup]:  # model load, first-call allocations, kernel selection
        run(image)
    conn.send("ready")
    while conn.recv() == "run":
        t = time.perf_counter()
        for image in images:
            run(image)
        conn.send(time.perf_counter() - t)


def _throughputs(specs: dict, image_paths: list, repeats: int = 3, warmup: int = 3, last: tuple = (),
                 threads: int = 2) -> dict:
    """Images/s of each model (``name -> build_runner kwargs``), each alone in a process of its own.

    Each model runs over all the images in one go, the models take turns for ``repeats`` rounds, and each
    model's fastest run counts (``timeit``'s rule: the time the work takes, not the time the machine's other
    work took from it; this VM's CPU swings between minutes, by up to 40% for a 2-thread model (the same
    OpenVINO student: 39-66 images/s within an hour, 2026-11-26), so every model gets several chances at a
    quiet one).

    A process per model, as deployed: runtimes sharing one process can slow each other on 2 cores (their
    worker threads keep spinning after a call, each pool sized to both cores); in one process, ONNX Runtime
    dropped OpenVINO's student from 60.6 to 41.8 images/s (2026-11-26). The idle workers wait on a pipe
    while one runs; the models named in ``last`` (ONNX Runtime, whose pool spin-waits after
    its run) take their rounds after all the others.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter: no runtime inherited from this one
    workers = {}
    try:
        for name, spec in specs.items():  # started one after another, so no warm-up overlaps another
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_timing_worker, args=(there, spec, [str(p) for p in image_paths], warmup,
                                                            threads), daemon=True)
            proc.start()
            if here.recv() != "ready":
                raise RuntimeError(f"timing worker for {name} did not start")
            workers[name] = (proc, here)
        best = dict.fromkeys(specs, float("inf"))
        for group in ([n for n in specs if n not in last], [n for n in specs if n in last]):
            for _ in range(repeats):
                for name in group:
                    conn = workers[name][1]
                    conn.send("run")
                    best[name] = min(best[name], conn.recv())
    finally:
        for proc, conn in workers.values():
            try:
                conn.send("stop")
            except OSError:
                pass
            proc.join(timeout=30)
    return {name: len(image_paths) / s for name, s in best.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _reusable(folder: Path, inputs: dict, made: str | None) -> bool:
    """Whether ``folder`` holds what ``inputs`` make: the record beside it (``<folder>.inputs.json``) names the
    same inputs and its ``made`` path exists (None: a folder its maker resumes, kept as far as it got). Otherwise
    the folder is removed (an earlier run's data made with other arguments is never reused) and the record is
    written for the run about to make it."""
    stamp = folder.with_name(folder.name + ".inputs.json")
    try:
        same = json.loads(stamp.read_text()) == inputs and (made is None or (folder / made).exists())
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(inputs, indent=2) + "\n")
    return same


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="unlabelled images the teacher labels")
    parser.add_argument("--test", type=int, default=100, help="held-out scenes (another seed)")
    parser.add_argument("--imgsz", type=int, default=512, help="side of the generated images")
    parser.add_argument("--seed-train", type=int, default=21)
    parser.add_argument("--seed-test", type=int, default=22)
    parser.add_argument("--epochs", type=int, default=30, help="student epochs (--time may cut them)")
    parser.add_argument("--time", type=float, default=0.4, help="student training budget in hours (0: none)")
    parser.add_argument("--student-imgsz", type=int, default=320, help="student training size")
    parser.add_argument("--predict-imgsz", type=int, default=None,
                        help="size the student runs (and is exported) at; default: its training size")
    parser.add_argument("--val-sizes", default="",
                        help="comma-separated sizes: the student's mask mAP on its own validation split (the "
                             "teacher's labels, never the test scenes) at each, to choose --predict-imgsz")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--init", choices=("teacher", "stage-d", "scratch"), default="stage-d",
                        help="student start: the weights that fit of the teacher detector (a YOLOv5u since "
                             "2026-12-07: 115 of a YOLOv8n-seg's 417 tensors, 427 of a YOLOv5n-seg's 489), of "
                             "the stage-D YOLOv8n the documented runs started from (349 of 417), or random")
    parser.add_argument("--student-model", default="yolov8n-seg.yaml",
                        choices=("yolov8n-seg.yaml", "yolov5n-seg.yaml"),
                        help="the student's architecture (yolov5n-seg.yaml: the teacher's, with a mask head)")
    parser.add_argument("--eval-conf", type=float, default=0.05, help="detector confidence for AP (both models)")
    parser.add_argument("--timing-images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="timing: runs per image, the fastest counts")
    parser.add_argument("--work", default="runs/distill", help="working folder (data, labels, student)")
    parser.add_argument("--student", default=None, help="evaluate these -seg weights instead of training")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the OpenVINO / ONNX exports (PyTorch figures only; needs no export extra)")
    args = parser.parse_args(argv)

    import torch

    from detseg.data.synth.generate import GENERATOR_VERSION, generate_dataset
    from detseg.detectors.train import train
    from detseg.pipeline.evaluation.evaluate import evaluate
    from detseg.pipeline.predict import RunOptions, run_predict

    work = Path(args.work).resolve()
    report = {"args": vars(args), "command": " ".join(["python", *sys.argv]), "torch_threads": torch.get_num_threads()}
    test = work / "test"
    test_inputs = {"test": args.test, "seed": args.seed_test, "imgsz": args.imgsz, "generator": GENERATOR_VERSION}
    if not _reusable(test, test_inputs, "data.yaml"):
        generate_dataset(test, {"test": args.test}, seed=args.seed_test, imgsz=args.imgsz, workers=2)

    def teacher(conf):
        return build_runner("teacher", str(TEACHER_WEIGHTS), conf)

    student_weights = Path(args.student) if args.student else None
    if student_weights is None:
        pool = work / "pool"
        pool_inputs = {"n": args.n, "seed": args.seed_train, "imgsz": args.imgsz, "generator": GENERATOR_VERSION}
        if not _reusable(pool, pool_inputs, "data.yaml"):  # written last
            generate_dataset(pool, {"train": args.n}, seed=args.seed_train, imgsz=args.imgsz, workers=2)
        labelled = work / "teacher-dataset"
        # the labels are the teacher's on this pool: another pool or teacher labels afresh
        label_inputs = {"pool": pool_inputs, "teacher_sha256": _sha256(TEACHER_WEIGHTS)}
        if not _reusable(labelled, label_inputs, None):  # an interrupted labelling resumes (run_predict --resume)
            shutil.rmtree(work / "teacher-predict", ignore_errors=True)
        t = time.perf_counter()
        summary = run_predict(teacher(0.25), pool / "images" / "train", work / "teacher-predict",
                              RunOptions(save_dataset=labelled, val_fraction=0.1, resume=labelled.is_dir()))
        report["labelling"] = {"seconds": round(time.perf_counter() - t, 1), "dataset": summary["dataset"]}
        extra = {"time": args.time} if args.time else {}
        if args.init != "scratch":
            extra["pretrained"] = str(TEACHER_WEIGHTS if args.init == "teacher" else STAGE_D_WEIGHTS)
        t = time.perf_counter()
        result = train(labelled / "data.yaml", model=args.student_model, task="segment", epochs=args.epochs,
                       imgsz=args.student_imgsz, batch=args.batch, device="cpu", out=work / "student", workers=2,
                       exist_ok=True, **extra)  # each run trains its student afresh
        report["training"] = {"seconds": round(time.perf_counter() - t, 1), "val_on_teacher_labels": result.metrics}
        torch.set_num_threads(report["torch_threads"])  # ultralytics' select_device leaves cores - 1 threads
        student_weights = result.best_weights

    size = args.predict_imgsz or args.student_imgsz
    if args.val_sizes:  # choosing the size on the student's validation split (teacher labels), not the test scenes
        from ultralytics import YOLO

        val_yaml = work / "teacher-dataset" / "data.yaml"
        if not val_yaml.is_file():
            parser.error(f"--val-sizes needs the teacher's dataset {val_yaml} (written by a training run)")
        report["val_mask_map_by_imgsz"] = {}
        for sz in [int(v) for v in args.val_sizes.split(",")]:
            r = YOLO(str(student_weights)).val(data=str(val_yaml), imgsz=sz, batch=8, device="cpu", plots=False,
                                               verbose=False, workers=0, project=str(work / "val-sizes"),
                                               name=str(sz), exist_ok=True)
            report["val_mask_map_by_imgsz"][sz] = {"box": r.box.map, "mask": r.seg.map}
            print(f"student on its validation split (teacher labels) at imgsz {sz}: box mAP {r.box.map:.3f}, "
                  f"mask mAP {r.seg.map:.3f}", flush=True)
        torch.set_num_threads(report["torch_threads"])

    def score(model, out):
        """The student-like ``model`` (detector and segmenter at once) on the held-out scenes: (report, mask AP)."""
        rep = evaluate(test / "data.yaml", model, {"student": model}, split="test", out=work / out,
                       conf=args.eval_conf, device="cpu", plots=False)
        return rep, rep["configs"]["student"]["segm"]

    t_eval = teacher(args.eval_conf)
    rep_t = evaluate(test / "data.yaml", t_eval.detector, {"teacher": t_eval.segmenter}, split="test",
                     out=work / "eval-teacher", conf=args.eval_conf, device="cpu", plots=False)
    segm_t = rep_t["configs"]["teacher"]["segm"]
    rep_s, segm_s = score(build_runner("student", str(student_weights), args.eval_conf, size), "eval-student")
    rep_ref, segm_ref = score(build_runner("student", str(student_weights), args.eval_conf, size, "ultralytics"),
                              "eval-student-ultralytics-masks")

    # deployment: both models' YOLO networks exported to OpenVINO (CPU inference runtime), the student to ONNX too
    exported = {}
    if not args.no_export:
        from detseg.detectors.export import export

        exported = {
            "teacher-openvino": export(TEACHER_WEIGHTS, "openvino", imgsz=640,
                                       out=work / "export" / "teacher_openvino_model"),
            "student-openvino": export(student_weights, "openvino", imgsz=size,
                                       out=work / "export" / "student_openvino_model"),
            "student-onnx": export(student_weights, "onnx", imgsz=size,
                                   out=work / "export" / "student.onnx"),
        }
        # an exported student carries its own input size
        rep_ov, segm_ov = score(build_runner("student", str(exported["student-openvino"]), args.eval_conf),
                                "eval-student-ov")

    image_paths = sorted((test / "images" / "test").iterdir())[: args.timing_images]
    teacher_spec = {"kind": "teacher", "weights": str(TEACHER_WEIGHTS), "conf": 0.25}
    student_spec = {"kind": "student", "weights": str(student_weights), "conf": 0.25, "imgsz": size}
    runners = {"teacher": teacher_spec, "student": student_spec,
               "student-ultralytics-masks": {**student_spec, "mask_mode": "ultralytics"}}
    if exported:
        runners["teacher-openvino"] = {**teacher_spec, "weights": str(exported["teacher-openvino"])}
        exported_student = {**student_spec, "weights": str(exported["student-openvino"]), "imgsz": None}
        runners["student-openvino"] = exported_student
        runners["student-openvino-ultralytics-masks"] = {**exported_student, "mask_mode": "ultralytics"}
        runners["student-onnx"] = {**exported_student, "weights": str(exported["student-onnx"])}
    ips = _throughputs(runners, image_paths, args.repeats, last=("student-onnx",), threads=report["torch_threads"])
    ips_t, ips_s = ips["teacher"], ips["student"]

    ap_ratio = segm_s["AP"] / segm_t["AP"] if segm_t["AP"] else float("nan")
    speed_ratio = ips_s / ips_t
    report.update({
        "test_images": rep_t["images"], "student_weights": str(student_weights),
        "teacher": {"mask": segm_t, "box": rep_t["configs"]["teacher"]["bbox"], "images_per_s": ips_t},
        "student": {"mask": segm_s, "box": rep_s["configs"]["student"]["bbox"], "images_per_s": ips_s},
        "student_ultralytics_masks": {"mask": segm_ref, "images_per_s": ips["student-ultralytics-masks"]},
        "ap_ratio": ap_ratio, "speed_ratio": speed_ratio, "images_per_s": ips,
    })
    if exported:
        report.update({
            "student_openvino": {"mask": segm_ov, "box": rep_ov["configs"]["student"]["bbox"]},
            "deployed_ap_ratio": segm_ov["AP"] / segm_t["AP"] if segm_t["AP"] else float("nan"),
            "deployed_speed_ratio": ips["student-openvino"] / ips["teacher-openvino"],
        })
    work.mkdir(parents=True, exist_ok=True)
    (work / "distill.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    print(f"\n{rep_t['images']} held-out scenes (seed {args.seed_test}, {args.imgsz}px); AP at detector conf "
          f"{args.eval_conf}, images/s at conf 0.25 over {len(image_paths)} images in memory "
          f"(fastest of {args.repeats} rounds of whole runs, each model in a process of its own), "
          f"{report['torch_threads']} torch threads")
    print(f"{'model':<46} {'mask AP50:95':>12} {'AP50':>6} {'box AP':>7} {'images/s':>9}")
    rows = [("teacher: the shipped detector + GrabCut (PyTorch)", segm_t, rep_t, ips_t),
            (f"student: {Path(args.student).name if args.student else Path(args.student_model).stem} @{size} "
             "(PyTorch)", segm_s, rep_s, ips_s),
            ("  same, ultralytics' masks (reference)", segm_ref, rep_ref, ips["student-ultralytics-masks"])]
    if exported:
        rows += [("teacher: detector in OpenVINO + GrabCut", None, None, ips["teacher-openvino"]),
                 ("student: ONNX Runtime", None, None, ips["student-onnx"]),
                 ("student: OpenVINO", segm_ov, rep_ov, ips["student-openvino"]),
                 ("  same, ultralytics' masks (reference)", None, None, ips["student-openvino-ultralytics-masks"])]
    for name, segm, rep, rate in rows:
        if segm is None:
            print(f"{name:<46} {'(same model)':>12} {'':>6} {'':>7} {rate:9.2f}")
            continue
        box = next(iter(rep["configs"].values()))["bbox"]["AP"]
        print(f"{name:<46} {segm['AP']:12.3f} {segm['AP50']:6.3f} {box:7.3f} {rate:9.2f}")

    def verdict(ratio, target):
        return "met" if ratio >= target else "NOT met"

    print(f"PyTorch both: student / teacher mask AP {ap_ratio:.3f}x (target >= 0.85x: {verdict(ap_ratio, 0.85)}), "
          f"speed {speed_ratio:.2f}x (target >= 10x: {verdict(speed_ratio, 10)})")
    if exported:
        ap_d, sp_d = report["deployed_ap_ratio"], report["deployed_speed_ratio"]
        print(f"OpenVINO both (deployed): student / teacher mask AP {ap_d:.3f}x ({verdict(ap_d, 0.85)}), "
              f"speed {sp_d:.2f}x ({verdict(sp_d, 10)})")
    if "training" in report:
        print(f"labelling {report['labelling']['seconds']} s, student training {report['training']['seconds']} s; "
              f"written to {work / 'distill.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
