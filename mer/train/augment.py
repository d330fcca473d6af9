"""Batch augmentation on the device: random horizontal flip and small rotations (the paper: ±5°, ±10°).

Everything runs on the batch tensor where it lives (GPU or CPU), drawing random numbers from a
``torch.Generator`` on that device, so a given seed gives the same augmented batch every time.
For optical-flow inputs pass ``flow_channels=(iu, iv)``: a horizontal flip then negates u, and a rotation
turns the (u, v) vectors with the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAPER_ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of :func:`augment_batch`."""

    flip_prob: float = 0.5
    angles: tuple[float, ...] = PAPER_ANGLES
    flow_channels: tuple[int, int] | None = None


def hflip(x: torch.Tensor, flow_channels: tuple[int, int] | None = None) -> torch.Tensor:
    """Mirror N x C x H x W images left-right (negating the u channel of flow inputs)."""
    out = x.flip(-1)
    if flow_channels is not None:
        out = out.clone()
        out[:, flow_channels[0]] = -out[:, flow_channels[0]]
    return out


def rotate(x: torch.Tensor, degrees: torch.Tensor, flow_channels: tuple[int, int] | None = None) -> torch.Tensor:
    """Rotate each image of N x C x H x W ``x`` by ``degrees[i]`` about its centre (bilinear, zero fill).

    Positive angles turn the content clockwise as displayed (x right, y down). For flow inputs the
    (u, v) vectors are rotated by the same angle.
    """
    n, _, h, w = x.shape
    rad = degrees.to(device=x.device, dtype=torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # affine_grid maps output to input coordinates in normalised units: input = S^-1 R^T S output,
    # where R (pixel units) turns content clockwise on screen and S = diag(W/2, H/2).
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = sin * (h / w)
    theta[:, 1, 0] = -sin * (w / h)
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if flow_channels is not None:
        iu, iv = flow_channels
        u, v = out[:, iu].clone(), out[:, iv].clone()
        c, s = cos.view(n, 1, 1), sin.view(n, 1, 1)
        out[:, iu] = c * u - s * v
        out[:, iv] = s * u + c * v
    return out.to(x.dtype)


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    flip_prob: float = 0.5,
    angles: Sequence[float] = PAPER_ANGLES,
    flow_channels: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Randomly flip (probability ``flip_prob``) and rotate (an angle drawn uniformly from ``angles``).

    Samples drawn with angle 0 are left bit-exact (no resampling). No host synchronisation is needed.
    """
    n = x.shape[0]
    dev = x.device
    flips = torch.rand(n, generator=generator, device=dev) < flip_prob
    out = torch.where(flips.view(n, 1, 1, 1), hflip(x, flow_channels), x)
    angles = [float(a) for a in angles]
    if any(a != 0 for a in angles):
        choice = torch.randint(len(angles), (n,), generator=generator, device=dev)
        deg = torch.tensor(angles, device=dev, dtype=torch.float32)[choice]
        rotated = rotate(out, deg, flow_channels)
        out = torch.where((deg != 0).view(n, 1, 1, 1), rotated, out)
    return out
