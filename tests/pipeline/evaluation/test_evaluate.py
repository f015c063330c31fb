import json

import numpy as np
import pytest
import supervision as sv

from detseg.data.io import load_dataset
from detseg.errors import InputError
from detseg.pipeline.cli import main
from detseg.pipeline.cli.evaluate import parse_class_map
from detseg.pipeline.evaluation.evaluate import class_id_mapping, evaluate, folder_names, metrics_table
from detseg.pipeline.evaluation.metrics import coco_ap, result_entry


def _square(y0, x0, size, shape=(40, 40)):
    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def _gt(masks, categories=("a", "b"), classes=None):
    classes = classes or [1] * len(masks)
    anns = []
    for i, (m, c) in enumerate(zip(masks, classes), 1):
        anns.append({**result_entry(1, c, 1.0, m), "id": i, "iscrowd": 0, "area": float(m.sum())})
        anns[-1].pop("score")
    return {"images": [{"id": 1, "file_name": "x.jpg", "width": 40, "height": 40}], "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)]}


def test_perfect_predictions_give_ap_one():
    masks = [_square(0, 0, 10), _square(20, 20, 15), _square(5, 25, 8)]
    gt = _gt(masks, classes=[1, 2, 1])
    preds = [result_entry(1, c, 0.9, m) for m, c in zip(masks, [1, 2, 1])]
    m = coco_ap(gt, preds, "segm")
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
    assert m["per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    assert m["mean_iou"] == pytest.approx(1.0) and m["matched"] == 3


def test_a_class_absent_from_the_ground_truth_has_no_ap_rather_than_zero(tmp_path):
    from detseg.pipeline.evaluation.plots import plot_per_class_ap

    masks = [_square(0, 0, 10), _square(20, 20, 15)]
    gt = _gt(masks, categories=("a", "b", "c"), classes=[1, 2])  # no "c" in this split
    preds = [result_entry(1, c, 0.9, m) for m, c in zip(masks, [1, 2])]
    m = coco_ap(gt, preds, "segm")
    assert m["per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0), "c": None}
    assert coco_ap(gt, [], "segm")["per_class"] == {"a": 0.0, "b": 0.0, "c": None}  # nothing found: 0 where defined
    report = {"configs": {"sam": {"segm": m}, "box": {"segm": coco_ap(gt, [], "segm")}}}
    assert plot_per_class_ap(report, tmp_path / "per_class.png").stat().st_size > 0


def test_hand_computed_case():
    """Two objects; one found exactly (score .9), one missed, one false positive (score .8).

    Precision is 1 up to recall 0.5 and 0 after: COCO's 101-point AP = 51/101 at every IoU.
    """
    gt = _gt([_square(0, 0, 10), _square(20, 20, 10)])
    preds = [result_entry(1, 1, 0.9, _square(0, 0, 10)), result_entry(1, 1, 0.8, _square(0, 25, 5))]
    m = coco_ap(gt, preds, "segm")
    assert m["AP"] == pytest.approx(51 / 101) and m["AP50"] == pytest.approx(51 / 101)


def test_half_overlap_counts_at_ap50_only():
    gt = _gt([_square(0, 0, 10)])
    shifted = _square(0, 3, 10)  # IoU = 70 / 130 = 0.538
    m = coco_ap(gt, [result_entry(1, 1, 1.0, shifted)], "segm")
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(0.0)
    assert m["AP"] == pytest.approx(0.1)  # matched at 1 of the 10 thresholds (0.50)
    assert m["mean_iou"] == pytest.approx(70 / 130)


@pytest.fixture(scope="module")
def evaluated(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    report = evaluate(tiny_dataset, "gt", ["grabcut", "ellipse"], split="val", out=out, progress=False)
    return report, out


def test_numbers_equal_pycocotools_on_the_same_predictions(evaluated):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    report, out = evaluated
    gt = COCO(str(out / "ground_truth.json"))
    for name in ("grabcut", "ellipse"):
        dt = gt.loadRes(str(out / name / "predictions.json"))
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        ours = report["configs"][name]["segm"]
        for k, v in zip(("AP", "AP50", "AP75", "AP_small", "AP_medium"), ev.stats[:5]):
            assert ours[k] == pytest.approx(v, abs=1e-9) if v >= 0 else ours[k] is None


def test_agrees_with_supervision_mean_average_precision(evaluated, tiny_dataset):
    """supervision's MeanAveragePrecision(MASKS) on the same masks: within 0.01 of pycocotools."""
    from supervision.metrics import MeanAveragePrecision, MetricTarget

    report, out = evaluated
    ds = load_dataset(tiny_dataset)
    preds = json.loads((out / "grabcut" / "predictions.json").read_text())
    metric = MeanAveragePrecision(metric_target=MetricTarget.MASKS)
    from detseg.data.polygons import rle_to_mask

    for record in ds.splits["val"]:
        mine = [p for p in preds if p["image_id"] == record.image_id]
        pred = sv.Detections(
            xyxy=np.array([[p["bbox"][0], p["bbox"][1], p["bbox"][0] + p["bbox"][2], p["bbox"][1] + p["bbox"][3]]
                           for p in mine], np.float32),
            mask=np.stack([rle_to_mask(p["segmentation"]) for p in mine]),
            confidence=np.array([p["score"] for p in mine], np.float32),
            class_id=np.array([p["category_id"] - 1 for p in mine]))
        metric.update(pred, ds.detections(record))
    result = metric.compute()
    assert result.map50_95 == pytest.approx(report["configs"]["grabcut"]["segm"]["AP"], abs=0.01)
    assert result.map50 == pytest.approx(report["configs"]["grabcut"]["segm"]["AP50"], abs=0.01)


def test_outputs_written(evaluated):
    report, out = evaluated
    assert json.loads((out / "metrics.json").read_text())["configs"].keys() == {"grabcut", "ellipse"}
    assert "| grabcut |" in (out / "metrics.md").read_text()
    for png in ("pr_curves.png", "per_class_ap.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # GT boxes: box AP is perfect, and GrabCut beats the ellipse prior on these shapes
    assert report["configs"]["ellipse"]["bbox"]["AP"] == pytest.approx(1.0)
    assert report["configs"]["grabcut"]["segm"]["AP"] > report["configs"]["ellipse"]["segm"]["AP"]


def test_class_name_mismatch_is_an_error_or_mapped():
    with pytest.raises(InputError, match=r"\['bagel'\] are not in the dataset"):
        class_id_mapping({0: "cookie", 1: "bagel"}, ["croissant", "cookie"])
    mapping = class_id_mapping({0: "cookie", 1: "bagel"}, ["croissant", "cookie"], parse_class_map("bagel=croissant"))
    assert mapping == {0: 1, 1: 0}
    with pytest.raises(InputError, match="detector_name=dataset_name"):
        parse_class_map("bagel")
    # names differing only in case or spaces are the same class, as predict --image-ids matches them
    assert class_id_mapping({0: "Cookie ", 1: "croissant"}, ["croissant", "cookie"]) == {0: 1, 1: 0}
    assert class_id_mapping({0: "Bagel"}, ["Croissant"], parse_class_map("bagel=croissant")) == {0: 0}


def test_cli_evaluate_with_a_yolo_detector(tiny_dataset, tiny_weights, tmp_path, capsys):
    code = main(["evaluate", "--data", str(tiny_dataset), "--detector", str(tiny_weights), "--segmenter", "box",
                 "--out", str(tmp_path / "ev"), "--no-plots"])
    assert code == 0
    assert "| box |" in capsys.readouterr().out
    assert (tmp_path / "ev" / "box" / "predictions.json").is_file()


def test_ground_truth_with_only_a_box_is_refused_with_one_clear_error(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    first = next(a for r in ds.splits["val"] for a in r.annotations)
    first.polygons = []  # one instance of a segmentation dataset left with its box only
    total = sum(len(r.annotations) for r in ds.splits["val"])
    with pytest.raises(InputError, match=rf"1 of {total} in split 'val' have only a box"):
        evaluate(ds, segmenters=("box",), split="val", progress=False)


def test_segmenters_whose_file_names_repeat_get_their_own_folders_and_rows():
    assert folder_names(["a/sam.pt", "b/sam.pt", "box", "c/sam.pt"]) == {
        "a/sam.pt": "sam.pt", "b/sam.pt": "sam.pt_2", "box": "box", "c/sam.pt": "sam.pt_3"}
    stats = {"AP": 0.5, "AP50": 0.5, "AP75": 0.5, "AP_small": None, "AP_medium": None, "AP_large": None,
             "mean_iou": 0.5}
    report = {"configs": {n: {"segm": stats, "bbox": stats} for n in ("a/sam.pt", "b/sam.pt", "box")}}
    table = metrics_table(report)
    assert "| a/sam.pt |" in table and "| b/sam.pt |" in table and "| box |" in table


def test_a_coco_sources_category_ids_are_kept_in_what_detseg_writes(tiny_dataset, tmp_path):
    """A Roboflow COCO export numbers categories from 0 (with a "foods" super-class): predictions.json and a
    COCO conversion must use those ids, or pycocotools against the user's own file scores about 0."""
    import json

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from detseg.pipeline.cli import main
    from detseg.pipeline.evaluation.evaluate import evaluate

    coco = json.loads((tiny_dataset / "annotations" / "val.json").read_text())
    shift = {c["id"]: c["id"] + 10 for c in coco["categories"]}
    for c in coco["categories"]:
        c["id"] = shift[c["id"]]
    for a in coco["annotations"]:
        a["category_id"] = shift[a["category_id"]]
    gt_file = tmp_path / "val.json"
    gt_file.write_text(json.dumps(coco))
    report = evaluate(_with_images(gt_file, tiny_dataset / "images" / "val", tmp_path), "gt", ["box"],
                      out=tmp_path / "eval", progress=False, plots=False)
    predictions = json.loads(next((tmp_path / "eval").rglob("predictions.json")).read_text())
    assert {p["category_id"] for p in predictions} <= set(shift.values())
    gt = COCO(str(tmp_path / "ds" / "annotations" / "val.json"))
    ev = COCOeval(gt, gt.loadRes(predictions), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(report["configs"]["box"]["bbox"]["AP"]) and ev.stats[0] > 0.9
    assert main(["data", "convert", str(tmp_path / "ds" / "annotations" / "val.json"), "--to", "coco", "--out",
                 str(tmp_path / "back")]) == 0
    back = json.loads((tmp_path / "back" / "annotations" / "val.json").read_text())
    assert sorted(c["id"] for c in back["categories"]) == sorted(shift.values())


def _with_images(gt_file, images, tmp_path):
    """detseg's COCO layout (annotations/val.json + images/val/) around a JSON."""
    import shutil

    root = tmp_path / "ds"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(gt_file, root / "annotations" / "val.json")
    shutil.copytree(images, root / "images" / "val")
    return root / "annotations" / "val.json"


class _ScoredBoxes:
    """Box masks scored by a made-up quality (the 'predicted IoU' a SAM would give): 0.1, 0.2, ... per box."""

    def predict_masks(self, image, boxes):
        from detseg.segmenter import BoxSegmenter

        masks, _ = BoxSegmenter().predict_masks(image, boxes)
        return masks, np.arange(1, len(boxes) + 1) / 10


def test_with_ground_truth_boxes_masks_are_ranked_by_the_segmenters_own_score(tiny_dataset, tmp_path):
    """Every GT box has confidence 1: ranked by that, pycocotools would rank the masks by their file order."""
    evaluate(load_dataset(tiny_dataset), "gt", {"scored": _ScoredBoxes()}, out=tmp_path / "e", progress=False,
             plots=False)
    predictions = json.loads(next((tmp_path / "e").rglob("predictions.json")).read_text())
    by_image = {}
    for p in predictions:
        by_image.setdefault(p["image_id"], []).append(p["score"])
    assert by_image and all(sorted(v) == pytest.approx(np.arange(1, len(v) + 1) / 10) for v in by_image.values())


def test_an_image_of_another_size_than_the_dataset_says_is_one_clear_error(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    record = ds.splits["val"][0]
    record.width, record.height = record.height + 1, record.width  # e.g. EXIF-turned, recorded unturned
    with pytest.raises(InputError, match="but the dataset says"):
        evaluate(ds, "gt", ("box",), split="val", progress=False, plots=False)


def test_crowd_regions_are_not_prompted_with_ground_truth_boxes(tiny_dataset):
    from detseg.detectors import BoxesDetector
    from detseg.images import read_image

    ds = load_dataset(tiny_dataset)
    record = next(r for r in ds.splits["val"] if len(r.annotations) >= 2)
    n = len(record.annotations)
    record.annotations[0].iscrowd = True
    dets = BoxesDetector(dataset=ds, split="val")(read_image(record.path))
    assert len(dets) == n - 1
    np.testing.assert_allclose(dets.xyxy, [a.xyxy for a in record.annotations[1:]], atol=1e-4)


def test_masks_on_ground_truth_boxes_are_ranked_by_their_score_not_their_order(tmp_path):
    """evaluate_on_gt_boxes (benchmarks/real_photos.py): a good and a poor mask, the poor one first in the file;
    with its own scores the segmenter that knows which is which gets the AP of the good-first order."""
    from detseg.data.dataset import Annotation, Dataset, ImageRecord
    from detseg.pipeline.evaluation.segmenter_eval import evaluate_on_gt_boxes

    class Knows:
        def __init__(self, scores):
            self.scores = scores

        def predict_masks(self, image, boxes):  # the first box's mask is poor (a corner), the second exact
            masks = np.zeros((2, 40, 40), bool)
            masks[0, 0:5, 0:5] = True
            masks[1, 20:30, 20:30] = True
            return masks, np.array(self.scores)

    import cv2

    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros((40, 40, 3), np.uint8))
    anns = [Annotation(class_id=0, xyxy=np.array([0, 0, 20, 20], float), polygons=[[0, 0, 20, 0, 20, 20, 0, 20]]),
            Annotation(class_id=0, xyxy=np.array([20, 20, 30, 30], float),
                       polygons=[[20, 20, 30, 20, 30, 30, 20, 30]])]
    ds = Dataset(names=["a"], splits={"val": [ImageRecord(path=path, width=40, height=40, annotations=anns)]},
                 source=tmp_path, format="yolo")
    ranked = evaluate_on_gt_boxes(ds, Knows([0.1, 0.9]), progress=False)["AP50"]
    tied = evaluate_on_gt_boxes(ds, Knows([1.0, 1.0]), progress=False)["AP50"]
    assert ranked > tied  # tied scores rank the poor mask first, as it comes first in the file


def test_worst_masks_lists_the_lowest_ious_of_the_images_evaluated(tiny_dataset, tmp_path):
    from detseg.pipeline.evaluation.evaluate import worst_masks

    ds = load_dataset(tiny_dataset)
    evaluate(ds, "gt", ("box",), split="val", every=2, out=tmp_path / "e", progress=False, plots=False)
    predictions = json.loads(next((tmp_path / "e").rglob("predictions.json")).read_text())
    worst = worst_masks(ds, predictions, split="val", n=3, every=2)
    assert len(worst) == 3 and [w["iou"] for w in worst] == sorted(w["iou"] for w in worst)
    assert all(w["iou"] > 0 and w["truth"].shape == w["predicted"].shape == w["image"].shape[:2] for w in worst)
    # read over every image, the half evaluate skipped would come first, as if every mask there were missed
    assert worst_masks(ds, predictions, split="val", n=1)[0]["iou"] == 0.0


def test_dataset_class_names_differing_only_by_case_are_refused():
    with pytest.raises(InputError, match="differ only by case"):
        class_id_mapping({0: "cookie"}, ["Cookie", "cookie"])
