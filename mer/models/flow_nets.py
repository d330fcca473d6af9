"""Small networks for optical-flow inputs: STSTNet (Liong et al., 2019) and Off-ApexNet (Gan et al., 2019).

STSTNet: input 3 x 28 x 28 (u, v, optical strain of onset->apex flow). Three parallel 3x3 conv streams with
3, 5 and 8 filters (padding 2), each ReLU -> BN -> max-pool 3/3 -> dropout 0.5; the 16 maps are concatenated,
average-pooled 2/2 (5x5 at 28x28) and fed to one FC layer.

Off-ApexNet: two streams, one on u and one on v of the onset->apex flow at 28 x 28 (as published; strain is not
an input). Each stream: conv5x5 (6) -> ReLU -> max-pool 2 -> conv5x5 (16) -> ReLU -> max-pool 2 ('same'
padding, 16x7x7 at 28x28); the streams are flattened, concatenated, then FC 1024 -> ReLU -> dropout 0.5 -> FC
classes. It reads u and v at positions ``uv`` (default 0 and 1: the (u, v, strain) flow image) and ignores
the other channels, so it trains on the same stored flow image as STSTNet.
The FC input sizes are derived from ``image_size``, so other sizes work too.

Parameter counts (3 classes, 28 x 28): STSTNet 1,683; Off-ApexNet 1,614,875 (the FC 1568 -> 1024 layer holds 99.5 %).
"""

from __future__ import annotations

import torch
from torch import nn


class STSTNet(nn.Module):
    """Shallow triple-stream 3D CNN (the 3D refers to its u, v, strain input)."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 28, dropout: float = 0.5):
        super().__init__()
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, c, kernel_size=3, padding=2),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(c),
                nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
                nn.Dropout(dropout),
            )
            for c in (3, 5, 8)
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        side = ((image_size + 4 - 2) + 2 - 3) // 3 + 1  # conv (pad 2, k3) then max-pool (k3, s3, p1)
        self.fc = nn.Linear(16 * (side // 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([s(x) for s in self.streams], dim=1)
        return self.fc(torch.flatten(self.pool(x), 1))


class OffApexNet(nn.Module):
    """Two-stream (u and v) shallow CNN on onset->apex flow; ``uv``: the input positions of u and v."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 28,
        hidden: int = 1024,
        dropout: float = 0.5,
        uv: tuple[int, int] = (0, 1),
    ):
        super().__init__()
        uv = tuple(int(i) for i in uv)
        if len(uv) != 2 or len(set(uv)) != 2 or not all(0 <= i < in_channels for i in uv):
            raise ValueError(f"Off-ApexNet reads u and v: uv={list(uv)} must name two of the {in_channels} channels")
        self.uv = uv
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(1, 6, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.Conv2d(6, 16, kernel_size=5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            for _ in uv
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Linear(2 * 16 * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [torch.flatten(s(x[:, i : i + 1]), 1) for i, s in zip(self.uv, self.streams, strict=True)]
        return self.head(torch.cat(feats, dim=1))


def build_ststnet(num_classes: int, in_channels: int = 3, image_size: int = 28, **options) -> STSTNet:
    """Registry builder for STSTNet."""
    return STSTNet(num_classes, in_channels=in_channels, image_size=image_size, **options)


def build_off_apexnet(num_classes: int, in_channels: int = 3, image_size: int = 28, **options) -> OffApexNet:
    """Registry builder for Off-ApexNet."""
    return OffApexNet(num_classes, in_channels=in_channels, image_size=image_size, **options)
