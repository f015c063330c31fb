"""SAM 2 video memory, streamed: box prompts on some frames, masks carried through the frames between.

Built on ultralytics' SAM 2 modules as its ``SAM2VideoPredictor`` drives them
(``SAM2Model.forward_image`` / ``_prepare_backbone_features`` / ``track_step``), but frame by frame
from a stream instead of a whole video held in an inference state, with objects that come and go:

- :meth:`Sam2VideoMemory.set_frame` encodes a frame once (the image encoder);
- :meth:`~Sam2VideoMemory.prompt` gives an object a box on the current frame: a conditioning
  frame, as ultralytics' ``add_new_prompts`` makes it (the box as SAM 2's two corner points);
- :meth:`~Sam2VideoMemory.propagate` segments every other object from its memory (memory attention
  over its recent frames and its conditioning frames);
- :meth:`~Sam2VideoMemory.remove` forgets an object and frees its memory.

Memory stays bounded on a long video: per object, at most ``num_maskmem`` (7) recent frames
(ultralytics' ``_prune_non_cond_memory`` window) and ``max_cond_frames`` (2) conditioning frames
are kept, each a 64x64x64 fp16 memory feature (512 KiB) plus an object pointer: about 4.5 MiB per
object; the positional encoding is stored once. A frame's features are dropped when the next
frame is set.

Masks are upsampled exactly as :class:`~detseg.segmenter.sam.SamSegmenter` does (letterbox
top-left to 1024, logits 256x256, bilinear, > 0), BGR images in, boxes xyxy pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detseg.errors import InputError
from detseg.segmenter.upsample import Grid, upsample_mask

LOW_RES = 256
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
    """

    def __init__(self, segmenter, max_cond_frames: int = 2):
        self.segmenter = segmenter.load()
        if not self.segmenter.arch.startswith("sam2"):
            raise InputError(f"keyframe mode needs a SAM 2 checkpoint (e.g. sam2.1_t.pt), got {segmenter.arch}")
        self.model = self.segmenter.model
        self.model.set_binarize(True)  # as SAM2VideoPredictor: binarised masks go to the memory encoder
        self.max_cond_frames = max_cond_frames
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
        self._frame = {"idx": int(frame_idx), "feats": feats, "pos": pos, "sizes": sizes, "shape": (h, w),
                       "scale": min(1024 / h, 1024 / w), "grid": Grid.build((h, w))}
        for obj in self.objects.values():
            obj.last = None

    def _step(self, obj: _Object, point_inputs) -> None:
        import torch

        f = self._frame
        cond = point_inputs is not None
        with torch.inference_mode():
            out = self.model.track_step(frame_idx=f["idx"], is_init_cond_frame=cond, current_vision_feats=f["feats"],
                                        current_vision_pos_embeds=f["pos"], feat_sizes=f["sizes"],
                                        point_inputs=point_inputs, mask_inputs=None, output_dict=obj.output_dict,
                                        num_frames=f["idx"] + 1, track_in_reverse=False, run_mem_encoder=True)
        if self._pos_enc is None:  # the same for every frame and object: stored once
            self._pos_enc = out["maskmem_pos_enc"]
        kept = {k: out[k] for k in _KEEP}
        kept["maskmem_features"] = kept["maskmem_features"].to(torch.float16)  # as SAM2VideoPredictor stores it
        kept["maskmem_pos_enc"] = self._pos_enc
        key = "cond_frame_outputs" if cond else "non_cond_frame_outputs"
        obj.output_dict[key][f["idx"]] = kept
        obj.last = {"logits": out["pred_masks"][0, 0].float().cpu().numpy(),
                    "score": float(out["object_score_logits"].reshape(-1)[0])}
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
        b = np.asarray(box, np.float32).reshape(2, 2) * self._frame["scale"]
        points = {"point_coords": torch.as_tensor(b[None], device=self.segmenter._device),
                  "point_labels": torch.tensor([[2, 3]], dtype=torch.int32, device=self.segmenter._device)}
        obj = self.objects.setdefault(int(obj_id), _Object())
        obj.output_dict["non_cond_frame_outputs"].pop(self._frame["idx"], None)
        self._step(obj, points)

    def propagate(self) -> None:
        """Segment every object not prompted on the current frame from its memory."""
        for obj in self.objects.values():
            if obj.last is None:
                self._step(obj, None)

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

