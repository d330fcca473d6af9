"""ImageNet backbones from timm (VGG19, ResNet50, EfficientNet-B0) used in the paper's Experiment 1.

Weights are never downloaded implicitly: ``pretrained=True`` loads them from a local file
(``weights="path"``) or from the Hugging Face cache, and fails fast with a clear message otherwise.
``allow_download=True`` lets timm try the network.

Parameter counts with a fresh 3-class head: VGG19 139,582,531; ResNet50 23,514,179; EfficientNet-B0 4,011,391.
Global average pooling (timm's ``AdaptiveAvgPool2d(1)``) is replaced by a mean over H, W — the same values, but
deterministic on CUDA, where the adaptive pool's backward has no deterministic implementation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TIMM_NAMES = {"vgg19": "vgg19", "resnet50": "resnet50", "efficientnet_b0": "efficientnet_b0"}


class PretrainedWeightsUnavailableError(RuntimeError):
    """Raised when pretrained weights were asked for but no local or cached copy exists."""


def _cached_weights(timm_name: str) -> str | None:
    """Path of timm's default pretrained file in the local Hugging Face cache, or None."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return found
    return None


class GlobalMeanPool(nn.Module):
    """``AdaptiveAvgPool2d(1)`` as a mean over H, W (N x C x 1 x 1); deterministic in its CUDA backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=True)


def deterministic_pooling(model: nn.Module) -> nn.Module:
    """Replace every ``AdaptiveAvgPool2d`` to 1×1 in ``model`` by :class:`GlobalMeanPool` (in place; returns it)."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
                setattr(module, child_name, GlobalMeanPool())
    return model


def build_timm(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 224,
    pretrained: bool = False,
    weights: str | None = None,
    allow_download: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """Create timm classifier ``name`` with a fresh ``num_classes`` head (weights: see module docstring)."""
    import timm

    timm_name = TIMM_NAMES.get(name, name)
    kwargs = dict(num_classes=num_classes, in_chans=in_channels, drop_rate=drop_rate)
    if not pretrained:
        return deterministic_pooling(timm.create_model(timm_name, pretrained=False, **kwargs))
    if allow_download and weights is None:
        return deterministic_pooling(timm.create_model(timm_name, pretrained=True, **kwargs))
    path = weights or _cached_weights(timm_name)
    if path is None or not Path(path).is_file():
        raise PretrainedWeightsUnavailableError(
            f"pretrained weights for model {name!r} (timm {timm_name!r}) are not available: no network "
            f"access is assumed and no cached or local weights were found"
            + (f" (weights={weights!r} does not exist)" if weights else "")
            + ". Pass weights='/path/to/file', pre-populate the Hugging Face cache, "
            "allow_download=True, or use pretrained=False."
        )
    model = timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    return deterministic_pooling(model)
