"""Single-image input stages — ``mesti``, ``dynamic``, ``apex``, ``onset``, ``diff`` — over equalised faces,
and the raw frame stages ``onset-raw`` / ``apex-raw`` over the aligned (not equalised) faces.

Each writes one dataset array ``image`` (N×3×size×size: uint8 for min-max, float32 for z-score/none) and
``apex`` (N×2 int32: the apex position inside onset..offset, 0-based, and its frame number; -1 where unused).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from mer.pipeline.context import ClipContext
from mer.pipeline.stage import Output, Stage, register
from mer.pipeline.temporal.apex import APEX_MODES, resolve_apex
from mer.pipeline.temporal.single_image import NORMS, encode_clip, raw_frame


def _check(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; choose one of {', '.join(map(str, allowed))}")


def _check_size(size: int) -> None:
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")


def _check_apex(apex: str, fallback: str | None) -> None:
    """The apex mode and its fallback, as every apex-reading stage takes them."""
    _check("apex", apex, APEX_MODES)
    _check("apex_fallback", fallback, (None, "middle", "detected"))


@dataclass(frozen=True)
class ImageParams:
    """Size and normalisation shared by every single-image input."""

    size: int = 224
    norm: str = "minmax"

    def __post_init__(self) -> None:
        _check("norm", self.norm, NORMS)
        _check_size(self.size)


@dataclass(frozen=True)
class ApexImageParams(ImageParams):
    """Inputs that need an apex: ``annotated`` (``apex_fallback`` when missing), ``middle`` or ``detected``."""

    apex: str = "annotated"
    apex_fallback: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_apex(self.apex, self.apex_fallback)


@dataclass(frozen=True)
class MestiParams(ApexImageParams):
    """MESTI: apex-centred approximate rank pooling (``mesti`` or ``mesti-distance`` weights)."""

    scheme: str = "mesti"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("scheme", self.scheme, ("mesti", "mesti-distance"))


@dataclass(frozen=True)
class DynamicParams(ImageParams):
    """Dynamic image: Bilen's approximate rank pooling (``di``) or its linear form (``di-linear``)."""

    scheme: str = "di"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("scheme", self.scheme, ("di", "di-linear"))


def clip_apex(ctx: ClipContext, mode: str, fallback: str | None, frames: np.ndarray) -> int:
    """The apex position (0-based inside the clip) for the chosen mode; errors name the clip."""
    annotated = ctx.row.get("apex")
    position = None
    if annotated is not None and not (isinstance(annotated, float) and np.isnan(annotated)):
        numbers = list(ctx.row["frame_numbers"])
        if int(annotated) not in numbers:
            raise ValueError(
                f"clip {ctx.clip_id}: annotated apex frame {annotated} is not among its frames "
                f"{numbers[0]}..{numbers[-1]}"
            )
        position = numbers.index(int(annotated))
    try:
        return resolve_apex(mode, len(frames), position, frames=frames, fallback=fallback)
    except ValueError as exc:
        raise ValueError(f"clip {ctx.clip_id}: {exc}") from None


def compute_image(kind: str, ctx: ClipContext, params: ImageParams) -> dict[str, np.ndarray]:
    """Encode the clip's equalised face frames as one network-ready image of ``kind``."""
    frames = ctx.input("equalize", "frames")
    apex = clip_apex(ctx, params.apex, params.apex_fallback, frames) if isinstance(params, ApexImageParams) else None
    scheme = getattr(params, "scheme", None)
    image = encode_clip(frames, kind, apex=apex, scheme=scheme, size=params.size, norm=params.norm)
    apex_row = [-1, -1] if apex is None else [apex, int(ctx.row["frame_numbers"][apex])]
    return {"image": image, "apex": np.array(apex_row, dtype=np.int32)}


def _image_stage(kind: str, params_type: type, description: str) -> Stage:
    return register(
        Stage(
            kind,
            "1",
            params_type,
            ("equalize",),
            (
                Output(
                    "image",
                    lambda p: "uint8" if p.norm == "minmax" else "float32",
                    lambda p: (3, p.size, p.size),
                    ("channel", "y", "x"),
                ),
                Output("apex", "int32", lambda p: (2,), ("apex_field",)),
            ),
            partial(compute_image, kind),
            description,
        )
    )


MESTI = _image_stage("mesti", MestiParams, "MESTI image N×3×S×S (apex-centred rank pooling) and the apex used")
DYNAMIC = _image_stage("dynamic", DynamicParams, "dynamic image N×3×S×S (approximate rank pooling)")
APEX = _image_stage("apex", ApexImageParams, "apex frame N×3×S×S")
ONSET = _image_stage("onset", ImageParams, "onset frame N×3×S×S")
DIFF = _image_stage("diff", ApexImageParams, "apex − onset difference N×3×S×S")



@dataclass(frozen=True)
class RawFrameParams:
    """A raw aligned frame at ``size`` (uint8 RGB, no equalisation or min-max)."""

    size: int = 224

    def __post_init__(self) -> None:
        _check_size(self.size)


@dataclass(frozen=True)
class RawApexParams(RawFrameParams):
    """The raw apex frame: ``apex`` chosen as for the apex image."""

    apex: str = "annotated"
    apex_fallback: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_apex(self.apex, self.apex_fallback)


def compute_raw_frame(which: str, ctx: ClipContext, params: RawFrameParams) -> dict[str, np.ndarray]:
    """The onset (first) or apex frame of the aligned crop, resized, uint8 RGB channels first."""
    frames = ctx.input("align", "frames")
    if which == "onset":
        position = 0
    else:
        assert isinstance(params, RawApexParams)
        position = clip_apex(ctx, params.apex, params.apex_fallback, frames)
    image = raw_frame(frames[position], params.size)
    return {"image": image, "apex": np.array([position, int(ctx.row["frame_numbers"][position])], dtype=np.int32)}


def _raw_stage(which: str, params_type: type, description: str) -> Stage:
    return register(
        Stage(
            f"{which}-raw",
            "1",
            params_type,
            ("align",),
            (
                Output("image", "uint8", lambda p: (3, p.size, p.size)),
                Output("apex", "int32", lambda p: (2,)),
            ),
            partial(compute_raw_frame, which),
            description,
        )
    )


# FaceSleuth / MMNet inputs: the pair comes from the same aligned crop (aligned once from the onset) and is
# not equalised or min-max scaled per image, so apex - onset is the true change; the model normalises.
ONSET_RAW = _raw_stage("onset", RawFrameParams, "raw aligned onset frame N×3×S×S uint8 RGB (and its position, frame)")
APEX_RAW = _raw_stage("apex", RawApexParams, "raw aligned apex frame N×3×S×S uint8 RGB and the apex used")

IMAGE_STAGES = ["mesti", "dynamic", "apex", "onset", "diff"]
RAW_FRAME_STAGES = ["onset-raw", "apex-raw"]
