"""The shared-image box decoder against ultralytics' own MaskDecoder on the same weights."""

import numpy as np
import pytest
import torch

from detseg.errors import InputError
from detseg.segmenter import SamSegmenter
from detseg.segmenter.box_decoder import BoxPromptDecoder
from tests.helpers import textured_image


def _boxes(n, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 700, (n, 2))
    return torch.tensor(np.concatenate([xy, xy + rng.uniform(5, 320, (n, 2))], 1), dtype=torch.float32)


@pytest.mark.parametrize("n", [1, 3, 9])
@pytest.mark.parametrize("multimask", [False, True])
def test_logits_equal_the_reference_decoder(sam, n, multimask):
    model = sam.model
    decoder = BoxPromptDecoder(model.mask_decoder, model.prompt_encoder)
    torch.manual_seed(n)
    embedding = torch.randn(1, 256, 64, 64)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(points=None, boxes=_boxes(n, n), masks=None)
        ref, ref_iou = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                          sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                          multimask_output=multimask)
        ours, iou = decoder(decoder.image_terms(embedding), sparse, multimask)
    assert ours.shape == ref.shape == (n, 3 if multimask else 1, 256, 256)
    assert iou.shape == ref_iou.shape
    scale = ref.abs().max().item()
    assert scale > 0
    assert (ours - ref).abs().max().item() <= 1e-5 * max(scale, 1.0)
    assert torch.allclose(iou, ref_iou, atol=1e-5)
    assert ((ours > 0) == (ref > 0)).float().mean().item() >= 0.9999


def test_each_box_is_decoded_independently_of_its_batch(sam):
    model = sam.model
    decoder = BoxPromptDecoder(model.mask_decoder, model.prompt_encoder)
    torch.manual_seed(0)
    with torch.inference_mode():
        terms = decoder.image_terms(torch.randn(1, 256, 64, 64))
        sparse, _ = model.prompt_encoder(points=None, boxes=_boxes(5, 1), masks=None)
        together, _ = decoder(terms, sparse, False)
        alone = torch.cat([decoder(terms, sparse[i:i + 1], False)[0] for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_supports_only_the_original_sam_decoder(sam):
    assert BoxPromptDecoder.supports(sam.model.mask_decoder)
    assert not BoxPromptDecoder.supports(None)
    assert not BoxPromptDecoder.supports(sam.model.prompt_encoder)


def test_segmenter_masks_match_the_reference_decoder_path(mobile_sam_checkpoint):
    image = textured_image(300, 420, seed=4)
    boxes = [[0, 0, 200, 150], [100, 80, 419, 299], [50, 60, 51, 200]]
    fast = SamSegmenter(str(mobile_sam_checkpoint), output="dense")
    reference = SamSegmenter(str(mobile_sam_checkpoint), output="dense", decoder="reference")
    ours, our_scores = fast.predict_masks(image, boxes)
    ref, ref_scores = reference.predict_masks(image, boxes)
    assert fast.embed(image).terms is not None and reference.embed(image).terms is None
    for i in range(len(boxes)):
        assert (ours[i] == ref[i]).mean() >= 0.9999
    np.testing.assert_allclose(our_scores, ref_scores, atol=1e-5)


def test_unknown_decoder_is_a_clear_error(mobile_sam_checkpoint):
    with pytest.raises(InputError, match="decoder must be one of"):
        SamSegmenter(str(mobile_sam_checkpoint), decoder="fast").load()
