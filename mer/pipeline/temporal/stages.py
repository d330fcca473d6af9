"""The ``apex`` stage — each clip's apex position — and the single-image input stages over equalised faces:
``mesti``, ``dynamic``, ``apex-frame``, ``onset``, ``diff``; the raw frame stages ``onset-raw`` /
``apex-frame-raw`` over the aligned (not equalised) faces.

``apex`` is the one place where the apex is chosen (mode ``annotated`` | ``middle`` | ``detected`` and a fallback
for clips without annotation, checked and applied once). It stores ``apex`` (N×2 int32: the position inside
onset..offset, 0-based, and its frame number), ``rule`` (N×1 uint8: the rule that gave it, an index into
:data:`~mer.pipeline.temporal.apex.APEX_RULES`) and, per clip, ``motion`` (T float32: the motion curve the
detector used; NaN for a clip whose apex was not detected). Every stage that needs an apex lists ``apex`` among
its inputs and reads that position, so MESTI, the apex frame, diff and flow of one clip use the same apex.

The image stages write one dataset array ``image`` (N×3×size×size: uint8 for min-max, float32 for z-score/none) and
``apex`` (N×2 int32, as read from the ``apex`` stage; -1 where unused).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from mer.pipeline.context import ClipContext
from mer.pipeline.stage import Output, Stage, register
from mer.pipeline.temporal.apex import APEX_RULES, apex_rule, check_mode, choose_apex, is_missing
from mer.pipeline.temporal.single_image import NORMS, encode_clip, raw_frame

DEFAULT_APEX_MODE = "annotated"
DEFAULT_APEX_FALLBACK = "middle"


def _check(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; choose one of {', '.join(map(str, allowed))}")


def _check_size(size: int) -> None:
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")


# ------------------------------------------------------------------------------------------------ apex
@dataclass(frozen=True)
class ApexParams:
    """How each clip's apex is chosen: ``mode`` ``annotated`` | ``middle`` | ``detected``, and ``fallback``
    (``middle`` | ``detected`` | None = error) for an ``annotated`` clip without annotation.

    The default (annotated, falling back to the middle frame) is the MESTI paper's choice: the annotated apex
    where the dataset has one, the middle frame for SMIC, which has none; the stored ``rule`` says which clips
    fell back, so nothing is hidden.
    """

    mode: str = DEFAULT_APEX_MODE
    fallback: str | None = DEFAULT_APEX_FALLBACK

    def __post_init__(self) -> None:
        check_mode(self.mode, self.fallback)


def annotated_position(ctx: ClipContext) -> int | None:
    """The clip's annotated apex as a position inside its frames (None when the manifest has none); an annotated
    frame number that is not among the clip's frames is an error naming the clip."""
    annotated = ctx.row.get("apex")
    if is_missing(annotated):
        return None
    numbers = [int(n) for n in ctx.row["frame_numbers"]]
    if int(annotated) not in numbers:
        raise ValueError(
            f"clip {ctx.clip_id}: annotated apex frame {annotated} is not among its frames {numbers[0]}..{numbers[-1]}"
        )
    return numbers.index(int(annotated))


def compute_apex(ctx: ClipContext, p: ApexParams) -> dict[str, np.ndarray]:
    """The clip's apex position and frame number, the rule that gave it, and the detector's motion curve."""
    numbers = list(ctx.row["frame_numbers"])
    annotated = annotated_position(ctx)
    try:
        detect = apex_rule(p.mode, annotated, p.fallback) == "detected"
        frames = ctx.input("align", "frames") if detect else None  # the faces are read only to detect
        choice = choose_apex(p.mode, len(numbers), annotated, frames, p.fallback)
    except ValueError as exc:
        raise ValueError(f"clip {ctx.clip_id}: {exc}") from None
    # no curve (NaN) where the apex was not detected
    motion = np.full(len(numbers), np.nan) if choice.motion is None else choice.motion
    return {
        "apex": np.array([choice.position, int(numbers[choice.position])], dtype=np.int32),
        "rule": np.array([APEX_RULES.index(choice.rule)], dtype=np.uint8),
        "motion": motion.astype(np.float32),
    }


APEX = register(
    Stage(
        "apex",
        "2",  # version 1 of the name was the apex-frame image (now ``apex-frame``)
        ApexParams,
        ("align",),  # read only when a clip's apex is detected
        (
            Output("apex", "int32", lambda p: (2,), ("apex_field",)),
            Output("rule", "uint8", lambda p: (1,), ("rule",)),
            Output("motion", "float32"),
        ),
        compute_apex,
        "apex position N×2 (0-based in onset..offset, frame number), rule N×1 (0 annotated, 1 middle, 2 detected) "
        "and the detector's motion curve T per clip (NaN unless detected)",
        attributes=lambda p: {"rules": list(APEX_RULES)},
    )
)


