"""SAM's mask decoder for many box prompts on one image, with the per-image work done once.

ultralytics' ``MaskDecoder`` (the original segment-anything one) copies the image
embedding once per prompt and runs every projection of the 64x64 image tokens per
prompt. For box prompts (no mask input) much of that is the same for every box:

* Layer 1 sees the same image tokens for every box, so its key/value projections
  (token -> image) and query projection (image -> token) are computed once per image
  and kept with the cached embedding (:class:`ImageTerms`).
* Attention from the 4,096 image tokens to the ~7 prompt tokens is low-rank: the output
  projection is applied to the 7 values before attention (``A (V Wo) == (A V) Wo``), and
  the query projection is folded into the prompt-side keys (``(X Wq) K^T == X (Wq K^T)``).
* Attention from the prompt tokens to the image folds the key projection into the
  queries and applies the value projection after attention (rows of ``A`` sum to 1).
* The two 2x2 stride-2 transposed convolutions of the upscaler touch disjoint output
  pixels, so each is one matrix product in the channels-last layout the transformer
  already has: no transposes of the large tensors.

The arithmetic is the same function of the same weights in another order, so results
equal the reference decoder up to float rounding (tests check the logits and masks
against ultralytics' own modules). SAM 2 decoders are not handled here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ImageTerms:
    """Per-image tensors shared by every box prompt of that image.

    Attributes:
        keys: ``(HW, C)`` image tokens plus the no-mask dense embedding.
        k1: ``(heads, HW, d)`` layer-1 token->image keys, per head.
        v1: ``(heads, HW, d)`` layer-1 token->image values, per head.
        q1: ``(heads, d, HW)`` layer-1 image->token queries, per head, pre-scaled by ``1/sqrt(d)``.
        size: ``(h, w)`` of the embedding grid (``imgsz / 16``: 64, 64 at SAM's 1024).
    """

    keys: torch.Tensor
    k1: torch.Tensor
    v1: torch.Tensor
    q1: torch.Tensor
    size: tuple[int, int]

    def float(self) -> ImageTerms:
        """fp32 copies (the terms may come out of an autocast region in bf16/fp16)."""
        return ImageTerms(*(t.float() for t in (self.keys, self.k1, self.v1, self.q1)), self.size)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.keys, self.k1, self.v1, self.q1))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(..., n, heads * d)`` -> ``(..., heads, n, d)``."""
    *lead, n, c = x.shape
    return x.reshape(*lead, n, heads, c // heads).transpose(-3, -2)


class BoxPromptDecoder:
    """The mask decoder of SAM / MobileSAM (ultralytics modules) for batches of box prompts.

    Args:
        mask_decoder: ultralytics ``MaskDecoder`` (not ``SAM2MaskDecoder``).
        prompt_encoder: ultralytics ``PromptEncoder`` of the same model.

    Example:
        >>> from ultralytics.models.sam.build import build_mobile_sam
        >>> model = build_mobile_sam(None).eval()
        >>> decoder = BoxPromptDecoder(model.mask_decoder, model.prompt_encoder)
        >>> with torch.inference_mode():
        ...     terms = decoder.image_terms(torch.zeros(1, 256, 64, 64))
        ...     sparse, _ = model.prompt_encoder(points=None, boxes=torch.tensor([[10., 10, 300, 400]]), masks=None)
        ...     logits, iou = decoder(terms, sparse, multimask=False)
        >>> tuple(logits.shape), tuple(iou.shape)
        ((1, 1, 256, 256), (1, 1))
    """

    def __init__(self, mask_decoder, prompt_encoder):
        self.decoder = mask_decoder
        self.prompt_encoder = prompt_encoder
        self.transformer = mask_decoder.transformer
        self._key_pe = None

    @staticmethod
    def supports(mask_decoder) -> bool:
        """Whether a decoder has the original SAM layout this class reimplements."""
        t = getattr(mask_decoder, "transformer", None)
        return (type(mask_decoder).__name__ == "MaskDecoder" and t is not None
                and type(t).__name__ == "TwoWayTransformer" and len(t.layers) >= 1
                and t.layers[0].skip_first_layer_pe)

    # ------------------------------------------------------------------ per image
    def key_pe(self) -> torch.Tensor:
        """``(HW, C)`` positional encoding of the image tokens: the same for every image, computed once."""
        if self._key_pe is None:
            self._key_pe = self.prompt_encoder.get_dense_pe()[0].flatten(1).T.float().contiguous()
        return self._key_pe

    def image_terms(self, image_embedding: torch.Tensor) -> ImageTerms:
        """Shared tensors of one image. ``image_embedding``: ``(1, C, h, w)`` encoder output."""
        _, c, h, w = image_embedding.shape
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, c)
        keys = image_embedding[0].flatten(1).T + dense  # (HW, C)
        key_pe = self.key_pe().to(keys.dtype)
        first = self.transformer.layers[0]
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        heads = t2i.num_heads
        k_in = keys + key_pe
        scale = 1.0 / math.sqrt(i2t.internal_dim // i2t.num_heads)
        return ImageTerms(
            keys=keys.contiguous(),
            k1=_heads(t2i.k_proj(k_in), heads).contiguous(),
            v1=_heads(t2i.v_proj(keys), heads).contiguous(),
            q1=(_heads(i2t.q_proj(k_in), i2t.num_heads) * scale).transpose(1, 2).contiguous(),
            size=(h, w),
        )

    # ------------------------------------------------------------------ attention pieces
    @staticmethod
    def _token_to_image(attn, q_in, keys_pe, keys):
        """Prompt tokens attend to per-box image tokens. q_in (B,T,C); keys_pe, keys (B,HW,C) -> (B,T,C)."""
        heads, c = attn.num_heads, attn.embedding_dim
        d = attn.internal_dim // heads
        q = _heads(attn.q_proj(q_in), heads) / math.sqrt(d)  # (B,H,T,d)
        wk = attn.k_proj.weight.view(heads, d, c)  # k = x Wk^T + bk; the bk term is constant per query row
        qk = torch.matmul(q, wk)  # (B,H,T,C)
        b, _, t, _ = qk.shape
        scores = torch.bmm(qk.reshape(b, heads * t, c), keys_pe.transpose(1, 2))  # (B,H*T,HW)
        probs = torch.softmax(scores, dim=-1)
        mixed = torch.bmm(probs, keys).view(b, heads, t, c)  # rows of probs sum to 1: v_proj after mixing
        wv = attn.v_proj.weight.view(heads, d, c)
        v = torch.matmul(mixed, wv.transpose(1, 2)) + attn.v_proj.bias.view(heads, 1, d)  # (B,H,T,d)
        return attn.out_proj(v.transpose(1, 2).reshape(b, t, heads * d))

    @staticmethod
    def _token_to_shared_image(attn, q_in, k1, v1):
        """Layer 1: prompt tokens attend to the shared image projections. -> (B,T,C)."""
        heads = attn.num_heads
        d = attn.internal_dim // heads
        q = _heads(attn.q_proj(q_in), heads) / math.sqrt(d)  # (B,H,T,d)
        probs = torch.softmax(torch.matmul(q, k1.transpose(1, 2)), dim=-1)  # (B,H,T,HW)
        out = torch.matmul(probs, v1)  # (B,H,T,d)
        b, _, t, _ = out.shape
        return attn.out_proj(out.transpose(1, 2).reshape(b, t, heads * d))

    @staticmethod
    def _image_to_token(attn, scores, tokens_v, base):
        """Image tokens attend to the prompt tokens: ``base + attention output``.

        Args:
            scores: ``(B, H, T, HW)`` pre-softmax scores (token-major: the softmax runs over T,
                which is fast in this layout and slow with T last).
            tokens_v: ``(B, T, C)`` prompt tokens (the values).
            base: ``(B, HW, C)`` or ``(HW, C)`` residual the output is added to.
        """
        heads = attn.num_heads
        d = attn.internal_dim // heads
        v = _heads(attn.v_proj(tokens_v), heads)  # (B,H,T,d)
        wo = attn.out_proj.weight.T.reshape(heads, d, -1)  # (H,d,C)
        # out_proj applied before mixing; each head's weights sum to 1, so bias/H per head adds the bias once
        vo = torch.matmul(v, wo) + attn.out_proj.bias / heads  # (B,H,T,C)
        probs = torch.softmax(scores, dim=2)
        b, _, t, hw = probs.shape
        probs = probs.reshape(b, heads * t, hw).transpose(1, 2)  # (B,HW,H*T) view
        return torch.baddbmm(base, probs, vo.reshape(b, heads * t, -1))

    @staticmethod
    def _image_to_token_scores(attn, keys_pe, k_in):
        """Scores of per-box image tokens (B,HW,C) against prompt keys k_in (B,T,C) -> (B,H,T,HW)."""
        heads, c = attn.num_heads, attn.embedding_dim
        d = attn.internal_dim // heads
        k = _heads(attn.k_proj(k_in), heads) / math.sqrt(d)  # (B,H,T,d)
        wq = attn.q_proj.weight.view(heads, d, c)
        qk = torch.matmul(k, wq)  # (B,H,T,C): the query projection folded into the keys
        bias = torch.matmul(k, attn.q_proj.bias.view(heads, d, 1))  # (B,H,T,1)
        b, _, t, _ = qk.shape
        scores = torch.baddbmm(bias.reshape(b, heads * t, 1), qk.reshape(b, heads * t, c), keys_pe.transpose(1, 2))
        return scores.view(b, heads, t, -1)

    # ------------------------------------------------------------------ forward
    def _transformer(self, terms: ImageTerms, tokens: torch.Tensor):
        """The two-way transformer. tokens (B,T,C) -> (queries (B,T,C), keys (B,HW,C))."""
        tr = self.transformer
        key_pe = self.key_pe().to(tokens.dtype)
        point_pe = tokens
        queries, keys = tokens, None
        for layer in tr.layers:
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + point_pe
                queries = queries + layer.self_attn(q=q, k=q, v=queries)
            queries = layer.norm1(queries)
            if keys is None:  # layer 1: the image side is the same for every box
                queries = queries + self._token_to_shared_image(
                    layer.cross_attn_token_to_image, queries + point_pe, terms.k1, terms.v1)
            else:
                keys_pe = keys + key_pe
                queries = queries + self._token_to_image(layer.cross_attn_token_to_image, queries + point_pe,
                                                         keys_pe, keys)
            queries = layer.norm2(queries)
            queries = layer.norm3(queries + layer.mlp(queries))
            i2t = layer.cross_attn_image_to_token
            if keys is None:
                k = _heads(i2t.k_proj(queries + point_pe), i2t.num_heads)  # (B,H,T,d)
                scores = torch.matmul(k, terms.q1)  # (B,H,T,HW); q1 is pre-scaled
                base = terms.keys
            else:
                scores = self._image_to_token_scores(i2t, keys_pe, queries + point_pe)
                base = keys
            keys = layer.norm4(self._image_to_token(i2t, scores, queries, base))
        queries = queries + self._token_to_image(tr.final_attn_token_to_image, queries + point_pe,
                                                 keys + key_pe, keys)
        return tr.norm_final_attn(queries), keys

    def _upscale(self, keys: torch.Tensor, size: tuple[int, int], hyper: torch.Tensor) -> torch.Tensor:
        """output_upscaling + hypernetwork product. keys (B,HW,C), hyper (B,K,C/8) -> logits (B,K,4h,4w)."""
        conv1, norm, act1, conv2, act2 = self.decoder.output_upscaling
        b = keys.shape[0]
        h, w = size
        c1 = conv1.out_channels
        c2 = conv2.out_channels
        # ConvTranspose2d(k=2, s=2): weight (in, out, 2, 2); each input pixel owns its 2x2 output block
        w1 = conv1.weight.permute(0, 2, 3, 1).reshape(conv1.in_channels, 4 * c1)
        x = torch.addmm(conv1.bias.repeat(4), keys.reshape(b * h * w, -1), w1).view(b * h * w * 4, c1)
        x = act1(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps))
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
        x = act2(torch.addmm(conv2.bias.repeat(4), x, w2)).view(b, h * w * 16, c2)
        k = hyper.shape[1]
        logits = torch.bmm(x, hyper.transpose(1, 2))  # (B, h*w*16, K) in (i, j, a, b, a2, b2) order
        logits = logits.view(b, h, w, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return logits.reshape(b, k, 4 * h, 4 * w)

    def __call__(self, terms: ImageTerms, sparse: torch.Tensor, multimask: bool):
        """Decode a batch of prompts on one image.

        Args:
            terms: from :meth:`image_terms`.
            sparse: ``(B, T, C)`` sparse prompt embeddings (from the prompt encoder, boxes only).
            multimask: SAM's three-mask output instead of the single mask.

        Returns:
            ``(logits, iou)``: ``(B, K, L, L)`` low-res mask logits (``L = imgsz / 4``, 256 at 1024) and
            ``(B, K)`` predicted IoU,
            K = 3 with ``multimask`` else 1.
        """
        dec = self.decoder
        b = sparse.shape[0]
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat((out_tokens.unsqueeze(0).expand(b, -1, -1).to(sparse.dtype), sparse), dim=1)
        queries, keys = self._transformer(terms, tokens)
        picks = range(1, dec.num_mask_tokens) if multimask else range(0, 1)
        hyper = torch.stack([dec.output_hypernetworks_mlps[i](queries[:, 1 + i]) for i in picks], dim=1)
        logits = self._upscale(keys, terms.size, hyper)
        iou = dec.iou_prediction_head(queries[:, 0])
        return logits, iou[:, 1:] if multimask else iou[:, :1]
