"""detseg.data.coco_format helpers checked against pycocotools."""
def test_rle_string_counts_reads_what_pycocotools_writes():
    import numpy as np
    from pycocotools import mask as mask_utils

    from detseg.data.coco_format import rle_string_counts

    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = np.asfortranarray((rng.random((h, w)) < rng.random()).astype(np.uint8))
        if trial % 5 == 0:
            mask[:] = trial % 2  # all background / all foreground
        encoded = mask_utils.encode(mask)
        runs = rle_string_counts(encoded["counts"].decode())
        assert sum(runs) == h * w and min(runs) >= 0
        assert mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"] == encoded["counts"]
    assert rle_string_counts("Xl4:") == [5000, 10]  # runs past a 64 x 64 image: a checker refuses it
    assert rle_string_counts("X") is None and rle_string_counts("0~") is None  # cut off; not the alphabet
