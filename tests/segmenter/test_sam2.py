"""SAM 2 / SAM 2.1 through the same segmenter: random-initialised weights, parity with ultralytics."""

import numpy as np
import pytest

from detseg.errors import WeightsError
from detseg.segmenter import SamSegmenter
from detseg.segmenter.sam_loading import save_random_checkpoint
from tests.helpers import textured_image


@pytest.fixture(scope="module")
def sam2_checkpoint(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2_t.pt", "sam2_t")


def test_sam2_parity_with_ultralytics_sam2_predictor(sam2_checkpoint):
    from ultralytics.models.sam import SAM2Predictor

    image = textured_image(240, 320, 1)
    boxes = np.array([[10, 10, 100, 100], [50, 60, 320, 240]], np.float32)
    ours, scores = SamSegmenter(str(sam2_checkpoint), output="dense").predict_masks(image, boxes)
    predictor = SAM2Predictor(overrides=dict(conf=0.0, model=str(sam2_checkpoint), imgsz=1024, device="cpu",
                                             verbose=False, save=False))
    predictor.set_image(image)
    ref, _ = SAM2Predictor.inference_features(predictor, predictor.features, src_shape=(240, 320), bboxes=boxes)
    for i in range(2):
        assert (ref[i].numpy() == ours[i]).mean() >= 0.9999  # a few pixels of float rounding
    assert scores.shape == (2,)


def test_sam2_1_builds_its_extra_layers_and_loads(tmp_path):
    ckpt = save_random_checkpoint(tmp_path / "sam2.1_t.pt", "sam2.1_t")
    seg = SamSegmenter(str(ckpt), output="dense").load()
    assert hasattr(seg.model, "no_obj_embed_spatial")
    masks, _ = seg.predict_masks(textured_image(80, 100), [[5, 5, 60, 70]])
    assert masks.shape == (1, 80, 100)
    with pytest.raises(WeightsError, match="does not fit the sam2_t architecture"):
        SamSegmenter(str(ckpt), arch="sam2_t").load()  # 2.1 weights into a 2.0 model
