"""Tracked video runs: stable ids, new ids for new items, empty videos, MOTChallenge files a metric library reads."""

import json

import numpy as np
import pytest
import supervision as sv

from detseg.data.synth.food_items import CLASS_NAMES
from detseg.data.synth.synth_video import generate_video, render_video_frames
from detseg.pipeline import Pipeline
from detseg.pipeline.predict import RunOptions, run_predict
from detseg.pipeline.sources import video_info
from detseg.pipeline.video.tracking import NO_TRACK, Tracker
from detseg.segmenter import BoxSegmenter

CLIP = dict(frames=30, width=256, height=160, seed=4, size_range=(30, 50), speed=2.0, pan=0.5)


class GroundTruthDetector:
    """Returns the generated clip's true boxes of the n-th call's frame (frames come in order)."""

    class_names = dict(enumerate(CLASS_NAMES))

    def __init__(self, clip, drop_track=None):
        self.clip, self.calls, self.drop_track = clip, 0, drop_track

    def __call__(self, image):
        frame = self.clip.frames[self.calls]
        self.calls += 1
        keep = [i for i, t in enumerate(frame.track_ids) if t != self.drop_track]
        if not keep:
            return sv.Detections.empty()
        boxes = []
        for m in frame.masks[keep]:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        cls = frame.class_ids[keep]
        return sv.Detections(xyxy=np.array(boxes, np.float32), confidence=np.full(len(keep), 0.9, np.float32),
                             class_id=cls, data={"class_name": np.array([CLASS_NAMES[c] for c in cls])})


class NothingDetector:
    class_names = dict(enumerate(CLASS_NAMES))

    def __call__(self, image):
        return sv.Detections.empty()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    generate_video(out, progress=False, **CLIP)
    return out


def _read_mot(path):
    rows = [ln.split(",") for ln in path.read_text().splitlines() if ln]
    return [(int(r[0]), int(r[1]), *map(float, r[2:6]), int(r[7])) for r in rows]


def _id_map(gt_rows, track_rows):
    """gt id -> set of track ids matched to it (by best box IoU per frame)."""
    from collections import defaultdict

    matched = defaultdict(set)
    by_frame = defaultdict(list)
    for r in track_rows:
        by_frame[r[0]].append(r)
    for f, gid, x, y, w, h, _ in gt_rows:
        best, best_iou = None, 0.5
        for _, tid, tx, ty, tw, th, _ in by_frame[f]:
            ix = max(0, min(x + w, tx + tw) - max(x, tx))
            iy = max(0, min(y + h, ty + th) - max(y, ty))
            iou = ix * iy / (w * h + tw * th - ix * iy)
            if iou > best_iou:
                best, best_iou = tid, iou
        if best is not None:
            matched[gid].add(best)
    return matched


def test_ids_stable_on_slow_clip_and_outputs_consistent(clip_dir, tmp_path):
    clip = render_video_frames(**CLIP)
    summary = run_predict(Pipeline(GroundTruthDetector(clip), BoxSegmenter()), clip_dir / "video.mp4",
                          tmp_path, RunOptions(progress=False, track=True))
    gt, tracks = _read_mot(clip_dir / "gt.txt"), _read_mot(tmp_path / "tracks.txt")
    ids = _id_map(gt, tracks)
    assert ids and all(len(v) == 1 for v in ids.values()), ids  # one track id per object
    assert len({next(iter(v)) for v in ids.values()}) == len(ids)  # and a different one for each object
    assert min(r[0] for r in tracks) >= 1 and max(r[0] for r in tracks) <= CLIP["frames"]
    from collections import Counter

    frames_of = Counter(r[1] for r in gt)  # objects in view long enough to be confirmed and counted (3 frames)
    truth = Counter(CLASS_NAMES[r[6] - 1] for r in gt if r[0] == min(q[0] for q in gt if q[1] == r[1])
                    and frames_of[r[1]] >= 4)
    assert summary["instances_per_class"] == {n: truth.get(n, 0) for n in CLASS_NAMES}  # distinct, not per frame
    assert summary["frame_instances"] > summary["instances"]
    preds = json.loads((tmp_path / "predictions.json").read_text())
    assert len(preds) == len(tracks) and all("track_id" in p for p in preds)
    # masks stay aligned with ids: each result's box is its row's box in tracks.txt
    rows = {(r[0], r[1]): r for r in tracks}
    for p in preds:
        assert np.allclose(rows[(p["image_id"], p["track_id"])][2:6], p["bbox"], atol=0.01)
    images = json.loads((tmp_path / "images.json").read_text())["images"]
    assert {im["file_name"] for im in images} == {"video.mp4"}  # no frame files that do not exist
    assert sorted(im["frame"] for im in images) == list(range(1, CLIP["frames"] + 1))
    assert (tmp_path / "annotated.mp4").stat().st_size > 0


