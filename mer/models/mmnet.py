"""MMNet (muscle-motion-guided network; methods.md §3), the base of FaceSleuth: shared parts and the model.

Inputs ``onset`` and ``apex`` (N×3×S×S, float in [0, 1]; the model applies ImageNet normalisation itself).
Layout at S = 224 (channels × size):

    motion branch on apex − onset:
        conv 3→180 k3 s2 + BN + ReLU -> 180×112; conv 180→128 k3 + BN + ReLU -> 128×112
        four attention blocks, channels 128/128/256/512, strides 1/2/2/2 -> 512×14×14
        (each block's attention map, max-pooled 3/2/1 to the next block's size, multiplies the next one's)
    position branch (MMNet): the onset frame resized to 14×14, a ViT with patch 1, embed 512, depth 3,
        4 heads, MLP ratio 2, no class token -> 196 tokens -> 512×14×14
    fusion and head: motion + position, flattened (100352) -> dropout -> FC classes

MMNet block: ``conv3x3(stride)-BN-ReLU -> conv1x1-BN``, plus the shortcut (1×1 conv + BN where the shape
changes), ReLU; spatial attention ``sigmoid(BN(conv1x1([mean_c, max_c])))`` (1×H×W), times the previous
block's map; the features are multiplied by the attention. The same branch takes FaceSleuth's CVA / SOA
blocks (:mod:`mer.models.facesleuth`) through ``block_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOTION_WIDTHS = (128, 128, 256, 512)
MOTION_STRIDES = (1, 2, 2, 2)
STEM_CHANNELS = 180
PAIR_INPUTS = ("onset", "apex")


class ImageNetNorm(nn.Module):
    """``(x - mean) / std`` with the ImageNet RGB statistics, for N×3×H×W inputs in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ResidualUnit(nn.Module):
    """``ReLU(BN(conv1x1(ReLU(BN(conv3x3_s(x))))) + shortcut(x))``, the body every motion block shares."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class PlainBlock(nn.Module):
    """A residual unit without attention (the ``orientation=none`` ablation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.unit = ResidualUnit(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.unit(x), None


class MMNetBlock(nn.Module):
    """MMNet's attention block; ``forward(x, prior)`` returns (features, attention N×1×H×W)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.unit = ResidualUnit(in_channels, out_channels, stride)
        self.attention = nn.Sequential(nn.Conv2d(2, 1, 1, bias=False), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.unit(x)
        pooled = torch.cat([out.mean(dim=1, keepdim=True), out.amax(dim=1, keepdim=True)], dim=1)
        attn = self.attention(pooled)
        if prior is not None:
            attn = attn * match_size(prior, attn.shape[-2:])
        return out * attn, attn


def match_size(prior: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Max-pool (3, 2, 1) a previous attention map until its H×W is ``size`` (MMNet's hand-over)."""
    while tuple(prior.shape[-2:]) != tuple(size):
        if prior.shape[-2] < size[0] or prior.shape[-1] < size[1]:
            raise ValueError(f"attention map {tuple(prior.shape[-2:])} is smaller than the block's {tuple(size)}")
        prior = F.max_pool2d(prior, 3, 2, 1)
    return prior


BlockFactory = Callable[[int, int, int, int], nn.Module]  # (index, in_channels, out_channels, stride)


class MotionBranch(nn.Module):
    """Stem (conv 3→180 s2, conv 180→128) and attention blocks on ``apex − onset``; output N×512×S/16×S/16."""

    def __init__(
        self,
        block_factory: BlockFactory,
        widths: Sequence[int] = MOTION_WIDTHS,
        strides: Sequence[int] = MOTION_STRIDES,
        stem_channels: int = STEM_CHANNELS,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(widths) != len(strides):
            raise ValueError(f"widths {tuple(widths)} and strides {tuple(strides)} differ in length")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, c_in = [], widths[0]
        for i, (c_out, stride) in enumerate(zip(widths, strides, strict=True)):
            blocks.append(block_factory(i, c_in, c_out, stride))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, attn = self.stem(x), None
        for block in self.blocks:
            x, attn = block(x, attn)
        return x


class PositionViT(nn.Module):
    """MMNet's position branch: the image resized to ``grid``×``grid``, one token per pixel, a ViT -> C×grid×grid."""

    def __init__(self, grid: int = 14, embed_dim: int = 512, depth: int = 3, heads: int = 4, mlp_ratio: float = 2.0,
                 drop_path: float = 0.3, in_channels: int = 3) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.grid = grid
        self.vit = VisionTransformer(
            img_size=grid, patch_size=1, in_chans=in_channels, num_classes=0, global_pool="", embed_dim=embed_dim,
            depth=depth, num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=False, class_token=False,
            drop_path_rate=drop_path,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False, antialias=True)
        tokens = self.vit.forward_features(small)  # N × grid² × C
        n, _, c = tokens.shape
        return tokens.transpose(1, 2).reshape(n, c, self.grid, self.grid)


class MMNet(nn.Module):
    """MMNet: motion branch (MMNet blocks) + ViT position branch, added, flattened, FC; returns logits."""

    input_names = PAIR_INPUTS
    image_inputs = PAIR_INPUTS

    def __init__(
        self,
        num_classes: int,
        image_size: int = 224,
        widths: Sequence[int] = MOTION_WIDTHS,
        stem_channels: int = STEM_CHANNELS,
        position: bool = True,
        vit_depth: int = 3,
        vit_heads: int = 4,
        drop_path: float = 0.3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"MMNet needs an image size divisible by 16, got {image_size}")
        self.num_classes = num_classes
        self.norm = ImageNetNorm()
        self.motion = MotionBranch(lambda i, a, b, s: MMNetBlock(a, b, s), widths, MOTION_STRIDES, stem_channels)
        grid = image_size // 16
        self.position = (
            PositionViT(grid, self.motion.out_channels, vit_depth, vit_heads, drop_path=drop_path) if position else None
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.motion.out_channels * grid * grid, num_classes)

    def motion_input(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
        """``norm(apex) − norm(onset)`` = (apex − onset) / std: all zero when onset equals apex."""
        return self.norm(apex) - self.norm(onset)

    def forward(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
        x = self.motion(self.motion_input(onset, apex))
        if self.position is not None:
            x = x + self.position(self.norm(onset))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def build_mmnet(num_classes: int, in_channels: int = 3, image_size: int = 224, **options) -> MMNet:
    """Registry builder for MMNet (RGB onset/apex pairs; ``in_channels`` must be 3)."""
    if in_channels != 3:
        raise ValueError(f"MMNet takes RGB onset/apex frames, got {in_channels} channels")
    return MMNet(num_classes=num_classes, image_size=image_size, **options)
