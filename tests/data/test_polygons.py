"""Polygon tracing options used for predicted (possibly fragmented) masks."""

import numpy as np
import pytest

from detseg.data.polygons import instance_polygons, mask_iou, merge_polygons, polygons_to_mask


def _swiss_cheese(holes_per_side: int) -> np.ndarray:
    mask = np.zeros((200, 220), bool)
    mask[10:190, 10:210] = True
    step = 160 // max(holes_per_side, 1)
    for r in range(holes_per_side):
        for c in range(holes_per_side):
            y, x = 20 + r * step, 25 + c * step
            mask[y:y + step // 2, x:x + step // 2] = False
    return mask


@pytest.mark.parametrize("holes_per_side", [0, 1, 12])
def test_spliced_holes_stay_holes(holes_per_side):
    mask = _swiss_cheese(holes_per_side)
    spliced = instance_polygons(mask, splice_holes=True)
    sequential = instance_polygons(mask)
    assert len(spliced) == len(sequential) == 1
    drawn = polygons_to_mask([merge_polygons(spliced)], *mask.shape)
    assert mask_iou(drawn, mask) >= 0.97
    assert mask_iou(drawn, polygons_to_mask(sequential, *mask.shape)) >= 0.97
    if holes_per_side:
        assert not drawn[22, 27], "a hole's pixel must stay empty"


def test_max_parts_keeps_the_largest_parts_and_min_area_drops_specks():
    mask = np.zeros((100, 100), bool)
    mask[5:45, 5:45] = True  # 1600 px
    mask[60:90, 60:90] = True  # 900 px
    mask[5:15, 70:80] = True  # 100 px
    mask[95:97, 2:4] = True  # a 4-px speck
    assert len(instance_polygons(mask)) == 4
    assert len(instance_polygons(mask, min_area=5)) == 3
    largest_two = instance_polygons(mask, max_parts=2)
    assert len(largest_two) == 2
    drawn = polygons_to_mask(largest_two, 100, 100)
    assert drawn[20, 20] and drawn[75, 75] and not drawn[10, 75]


def _fragmented(seed: int, shape=(150, 200)) -> np.ndarray:
    """Thresholded smooth noise plus salt and pepper: parts, holes, islands in holes, specks."""
    import cv2

    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.random((int(rng.integers(4, 30)), int(rng.integers(4, 30)))).astype(np.float32),
                       shape[::-1], interpolation=cv2.INTER_CUBIC)
    return (field > rng.uniform(0.3, 0.7)) ^ (rng.random(shape) < rng.uniform(0.0, 0.1))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("min_area", [4.0, 30.0])
def test_erasing_specks_first_traces_exactly_the_same_polygons(seed, min_area, monkeypatch):
    import detseg.data.polygons as polygons

    mask = _fragmented(seed)
    fast = instance_polygons(mask, min_area=min_area, max_parts=20, splice_holes=True)
    monkeypatch.setattr(polygons, "_drop_specks", lambda m, area: m)  # trace everything, filter after
    slow = instance_polygons(mask, min_area=min_area, max_parts=20, splice_holes=True)
    assert len(fast) == len(slow) > 0
    assert all(np.array_equal(a, b) for a, b in zip(fast, slow))


def test_a_mask_of_specks_only_gives_no_polygon():
    mask = np.zeros((40, 40), bool)
    mask[5, 5] = mask[20, 30] = mask[30:32, 10:12] = True
    assert instance_polygons(mask, min_area=9) == []
