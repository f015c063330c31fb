"""Any ultralytics YOLO model (detect or -seg) as a Detector: image in, ``sv.Detections`` out.

Example:
    >>> from detseg.detectors import YoloDetector
    >>> det = YoloDetector("detectors/weights/food-yolov5nu.pt", conf=0.35)   # doctest: +SKIP
    >>> dets = det(image_bgr)                                               # doctest: +SKIP
    >>> dets.xyxy.shape, det.class_names                                    # doctest: +SKIP
    ((12, 4), {0: 'croissant', 1: 'cookie', 2: 'cupcake'})
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import supervision as sv

from detseg.assets import keep_torch_threads, load_error, resolve_device, resolve_weights
from detseg.errors import InputError, WeightsError
from detseg.images import to_bgr8
from detseg.keys import CLASS_NAME

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "food-yolov5nu.pt"
DEFAULT_CONF = 0.35  # chosen on the dev checks by round 3's rule (model card); ultralytics' own is 0.25


def ultralytics_device(device: str) -> str:
    """torch device names -> ultralytics' ('cuda' -> '0', 'cuda:1' -> '1')."""
    device = resolve_device(device)
    if device == "cuda":
        return "0"
    return device.removeprefix("cuda:")


def empty_detections() -> sv.Detections:
    dets = sv.Detections.empty()
    dets.data[CLASS_NAME] = np.array([], dtype=str)
    return dets


def is_open_vocabulary(model) -> bool:
    """True for ultralytics models whose classes are set by text (YOLOE, YOLO-World)."""
    from ultralytics.nn.tasks import WorldModel, YOLOEModel

    return isinstance(getattr(model, "model", None), (WorldModel, YOLOEModel))


# Ultralytics' text encoders (CLIP for YOLO-World, MobileCLIP for YOLOE) tokenize with the `clip`
# package, which is only on GitHub. Ultralytics would pip-install it at run time; detseg never lets a
# library install packages behind the user's back (its CLI sets YOLO_AUTOINSTALL=false, and this check
# runs for the Python API too), and PyPI's `openai-clip` fails to import on current setuptools.
CLIP_INSTALL = "pip install git+https://github.com/ultralytics/CLIP.git"


def require_text_tokenizer() -> None:
    """Raise a one-line :class:`WeightsError` when the ``clip`` package the text encoders need is missing."""
    try:
        import clip  # noqa: F401
    except ImportError:
        raise WeightsError(
            "naming the classes of an open-vocabulary detector needs its text encoder, which needs the "
            f"`clip` package: `{CLIP_INSTALL}` (once; the encoder's weights then download on first use); "
            "offline, the Python API takes the embeddings instead: YoloDetector(..., class_embeddings=...)"
        ) from None


def set_vocabulary(model, classes, embeddings=None) -> None:
    """Make an open-vocabulary ultralytics model detect ``classes`` (names).

    Without ``embeddings`` the names go through the model's text encoder, which needs the
    ``clip`` package (:data:`CLIP_INSTALL`) and downloads its weights on first use.

    Raises:
        InputError: ``classes`` are not names, or the embeddings do not match them.
        WeightsError: the text encoder that turns names into embeddings could not be had
            (no ``clip`` package, or its weights could not be downloaded); pass ``embeddings`` instead.
    """
    from ultralytics.nn.tasks import WorldModel

    names = [classes] if isinstance(classes, str) else [str(c) for c in classes]
    if not names or any(not n.strip() or n.isdigit() for n in names):
        raise InputError(f"an open-vocabulary detector takes class names to detect, got {classes!r}")
    if embeddings is not None and (embeddings.ndim != 3 or embeddings.shape[:2] != (1, len(names))):
        raise InputError(f"class_embeddings must have shape (1, {len(names)}, D), got {tuple(embeddings.shape)}")
    if embeddings is None and names == list(dict(model.names).values()):
        return  # the model already detects exactly these names (e.g. one fine-tuned on them): no encoder needed
    if embeddings is None:
        require_text_tokenizer()
    try:
        if isinstance(model.model, WorldModel):
            if embeddings is None:
                model.set_classes(names)
            else:  # what WorldModel.set_classes does, minus the CLIP text encoder
                model.model.txt_feats = embeddings
                model.model.model[-1].nc = len(names)
                model.model.names = dict(enumerate(names))
                model.predictor = None
        else:
            model.set_classes(names, embeddings)
    except (InputError, WeightsError):
        raise
    except AssertionError as e:
        if "Prompt-free" not in str(e):  # another assertion is not a refusal of the names: the general message
            raise WeightsError(f"could not set the classes {names} of this open-vocabulary model "
                               f"(AssertionError: {e})") from None
        raise InputError(f"this open-vocabulary model cannot take the classes {names}: {e}") from None  # YOLOE -pf
    except Exception as e:  # the text encoder's download fails in many ways offline
        raise WeightsError(
            f"could not set the classes {names} of this open-vocabulary model: its text encoder is needed "
            f"(ultralytics downloads its weights on first use, which needs the internet) ({type(e).__name__}: {e})"
        ) from None


