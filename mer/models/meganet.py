"""MEGANet (MESTI-MEGANet paper, section 3.2; methods.md §2) with its ablation switches.

Layout at the default 224x224 input (channels x size):

    input 3x224 -> [input attention: gradient | se | cbam | none]
    stem: conv3x3/2 (64) + BN + ReLU -> 64x112, max-pool 3x3/2 -> 64x56
    block 1: 64->64,   stride 2 -> 28x28   (self-attention over 784 positions)
    block 2: 64->128,  stride 2 -> 14x14
    block 3: 128->256, stride 2 -> 7x7
    (block 4: 256->512, stride 2 -> 4x4, for the 4-block ablation)
    global average pooling -> FC -> logits (softmax is applied by ``predict``)

The paper gives no widths or strides. Every block downsamples by 2 so that the quadratic SAGAN attention
runs at 28x28 (a 784x784 attention matrix per image) or smaller; at 56x56 it would cost 16x more memory.
Widths double from the second block on (64, 128, 256, 512), as in ResNet.

Residual-attention block: ``y = F(x) + S(x)`` with ``F = ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))))`` (two
conv + BN + ReLU, as the paper lists them) and ``S`` a 1x1 conv + BN where the shape changes (identity
otherwise), followed by the attention module (SAGAN by default; SE / CBAM / none for ablations).
``residual=False`` drops the shortcut (``y = F(x)``), for the paper's Table 6 rows without the residual block.

Parameter counts (3 classes, 3 x 224 x 224 input; independent of the size): default 1,338,130;
``residual=False`` 1,292,178; ``blocks=2`` 336,465; ``blocks=4`` 5,340,307; ``self_attention=False`` 1,230,047;
``gradient_attention=False`` 1,338,102 (the gradient block is one 3 -> 1 3x3 conv, 28 weights).
Global average pooling is a mean over H, W (CUDA's adaptive-pool backward is not deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mer.models.attention import CBAM, GradientAttention, SqueezeExcitation, make_attention

DEFAULT_WIDTHS = (64, 128, 256, 512)


class ResidualAttentionBlock(nn.Module):
    """Two conv+BN+ReLU layers, a (projected) shortcut, residual sum, then an attention module."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 2, attention: str = "sagan", residual: bool = True
    ) -> None:
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        if not residual:
            self.shortcut: nn.Module | None = None
        elif stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.attention = make_attention(attention, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.attention(y + self.shortcut(x) if self.shortcut is not None else y)


class MEGANet(nn.Module):
    """Micro-expression Gradient Attention Network; ``forward`` returns logits (N x num_classes)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        blocks: int = 3,
        widths: Sequence[int] | None = None,
        stem_channels: int = 64,
        gradient_attention: bool = True,
        input_attention: str | None = None,
        self_attention: bool = True,
        attention: str = "sagan",
        block_stride: int = 2,
        dropout: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError("blocks must be >= 1")
        widths = tuple(widths) if widths is not None else DEFAULT_WIDTHS
        if len(widths) < blocks:
            raise ValueError(f"need {blocks} widths, got {len(widths)}")
        # Input attention: the paper's gradient block, or SE/CBAM in its place (Table 8), or none.
        if input_attention is None:
            input_attention = "gradient" if gradient_attention else "none"
        self.input_attention = _make_input_attention(input_attention, in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        block_attention = attention if self_attention else "none"
        layers = []
        c_in = stem_channels
        for c_out in widths[:blocks]:
            layers.append(
                ResidualAttentionBlock(c_in, c_out, stride=block_stride, attention=block_attention, residual=residual)
            )
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector before the classifier (N x last width)."""
        x = self.input_attention(x)
        x = self.blocks(self.stem(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def _make_input_attention(kind: str, channels: int) -> nn.Module:
    kind = kind.lower()
    if kind == "gradient":
        return GradientAttention(channels)
    if kind == "se":
        return SqueezeExcitation(channels, reduction=max(1, channels))
    if kind == "cbam":
        return CBAM(channels, reduction=max(1, channels))
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown input_attention {kind!r}; expected 'gradient', 'se', 'cbam' or 'none'")


def build_meganet(num_classes: int, in_channels: int = 3, image_size: int = 224, **options) -> MEGANet:
    """Registry builder for MEGANet (``image_size`` is accepted for a uniform API; any size works)."""
    return MEGANet(num_classes=num_classes, in_channels=in_channels, **options)
