"""The ``ingest`` stage: decode every frame once, check the clip, and record each source file's checksum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mer.pipeline.context import ClipContext
from mer.pipeline.stage import Output, Stage, register


@dataclass(frozen=True)
class IngestParams:
    """Ingest has no tunable parameters; the class exists so its key is computed like every other stage's."""


def compute_ingest(ctx: ClipContext, params: IngestParams) -> dict[str, np.ndarray]:
    """Decode the clip (failing on a missing, unreadable or odd-sized frame) and hash its files."""
    frames = ctx.frames()
    return {
        "frame_sha256": ctx.frame_digests(),
        "frame_size": np.array([frames.shape[1], frames.shape[2], frames.shape[0]], dtype=np.int32),
    }


INGEST = register(
    Stage(
        name="ingest",
        version="1",
        params_type=IngestParams,
        inputs=(),
        outputs=(Output("frame_sha256", "uint8"), Output("frame_size", "int32", lambda p: (3,), ("size_field",))),
        compute=compute_ingest,
        description="source frame checksums (T×32 SHA-256) and frame size (height, width, frames)",
    )
)
