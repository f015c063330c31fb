"""Boxes supplied by the caller or read from a dataset: the "oracle" detector.

Used to evaluate a segmenter alone (prompt it with ground-truth boxes), or to run the
pipeline on boxes that come from elsewhere.

Example:
    >>> import numpy as np
    >>> from detseg.detectors import BoxesDetector
    >>> det = BoxesDetector([[10, 10, 50, 60]], class_ids=[1], class_names={0: "croissant", 1: "cookie"})
    >>> dets = det(np.zeros((100, 100, 3), np.uint8))
    >>> dets.xyxy.tolist(), dets.data["class_name"].tolist()
    ([[10.0, 10.0, 50.0, 60.0]], ['cookie'])
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from detseg.detectors.yolo import empty_detections
from detseg.errors import InputError
from detseg.keys import CLASS_NAME


class BoxesDetector:
    """Return fixed boxes, or the ground-truth boxes of whichever dataset image it is shown.

    Args:
        boxes: ``(N, 4)`` xyxy pixels returned for every image (ignored with ``dataset``).
        class_ids: ``(N,)`` class ids (default 0).
        class_names: ``{id: name}``.
        dataset: a :class:`data.dataset.Dataset`; images are recognised by their pixels.
        split: the dataset split to draw from (default: all).
    """

    def __init__(self, boxes=None, class_ids=None, class_names=None, dataset=None, split=None):
        self.boxes = boxes
        self.class_ids = class_ids
        self._class_names = class_names
        self.dataset = dataset
        self.split = split
        self._index = None

    @property
    def class_names(self) -> dict[int, str]:
        """``{class_id: name}``: the dataset's classes, or those given."""
        if self.dataset is not None:
            return dict(enumerate(self.dataset.names))
        return dict(self._class_names or {})

    def _build_index(self) -> dict:
        from detseg.images import image_key, read_image

        splits = [self.split] if self.split else list(self.dataset.splits)
        index = {}
        for split in splits:
            for record in self.dataset.splits[split]:
                index[image_key(read_image(record.path))] = record
        return index

    def detections_for(self, xyxy, class_ids) -> sv.Detections:
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        if len(xyxy) == 0:
            return empty_detections()
        class_ids = np.zeros(len(xyxy), int) if class_ids is None else np.asarray(class_ids, int).reshape(-1)
        if len(class_ids) != len(xyxy):
            raise InputError(f"class_ids has {len(class_ids)} entries for {len(xyxy)} boxes")
        names = self.class_names
        return sv.Detections(xyxy=xyxy, confidence=np.ones(len(xyxy), np.float32), class_id=class_ids,
                             data={CLASS_NAME: np.array([names.get(int(c), str(c)) for c in class_ids])})

    def __call__(self, image: np.ndarray) -> sv.Detections:
        """The boxes for ``image`` (uint8 BGR). With a dataset, an unknown image raises InputError."""
        if self.dataset is None:
            return self.detections_for(self.boxes if self.boxes is not None else [], self.class_ids)
        from detseg.images import image_key

        if self._index is None:
            self._index = self._build_index()
        record = self._index.get(image_key(image))
        if record is None:
            raise InputError("this image is not in the dataset given to BoxesDetector (pixels differ)")
        # a crowd region (COCO iscrowd) is many instances, not one: no prompt for it (evaluation ignores it)
        instances = [a for a in record.annotations if not a.iscrowd]
        return self.detections_for([a.xyxy for a in instances], [a.class_id for a in instances])