def _check_model_format(path) -> None:
    """Refuse a file no ultralytics backend reads (``notes.txt``) before ``YOLO`` takes it: ultralytics accepts any
    name and fails at the first prediction, with a traceback (WeightsError, one line)."""
    from ultralytics.engine.exporter import export_formats

    name = str(path).rstrip("/\\")
    known = (".yaml", ".yml", ".pth", *export_formats()["Suffix"])
    if not name.lower().endswith(tuple(s.lower() for s in known)):
        raise WeightsError(f"{path} is not YOLO weights: a .pt, a .yaml to build from, or an ultralytics export "
                           "(.onnx, *_openvino_model/, .engine, ...)")


def _check_augment(model, path, exported: bool) -> None:
    """Refuse ``augment=True`` where ultralytics would silently run one scale (InputError)."""
    from ultralytics.nn.modules.head import Detect

    head = None if exported else getattr(getattr(model, "model", None), "model", [None])[-1]
    if exported or type(head) is not Detect or getattr(head, "end2end", False):
        kind = "an exported model" if exported else f"a model with a {type(head).__name__} head"
        raise InputError(f"augment (test-time augmentation) needs a PyTorch .pt detection model; {path} is {kind}, "
                         "which ultralytics runs at one scale")


class YoloDetector:
    """Boxes from an ultralytics model; masks of -seg models are dropped (a detector knows no masks).

    The constructor only stores its arguments; the model loads on first use or :meth:`load`.

    Args:
        weights: ``.pt`` path, a name ultralytics downloads when online (``yolov8n.pt``), or an
            ONNX / OpenVINO export of one (``best.onnx``, ``best_openvino_model/``, see ``detseg export``).
        conf: minimum confidence.
        iou: NMS IoU threshold.
        classes: keep only these classes, by id or name.
        imgsz: inference size; None uses the size the model was trained (or statically exported) at, 640 if
            unknown (as for a dynamic export made outside detseg, which `detseg export` never makes).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"0"``, ``"mps"``.
        max_det: maximum detections per image.
        agnostic_nms: NMS across classes (on by default), so one object never comes out as
            both "cookie" and "croissant"; False suppresses only within a class (ultralytics' default).
        class_embeddings: open-vocabulary models only (YOLOE, YOLO-World): a ``(1, len(classes), D)``
            tensor of text embeddings for ``classes``, used instead of running the model's text
            encoder (which ultralytics downloads when online).
        augment: test-time augmentation (ultralytics' ``augment=True``: the image at scales 1, 0.83
            and 0.67, the middle one flipped left-right, all boxes merged before NMS); about 3x the time.
            Detection ``.pt`` models only (ultralytics runs a -seg, end-to-end or exported model at one
            scale whatever the flag says, so :meth:`load` refuses those).

    With an open-vocabulary model (``yoloe-11s-seg.pt``, ``yolov8s-worldv2.pt``), ``classes`` is
    the vocabulary: the names to detect, e.g. ``["croissant", "cookie", "cupcake"]``.
    """

    def __init__(self, weights=DEFAULT_WEIGHTS, conf=DEFAULT_CONF, iou=0.7, classes=None, imgsz=None, device="auto",
                 max_det=300, agnostic_nms=True, class_embeddings=None, augment=False):
        self.weights = weights
        self.conf = conf
        self.iou = iou
        self.classes = classes
        self.imgsz = imgsz
        self.device = device
        self.max_det = max_det
        self.agnostic_nms = agnostic_nms
        self.class_embeddings = class_embeddings
        self.augment = augment
        self._model = None

    def load(self) -> YoloDetector:
        """Load the model now (idempotent). Raises WeightsError / InputError."""
        if self._model is not None:
            return self
        from ultralytics import YOLO

        from detseg.detectors.export import exported_format, open_export

        if exported_format(self.weights):  # an ONNX / OpenVINO export (`detseg export`)
            path, fixed = open_export(self.weights, self.imgsz)
        else:
            hint = "; to train from scratch offline use a .yaml, e.g. `detseg train --model yolov8n.yaml`"
            path = resolve_weights(self.weights, hint=hint, unreadable="{path} is not a loadable ultralytics model")
            fixed = None
            _check_model_format(path)
        from detseg.pickle_scan import restricted_loading

        try:
            with restricted_loading() if fixed is None else contextlib.nullcontext():
                model = YOLO(str(path))
                if exported_format(self.weights):  # opened lazily: a damaged export would fail at the first image
                    asked = self.imgsz or 640
                    side = list(fixed or (asked if isinstance(asked, (list, tuple)) else [asked, asked]))
                    model.predict(np.zeros((*side, 3), np.uint8), imgsz=side, verbose=False)
        except Exception as e:  # ultralytics raises many types for a bad file
            raise WeightsError(f"{path} is not a loadable ultralytics model ({load_error(e)})") from None
        if model.task not in ("detect", "segment"):
            raise WeightsError(f"{path} is a {model.task!r} model; a detector needs a detection (or -seg) model")
        if self.augment:
            _check_augment(model, path, exported=bool(exported_format(self.weights)))
        if is_open_vocabulary(model) and self.classes is not None:
            set_vocabulary(model, self.classes, self.class_embeddings)
            class_ids = None  # every class of the vocabulary
        else:
            class_ids = _resolve_classes(dict(model.names), self.classes)
        train_args = (getattr(model, "ckpt", None) or {}).get("train_args", {})  # empty for models built from .yaml
        imgsz = fixed or self.imgsz or train_args.get("imgsz") or 640  # fixed: an export's own size
        device = ultralytics_device(self.device)
        # set together, last: a load that raised (an unknown class, no such device) leaves nothing half-built,
        # so the next call raises the same clear error instead of failing on a missing attribute
        self._model, self._class_ids, self._imgsz, self._device = model, class_ids, imgsz, device
        return self

    @property
    def task(self) -> str:
        """``"detect"`` or ``"segment"`` (a -seg model: its masks are dropped here, see ``YoloSegModel``)."""
        return self.load()._model.task

    @property
    def class_names(self) -> dict[int, str]:
        """``{class_id: name}`` read from the model."""
        return dict(self.load()._model.names)

    def __call__(self, image):
        """Detect objects.

        Args:
            image: ``(H, W, 3)`` uint8 BGR (grayscale, BGRA, 16-bit are converted), or a list of
                them, run as one batch.

        Returns:
            ``sv.Detections`` with xyxy (pixels), confidence, class_id, ``data["class_name"]``
            and no mask; a list of them for a list input.
        """
        self.load()
        batch = image if isinstance(image, list) else [image]
        if not batch:
            return []
        batch = [to_bgr8(im) for im in batch]
        # on_predict_start: the first call's select_device has just set torch to cores - 1 threads; the first batch
        # runs at the caller's count like every later one (scores then match a resumed run to the last bit)
        with keep_torch_threads(self._model, "on_predict_start"):
            results = self._model.predict(batch, conf=self.conf, iou=self.iou, classes=self._class_ids,
                                          imgsz=self._imgsz, device=self._device, max_det=self.max_det,
                                          agnostic_nms=self.agnostic_nms, augment=self.augment, verbose=False,
                                          **self._predict_options())
        out = [self._to_detections(r) for r in results]
        return out if isinstance(image, list) else out[0]

    def _predict_options(self) -> dict:
        """More ``YOLO.predict`` arguments (none for a detector)."""
        return {}

    @staticmethod
    def _to_detections(result) -> sv.Detections:
        if result.boxes is None or len(result.boxes) == 0:
            return empty_detections()
        dets = sv.Detections.from_ultralytics(result)
        dets.mask = None
        return dets


def _resolve_classes(names: dict[int, str], classes) -> list[int] | None:
    """The class ids that ``classes`` (names, ids, or None for all) picks from a model's ``names``."""
    if classes is None:
        return None
    by_name = {v: k for k, v in names.items()}
    items = [classes] if isinstance(classes, (str, int)) else list(classes)
    ids = []
    for c in items:
        if isinstance(c, str) and not c.isdigit():
            if c not in by_name:
                raise InputError(f"unknown class name {c!r}; this model knows {sorted(by_name)}")
            ids.append(by_name[c])
        else:
            if int(c) not in names:
                raise InputError(f"class id {c} out of range; this model has ids 0..{len(names) - 1}")
            ids.append(int(c))
    return ids
