"""Building SAM-family models from a checkpoint path or a known name, never downloading implicitly.

Supported: SAM ViT-B/L/H, MobileSAM, SAM 2 and SAM 2.1 (t / s / b+ / l), with the
architectures of ``ultralytics.models.sam.build``.
"""

from __future__ import annotations

import os
from pathlib import Path

from detseg.assets import load_error, resolve_weights
from detseg.atomic import temp_name
from detseg.errors import InputError, WeightsError

# arch name -> ultralytics builder name; names match ultralytics' asset file stems
ARCHS = {
    "sam_b": "build_sam_vit_b",
    "sam_l": "build_sam_vit_l",
    "sam_h": "build_sam_vit_h",
    "mobile_sam": "build_mobile_sam",
    "sam2_t": "build_sam2_t",
    "sam2_s": "build_sam2_s",
    "sam2_b": "build_sam2_b",
    "sam2_l": "build_sam2_l",
    "sam2.1_t": "build_sam2_t",
    "sam2.1_s": "build_sam2_s",
    "sam2.1_b": "build_sam2_b",
    "sam2.1_l": "build_sam2_l",
}
_HINT = ", or use the weight-free `grabcut` or `box` segmenter"


def infer_arch(checkpoint: str | Path, arch: str | None = None) -> str:
    """The architecture: ``arch`` if given, else read from the file name (``mobile_sam.pt`` -> ``mobile_sam``)."""
    if arch is not None:
        if arch not in ARCHS:
            raise WeightsError(f"unknown SAM arch {arch!r}; expected one of {sorted(ARCHS)}")
        return arch
    stem = Path(checkpoint).name.lower().removesuffix(".pt").removesuffix(".pth")
    for name in sorted(ARCHS, key=len, reverse=True):  # "sam2.1_t" before "sam2_t" before "sam_b"
        if stem.endswith(name) or stem.startswith(name):
            return name
    raise WeightsError(f"cannot tell the SAM architecture from the file name {Path(checkpoint).name!r}: name the "
                       f"file after it (e.g. mobile_sam.pt, sam_b.pt, sam2.1_t.pt; one of {sorted(ARCHS)}), "
                       "or in Python pass SamSegmenter(..., arch=)")


def _state_dict(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        if "ultralytics" in str(e):  # a pickled ultralytics model, not SAM weights
            raise WeightsError(f"{path} looks like an ultralytics YOLO checkpoint, not SAM weights: "
                               "pass it as --detector") from None
        raise WeightsError(f"{path} is not a readable SAM checkpoint ({load_error(e)})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # SAM 2 checkpoints nest the weights under "model"
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def build_sam_model(checkpoint: str | Path, arch: str | None = None):
    """Build the model of ``arch`` and load ``checkpoint`` into it (strict: every key must match).

    Args:
        checkpoint: a local file of any name, or a known name (``mobile_sam.pt``, ``sam_b.pt``,
            ``sam2.1_t.pt``, ...) that ultralytics downloads when online.
        arch: architecture name when the file name does not say it.

    Returns:
        ``(model, arch)``: the ``torch.nn.Module`` in eval mode on the CPU, and its arch name.

    Raises:
        WeightsError: missing file (offline: names the file looked for), unreadable file, or
            weights that do not fit the architecture.
    """

    path = resolve_weights(checkpoint, hint=_HINT, unreadable="{path} is not a readable SAM checkpoint")
    arch = infer_arch(checkpoint, arch)
    state = _state_dict(path)
    model = _build_random(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise WeightsError(f"{path} does not fit the {arch} architecture its name says ({first}); "
                           "name the file after its architecture (mobile_sam.pt, sam_b.pt, sam2.1_t.pt, ...)") from None
    return model.eval(), arch


def _build_random(arch: str):
    """The architecture with random weights, built by ultralytics' builder without loading anything.

    ultralytics switches on SAM 2.1's extra layers only when the checkpoint *name* contains
    "sam2.1", and then loads that file itself (unsafely, and it may download). So the name is
    passed with ultralytics' loader disabled for the duration of the build.
    """
    from unittest import mock

    from ultralytics.models.sam import build as sam_build

    builder = getattr(sam_build, ARCHS[arch])
    if not arch.startswith("sam2.1"):
        return builder(None)
    with mock.patch.object(sam_build, "_load_checkpoint", lambda model, checkpoint: model):
        return builder(f"{arch}.pt")


def save_random_checkpoint(path: str | Path, arch: str = "mobile_sam", seed: int = 0,
                           objects_present: bool = False) -> Path:
    """Write a random-initialised checkpoint (for tests and benchmarks without weights).

    ``objects_present`` (SAM 2 only): bias the object-presence head to "present". Random heads call
    every object absent, so SAM 2's video memory would carry empty masks; real weights say present
    for real objects.
    """
    import torch

    torch.manual_seed(seed)
    model = _build_random(arch)
    if objects_present:
        head = getattr(getattr(model, "sam_mask_decoder", None), "pred_obj_score_head", None)
        if head is None:
            raise InputError(f"objects_present needs a SAM 2 architecture, got {arch!r}")
        last = head.layers[-1] if hasattr(head, "layers") else head
        with torch.no_grad():
            last.bias.fill_(20.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return path


def prepare_encoder_for_inference(model) -> bool:
    """Make a MobileSAM (TinyViT) image encoder faster for inference, in place.

    Each ``Conv2d_BN`` gets its batch norm folded into the convolution (eval-mode BN is
    an affine map), and the encoder runs in channels-last memory layout, which oneDNN's
    convolutions prefer: ~1.4x faster on a 2-core CPU (``benchmarks/segmenter.py``), with
    outputs equal up to float rounding (~1e-5). Other encoders are left as they are.

    Returns:
        Whether the encoder was changed; feed it ``torch.channels_last`` inputs when it was.
    """
    import torch
    from ultralytics.models.sam.modules.tiny_encoder import Conv2d_BN, TinyViT
    from ultralytics.utils.torch_utils import fuse_conv_and_bn

    encoder = getattr(model, "image_encoder", None)
    if not isinstance(encoder, TinyViT):
        return False
    for module in encoder.modules():
        if isinstance(module, Conv2d_BN) and isinstance(module.bn, torch.nn.BatchNorm2d):
            module.c = fuse_conv_and_bn(module.c, module.bn)
            module.bn = torch.nn.Identity()
    encoder.to(memory_format=torch.channels_last)
    return True
