"""Model configs ultralytics does not ship: a YOLOv5u with a mask head (``yolov5n-seg.yaml``, any scale).

ultralytics builds YOLOv5u detectors (``yolov5n.yaml``: YOLOv5's backbone and neck, YOLOv8's anchor-free
head) but has no segmentation variant. :func:`resolve_model_config` makes one from ultralytics' own
``yolov5.yaml``, with the last layer ``Segment`` (the box head of ``Detect`` plus YOLOv8-seg's prototype
and mask-coefficient branches, ``[nc, 32, 256]`` as in ``yolov8-seg.yaml``) in place of ``Detect``. So
a YOLOv5u detector's weights (e.g. detseg's shipped ``food-yolov5nu.pt``) fit it tensor for tensor, all
but the two mask branches, which start fresh: a segmentation student can start from the detector that
labelled its data (``detseg train --task segment --model yolov5n-seg.yaml --init food-yolov5nu.pt``).

The config is derived when it is asked for, never copied, so it follows the installed ultralytics.
"""

from __future__ import annotations

import re
from pathlib import Path

_YOLOV5_SEG = re.compile(r"^yolov5([nslmx])-seg\.ya?ml$")
SEGMENT_ARGS = ["nc", 32, 256]  # yolov8-seg.yaml's: classes, mask prototypes, prototype channels


def is_derived(model) -> bool:
    """True for a bare ``yolov5{n,s,m,l,x}-seg.yaml`` name that is not a file here (detseg derives it)."""
    name = str(model)
    return bool(_YOLOV5_SEG.match(name)) and not Path(name).exists()


def resolve_model_config(model, out_dir: str | Path):
    """``model`` unchanged, or for ``yolov5n-seg.yaml`` (any scale) the derived config written into ``out_dir``.

    Returns:
        the model argument to give ultralytics: the same object, or the path (str) of the written ``.yaml``.
    """
    if not is_derived(model):
        return model
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    from detseg.atomic import atomic_write_text

    cfg = yaml_model_load("yolov5.yaml")
    cfg = {k: v for k, v in cfg.items() if k not in ("scale", "yaml_file", "ch")}
    head = [list(layer) for layer in cfg["head"]]
    if head[-1][2] != "Detect":  # ultralytics changed yolov5.yaml: say so rather than build something else
        raise RuntimeError(f"ultralytics' yolov5.yaml no longer ends in Detect ({head[-1]})")
    head[-1] = [head[-1][0], head[-1][1], "Segment", list(SEGMENT_ARGS)]
    cfg["head"] = head
    path = Path(out_dir) / str(model)  # the scale letter in the name picks the row of `scales`, as ultralytics does
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "# ultralytics' yolov5.yaml with a Segment head (detseg.detectors.model_configs)\n"
                      + yaml.safe_dump(cfg, sort_keys=False))
    return str(path)
