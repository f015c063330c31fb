"""A trained YOLO-seg model (e.g. a student distilled from ``--save-dataset`` labels) as detector and segmenter.

One forward pass gives boxes and masks. :class:`YoloSegModel` returns both as ``sv.Detections``, and
its :meth:`~YoloSegModel.predict_masks` hands back the masks of the boxes it just returned, so the
same object plugs into :func:`detseg.pipeline.evaluate.evaluate` as detector *and* segmenter:

Example:
    >>> from detseg.pipeline.evaluate import evaluate                                     # doctest: +SKIP
    >>> student = YoloSegModel("runs/student/weights/best.pt", conf=0.05).load()           # doctest: +SKIP
    >>> evaluate("datasets/held/data.yaml", student, {"student": student}, split="test")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from detseg.detectors.yolo import YoloDetector, empty_detections
from detseg.errors import InputError, WeightsError


class YoloSegModel(YoloDetector):
    """An ultralytics ``-seg`` model: ``__call__(image)`` gives boxes, classes and masks in one pass.

    Arguments are :class:`detseg.detectors.YoloDetector`'s, and ``retina_masks``: masks made at the
    image's own resolution (ultralytics' ``retina_masks``: prototypes upsampled before cropping and
    thresholding) rather than at the input size and then resized. Off by default: on a distilled
    student (``benchmarks/distill.py``) it gave mask AP 0.609 vs 0.602 on its own validation labels
    and cost ~5 ms of a 22 ms image on 2 CPU cores. ``mask`` is ``(N, H, W)`` bool at the image's
    size; ``data["mask_score"]`` is the box confidence (YOLO-seg predicts no mask quality).
    """

    def __init__(self, *args, retina_masks: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.retina_masks = retina_masks
        self._last: sv.Detections | None = None

    def _predict_options(self) -> dict:
        return {"retina_masks": self.retina_masks}

    def load(self) -> YoloSegModel:
        super().load()
        if self._model.task != "segment":
            raise WeightsError(f"{self.weights} is a {self._model.task} model; YoloSegModel needs a -seg model")
        return self

    def __call__(self, image):
        out = super().__call__(image)
        self._last = out[-1] if isinstance(out, list) and out else out
        return out

    @staticmethod
    def _to_detections(result) -> sv.Detections:
        if result.boxes is None or len(result.boxes) == 0:
            dets = empty_detections()
            dets.mask = np.zeros((0, *result.orig_shape), bool)
            dets.data["mask_score"] = np.zeros(0, np.float32)
            return dets
        dets = sv.Detections.from_ultralytics(result)  # masks scaled back to the original image
        dets.mask = np.asarray(dets.mask, bool)
        dets.data["mask_score"] = dets.confidence.astype(np.float32)
        return dets

    def predict_masks(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The masks this model predicted with ``boxes`` in its last call (on ``image``).

        ``boxes`` are rows of that call's ``xyxy`` (all or some, in its order, as ``evaluate`` passes them);
        each takes the first not yet taken row with that box, so identical boxes keep their own masks.

        Raises:
            InputError: a box is not one the last call returned (it cannot segment arbitrary boxes).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        last = self._last
        h, w = image.shape[:2]
        if len(boxes) == 0:
            return np.zeros((0, h, w), bool), np.zeros(0, np.float32)
        if last is None or last.mask is None or last.mask.shape[1:] != (h, w):
            raise InputError("YoloSegModel.predict_masks: call the model on this image first")
        rows, taken = [], np.zeros(len(last), bool)
        for box in boxes:
            match = np.flatnonzero(np.all(np.abs(last.xyxy - box) < 1e-3, axis=1) & ~taken)
            if not len(match):
                raise InputError(f"YoloSegModel.predict_masks: box {box.tolist()} is not one it predicted")
            rows.append(int(match[0]))
            taken[rows[-1]] = True
        return last.mask[rows], last.data["mask_score"][rows]
