"""What `detseg predict` writes: COCO category ids, annotated pictures."""

import json

import numpy as np
import pytest
import supervision as sv

from detseg.pipeline.outputs import PALETTE, Annotator, coco_categories

NAMES = {0: "croissant", 1: "cookie", 2: "cupcake"}


@pytest.mark.parametrize("dataset, expected", [
    (None, {0: 1, 1: 2, 2: 3}),
    ([{"id": 7, "name": "Cookie"}, {"id": 3, "name": "croissant"}], {0: 3, 1: 7, 2: 8}),
    ([{"id": 1, "name": "egg"}], {0: 2, 1: 3, 2: 4}),
])
def test_coco_category_ids_follow_the_dataset_by_name(dataset, expected):
    cats, mapping = coco_categories(NAMES, dataset)
    assert mapping == expected
    assert {c["id"] for c in cats} >= set(mapping.values())
    assert len({c["id"] for c in cats}) == len(cats)


def test_predict_writes_the_dataset_category_ids(tmp_path):
    import cv2

    from detseg.pipeline.cli import main
    from tests.helpers import textured_image

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.jpg"), textured_image(96, 128))
    coco = {"images": [{"id": 40, "file_name": "a.jpg"}], "categories": [{"id": 11, "name": "cookie"}]}
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    assert main(["predict", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--segmenter", "box", "-q",
                 "--conf", "0.01", "--image-ids", str(tmp_path / "gt.json")]) == 0
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    ids = {c["name"]: c["id"] for c in images["categories"]}
    assert ids["cookie"] == 11 and images["images"][0]["id"] == 40
    assert {r["category_id"] for r in results} <= set(ids.values())


def _dets(n):
    boxes = [[10, 10, 50, 40], [60, 30, 110, 80], [20, 50, 70, 90]]
    xyxy = np.array(boxes[:n], np.float32) + 100  # clear of the legend in the corner
    mask = np.zeros((n, 200, 240), bool)
    for i, (x0, y0, x1, y1) in enumerate(xyxy.astype(int)):
        mask[i, y0 + 3:y1 - 3, x0 + 3:x1 - 3] = True
    class_id = np.arange(n) % 3
    return sv.Detections(xyxy=xyxy, mask=mask, class_id=class_id, confidence=np.full(n, 0.9, np.float32),
                         data={"class_name": np.array([NAMES[c] for c in class_id])})


@pytest.mark.parametrize("n", [0, 1, 3])
def test_annotated_images_draw_outlines_and_a_legend(n):
    image = np.full((200, 240, 3), 128, np.uint8)
    out = Annotator(NAMES)(image, _dets(n) if n else sv.Detections.empty())
    if n == 0:
        assert np.array_equal(out, image)
        return
    dets = _dets(n)
    for i in range(n):  # the outline: the class colour on the mask's edge, not only a tint inside it
        colour = np.array(PALETTE.by_idx(int(dets.class_id[i])).as_bgr())
        import cv2

        inner = cv2.erode(dets.mask[i].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        rim = out[dets.mask[i] & ~inner].astype(int)  # the mask's own edge pixels
        assert (np.abs(rim - colour).max(axis=1) < 60).mean() > 0.5  # mostly the class colour (labels cover some)
    corner = out[2:12, 2:12].reshape(-1, 3)
    assert (corner.astype(int) != 128).any()  # the legend panel sits in the top-left corner
    assert not np.array_equal(out, image)


def test_classes_get_colours_that_are_told_apart():
    colours = [np.array(PALETTE.by_idx(i).as_rgb(), float) for i in range(3)]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(colours) for b in colours[i + 1:]) > 100


def test_a_tracked_video_traces_tracks_only_never_the_untracked_rows():
    from detseg.pipeline.outputs import Annotator

    annotate = Annotator({0: "cookie"}, by_track=True)
    image = np.zeros((100, 200, 3), np.uint8)
    for x, track in [(10, 0), (150, 0), (40, 1), (60, 1)]:  # two unrelated untracked boxes, one track
        annotate(image, sv.Detections(xyxy=np.array([[x, 10, x + 20, 30]], float), confidence=np.array([0.9]),
                                      class_id=np.array([0]), tracker_id=np.array([track]),
                                      data={"class_name": np.array(["cookie"])}))
    assert len(annotate._trace.trace.get(0)) == 0  # a line from x=20 to x=160 would join two objects
    assert len(annotate._trace.trace.get(1)) == 2


def test_overlapping_masks_in_the_instance_png_keep_the_smaller_one_on_top():
    """Rows come by falling confidence; a large, less confident mask over a small item must not erase its id."""
    import cv2
    import numpy as np
    import supervision as sv

    from detseg.pipeline.outputs import instance_png

    small, large = np.zeros((30, 40), bool), np.zeros((30, 40), bool)
    small[10:15, 10:15] = True
    large[5:25, 5:35] = True
    dets = sv.Detections(xyxy=np.array([[10, 10, 15, 15], [5, 5, 35, 25]], float), mask=np.stack([small, large]),
                         confidence=np.array([0.95, 0.36]), class_id=np.array([0, 1]))
    ids = cv2.imdecode(np.frombuffer(instance_png(dets, (30, 40)), np.uint8), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16
    assert (ids[small] == 1).all() and (ids[large & ~small] == 2).all() and (ids[~large] == 0).all()
    compact = sv.Detections(xyxy=dets.xyxy, mask=sv.CompactMask.from_dense(dets.mask, dets.xyxy, (30, 40)),
                            confidence=dets.confidence, class_id=dets.class_id)  # large images: crops, same ids
    assert np.array_equal(cv2.imdecode(np.frombuffer(instance_png(compact, (30, 40)), np.uint8),
                                       cv2.IMREAD_UNCHANGED), ids)
    empty = cv2.imdecode(np.frombuffer(instance_png(sv.Detections.empty(), (30, 40)), np.uint8), cv2.IMREAD_UNCHANGED)
    assert empty.shape == (30, 40) and not empty.any()
