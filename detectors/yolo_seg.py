"""A trained YOLO-seg model (e.g. a student distilled from ``--save-dataset`` labels) as detector and segmenter.

One forward pass gives boxes and masks. :class:`YoloSegModel` returns both as ``sv.Detections``, and
its :meth:`~YoloSegModel.predict_masks` hands back the masks of the boxes it just returned, so the
same object plugs into :func:`detseg.pipeline.evaluation.evaluate.evaluate` as detector *and* segmenter:

Example:
    >>> from detseg.pipeline.evaluation.evaluate import evaluate                                     # doctest: +SKIP
    >>> student = YoloSegModel("runs/student/weights/best.pt", conf=0.05).load()           # doctest: +SKIP
    >>> evaluate("datasets/held/data.yaml", student, {"student": student}, split="test")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math

import numpy as np
import supervision as sv

from detseg.detectors.yolo import YoloDetector, empty_detections
from detseg.errors import InputError, WeightsError
from detseg.keys import MASK_SCORE

MASK_MODES = ("box", "ultralytics", "retina")


def _axis_weights(n_pixels: int, scale: float, offset: float, extent: float, size: int, step: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear weights sampling a stride-4 prototype axis of ``size`` cells at the centres of the
    image's ``n_pixels`` pixels (image -> network input: ``x * scale + offset``; the image spans
    ``extent`` input pixels from ``offset``). As ``F.interpolate`` (align_corners=False) on the
    letterbox's content, cropped as ultralytics crops it (on whole pixels of the prototypes upsampled
    ``step`` = 1, 2 or 4 times): samples beyond the content clamp to the centre of its first / last
    such pixel.

    Returns:
        ``(weights (n_pixels, size) float32, lo (n_pixels,), hi (n_pixels,))``: pixel ``i`` reads cells
        ``lo[i]`` and ``hi[i]`` (both non-decreasing in ``i``); every other weight of its row is 0.
    """
    src = ((np.arange(n_pixels) + 0.5) * scale + offset) / 4.0 - 0.5
    half = 0.5 / step - 0.5
    src = np.clip(src, max(offset / 4.0 + half, 0.0), min((offset + extent) / 4.0 - half - 1.0, size - 1.0))
    lo = np.minimum(np.floor(src).astype(np.int64), size - 1)
    hi = np.minimum(lo + 1, size - 1)
    frac = (src - lo).astype(np.float32)
    weights = np.zeros((n_pixels, size), np.float32)
    rows = np.arange(n_pixels)
    weights[rows, lo] = 1.0 - frac
    weights[rows, hi] += frac  # one (row, cell) pair per row: no repeated index within either step
    return weights, lo, hi