def stored_apex(ctx: ClipContext) -> int:
    """The clip's apex position (0-based inside onset..offset) from the ``apex`` stage."""
    return int(ctx.input("apex", "apex")[0])


# ------------------------------------------------------------------------------------------------ images
@dataclass(frozen=True)
class ImageParams:
    """Size and normalisation shared by every single-image input."""

    size: int = 224
    norm: str = "minmax"

    def __post_init__(self) -> None:
        _check("norm", self.norm, NORMS)
        _check_size(self.size)


@dataclass(frozen=True)
class MestiParams(ImageParams):
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


def compute_image(kind: str, ctx: ClipContext, params: ImageParams) -> dict[str, np.ndarray]:
    """Encode the clip's equalised face frames as one network-ready image of ``kind`` (a stage name)."""
    frames = ctx.input("equalize", "frames")
    apex = stored_apex(ctx) if kind in APEX_IMAGE_STAGES else None
    scheme = getattr(params, "scheme", None)
    image = encode_clip(frames, kind, apex=apex, scheme=scheme, size=params.size, norm=params.norm)
    apex_row = [-1, -1] if apex is None else [apex, int(ctx.row["frame_numbers"][apex])]
    return {"image": image, "apex": np.array(apex_row, dtype=np.int32)}


APEX_IMAGE_STAGES = ("mesti", "apex-frame", "diff")


def _image_stage(kind: str, version: str, params_type: type, description: str) -> Stage:
    return register(
        Stage(
            kind,
            version,
            params_type,
            ("equalize", "apex") if kind in APEX_IMAGE_STAGES else ("equalize",),
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


# version 2: the apex is read from the ``apex`` stage (an input), no longer chosen by the stage's own parameters
MESTI = _image_stage("mesti", "2", MestiParams, "MESTI image N×3×S×S (apex-centred rank pooling) and the apex used")
DYNAMIC = _image_stage("dynamic", "1", DynamicParams, "dynamic image N×3×S×S (approximate rank pooling)")
APEX_FRAME = _image_stage("apex-frame", "2", ImageParams, "apex frame N×3×S×S and the apex used")
ONSET = _image_stage("onset", "1", ImageParams, "onset frame N×3×S×S")
DIFF = _image_stage("diff", "2", ImageParams, "apex − onset difference N×3×S×S and the apex used")


@dataclass(frozen=True)
class RawFrameParams:
    """A raw aligned frame at ``size`` (uint8 RGB, no equalisation or min-max)."""

    size: int = 224

    def __post_init__(self) -> None:
        _check_size(self.size)


def compute_raw_frame(which: str, ctx: ClipContext, params: RawFrameParams) -> dict[str, np.ndarray]:
    """The onset (first) or apex frame of the aligned crop, resized, uint8 RGB channels first."""
    frames = ctx.input("align", "frames")
    position = 0 if which == "onset" else stored_apex(ctx)
    image = raw_frame(frames[position], params.size)
    return {"image": image, "apex": np.array([position, int(ctx.row["frame_numbers"][position])], dtype=np.int32)}


def _raw_stage(name: str, version: str, inputs: tuple[str, ...], description: str) -> Stage:
    return register(
        Stage(
            name,
            version,
            RawFrameParams,
            inputs,
            (
                Output("image", "uint8", lambda p: (3, p.size, p.size)),
                Output("apex", "int32", lambda p: (2,)),
            ),
            partial(compute_raw_frame, "onset" if name == "onset-raw" else "apex"),
            description,
        )
    )


# FaceSleuth / MMNet inputs: the pair comes from the same aligned crop (aligned once from the onset) and is
# not equalised or min-max scaled per image, so apex - onset is the true change; the model normalises.
ONSET_RAW = _raw_stage(
    "onset-raw", "1", ("align",), "raw aligned onset frame N×3×S×S uint8 RGB (and its position, frame)"
)
APEX_FRAME_RAW = _raw_stage(
    "apex-frame-raw", "2", ("align", "apex"), "raw aligned apex frame N×3×S×S uint8 RGB and the apex used"
)

IMAGE_STAGES = ["mesti", "dynamic", "apex-frame", "onset", "diff"]
RAW_FRAME_STAGES = ["onset-raw", "apex-frame-raw"]
