"""Helpers shared by tests: small synthetic images, fake detectors and segmenters."""

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str):
    """A script of the repository that is not part of the package (benchmarks/, detectors/weights/), as a module."""
    import importlib.util

    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def textured_image(h, w, seed=0):
    """A photo-like test image: smooth colour field plus noise, BGR uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


class FakeDetector:
    """Boxes at fixed fractions of the image, classes cycling over three names; counts calls."""

    names = {0: "croissant", 1: "cookie", 2: "cupcake"}

    def __init__(self, fractions=((0.1, 0.1, 0.5, 0.6), (0.4, 0.3, 0.9, 0.9)), confidence=(0.9, 0.6)):
        self.fractions = np.asarray(fractions, np.float32).reshape(-1, 4)
        self.confidence = np.asarray(confidence, np.float32)[: len(self.fractions)]
        self.calls = 0

    @property
    def class_names(self):
        return dict(self.names)

    def __call__(self, image):
        import supervision as sv

        self.calls += 1
        h, w = image.shape[:2]
        xyxy = self.fractions * np.array([w, h, w, h], np.float32)
        class_id = np.arange(len(xyxy)) % 3
        return sv.Detections(xyxy=xyxy, confidence=self.confidence.copy(), class_id=class_id,
                             data={"class_name": np.array([self.names[c] for c in class_id])})


class CountingSegmenter:
    """Wraps a segmenter and counts how often it runs."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def predict_masks(self, image, boxes):
        return self.inner.predict_masks(image, boxes)

    def __call__(self, image, detections):
        self.calls += 1
        return self.inner(image, detections)


def carry_boxes(memory, frames, boxes) -> list:
    """Prompt ``boxes`` on the first of ``frames`` (ids 0, 1, ...) and carry them through the rest with
    a :class:`~detseg.segmenter.sam2_video.Sam2VideoMemory`: each frame's ``(N, H, W)`` masks."""
    carried = []
    for index, frame in enumerate(frames):
        memory.set_frame(frame, index)
        if index == 0:
            for obj_id, box in enumerate(boxes):
                memory.prompt(obj_id, box)
        else:
            memory.propagate()
        ids, masks, _ = memory.masks()
        assert ids == list(range(len(boxes)))
        carried.append(masks)
    return carried


def random_yolov5n_state_dict(nc: int, seed: int) -> dict:
    """A ``yolov5n.yaml`` detector's state dict for ``nc`` classes, random weights made distinct by ``seed``."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolov5n.yaml", nc=nc, verbose=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.state_dict()