def box_masks(protos: np.ndarray, coefficients: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, int],
              input_shape: tuple[int, int]) -> np.ndarray:
    """YOLO-seg instance masks at the image's own resolution, computed only inside each box.

    Same model output as ultralytics' ``retina_masks`` (``process_mask_native``: prototypes combined
    by each detection's coefficients, bilinearly resampled to the original image through the
    letterbox, thresholded at logit 0, cropped to the box), but each mask's logits are made for its
    box's pixels only (one bilinear resampling, separable: two small matrix products) instead of
    upsampling every mask to the whole frame: the cost follows the boxes' area, not N x H x W.

    Args:
        protos: ``(C, mh, mw)`` float prototypes of one image (stride 4 of the network input).
        coefficients: ``(N, C)`` mask coefficients.
        boxes: ``(N, 4)`` xyxy boxes in original-image pixels; a mask keeps pixel columns ``c`` with
            ``x0 <= c < x1`` (and rows likewise), as ultralytics' ``crop_mask``.
        image_shape: ``(H, W)`` of the original image.
        input_shape: ``(h, w)`` of the letterboxed network input (ultralytics' ``LetterBox``, centred).

    Returns:
        ``(N, H, W)`` bool masks.
    """
    c, mh, mw = protos.shape
    h, w = image_shape
    gain = min(input_shape[0] / h, input_shape[1] / w)
    content_w, content_h = max(round(w * gain), 1), max(round(h * gain), 1)  # LetterBox's resized size
    left, top = round((input_shape[1] - content_w) / 2 - 0.1), round((input_shape[0] - content_h) / 2 - 0.1)
    pad = (4 * mh - content_h) | (4 * mw - content_w)
    step = 4 // math.gcd(4, pad | pad // 2)  # ultralytics' process_mask_native: crops on whole pixels at this step
    masks = np.zeros((len(boxes), h, w), bool)
    if not len(boxes):
        return masks
    # the weights of every image row and column, once per image; each box takes its band of them
    wy_all, ly, hy = _axis_weights(h, content_h / h, top, content_h, mh, step)
    wx_all, lx, hx = _axis_weights(w, content_w / w, left, content_w, mw, step)
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64)):
        c0, c1 = max(int(np.ceil(x0)), 0), min(int(np.ceil(x1)), w)
        r0, r1 = max(int(np.ceil(y0)), 0), min(int(np.ceil(y1)), h)
        if c1 <= c0 or r1 <= r0:
            continue
        fy, ty = int(ly[r0]), int(hy[r1 - 1]) + 1  # the prototype rows / columns the box reads
        fx, tx = int(lx[c0]), int(hx[c1 - 1]) + 1
        wy, wx = wy_all[r0:r1, fy:ty], wx_all[c0:c1, fx:tx]
        logits = coefficients[k] @ protos[:, fy:ty, fx:tx].reshape(c, -1)
        masks[k, r0:r1, c0:c1] = (wy @ logits.reshape(ty - fy, tx - fx) @ wx.T) > 0
    return masks


@functools.cache  # one class: ultralytics rebuilds its predictor whenever it is handed another class
def _box_mask_predictor():
    """ultralytics' SegmentationPredictor minus its mask computation: results carry the boxes (scaled to the
    image), the mask coefficients and the prototypes, for :func:`box_masks` (built lazily: no ultralytics
    import at detseg's import)."""
    from ultralytics.engine.results import Results
    from ultralytics.models.yolo.segment import SegmentationPredictor
    from ultralytics.utils import ops

    class BoxMaskPredictor(SegmentationPredictor):
        def construct_result(self, pred, img, orig_img, img_path, proto):
            pred[:, :4] = ops.scale_boxes(img.shape[2:], pred[:, :4], orig_img.shape)
            result = Results(orig_img, path=img_path, names=self.model.names, boxes=pred[:, :6])
            result.mask_inputs = (proto.float().cpu().numpy(), pred[:, 6:].float().cpu().numpy(), tuple(img.shape[2:]))
            return result

    return BoxMaskPredictor


