"""SAM 2 video memory, streamed: box prompts on some frames, masks carried through the frames between.

Built on ultralytics' SAM 2 modules as its ``SAM2VideoPredictor`` drives them
(``SAM2Model.forward_image`` / ``_prepare_backbone_features`` / ``track_step``), but frame by frame
from a stream instead of a whole video held in an inference state, with objects that come and go:

- :meth:`Sam2VideoMemory.set_frame` encodes a frame once (the image encoder);
- :meth:`~Sam2VideoMemory.prompt` gives an object a box on the current frame: a conditioning
  frame, as ultralytics' ``add_new_prompts`` makes it (the box as SAM 2's two corner points);
- :meth:`~Sam2VideoMemory.propagate` segments every other object from its memory (memory attention
  over its recent frames and its conditioning frames), in batches of objects whose memories hold the
  same frames (as ultralytics' predictor batches its objects; each object's result is the same as
  alone, up to float rounding);
- :meth:`~Sam2VideoMemory.remove` forgets an object and frees its memory.

Memory stays bounded on a long video: per object, at most ``num_maskmem`` (7) recent frames
(ultralytics' ``_prune_non_cond_memory`` window) and ``max_cond_frames`` (2) conditioning frames
are kept, each a 64x64x64 fp16 memory feature at 1024 px (512 KiB) plus an object pointer: about 4.5 MiB per
object; the positional encoding is stored once. A frame's features are dropped when the next
frame is set.

Masks are upsampled exactly as :class:`~detseg.segmenter.sam.SamSegmenter` does (letterbox
top-left to its ``imgsz``, 1024 by default; logits ``imgsz / 4`` square, bilinear, > 0), BGR images in,
boxes xyxy pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detseg.errors import InputError
from detseg.segmenter.base import check_boxes
from detseg.segmenter.upsample import upsample_mask

_KEEP = ("maskmem_features", "obj_ptr", "object_score_logits")


@dataclass
class _Object:
    output_dict: dict = field(default_factory=lambda: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}})
    last: dict | None = None  # this frame's output: low-res logits and score


class Sam2VideoMemory:
    """Streaming SAM 2 video segmentation of prompted objects (see the module docstring).

    Args:
        segmenter: a loaded-or-loadable :class:`~detseg.segmenter.sam.SamSegmenter` of a SAM 2 / 2.1
            architecture (its model, device and preprocessing are shared).
        max_cond_frames: conditioning (prompted) frames kept per object.
        batch: most objects propagated in one call (1: one by one).
    """

    def __init__(self, segmenter, max_cond_frames: int = 2, batch: int = 16):
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        if max_cond_frames < 1:  # 0 would drop the prompt an object was just given
            raise InputError(f"max_cond_frames must be >= 1, got {max_cond_frames}")
        self.segmenter = segmenter.load()
        if not self.segmenter.arch.startswith("sam2"):
            raise InputError(f"keyframe mode needs a SAM 2 checkpoint (e.g. sam2.1_t.pt), got {segmenter.arch}")
        self.model = self.segmenter.model
        self.model.set_binarize(True)  # as SAM2VideoPredictor: binarised masks go to the memory encoder
        self.max_cond_frames = max_cond_frames
        self.batch = batch
        self.objects: dict[int, _Object] = {}
        self._frame = None
        self._pos_enc = None
        self.encoder_calls = 0

    # ------------------------------------------------------------------ frames
    def set_frame(self, image: np.ndarray, frame_idx: int) -> None:
        """Encode ``image`` ((H, W, 3) uint8 BGR), the frame at position ``frame_idx`` (increasing)."""
        import torch

        x = self.segmenter.preprocess(image)
        with torch.inference_mode():
            backbone = self.model.forward_image(x)
            _, feats, pos, sizes = self.model._prepare_backbone_features(backbone, batch=1)
        self.encoder_calls += 1
        h, w = image.shape[:2]
        scale, grid = self.segmenter.geometry((h, w))
        self._frame = {"idx": int(frame_idx), "feats": feats, "pos": pos, "sizes": sizes, "shape": (h, w),
                       "scale": scale, "grid": grid}
        for obj in self.objects.values():
            obj.last = None

    def _step(self, objs: list[_Object], point_inputs) -> None:
        """One ``track_step`` for ``objs`` at once: a prompted object alone (``point_inputs``), or a
        batch of objects whose memories hold the same frames (stacked along the batch axis)."""
        import torch

        f = self._frame
        cond = point_inputs is not None
        n = len(objs)
        if n == 1:
            feats, pos, output_dict = f["feats"], f["pos"], objs[0].output_dict
        else:  # (HW, 1, C) -> (HW, n, C) views, no copies (as _prepare_backbone_features(batch=n) gives them)
            feats = [x.expand(-1, n, -1) for x in f["feats"]]
            pos = [x.expand(-1, n, -1) for x in f["pos"]]
            output_dict = _stacked([o.output_dict for o in objs], n)
        with torch.inference_mode():
            out = self.model.track_step(frame_idx=f["idx"], is_init_cond_frame=cond, current_vision_feats=feats,
                                        current_vision_pos_embeds=pos, feat_sizes=f["sizes"],
                                        point_inputs=point_inputs, mask_inputs=None, output_dict=output_dict,
                                        num_frames=f["idx"] + 1, track_in_reverse=False, run_mem_encoder=True)
        if self._pos_enc is None:  # the same for every frame and object: stored once, batch 1 (a copy)
            self._pos_enc = [x[:1].clone() for x in out["maskmem_pos_enc"]]
        key = "cond_frame_outputs" if cond else "non_cond_frame_outputs"
        logits = out["pred_masks"][:, 0].float().cpu().numpy()
        scores = out["object_score_logits"].reshape(n, -1)[:, 0].float().cpu().numpy()
        for i, obj in enumerate(objs):
            # copies: an object's memory must not keep the whole batch's tensors alive after it ends;
            # the features are stored in fp16, as SAM2VideoPredictor stores them
            kept = {k: out[k][i:i + 1].clone() for k in _KEEP if k != "maskmem_features"}
            kept["maskmem_features"] = out["maskmem_features"][i:i + 1].to(torch.float16, copy=True)
            kept["maskmem_pos_enc"] = self._pos_enc
            obj.output_dict[key][f["idx"]] = kept
            obj.last = {"logits": logits[i], "score": float(scores[i])}
            self._prune(obj, f["idx"])

    def _prune(self, obj: _Object, frame_idx: int) -> None:
        window = self.model.num_maskmem * self.model.memory_temporal_stride_for_eval
        non_cond = obj.output_dict["non_cond_frame_outputs"]
        for t in [t for t in non_cond if t < frame_idx - window]:
            del non_cond[t]
        cond = obj.output_dict["cond_frame_outputs"]
        for t in sorted(cond)[: max(0, len(cond) - self.max_cond_frames)]:
            del cond[t]

    # ------------------------------------------------------------------ objects
    def prompt(self, obj_id: int, box) -> None:
        """Give object ``obj_id`` (new or known) the box ``xyxy`` (pixels) on the current frame."""
        import torch

        if self._frame is None:
            raise InputError("set_frame() before prompt()")
        clipped, valid = check_boxes(box, self._frame["shape"])  # as SamSegmenter: shape, NaN, inverted; clipped
        if len(clipped) != 1:
            raise InputError(f"prompt() takes one box (x1, y1, x2, y2), got {len(clipped)}")
        if not valid[0]:
            raise InputError(f"prompt() box {list(map(float, np.ravel(box)))} has no area inside the "
                             f"{self._frame['shape'][1]}x{self._frame['shape'][0]} frame")
        b = clipped[0].reshape(2, 2) * self._frame["scale"]
        points = {"point_coords": torch.as_tensor(b[None], device=self.segmenter._device),
                  "point_labels": torch.tensor([[2, 3]], dtype=torch.int32, device=self.segmenter._device)}
        obj = self.objects.setdefault(int(obj_id), _Object())
        obj.output_dict["non_cond_frame_outputs"].pop(self._frame["idx"], None)
        self._step([obj], points)

    def propagate(self) -> None:
        """Segment every object not prompted on the current frame from its memory: objects whose
        memories hold the same frames go through SAM 2 together, ``batch`` at a time."""
        groups: dict[tuple, list[_Object]] = {}
        for obj in self.objects.values():
            if obj.last is None:
                groups.setdefault(_memory_frames(obj), []).append(obj)
        for objs in groups.values():
            for start in range(0, len(objs), self.batch):
                self._step(objs[start:start + self.batch], None)

    def remove(self, obj_id: int) -> None:
        """Forget an object: its memory is freed."""
        self.objects.pop(int(obj_id), None)

    def masks(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The current frame's objects: ``(ids, masks (N, H, W) bool, object scores (N,))``; an object
        SAM 2 thinks is absent (score <= 0) has an empty mask."""
        f = self._frame
        ids = [i for i, o in self.objects.items() if o.last is not None]
        masks = np.zeros((len(ids), *f["shape"]), bool)
        scores = np.zeros(len(ids), np.float32)
        for row, i in enumerate(ids):
            last = self.objects[i].last
            scores[row] = last["score"]
            crop, corner = upsample_mask(last["logits"], f["grid"]) if last["score"] > 0 else (None, None)
            if crop is not None:
                y0, x0 = corner
                masks[row, y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        return ids, masks, scores

    def memory_bytes(self) -> int:
        """Bytes held by the objects' memories (features and pointers; the shared positional encoding once)."""
        total = 0
        for obj in self.objects.values():
            for outputs in obj.output_dict.values():
                for out in outputs.values():
                    total += sum(out[k].numel() * out[k].element_size() for k in _KEEP)
        if self._pos_enc is not None:
            total += sum(t.numel() * t.element_size() for t in self._pos_enc)
        return total


def _memory_frames(obj: _Object) -> tuple:
    """The frames an object's memory holds: objects with the same ones can share a batch."""
    return tuple(tuple(sorted(obj.output_dict[k])) for k in ("cond_frame_outputs", "non_cond_frame_outputs"))


def _stacked(output_dicts: list[dict], n: int) -> dict:
    """Objects' memories (same frames) stacked along the batch axis, as ultralytics' SAM2VideoPredictor
    holds its objects; the positional encoding is expanded (a view), as its ``_get_maskmem_pos_enc`` does.
    Rebuilt on every call (at most 9 frames of 512 KiB per object): objects come and go between frames."""
    import torch

    stacked = {}
    for key, frames in output_dicts[0].items():
        stacked[key] = {}
        for t, first in frames.items():
            outs = [d[key][t] for d in output_dicts]
            entry = {k: torch.cat([o[k] for o in outs]) for k in _KEEP}
            entry["maskmem_pos_enc"] = [x.expand(n, *x.shape[1:]) for x in first["maskmem_pos_enc"]]
            stacked[key][t] = entry
    return stacked