def test_one_tracker_instance_serves_video_after_video(clip_dir, tmp_path):
    """A Tracker given in RunOptions starts afresh on each video: the second run's tracks equal the
    first's (before the reset, the second video's early timestamps lay behind the first's last one)."""
    clip, options = render_video_frames(**CLIP), RunOptions(progress=False, track=Tracker(fps=12))
    for run in ("a", "b"):
        run_predict(Pipeline(GroundTruthDetector(clip), BoxSegmenter()), clip_dir / "video.mp4", tmp_path / run,
                    options)
    first, second = (tmp_path / "a" / "tracks.txt").read_text(), (tmp_path / "b" / "tracks.txt").read_text()
    assert first and second == first


def test_new_item_gets_new_id():
    tracker = Tracker(fps=12)
    box = np.array([[10, 10, 50, 50]], np.float32)
    ids = []
    for i in range(6):
        xyxy = box + [2 * i, 0, 2 * i, 0]
        if i >= 3:  # a second item appears far away
            xyxy = np.vstack([xyxy, [[150, 80, 190, 120]]])
        dets = sv.Detections(xyxy=xyxy, confidence=np.full(len(xyxy), 0.9), class_id=np.zeros(len(xyxy), int),
                             mask=np.zeros((len(xyxy), 130, 200), bool))
        out = tracker.update(dets, i)
        assert out.mask.shape[0] == len(out)
        ids.append(dict(zip(out.xyxy[:, 0].round().astype(int).tolist(), out.tracker_id.tolist())))
    first = {v for d in ids for k, v in d.items() if k < 100}
    second = {v for d in ids for k, v in d.items() if k >= 100}
    assert len(first) == 1 and len(second) == 1 and first != second


@pytest.mark.parametrize("fps, stride, lost_seconds", [(12, 13, 1.0), (25, 30, 1.0), (12, 1, 0.05), (12, 2, 0.1)])
def test_an_item_keeps_its_id_when_processed_frames_are_further_apart_than_lost_seconds(fps, stride, lost_seconds):
    """trackers prunes lost tracks by time before matching; a track matched one processed frame earlier is one step
    old then. With a step over lost_seconds (--stride 13 at 12 fps) every frame gave the item a new id."""
    tracker = Tracker(fps=fps, lost_seconds=lost_seconds)
    box = np.array([[10, 10, 50, 50]], np.float32)
    ids = []
    for i in range(5):
        dets = sv.Detections(xyxy=box + [i, 0, i, 0], confidence=np.array([0.9]), class_id=np.array([0]))
        ids += tracker.update(dets, i * stride).tracker_id.tolist()
    assert ids == [1] * 5


