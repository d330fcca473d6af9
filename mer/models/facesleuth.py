"""FaceSleuth (004_…txt; methods.md §3): MMNet's motion branch with vertical / learned-orientation attention,
a Swin "Facial Position Focaliser" on onset and apex, and the AU vector in the head.

Inputs ``onset``, ``apex`` (N×3×S×S in [0, 1], ImageNet-normalised inside) and ``au`` (N×21, 0/1; only with
``au=True``). Layout at S = 224:

    motion: apex − onset -> MMNet stem -> 4 blocks (128/128/256/512, strides 1/2/2/2) -> 512×14×14
        orientation=cva: vertical attention (per-row profile, coordinate-attention style)
        orientation=soa: the profile taken along a learned direction θ ∈ (0, π) per block (θ = π/2: CVA)
        orientation=none: plain residual blocks (ablation)
    FPF (fpf=True): Swin (patch 4, embed 128, depths [2,2,6], heads [4,8,16], window 7; timm's
        SwinTransformer reproduces it exactly) on onset and on apex with shared weights -> 14×14×512 each,
        added to the motion features
    head: flatten -> FC 512 -> [concat AU] -> BN -> ReLU -> FC 128 -> BN -> FC classes

CVA block (after the MMNet residual unit ``out``): ``p = mean_W(out)`` (N×C×H×1) -> 1×1 conv to
``max(8, C/32)`` -> BN -> h-swish -> 1×1 conv to C -> sigmoid = ``a_h``; ``a_h`` times the previous block's
``a_h`` (max-pooled (3,1)/(2,1) along H to this H, and a 1×1 conv initialised to the channel mean where the
channels change); output ``out · a_h`` (broadcast along W). SOA block: the features are rotated by
``θ − π/2`` (``grid_sample``, bilinear, zero fill) before the pooling and the profile attention is rotated
back (border fill) before it multiplies ``out``; ``θ = π·sigmoid(φ)`` keeps θ in (0, π) and ``φ = 0``
starts at the vertical, so an SOA block at θ = π/2 computes exactly what a CVA block with the same weights
does (the paper samples along lines with a straight-through mask; rotation + pooling is the public code's
differentiable form). ``shared_theta=True`` gives the four blocks one angle (the paper's "SOA shared").
``epoch_record`` reports every θ in degrees (the paper reports a drift to about 88°).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mer.models.mmnet import (
    MOTION_STRIDES,
    MOTION_WIDTHS,
    PAIR_INPUTS,
    STEM_CHANNELS,
    ImageNetNorm,
    MotionBranch,
    PlainBlock,
    ResidualUnit,
)

ORIENTATIONS = ("cva", "soa", "none")
AU_DIM = 21
FPF_EMBED = 128
FPF_DEPTHS = (2, 2, 6)
FPF_HEADS = (4, 8, 16)
FPF_WINDOW = 7


class HSwish(nn.Module):
    """``x · ReLU6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


