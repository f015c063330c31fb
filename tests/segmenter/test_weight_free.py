import cv2
import numpy as np
import pytest
import supervision as sv

from detseg.data.polygons import mask_iou
from detseg.segmenter import BoxSegmenter, EllipseSegmenter, GrabCutSegmenter
from tests.helpers import textured_image


def _disk_scene(h=160, w=200, center=(100, 80), radius=40, seed=0):
    """A red disk on a textured background; returns image, true mask and the disk's tight box."""
    image = textured_image(h, w, seed=seed) // 2 + 60
    truth = np.zeros((h, w), np.uint8)
    cv2.circle(truth, center, radius, 1, -1)
    image[truth.astype(bool)] = (30, 40, 210)
    box = [center[0] - radius, center[1] - radius, center[0] + radius + 1, center[1] + radius + 1]
    return image, truth.astype(bool), np.array([box], np.float32)


@pytest.mark.parametrize("segmenter", [BoxSegmenter(), EllipseSegmenter(), GrabCutSegmenter()],
                         ids=["box", "ellipse", "grabcut"])
@pytest.mark.parametrize("n", [0, 1, 5])
def test_one_mask_per_box_in_order(segmenter, n):
    image = textured_image(90, 120, seed=n)
    boxes = np.array([[5 + 10 * i, 5 + 5 * i, 40 + 10 * i, 50 + 5 * i] for i in range(n)], np.float32)
    masks, scores = segmenter.predict_masks(image, boxes.reshape(-1, 4))
    assert masks.shape == (n, 90, 120) and masks.dtype == bool and scores.shape == (n,)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes):
        ys, xs = np.nonzero(mask)
        assert len(ys) and xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1


def test_box_segmenter_fills_the_box_exactly():
    masks, scores = BoxSegmenter().predict_masks(np.zeros((20, 30, 3), np.uint8), [[2, 3, 10, 7], [0, 0, 0, 5]])
    expected = np.zeros((20, 30), bool)
    expected[3:7, 2:10] = True
    assert np.array_equal(masks[0], expected)
    assert not masks[1].any() and scores.tolist() == [1.0, 0.0]


def test_ellipse_is_inscribed():
    (mask,), _ = EllipseSegmenter().predict_masks(np.zeros((50, 50, 3), np.uint8), [[10, 10, 40, 40]])
    assert mask[25, 25] and not mask[11, 11] and mask[25, 11] and mask[11, 25]
    assert abs(mask.sum() - np.pi * 15 * 15) < 40


def test_grabcut_finds_the_object_better_than_the_ellipse_prior():
    image, truth, box = _disk_scene()
    # a loose box: the object fills only part of it, where the ellipse prior is poor
    loose = box + np.array([[-25, -10, 15, 30]], np.float32)
    (mask,), (score,) = GrabCutSegmenter().predict_masks(image, loose)
    (prior,), _ = EllipseSegmenter().predict_masks(image, loose)
    assert score > 0.8  # a red disk on grey texture: the colour models barely overlap
    assert mask_iou(mask, truth) > 0.9
    assert mask_iou(mask, truth) > mask_iou(prior, truth) + 0.1


def test_grabcut_falls_back_to_the_ellipse_when_it_collapses():
    flat = np.full((80, 80, 3), 128, np.uint8)  # nothing to separate: GrabCut cannot find an object
    (mask,), (score,) = GrabCutSegmenter().predict_masks(flat, [[20, 20, 60, 60]])
    (ellipse,), _ = EllipseSegmenter().predict_masks(flat, [[20, 20, 60, 60]])
    assert score == 0.0 and np.array_equal(mask, ellipse)


def test_grabcut_is_deterministic():
    image, _, box = _disk_scene(seed=3)
    a, _ = GrabCutSegmenter().predict_masks(image, box + 5)
    b, _ = GrabCutSegmenter().predict_masks(image, box + 5)
    assert np.array_equal(a, b)


def test_call_keeps_rows_and_adds_mask_scores():
    image, _, box = _disk_scene()
    dets = sv.Detections(xyxy=np.concatenate([box, box + 3]), class_id=np.array([1, 2]), confidence=np.array([.9, .8]))
    out = GrabCutSegmenter()(image, dets)
    assert out.mask.shape == (2, *image.shape[:2])
    np.testing.assert_array_equal(out.class_id, [1, 2])
    assert set(out.data) >= {"mask_score"}


def test_grabcut_that_keeps_only_the_forced_core_is_a_collapse(monkeypatch):
    import detseg.segmenter.grabcut as grabcut_module

    def only_the_core(img, mask, rect, bgd, fgd, iterations, mode):  # GrabCut that finds nothing
        mask[mask != cv2.GC_FGD] = cv2.GC_BGD

    monkeypatch.setattr(grabcut_module.cv2, "grabCut", only_the_core)
    image, _, box = _disk_scene()
    # a core of 0.7 passes the fill and prior-IoU checks on its own: only the growth check catches it
    (mask,), (score,) = GrabCutSegmenter(core=0.7, max_hug=1.0).predict_masks(image, box)  # no retry
    (ellipse,), _ = EllipseSegmenter().predict_masks(image, box)
    assert score == 0.0 and np.array_equal(mask, ellipse)
    (mask,), _ = GrabCutSegmenter(core=0.7, max_hug=1.0, min_grow=0).predict_masks(image, box)
    assert not np.array_equal(mask, ellipse)


def test_grabcut_scores_a_camouflaged_object_below_a_clear_one():
    image, truth, box = _disk_scene()
    camouflaged = textured_image(160, 200, seed=0) // 2 + 60  # _disk_scene's background, without the red disk
    camouflaged[truth] = camouflaged[truth] + 6  # the disk: the same texture, a little lighter
    (_, clear_score), (_, faint_score) = (GrabCutSegmenter().predict_masks(img, np.concatenate([box, box]))[1]
                                         for img in (image, camouflaged))
    assert 0 <= faint_score < clear_score - 0.3 <= 1


def test_gmm_likelihood_matches_scipy_for_opencv_model_layout():
    from scipy.stats import multivariate_normal

    from detseg.segmenter.grabcut import colour_separation, gmm_likelihood

    rng = np.random.default_rng(0)
    means = rng.uniform(0, 255, (5, 3))
    covs = np.stack([np.diag(rng.uniform(20, 400, 3)) for _ in range(5)])
    weights = np.array([0.4, 0.3, 0.2, 0.1, 0.0])  # an unused component, as GrabCut leaves them
    model = np.concatenate([weights, means.ravel(), covs.ravel()])[None]
    pixels = rng.uniform(0, 255, (50, 3))
    expected = sum(w * multivariate_normal(m, c).pdf(pixels) for w, m, c in zip(weights, means, covs))
    np.testing.assert_allclose(gmm_likelihood(pixels, model), expected, rtol=1e-9)
    image = rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)
    assert colour_separation(image, np.zeros((8, 8), bool), model, model) == 0.0  # nothing to separate
    half = np.zeros((8, 8), bool)
    half[:4] = True
    assert colour_separation(image, half, model, model) == 0.0  # one model for both: p_fg = 0.5 everywhere
