"""Batch augmentation on the device: random horizontal flip, small rotations (the paper: ±5°, ±10°), crop.

Everything runs on the batch tensor where it lives (GPU or CPU), drawing random numbers from a
``torch.Generator`` on that device, so a given seed gives the same augmented batch every time.
For optical-flow inputs pass ``flow_channels=(iu, iv)``: a horizontal flip then negates u, and a rotation
turns the (u, v) vectors with the image. Multi-input batches draw one :class:`BatchTransform` per batch
(:func:`draw_transform`) and apply it to every image input (:func:`apply_transform`).
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


@dataclass(frozen=True)
class BatchTransform:
    """One random transform per sample, drawn once per batch and applied to every image input of it.

    ``flip``: N booleans (mirror left-right); ``degrees``: N rotation angles (0 = untouched);
    ``shift``: N x 2 integer pixel shifts (dx, dy) of a random crop with zero padding, or ``None``.
    """

    flip: torch.Tensor
    degrees: torch.Tensor | None = None
    shift: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.flip.shape[0])


def draw_transform(
    n: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    flip_prob: float = 0.5,
    angles: Sequence[float] = PAPER_ANGLES,
    crop_padding: int = 0,
) -> BatchTransform:
    """Draw flips (probability ``flip_prob``), angles (uniform over ``angles``) and crop shifts for ``n`` samples.

    ``crop_padding > 0`` adds a random crop of the image padded by that many zero pixels (a shift of
    ``-crop_padding..crop_padding`` pixels along x and y), as torchvision's ``RandomCrop(padding=p)``.
    The draws come from ``generator`` on ``device`` (no host synchronisation).
    """
    dev = torch.device(device) if device is not None else generator.device
    flips = torch.rand(n, generator=generator, device=dev) < flip_prob
    angles = [float(a) for a in angles]
    degrees = None
    if any(a != 0 for a in angles):
        choice = torch.randint(len(angles), (n,), generator=generator, device=dev)
        degrees = torch.tensor(angles, device=dev, dtype=torch.float32)[choice]
    shift = None
    if crop_padding > 0:
        shift = torch.randint(-crop_padding, crop_padding + 1, (n, 2), generator=generator, device=dev)
    return BatchTransform(flips, degrees, shift)


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each image of N x C x H x W ``x`` by ``shift[i] = (dx, dy)`` whole pixels, zero fill (exact copy)."""
    n, _, h, w = x.shape
    dev = x.device
    ys = torch.arange(h, device=dev).view(1, h, 1) - shift[:, 1].view(n, 1, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w) - shift[:, 0].view(n, 1, 1)
    valid = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).unsqueeze(1)
    flat = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).view(n, 1, h * w).expand(n, x.shape[1], h * w)
    out = x.reshape(n, x.shape[1], h * w).gather(2, flat).view_as(x)
    return out * valid.to(x.dtype) if x.is_floating_point() else torch.where(valid, out, torch.zeros_like(out))


def apply_transform(
    x: torch.Tensor, transform: BatchTransform, flow_channels: tuple[int, int] | None = None
) -> torch.Tensor:
    """Apply a drawn :class:`BatchTransform` to N x C x H x W ``x`` (flip, then rotation, then crop shift).

    Every image input of a batch (e.g. onset and apex) gets the same transform, so pairs stay aligned.
    Samples with no flip, angle 0 and shift 0 are left bit-exact.
    """
    n = x.shape[0]
    if len(transform) != n:
        raise ValueError(f"transform drawn for {len(transform)} samples, batch has {n}")
    out = torch.where(transform.flip.view(n, 1, 1, 1), hflip(x, flow_channels), x)
    if transform.degrees is not None:
        deg = transform.degrees
        rotated = rotate(out, deg, flow_channels)
        out = torch.where((deg != 0).view(n, 1, 1, 1), rotated, out)
    if transform.shift is not None:
        out = translate(out, transform.shift)
    return out


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    flip_prob: float = 0.5,
    angles: Sequence[float] = PAPER_ANGLES,
    flow_channels: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Randomly flip (probability ``flip_prob``) and rotate (an angle drawn uniformly from ``angles``).

    A thin wrapper: :func:`draw_transform` then :func:`apply_transform`. Samples drawn with angle 0 are left
    bit-exact (no resampling). No host synchronisation is needed.
    """
    transform = draw_transform(x.shape[0], generator, x.device, flip_prob, angles)
    return apply_transform(x, transform, flow_channels)