def test_a_track_lost_longer_than_lost_seconds_beyond_the_step_is_ended():
    tracker = Tracker(fps=10, lost_seconds=0.5)
    box = sv.Detections(xyxy=np.array([[10, 10, 50, 50]], np.float32), confidence=np.array([0.9]),
                        class_id=np.array([0]))
    empty = sv.Detections.empty()
    first = tracker.update(box, 0).tracker_id.tolist()
    for frame in range(1, 11):  # a second without the item: past 0.5 s + the 0.1 s step
        tracker.update(empty, frame)
    assert first == [1] and tracker.update(box, 11).tracker_id.tolist() == [2]


def test_masks_stay_with_their_rows_when_tracker_reorders():
    tracker = Tracker(fps=10, min_frames=1)
    xyxy = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 0, 110, 10]], np.float32)
    masks = np.zeros((3, 64, 128), bool)
    for i, (x0, y0, x1, y1) in enumerate(xyxy.astype(int)):
        masks[i, y0:y1, x0:x1] = True
    dets = sv.Detections(xyxy=xyxy, confidence=np.array([0.9, 0.3, 0.8]), class_id=np.array([0, 1, 2]), mask=masks)
    for f in range(3):
        out = tracker.update(dets, f)
        for row in range(len(out)):
            x0, y0, x1, y1 = out.xyxy[row].astype(int)
            assert out.mask[row, y0:y1, x0:x1].all() and out.mask[row].sum() == (x1 - x0) * (y1 - y0)


def test_video_with_no_detections(clip_dir, tmp_path):
    summary = run_predict(Pipeline(NothingDetector(), BoxSegmenter()), clip_dir / "video.mp4", tmp_path,
                          RunOptions(progress=False, track=True, max_frames=5))
    assert summary["processed"] == 5 and summary["instances"] == 0 and summary["tracks"] == 0
    assert (tmp_path / "tracks.txt").read_text() == ""
    assert json.loads((tmp_path / "predictions.json").read_text()) == []


def test_mot_file_loads_in_metric_libraries(clip_dir, tmp_path):
    from trackers import load_mot_file

    from detseg.pipeline.evaluation.track_eval import evaluate_video

    clip = render_video_frames(**CLIP)
    run_predict(Pipeline(GroundTruthDetector(clip), BoxSegmenter()), clip_dir / "video.mp4", tmp_path,
                RunOptions(progress=False, track=True))
    loaded = load_mot_file(tmp_path / "tracks.txt")  # roboflow trackers' own MOT reader
    assert min(loaded) == 1 and sum(len(f.ids) for f in loaded.values()) > 0  # ids from the first frame
    report = evaluate_video(clip_dir, tmp_path)  # trackers.eval: HOTA / CLEAR / Identity
    assert report["IDSW"] == 0 and report["IDF1"] > 0.9 and report["HOTA"] > 0.8 and report["MOTA"] > 0.85
    assert report["counts"]["relative_error"] <= 0.25 and report["box"]["AP50"] > 0.8


def test_evaluation_penalises_id_switches(clip_dir, tmp_path):
    from detseg.pipeline.evaluation.track_eval import load_mot, tracking_metrics

    gt = load_mot(clip_dir / "gt.txt")
    perfect = tracking_metrics(gt, gt.copy())
    assert perfect["HOTA"] > 0.99 and perfect["IDF1"] == 1.0 and perfect["IDSW"] == 0 and perfect["MOTA"] == 1.0
    swapped = gt.copy()
    later = swapped[:, 0] > 15
    swapped[later, 1] += 100  # every object gets a new id half-way
    worse = tracking_metrics(gt, swapped)
    assert worse["IDSW"] == len(np.unique(gt[(gt[:, 0] == 16), 1])) and worse["IDF1"] < 0.8 and worse["HOTA"] < 0.9


