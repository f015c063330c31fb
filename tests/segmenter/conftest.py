import numpy as np
import pytest


@pytest.fixture(scope="session")
def mobile_sam_checkpoint(tmp_path_factory):
    """A random-initialised MobileSAM state dict written to a temp dir (no download).

    Random weights give masks that cover large parts of the frame, which makes the
    exactness checks strict.
    """
    from segmenter.sam_loading import save_random_checkpoint

    return save_random_checkpoint(tmp_path_factory.mktemp("sam") / "mobile_sam.pt", "mobile_sam", seed=0)


@pytest.fixture(scope="session")
def sam(mobile_sam_checkpoint):
    from segmenter import SamSegmenter

    return SamSegmenter(str(mobile_sam_checkpoint), device="cpu", output="dense").load()


@pytest.fixture(scope="session")
def ultralytics_predictor(mobile_sam_checkpoint):
    """ultralytics' own SAM predictor on the same checkpoint: the reference path."""
    from ultralytics.models.sam import Predictor

    return Predictor(overrides=dict(conf=0.0, model=str(mobile_sam_checkpoint), imgsz=1024, device="cpu",
                                    verbose=False, save=False))


def textured_image(h, w, seed=0):
    """A photo-like test image: smooth colour field plus noise, BGR uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
