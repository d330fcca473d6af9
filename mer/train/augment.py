"""Batch augmentation on the device: random horizontal flip, small rotations (the paper: ±5°, ±10°), crop.

Everything runs on the batch tensor where it lives (GPU or CPU), drawing random numbers from a
``torch.Generator`` on that device, so a given seed gives the same augmented batch every time.

What a channel means comes from a channel declaration, one name per channel (stored in the input entry's
attributes, e.g. ``["u", "v", "strain"]`` for a flow image; no declaration = every channel an intensity):
- ``u``, ``v``: signed horizontal / vertical displacement with zero = no motion and one scale shared by u and v.
  A horizontal flip negates u; a rotation turns the (u, v) vectors with the image.
- ``u_minmax``, ``v_minmax``: per-image min-max scaled components. A flip maps u to ``1 - u`` (exact: the
  mirrored field's min and max are the negated max and min); a rotation cannot be applied exactly and is refused.
- ``strain``, ``magnitude``, ``intensity``, ``r``, ``g``, ``b``, ``grey``: unchanged by both (strain is the
  Frobenius norm of the strain tensor, invariant under rotations and mirroring).
Multi-input batches draw one :class:`BatchTransform` per batch (:func:`draw_transform`) and apply it to every
image input (:func:`apply_transform`), each with its own channel declaration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAPER_ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)
INVARIANT_CHANNELS = frozenset({"strain", "magnitude", "intensity", "r", "g", "b", "grey"})
VECTOR_CHANNELS = frozenset({"u", "v", "u_minmax", "v_minmax"})


@dataclass(frozen=True)
class ChannelRoles:
    """Positions of the flow components in a declaration (None when absent) and whether they are min-max scaled."""

    u: int | None = None
    v: int | None = None
    minmax: bool = False


def channel_roles(channels: Sequence[str] | None, n_channels: int | None = None) -> ChannelRoles:
    """Check a channel declaration and find its u and v; unknown names and a lone u or v are errors."""
    if channels is None:
        return ChannelRoles()
    names = list(channels)
    if n_channels is not None and len(names) != n_channels:
        raise ValueError(f"channel declaration {names} names {len(names)} channels; the input has {n_channels}")
    unknown = [c for c in names if c not in INVARIANT_CHANNELS | VECTOR_CHANNELS]
    if unknown:
        known = ", ".join(sorted(INVARIANT_CHANNELS | VECTOR_CHANNELS))
        raise ValueError(f"channel declaration {names}: unknown channel(s) {unknown}; known: {known}")
    if len(set(names) & VECTOR_CHANNELS) != len([c for c in names if c in VECTOR_CHANNELS]):
        raise ValueError(f"channel declaration {names} repeats a flow component")
    for u, v in (("u", "v"), ("u_minmax", "v_minmax")):
        if (u in names) != (v in names):
            raise ValueError(f"channel declaration {names}: {u!r} and {v!r} must come together")
        if u in names:
            return ChannelRoles(names.index(u), names.index(v), minmax=u == "u_minmax")
    return ChannelRoles()


def hflip(x: torch.Tensor, channels: Sequence[str] | None = None) -> torch.Tensor:
    """Mirror N x C x H x W images left-right; a declared u becomes -u (``1 - u`` when min-max scaled)."""
    out = x.flip(-1)
    roles = channel_roles(channels, x.shape[1])
    if roles.u is not None:
        out = out.clone()
        out[:, roles.u] = (1 - out[:, roles.u]) if roles.minmax else -out[:, roles.u]
    return out


def rotate(x: torch.Tensor, degrees: torch.Tensor, channels: Sequence[str] | None = None) -> torch.Tensor:
    """Rotate each image of N x C x H x W ``x`` by ``degrees[i]`` about its centre (bilinear, zero fill).

    Positive angles turn the content clockwise as displayed (x right, y down). Declared (u, v) vectors are
    rotated by the same angle; min-max scaled components cannot be and raise ``ValueError``.
    """
    roles = channel_roles(channels, x.shape[1])
    if roles.minmax:
        raise ValueError(
            f"channels {list(channels or [])}: min-max scaled flow cannot be rotated exactly; rebuild the flow image "
            "with normalise=maxabs (signed) or train without rotations"
        )
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
    if roles.u is not None:
        iu, iv = roles.u, roles.v
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
    x: torch.Tensor, transform: BatchTransform, channels: Sequence[str] | None = None
) -> torch.Tensor:
    """Apply a drawn :class:`BatchTransform` to N x C x H x W ``x`` (flip, then rotation, then crop shift).

    Every image input of a batch (e.g. onset and apex) gets the same transform, so pairs stay aligned.
    Samples with no flip, angle 0 and shift 0 are left bit-exact.
    """
    n = x.shape[0]
    if len(transform) != n:
        raise ValueError(f"transform drawn for {len(transform)} samples, batch has {n}")
    out = torch.where(transform.flip.view(n, 1, 1, 1), hflip(x, channels), x)
    if transform.degrees is not None:
        deg = transform.degrees
        rotated = rotate(out, deg, channels)
        out = torch.where((deg != 0).view(n, 1, 1, 1), rotated, out)
    if transform.shift is not None:
        out = translate(out, transform.shift)
    return out


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    flip_prob: float = 0.5,
    angles: Sequence[float] = PAPER_ANGLES,
    channels: Sequence[str] | None = None,
) -> torch.Tensor:
    """Randomly flip (probability ``flip_prob``) and rotate (an angle drawn uniformly from ``angles``).

    ``channels``: the input's channel declaration (see the module docstring); None = intensities.

    A thin wrapper: :func:`draw_transform` then :func:`apply_transform`. Samples drawn with angle 0 are left
    bit-exact (no resampling). No host synchronisation is needed.
    """
    transform = draw_transform(x.shape[0], generator, x.device, flip_prob, angles)
    return apply_transform(x, transform, channels)