def test_the_tracker_keeps_every_detection_and_ids_start_on_the_first_frame():
    """A track gets its id on its first frame; a low-confidence box that starts no track keeps its row (id 0)."""
    tracker = Tracker(fps=10)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :10, :10] = masks[1, 50:60, 50:60] = True
    dets = sv.Detections(xyxy=np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32),
                         confidence=np.array([0.9, 0.3]), class_id=np.array([0, 1]), mask=masks)
    out = tracker.update(dets, 0)
    assert len(out) == 2
    by_conf = {round(float(c), 1): (int(t), int(k), int(m.sum())) for c, t, k, m in
               zip(out.confidence, out.tracker_id, out.class_id, out.mask)}
    assert by_conf[0.9][0] >= 1 and by_conf[0.3][0] == NO_TRACK
    assert by_conf[0.9][1:] == (0, 100) and by_conf[0.3][1:] == (1, 100)  # class and mask stay with the row


def test_a_tracked_video_keeps_its_first_frames_and_writes_no_tracker_negatives(clip_dir, tmp_path):
    clip = render_video_frames(**CLIP)
    summary = run_predict(Pipeline(GroundTruthDetector(clip), BoxSegmenter()), clip_dir / "video.mp4",
                          tmp_path / "out", RunOptions(progress=False, track=True, save_dataset=tmp_path / "ds"))
    gt = _read_mot(clip_dir / "gt.txt")
    preds = json.loads((tmp_path / "out" / "predictions.json").read_text())
    per_frame = {}
    for p in preds:
        per_frame[p["image_id"]] = per_frame.get(p["image_id"], 0) + 1
    truth = {}
    for r in gt:
        truth[r[0]] = truth.get(r[0], 0) + 1
    assert per_frame == truth  # every object in every frame, the first included
    assert 1 in per_frame and all(p["track_id"] for p in preds)
    autolabel = json.loads((tmp_path / "ds" / "autolabel.json").read_text())
    frames_without_objects = CLIP["frames"] - len(truth)
    assert sum(autolabel["negatives"].values()) == frames_without_objects
    assert summary["frame_instances"] == len(gt)


def test_tracking_metrics_on_a_sequence_counted_by_hand():
    """Two objects over 3 frames (6 boxes): the tracker misses object 2 in frame 3, adds a false box in frame 1
    and gives object 1 a new id from frame 3: MOTA = 1 - (FN 1 + FP 1 + IDSW 1) / 6 = 0.5."""
    from detseg.pipeline.evaluation.track_eval import tracking_metrics

    box1, box2, far = [0, 0, 10, 10], [50, 50, 10, 10], [200, 200, 10, 10]
    gt = np.array([[f, 1, *box1, 1, 1] for f in (1, 2, 3)] + [[f, 2, *box2, 1, 1] for f in (1, 2, 3)], float)
    tracks = np.array([[1, 7, *box1, 1, 1], [2, 7, *box1, 1, 1], [3, 8, *box1, 1, 1],
                       [1, 9, *box2, 1, 1], [2, 9, *box2, 1, 1], [1, 5, *far, 1, 1]], float)
    m = tracking_metrics(gt, tracks)
    assert (m["IDSW"], m["frames"], m["gt_objects"], m["tracks"]) == (1, 3, 2, 4)
    assert m["MOTA"] == pytest.approx(0.5) and m["MOTP"] == pytest.approx(1.0)
    # IDF1 = 2 IDTP / (gt boxes + track boxes): best one-to-one ids 1<->7 (2 frames), 2<->9 (2 frames): 8 / 12
    assert m["IDF1"] == pytest.approx(8 / 12)
    assert m["MT"] == 1 and m["ML"] == 0  # object 2 tracked in 2 of 3 frames: mostly tracked needs 80%


def test_the_sequence_length_is_the_last_frame_named_not_the_number_of_frames_listed():
    from detseg.pipeline.evaluation.track_eval import frame_count

    coco = {"images": [{"id": f} for f in (1, 2, 7)]}  # a ground truth listing only the frames with objects
    rows = np.array([[7, 1, 0, 0, 5, 5, 1, 1]], np.float64)  # as load_mot reads it
    assert frame_count(coco, rows, rows[:0]) == 7  # was 3: frame 7's rows fell out of HOTA / MOTA / IDF1
    assert frame_count(coco, rows[:0], np.array([[9, 1, 0, 0, 5, 5, 1, 1]], np.float64)) == 9
    assert frame_count({"images": [{"id": f} for f in range(1, 31)]}, rows, rows) == 30


