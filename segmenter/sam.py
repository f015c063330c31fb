"""SAM-family box-prompted segmentation: encode each image once, decode all its boxes in chunks.

Example:
    >>> import numpy as np
    >>> from detseg.segmenter import SamSegmenter
    >>> seg = SamSegmenter("mobile_sam.pt")                              # doctest: +SKIP
    >>> image = np.zeros((480, 640, 3), np.uint8)                        # BGR
    >>> masks, scores = seg.predict_masks(image, [[10, 20, 200, 240]])   # doctest: +SKIP
    >>> masks.shape, scores.shape                                        # doctest: +SKIP
    ((1, 480, 640), (1,))
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from detseg.assets import resolve_device
from detseg.errors import InputError
from detseg.segmenter.base import (
    BoxPromptSegmenter,
    assemble_masks,
    check_boxes,
    check_image,
    empty_masks,
    wants_compact,
)
from detseg.segmenter.cache import EmbeddingCache, image_key
from detseg.segmenter.upsample import Grid, upsample_mask, upsample_masks_on_device

INPUT_SIZE = 1024  # SAM's square input side, the size every SAM was trained at (the default imgsz)
MULTIMASK = ("single", "best", "all")
PRECISIONS = ("fp32", "bf16", "fp16")
DECODERS = ("auto", "reference")


@dataclass
class Embedding:
    """One image's encoder output and the geometry needed to map prompts and masks.

    Attributes:
        features: ``(1, 256, S, S)`` tensor (SAM; ``S = imgsz / 16``, 64 at 1024) or a dict with ``image_embed`` and
            ``high_res_feats`` (SAM 2).
        src_shape: ``(H, W)`` of the original image.
        scale: letterbox gain from the original image to the ``imgsz`` input.
        nbytes: memory held by the features (and ``terms``).
        terms: per-image tensors of the shared-image box decoder (SAM / MobileSAM), or None.
    """

    features: object
    src_shape: tuple[int, int]
    scale: float
    nbytes: int
    grid: Grid = field(repr=False, default=None)
    terms: object = field(repr=False, default=None)  # box_decoder.ImageTerms, SAM / MobileSAM only


def _whole(value) -> bool:
    """An integer (numpy's too), not a bool, a float or a string."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class SamSegmenter(BoxPromptSegmenter):
    """Box prompts -> masks with SAM, MobileSAM, SAM 2 or SAM 2.1 (ultralytics modules).

    The constructor only stores its arguments; the model is built on first use (or by
    :meth:`load`, which the CLI calls up front so a bad checkpoint fails fast).

    Args:
        checkpoint: local file (any name; ``arch`` says which when the name doesn't) or a
            known name (``mobile_sam.pt``, ``sam_b.pt``, ``sam2.1_t.pt``...) downloaded when online.
        arch: architecture, see :data:`segmenter.sam_loading.ARCHS`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        precision: ``"fp32"``; ``"bf16"`` autocast (CPU or CUDA); ``"fp16"`` autocast (CUDA).
        multimask: ``"single"`` (SAM's one-mask output, the default for boxes), ``"best"`` (of
            three by predicted IoU), ``"all"`` (three masks per box, box-major).
        chunk_size: boxes per decoder call; ``"auto"``: on CPU 1 with the shared-image decoder
            and 4 with the reference one (per-box tensors of 4096x256 and up: big chunks fall
            out of cache; measured by ``benchmarks/segmenter.py``), 64 on CUDA.
        cache_bytes: embedding cache size (LRU, keyed by image content); 0 disables it.
        output: ``"auto"`` (CompactMask from ~1 MP up), ``"compact"`` or ``"dense"``.
        decoder: ``"auto"``: SAM / MobileSAM boxes go through :class:`~segmenter.box_decoder.BoxPromptDecoder`,
            which does the per-image part of the mask decoder once (same logits up to float rounding,
            2-3x faster on a CPU); ``"reference"``: ultralytics' decoder module as it is. SAM 2 always
            uses its own decoder.
        imgsz: side of SAM's square input (ultralytics' ``imgsz``; a multiple of 64, >= 256). 1024, the
            size SAM was trained at, is the default; a smaller input runs the encoder faster (fewer
            tokens: SAM 2's attention cost falls with their square) and gives coarser masks, with low-res
            logits of ``imgsz / 4``. ultralytics' predictors take the same setting (``set_imgsz``).
    """

    def __init__(self, checkpoint="mobile_sam.pt", arch=None, device="auto", precision="fp32",
                 multimask="single", chunk_size="auto", cache_bytes=256 * 2**20, output="auto", decoder="auto",
                 imgsz=INPUT_SIZE):
        self.checkpoint = checkpoint
        self.arch = arch
        self.device = device
        self.precision = precision
        self.multimask = multimask
        self.chunk_size = chunk_size
        self.cache_bytes = cache_bytes
        self.output = output
        self.decoder = decoder
        self.imgsz = imgsz
        self._model = None
        self._cache = None
        self._held: dict = {}  # the last embed_batch's embeddings, whatever the cache keeps (see embed_batch)
        self.encoder_calls = 0

    # ------------------------------------------------------------------ setup
    def load(self) -> SamSegmenter:
        """Build the model now (idempotent). Raises WeightsError / InputError on bad settings."""
        if self._model is not None:
            return self
        import torch

        from detseg.segmenter.box_decoder import BoxPromptDecoder
        from detseg.segmenter.sam_loading import build_sam_model, prepare_encoder_for_inference

        if self.multimask not in MULTIMASK:
            raise InputError(f"multimask must be one of {MULTIMASK}, got {self.multimask!r}")
        if self.decoder not in DECODERS:
            raise InputError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not _whole(self.cache_bytes) or int(self.cache_bytes) < 0:
            raise InputError(f"cache_bytes must be an integer >= 0 (0: no cache), got {self.cache_bytes!r}")
        if not _whole(self.imgsz) or self.imgsz < 256 or self.imgsz % 64:
            raise InputError(f"imgsz must be a multiple of 64 and at least 256 (SAM's default: {INPUT_SIZE}), "
                             f"got {self.imgsz!r}")
        self.imgsz = int(self.imgsz)  # numpy's integers too
        self._device = torch.device(resolve_device(self.device))
        if self.precision == "fp16" and self._device.type != "cuda":
            raise InputError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
        model, self.arch = build_sam_model(self.checkpoint, self.arch)  # None -> the architecture found
        self._model = model.to(self._device).float().eval()
        if self.imgsz != INPUT_SIZE:
            self._model.set_imgsz((self.imgsz, self.imgsz))  # the prompt encoder's frame, as ultralytics' predictors
        self._channels_last = prepare_encoder_for_inference(self._model)
        self._is_sam2 = self.arch.startswith("sam2")
        self._box_decoder = None
        if self.decoder == "auto" and BoxPromptDecoder.supports(getattr(self._model, "mask_decoder", None)):
            self._box_decoder = BoxPromptDecoder(self._model.mask_decoder, self._model.prompt_encoder)
        self._mean = torch.tensor([123.675, 116.28, 103.53], device=self._device).view(-1, 1, 1)
        self._std = torch.tensor([58.395, 57.12, 57.375], device=self._device).view(-1, 1, 1)
        self._cache = EmbeddingCache(self.cache_bytes)
        # on a CPU the windowed numpy upsampler is fastest; on a GPU, copying every low-res logit map to
        # the host and upsampling there box by box was the bottleneck (benchmarks/segmenter.py --device cuda)
        self._upsample_on_device = self._device.type != "cpu"
        return self

    @property
    def model(self):
        return self.load()._model

    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self._device.type, dtype=dtype)

    def _chunk(self) -> int:
        if self.chunk_size != "auto":
            if not _whole(self.chunk_size) or int(self.chunk_size) < 1:
                raise InputError(f"chunk_size must be an integer >= 1 or 'auto', got {self.chunk_size!r}")
            return int(self.chunk_size)
        return {"cuda": 64, "mps": 16}.get(self._device.type, 1 if self._box_decoder is not None else 4)

    @property
    def low_res(self) -> int:
        """Side of the decoder's low-res mask logits: ``imgsz / 4`` (256 at SAM's 1024)."""
        return self.imgsz // 4

    def geometry(self, src_shape: tuple[int, int]) -> tuple[float, Grid]:
        """Letterbox gain from an ``(H, W)`` image to the ``imgsz`` input, and its mask upsampling grid."""
        h, w = src_shape
        return min(self.imgsz / h, self.imgsz / w), Grid.build((h, w), self.imgsz, self.low_res)

    # ------------------------------------------------------------------ encoder
    def preprocess(self, image: np.ndarray):
        """Letterbox to ``imgsz`` (top-left, pad 114) as ultralytics does, BGR->RGB, normalise. (1, 3, imgsz, imgsz)."""
        import torch
        from ultralytics.data.augment import LetterBox

        boxed = LetterBox(self.imgsz, auto=False, center=False)(image=image)
        tensor = torch.from_numpy(np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1)))[None]
        return (tensor.to(self._device) - self._mean) / self._std

    def _encode(self, image: np.ndarray) -> Embedding:
        return self._encode_batch([image])[0]

    def _encode_batch(self, images: list[np.ndarray]) -> list[Embedding]:
        """One encoder call for all ``images`` (SAM / MobileSAM); SAM 2 encodes them one by one."""
        import torch

        if self._is_sam2 and len(images) > 1:
            return [self._encode(image) for image in images]
        x = torch.cat([self.preprocess(image) for image in images])
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            if self._is_sam2:
                m = self._model
                backbone = m.forward_image(x)
                _, feats, _, _ = m._prepare_backbone_features(backbone)
                if m.directly_add_no_mem_embed:
                    feats[-1] = feats[-1] + m.no_mem_embed
                sizes = [(self.imgsz // s, self.imgsz // s) for s in (4, 8, 16)]
                maps = [f.permute(1, 2, 0).reshape(1, -1, *hw).float() for f, hw in zip(feats, sizes)]
                batch = [({"image_embed": maps[-1], "high_res_feats": maps[:-1]},
                          sum(t.numel() * t.element_size() for t in maps))]
            else:
                encoded = self._model.image_encoder(x).float()
                # a copy per image, so that evicting one cached embedding frees its memory
                own = [f.contiguous() if len(images) == 1 else f.clone(memory_format=torch.contiguous_format)
                       for f in encoded.split(1)]
                batch = [(f, f.numel() * f.element_size()) for f in own]
            terms = [self._box_decoder.image_terms(f) if self._box_decoder is not None else None for f, _ in batch]
        out = []
        for image, (features, nbytes), term in zip(images, batch, terms):
            if term is not None:
                term = term.float()
                nbytes += term.nbytes
            self.encoder_calls += 1
            h, w = image.shape[:2]
            scale, grid = self.geometry((h, w))
            out.append(Embedding(features, (h, w), scale, nbytes, grid, term))
        return out

    def embed(self, image: np.ndarray) -> Embedding:
        """The image's embedding: from the cache when the same pixels were seen, else encoded now.

        Args:
            image: ``(H, W, 3)`` uint8 BGR.
        """
        self.load()
        check_image(image)
        key = image_key(image)
        emb = self._held.get(key)
        if emb is None:
            emb = self._cache.get(key)
        if emb is None:
            emb = self._encode(image)
            self._cache.put(key, emb, emb.nbytes)
        return emb

    def embed_batch(self, images: list[np.ndarray]) -> list[Embedding]:
        """Embeddings of several images, those not cached encoded together in one encoder call.

        The batch fills the cache, and its embeddings are also held until the next batch (whatever the cache's
        size, even ``cache_bytes=0``), so a later :meth:`predict_masks` on any of these images reuses its
        embedding instead of encoding it again. Equal to embedding one by one up to float rounding (~1e-5
        relative); on a CPU a batch is no faster per image (``benchmarks/scale.py``), so the
        pipeline batches only where asked to (``batch_size``).

        Args:
            images: ``(H, W, 3)`` uint8 BGR images, any sizes (each is letterboxed to ``imgsz``).
        """
        self.load()
        for image in images:
            check_image(image)
        keys = [image_key(image) for image in images]
        found = {k: self._cache.get(k) for k in dict.fromkeys(keys)}
        todo = [k for k, emb in found.items() if emb is None]
        if todo:
            first = {k: image for k, image in zip(keys, images)}
            for k, emb in zip(todo, self._encode_batch([first[k] for k in todo])):
                found[k] = emb
                self._cache.put(k, emb, emb.nbytes)
        self._held = found
        return [found[k] for k in keys]

    def clear_cache(self) -> None:
        """Forget every cached image embedding (the next call on any image runs the encoder)."""
        if self._cache is not None:
            self._cache.clear()
        self._held = {}

    def cache_info(self) -> dict:
        """``{"hits", "misses", "encoder_calls", "bytes", "entries"}`` of the embedding cache."""
        c = self.load()._cache
        return {"hits": c.hits, "misses": c.misses, "encoder_calls": self.encoder_calls, "bytes": c.bytes,
                "entries": len(c)}

    # ------------------------------------------------------------------ decoder
    def _decode(self, embedding: Embedding, boxes, multimask: bool):
        m = self._model
        features = embedding.features
        if embedding.terms is not None:  # only made when this segmenter has a box decoder
            sparse, _ = m.prompt_encoder(points=None, boxes=boxes, masks=None)
            return self._box_decoder(embedding.terms, sparse, multimask)
        if self._is_sam2:
            corners = boxes.view(-1, 2, 2)
            labels = corners.new_tensor([[2, 3]], dtype=None).int().expand(len(boxes), -1)
            sparse, dense = m.sam_prompt_encoder(points=(corners, labels), boxes=None, masks=None)
            high = [f for f in features["high_res_feats"]]
            logits, scores, _, _ = m.sam_mask_decoder(
                image_embeddings=features["image_embed"], image_pe=m.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
                repeat_image=len(boxes) > 1, high_res_features=high)
        else:
            sparse, dense = m.prompt_encoder(points=None, boxes=boxes, masks=None)
            logits, scores = m.mask_decoder(
                image_embeddings=features, image_pe=m.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask)
        return logits, scores

    def predict_torch_chunks(self, embedding: Embedding, boxes_input):
        """Decode boxes already in the ``imgsz`` input frame, one chunk at a time.

        Yields:
            ``(logits, scores)`` per chunk: ``(n, K, L, L)`` float32 low-res logits (``L = imgsz / 4``) and ``(n, K)``
            predicted IoU, K = 1 for ``single``/``best``, 3 for ``all``. Consumers that upsample
            each chunk before asking for the next keep memory bounded by the chunk, not by N.
        """
        import torch

        multimask = self.multimask != "single"
        chunk = self._chunk()
        for start in range(0, len(boxes_input), chunk):
            with torch.inference_mode(), self._autocast():
                logits, scores = self._decode(embedding, boxes_input[start:start + chunk], multimask)
            logits, scores = logits.float(), scores.float()
            if self.multimask == "best":
                best = scores.argmax(1)
                idx = torch.arange(len(best), device=best.device)
                logits, scores = logits[idx, best][:, None], scores[idx, best][:, None]
            yield logits, scores

    def predict_torch(self, embedding: Embedding, boxes_input):
        """Decode boxes already in the ``imgsz`` input frame (all chunks at once; see :meth:`predict_torch_chunks`).

        Returns:
            ``(logits, scores)``: ``(N, K, L, L)`` float32 low-res logits (``L = imgsz / 4``) and ``(N, K)``
            predicted IoU.
        """
        import torch

        parts = list(self.predict_torch_chunks(embedding, boxes_input))
        if not parts:
            k = 3 if self.multimask == "all" else 1
            return (torch.zeros(0, k, self.low_res, self.low_res, device=self._device),
                    torch.zeros(0, k, device=self._device))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def predict_masks(self, image: np.ndarray, boxes):
        """Masks for boxes on one image, aligned 1:1 with the boxes, in order.

        Args:
            image: ``(H, W, 3)`` uint8 BGR.
            boxes: ``(N, 4)`` xyxy pixels; clipped to the image; zero-area boxes give empty masks.

        Returns:
            ``(masks, scores)``: masks ``(M, H, W)`` bool or ``sv.CompactMask`` and scores ``(M,)``
            float32, where ``M = N`` (``M = 3N``, box-major, for ``multimask="all"``).
        """
        import torch

        self.load()
        check_image(image)
        clipped, valid = check_boxes(boxes, image.shape[:2])
        k = 3 if self.multimask == "all" else 1
        n = len(clipped)
        h, w = image.shape[:2]
        compact = wants_compact(self.output, (h, w))
        scores = np.zeros(n * k, np.float32)
        if not valid.any():  # nothing to decode: no decoder and no encoder
            return empty_masks(n * k, (h, w), compact), scores
        emb = self.embed(image)
        prompt = torch.as_tensor(clipped[valid] * emb.scale, device=self._device)
        rows = np.repeat(np.flatnonzero(valid) * k, k) + np.tile(np.arange(k), int(valid.sum()))
        ious = []

        def crops():  # chunk by chunk: only one chunk's low-res logits are alive at a time
            for logits, iou in self.predict_torch_chunks(emb, prompt):
                ious.append(iou.cpu().numpy().reshape(-1))
                if self._upsample_on_device:  # a GPU: upsample there, only bool crops come back
                    yield from upsample_masks_on_device(logits.reshape(-1, self.low_res, self.low_res), emb.grid)
                    continue
                for lg in logits.cpu().numpy().reshape(-1, self.low_res, self.low_res):
                    yield upsample_mask(lg, emb.grid)

        masks = assemble_masks(crops(), rows, n * k, (h, w), compact)
        scores[rows] = np.concatenate(ious)
        return masks, scores