class YoloSegModel(YoloDetector):
    """An ultralytics ``-seg`` model: ``__call__(image)`` gives boxes, classes and masks in one pass.

    Arguments are :class:`detseg.detectors.YoloDetector`'s, and ``mask_mode``, how masks are made
    from the network's prototypes and coefficients:

    - ``"box"`` (default): at the image's own resolution, inside each box only (:func:`box_masks`):
      ultralytics' ``retina_masks`` quality at a cost that follows the boxes' area;
    - ``"ultralytics"``: ultralytics' default (masks at the network's input size, cropped, upsampled
      to the whole frame, then resized to the image by supervision);
    - ``"retina"``: ultralytics' ``retina_masks=True`` (whole-frame upsampling at the image's size).

    ``mask`` is ``(N, H, W)`` bool at the image's size; ``data[MASK_SCORE]`` is the box confidence
    (YOLO-seg predicts no mask quality). As in ultralytics, a detection whose mask is empty is dropped.
    """

    def __init__(self, *args, mask_mode: str = "box", **kwargs):
        super().__init__(*args, **kwargs)
        if mask_mode not in MASK_MODES:
            raise InputError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        self.mask_mode = mask_mode
        self._last: sv.Detections | None = None

    def _predict_options(self) -> dict:
        if self.mask_mode == "box":
            return {"predictor": _box_mask_predictor()}
        if isinstance(getattr(self._model, "predictor", None), _box_mask_predictor()):
            # a model shared with a box-mode one (from_detector): ultralytics would reuse its box-mask predictor
            self._model.predictor = None  # the model's own predictor is built again
        return {"retina_masks": self.mask_mode == "retina"}

    @classmethod
    def from_detector(cls, detector: YoloDetector, mask_mode: str = "box") -> YoloSegModel:
        """The -seg model a :class:`YoloDetector` has loaded, with its masks kept (no second load).

        Raises:
            WeightsError: the detector's model is not a -seg model.
        """
        detector.load()
        model = cls(detector.weights, conf=detector.conf, iou=detector.iou, classes=detector.classes,
                    imgsz=detector.imgsz, device=detector.device, max_det=detector.max_det,
                    agnostic_nms=detector.agnostic_nms, class_embeddings=detector.class_embeddings,
                    mask_mode=mask_mode)
        model._model, model._class_ids = detector._model, detector._class_ids
        model._imgsz, model._device = detector._imgsz, detector._device
        return model.load()  # checks the task

    def load(self) -> YoloSegModel:
        super().load()
        if self._model.task != "segment":
            task, self._model = self._model.task, None  # nothing half-built: the next load raises again
            raise WeightsError(f"{self.weights} is a {task} model; YoloSegModel needs a -seg model")
        return self

    def __call__(self, image):
        out = super().__call__(image)
        self._last = out[-1] if isinstance(out, list) and out else out
        return out

    @staticmethod
    def _to_detections(result) -> sv.Detections:
        if getattr(result, "mask_inputs", None) is not None and result.boxes is not None and len(result.boxes):
            protos, coefficients, input_shape = result.mask_inputs
            dets = sv.Detections.from_ultralytics(result)  # boxes in image pixels; no masks yet
            dets.mask = box_masks(protos, coefficients, dets.xyxy, result.orig_shape, input_shape)
            nonempty = dets.mask.any(axis=(1, 2))
            if not nonempty.all():  # as ultralytics: no empty masks
                dets = dets[nonempty]
            dets.data[MASK_SCORE] = dets.confidence.astype(np.float32)
            return dets
        if result.boxes is None or len(result.boxes) == 0:
            dets = empty_detections()
            dets.mask = np.zeros((0, *result.orig_shape), bool)
            dets.data[MASK_SCORE] = np.zeros(0, np.float32)
            return dets
        dets = sv.Detections.from_ultralytics(result)  # masks scaled back to the original image
        dets.mask = np.asarray(dets.mask, bool)
        dets.data[MASK_SCORE] = dets.confidence.astype(np.float32)
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
        return last.mask[rows], last.data[MASK_SCORE][rows]


class DetectorMasks:
    """The segmenter step for a -seg detector: the masks it made with its boxes, not a second model's.

    ``__call__(image, detections)`` returns the detections with the masks the detector
    (:class:`YoloSegModel`) attached; box steps between keep them aligned, as ``sv.Detections``
    indexes masks with boxes. :meth:`predict_masks` is the model's: the masks of boxes from its last call.

    Example:
        >>> from detseg.pipeline import Pipeline                                         # doctest: +SKIP
        >>> student = YoloSegModel("runs/student/weights/best.pt").load()                # doctest: +SKIP
        >>> dets = Pipeline(student, DetectorMasks(student))(image_bgr)                  # doctest: +SKIP
    """

    def __init__(self, model: YoloSegModel):
        self.model = model

    def __call__(self, image: np.ndarray, detections: sv.Detections) -> sv.Detections:
        if detections.mask is None or detections.mask.shape[1:] != image.shape[:2]:
            shape = None if detections.mask is None else detections.mask.shape
            raise InputError(f"DetectorMasks: the detections carry no masks of this {image.shape[:2]} image (mask "
                             f"{shape}); the detector must be a -seg model (YoloSegModel)")
        if MASK_SCORE not in detections.data:
            detections.data[MASK_SCORE] = np.ones(len(detections), np.float32) if detections.confidence is None \
                else detections.confidence.astype(np.float32)
        return detections

    def predict_masks(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict_masks(image, boxes)