def test_evaluation_scores_only_the_frames_a_strided_run_saw(clip_dir, tmp_path, monkeypatch):
    from detseg.pipeline.evaluation.track_eval import evaluate_video

    class EveryOther(GroundTruthDetector):
        def __call__(self, image):  # the run sees frames 0, 2, 4, ...
            dets = super().__call__(image)
            self.calls += 1
            return dets

    clip = render_video_frames(**CLIP)
    seen, update = [], Tracker.update

    def clock(self, detections, frame_index):
        seen.append(frame_index / self.fps)
        return update(self, detections, frame_index)

    monkeypatch.setattr(Tracker, "update", clock)
    summary = run_predict(Pipeline(EveryOther(clip), BoxSegmenter()), clip_dir / "video.mp4", tmp_path,
                          RunOptions(progress=False, track=True, stride=2))
    fps = video_info(clip_dir / "video.mp4")["fps"]
    assert seen[:3] == pytest.approx([0.0, 2 / fps, 4 / fps])  # the tracker's clock is the video's, in seconds
    assert summary["tracking"]["fps"] == fps
    report = evaluate_video(clip_dir, tmp_path)
    assert report["frames_not_run"] == CLIP["frames"] // 2
    assert report["MOTA"] > 0.85 and report["HOTA"] > 0.8 and report["box"]["AP50"] > 0.8  # no misses charged


def test_evaluation_takes_ground_truth_annotation_ids_from_zero(clip_dir, tmp_path):
    import shutil

    from detseg.pipeline.evaluation.track_eval import evaluate_video

    clip = render_video_frames(**CLIP)
    run_predict(Pipeline(GroundTruthDetector(clip), BoxSegmenter()), clip_dir / "video.mp4", tmp_path / "run",
                RunOptions(progress=False, track=True))
    zero = tmp_path / "gt0"
    shutil.copytree(clip_dir, zero)
    coco = json.loads((zero / "annotations.json").read_text())
    for i, a in enumerate(coco["annotations"]):
        a["id"] = i  # a converter's 0-based ids
    (zero / "annotations.json").write_text(json.dumps(coco))
    assert evaluate_video(zero, tmp_path / "run")["box"] == evaluate_video(clip_dir, tmp_path / "run")["box"]


def test_tracks_txt_is_motchallenge_results_and_classes_come_from_the_predictions(clip_dir, tmp_path):
    from detseg.pipeline.evaluation.track_eval import evaluate_video

    clip = render_video_frames(**CLIP)
    run_predict(Pipeline(GroundTruthDetector(clip), BoxSegmenter()), clip_dir / "video.mp4", tmp_path / "run",
                RunOptions(progress=False, track=True))
    lines = (tmp_path / "run" / "tracks.txt").read_text().splitlines()
    assert lines and all(line.split(",")[7:] == ["-1", "-1", "-1"] for line in lines)  # TrackEval's x, y, z
    report = evaluate_video(clip_dir, tmp_path / "run")
    truth = report["counts"]["true"]
    assert report["counts"]["predicted"] == truth and sum(truth.values()) > 0  # per class, from predictions.json
    assert set(report["per_class"]) == {n for n, k in truth.items() if k} and report["per_class"]
    # an older tracks.txt with the class in its 8th column reads as it did
    old = [",".join([*ln.split(",")[:7], "9", "-1", "-1"]) for ln in lines]
    (tmp_path / "run" / "tracks.txt").write_text("\n".join(old) + "\n")
    assert sum(evaluate_video(clip_dir, tmp_path / "run")["counts"]["predicted"].values()) == 0  # class 9: none
