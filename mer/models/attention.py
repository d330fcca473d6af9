"""Attention modules used by MEGANet and its ablations: gradient attention, SAGAN, SE and CBAM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Return G = Gx + Gy of absolute forward differences, zero-padded to the input size (methods.md §2).

    ``Gx[..., y, x] = |I[..., y, x+1] - I[..., y, x]|`` (0 in the last column) and
    ``Gy[..., y, x] = |I[..., y+1, x] - I[..., y, x]|`` (0 in the last row).
    """
    gx = F.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = F.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1))
    return gx + gy


class GradientAttention(nn.Module):
    """MEGANet's Gradient Attention Block: ``I * sigmoid(conv3x3(Gx + Gy))``.

    The 3x3 convolution maps the C gradient channels to ``map_channels`` attention maps (default 1: one
    spatial map shared by every input channel, as the paper's single "gradient attention map" figure).
    """

    def __init__(self, in_channels: int, map_channels: int = 1) -> None:
        super().__init__()
        if map_channels not in (1, in_channels):
            raise ValueError("map_channels must be 1 or in_channels")
        self.conv = nn.Conv2d(in_channels, map_channels, kernel_size=3, padding=1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map A = sigmoid(conv3x3(G)) in (0, 1), shape N x map_channels x H x W."""
        return torch.sigmoid(self.conv(gradient_magnitude(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class SelfAttention2d(nn.Module):
    """SAGAN self-attention: q/k 1x1 convs to C/8, v 1x1 conv to C, softmax over positions, gamma*out + x.

    ``gamma`` starts at 0, so the module is the identity at initialisation. Uses PyTorch's fused
    ``scaled_dot_product_attention`` with ``scale=1`` (SAGAN has no 1/sqrt(d) factor).
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, kernel_size=1)
        self.key = nn.Conv2d(channels, inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # N x HW x C'
        k = self.key(x).flatten(2).transpose(1, 2)  # N x HW x C'
        v = self.value(x).flatten(2).transpose(1, 2)  # N x HW x C
        # out_i = sum_j softmax_j(q_i . k_j) v_j  (attention over all key positions j)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=1.0)
        out = out.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return self.gamma * out + x


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation channel attention (Hu et al.): x * sigmoid(MLP(GAP(x)))."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, inner, kernel_size=1)
        self.fc2 = nn.Conv2d(inner, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class CBAM(nn.Module):
    """CBAM (Woo et al.): channel attention from avg+max pooled MLP, then 7x7 spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, inner, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, channels, kernel_size=1, bias=False),
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ca = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        sa = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(sa))


def make_attention(kind: str, channels: int) -> nn.Module:
    """Build a feature-map attention module by name: ``sagan``, ``se``, ``cbam`` or ``none``."""
    kind = kind.lower()
    if kind == "sagan":
        return SelfAttention2d(channels)
    if kind == "se":
        return SqueezeExcitation(channels)
    if kind == "cbam":
        return CBAM(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown attention {kind!r}; expected 'sagan', 'se', 'cbam' or 'none'")