def rotation_grid(angle: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """Sampling grid (N×H×W×2) that turns an H×W map by ``angle`` radians about its centre (differentiable).

    Pixel geometry is respected on non-square maps (the angle is in pixel units, not normalised ones).
    """
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    row0 = torch.stack([cos, sin * (h / w), zero])
    row1 = torch.stack([-sin * (w / h), cos, zero])
    theta = torch.stack([row0, row1]).unsqueeze(0).expand(n, 2, 3)
    return F.affine_grid(theta, [n, 1, h, w], align_corners=False)


class VerticalAttentionBlock(nn.Module):
    """CVA (``learn_angle=False``) or SOA (``learn_angle=True``); ``forward(x, prior)`` -> (out, a_h N×C×H×1)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, prior_channels: int | None = None,
                 learn_angle: bool = False) -> None:
        super().__init__()
        self.unit = ResidualUnit(in_channels, out_channels, stride)
        mid = max(8, out_channels // 32)
        self.profile = nn.Sequential(
            nn.Conv2d(out_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            HSwish(),
            nn.Conv2d(mid, out_channels, 1),
            nn.Sigmoid(),
        )
        self.prior_proj: nn.Module = nn.Identity()
        if prior_channels is not None and prior_channels != out_channels:
            proj = nn.Conv2d(prior_channels, out_channels, 1, bias=False)
            nn.init.constant_(proj.weight, 1.0 / prior_channels)
            self.prior_proj = proj
        self.theta_logit = nn.Parameter(torch.zeros(())) if learn_angle else None

    @property
    def theta(self) -> float:
        """The block's orientation in radians (π/2 for CVA)."""
        if self.theta_logit is None:
            return math.pi / 2
        return math.pi / (1.0 + math.exp(-float(self.theta_logit.detach())))

    def forward(self, x: torch.Tensor, prior: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.unit(x)
        n, _, h, w = out.shape
        grid = None
        if self.theta_logit is not None:
            angle = math.pi * torch.sigmoid(self.theta_logit.float()) - math.pi / 2
            grid = rotation_grid(angle, n, h, w).to(out.dtype)
            src = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        else:
            src = out
        a_h = self.profile(src.mean(dim=3, keepdim=True))  # N×C×H×1
        if prior is not None:
            while prior.shape[2] > h:
                prior = F.max_pool2d(prior, (3, 1), (2, 1), (1, 0))
            a_h = a_h * self.prior_proj(prior)
        attn = a_h.expand(n, a_h.shape[1], h, w)
        if grid is not None:
            back = rotation_grid(-(math.pi * torch.sigmoid(self.theta_logit.float()) - math.pi / 2), n, h, w)
            attn = F.grid_sample(attn, back.to(attn.dtype), mode="bilinear", padding_mode="border",
                                 align_corners=False)
        return out * attn, a_h


class PositionFocaliser(nn.Module):
    """Swin Transformer features (timm, ``pretrained=False``), N×3×S×S -> N×(embed·2^(stages-1))×S/16×S/16."""

    def __init__(self, image_size: int = 224, embed_dim: int = FPF_EMBED, depths: Sequence[int] = FPF_DEPTHS,
                 heads: Sequence[int] = FPF_HEADS, window: int = FPF_WINDOW, drop_path: float = 0.1) -> None:
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        self.swin = SwinTransformer(
            img_size=image_size, patch_size=4, embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(heads),
            window_size=window, num_classes=0, drop_path_rate=drop_path,
        )
        self.out_channels = embed_dim * 2 ** (len(depths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.swin.forward_features(x).permute(0, 3, 1, 2)  # timm gives N×H×W×C


class FaceSleuth(nn.Module):
    """FaceSleuth with its ablation switches; ``forward(onset, apex[, au])`` returns logits."""

    image_inputs = PAIR_INPUTS

    def __init__(
        self,
        num_classes: int,
        image_size: int = 224,
        orientation: str = "soa",
        fpf: bool = True,
        au: bool = True,
        au_dim: int = AU_DIM,
        widths: Sequence[int] = MOTION_WIDTHS,
        stem_channels: int = STEM_CHANNELS,
        fpf_embed: int = FPF_EMBED,
        fpf_depths: Sequence[int] = FPF_DEPTHS,
        fpf_heads: Sequence[int] = FPF_HEADS,
        window: int = FPF_WINDOW,
        hidden: Sequence[int] = (512, 128),
        drop_path: float = 0.1,
        shared_theta: bool = False,
    ) -> None:
        super().__init__()
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation={orientation!r}; choose one of {', '.join(ORIENTATIONS)}")
        if image_size % 16:
            raise ValueError(f"FaceSleuth needs an image size divisible by 16, got {image_size}")
        self.num_classes = num_classes
        self.orientation, self.use_au, self.au_dim = orientation, bool(au), au_dim
        self.input_names = (*PAIR_INPUTS, "au") if au else PAIR_INPUTS
        self.norm = ImageNetNorm()
        widths = tuple(widths)

        def block(i: int, c_in: int, c_out: int, stride: int) -> nn.Module:
            if orientation == "none":
                return PlainBlock(c_in, c_out, stride)
            prior = widths[i - 1] if i > 0 else None
            return VerticalAttentionBlock(c_in, c_out, stride, prior, learn_angle=orientation == "soa")

        self.motion = MotionBranch(block, widths, MOTION_STRIDES, stem_channels)
        if shared_theta and orientation == "soa":  # the paper's "SOA (shared θ)" variant: one angle
            first = self.soa_blocks()[0].theta_logit
            for b in self.soa_blocks()[1:]:
                b.theta_logit = first
        grid = image_size // 16
        self.fpf = None
        if fpf:
            self.fpf = PositionFocaliser(image_size, fpf_embed, fpf_depths, fpf_heads, window, drop_path)
            if self.fpf.out_channels != self.motion.out_channels:
                raise ValueError(
                    f"FPF gives {self.fpf.out_channels} channels, the motion branch {self.motion.out_channels}"
                )
        h1, h2 = hidden
        self.fc1 = nn.Linear(self.motion.out_channels * grid * grid, h1)
        self.head = nn.Sequential(
            nn.BatchNorm1d(h1 + (au_dim if au else 0)),
            nn.ReLU(inplace=True),
            nn.Linear(h1 + (au_dim if au else 0), h2),
            nn.BatchNorm1d(h2),
            nn.Linear(h2, num_classes),
        )

    def motion_input(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
        """``norm(apex) − norm(onset)`` = (apex − onset) / std: all zero when onset equals apex."""
        return self.norm(apex) - self.norm(onset)

    def soa_blocks(self) -> list[VerticalAttentionBlock]:
        """The blocks with a learned angle (empty unless ``orientation='soa'``)."""
        return [b for b in self.motion.blocks if isinstance(b, VerticalAttentionBlock) and b.theta_logit is not None]

    def epoch_record(self) -> dict[str, float]:
        """Each SOA block's θ in degrees, ``theta_1`` … ``theta_4`` (written to the history per epoch)."""
        return {f"theta_{i + 1}": math.degrees(b.theta) for i, b in enumerate(self.soa_blocks())}

    def forward(self, onset: torch.Tensor, apex: torch.Tensor, au: torch.Tensor | None = None) -> torch.Tensor:
        x = self.motion(self.motion_input(onset, apex))
        if self.fpf is not None:
            x = x + self.fpf(self.norm(onset)) + self.fpf(self.norm(apex))
        z = self.fc1(torch.flatten(x, 1))
        if self.use_au:
            if au is None:
                raise ValueError("FaceSleuth built with au=True needs the au input (N×21)")
            z = torch.cat([z, au.to(z.dtype)], dim=1)
        return self.head(z)


def build_facesleuth(num_classes: int, in_channels: int = 3, image_size: int = 224, **options) -> FaceSleuth:
    """Registry builder for FaceSleuth (RGB onset/apex pairs; ``in_channels`` must be 3)."""
    if in_channels != 3:
        raise ValueError(f"FaceSleuth takes RGB onset/apex frames, got {in_channels} channels")
    return FaceSleuth(num_classes=num_classes, image_size=image_size, **options)


def facesleuth_inputs(options: dict) -> dict[str, str]:
    """Default store sources of FaceSleuth's inputs for the given options (no ``au`` with ``au=false``)."""
    sources = {"onset": "onset-raw", "apex": "apex-frame-raw"}
    if options.get("au", True):
        sources["au"] = "manifest:au_vector"
    return sources
