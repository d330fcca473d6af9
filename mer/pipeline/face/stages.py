"""The face stages ``detect`` → ``landmarks`` → ``align`` → ``equalize``, each storing per-clip arrays.

They wrap the kernels in :mod:`mer.pipeline.face`; the parameter defaults are those of
:class:`mer.pipeline.face.chain.FaceParams`, which also validates them. Frames are decoded once per pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mer.pipeline.context import ClipContext
from mer.pipeline.face.chain import FaceParams, align_step, as_rgb_clip, detect_step, track_step
from mer.pipeline.face.detect import FaceDetection
from mer.pipeline.face.equalize import equalize_frames
from mer.pipeline.stage import Output, Stage, register

# One source for the defaults: the kernels' FaceParams.
_DEFAULTS = FaceParams()


@dataclass(frozen=True)
class DetectParams:
    """dlib ``hog`` (default) or ``cnn`` detector on clip frame ``onset``, retrying upsampled and on later frames."""

    detector: str = _DEFAULTS.detector
    onset: int = _DEFAULTS.onset
    detect_frames: int = _DEFAULTS.detect_frames
    max_upsample: int = _DEFAULTS.max_upsample
    min_score: float = _DEFAULTS.min_score
    min_face_frac: float = _DEFAULTS.min_face_frac

    def __post_init__(self) -> None:
        FaceParams(**asdict(self))


@dataclass(frozen=True)
class LandmarkParams:
    """68-point tracking from the previous frame's landmarks; one-euro (default), Savitzky–Golay or no smoothing."""

    n_inits: int = _DEFAULTS.n_inits
    landmark_blur: float = _DEFAULTS.landmark_blur
    recheck: float = _DEFAULTS.recheck
    max_outside: float = _DEFAULTS.max_outside
    smoothing: str = _DEFAULTS.smoothing
    min_cutoff: float = _DEFAULTS.min_cutoff
    beta: float = _DEFAULTS.beta
    d_cutoff: float = _DEFAULTS.d_cutoff
    bidirectional: bool = _DEFAULTS.bidirectional
    savgol_window: int = _DEFAULTS.savgol_window
    savgol_order: int = _DEFAULTS.savgol_order

    def __post_init__(self) -> None:
        FaceParams(**asdict(self))


@dataclass(frozen=True)
class AlignParams:
    """Similarity alignment from eye geometry (STAG's inner corners 39/42 or eye centres), once from the onset."""

    reference: str = _DEFAULTS.reference
    align_mode: str = _DEFAULTS.align_mode
    size: int = _DEFAULTS.size
    eye_y: float | None = _DEFAULTS.eye_y
    eye_distance: float | None = _DEFAULTS.eye_distance
    border: str = _DEFAULTS.border

    def __post_init__(self) -> None:
        FaceParams(**asdict(self))


@dataclass(frozen=True)
class EqualizeParams:
    """Luminance histogram equalisation (``hist``, as the MESTI paper), ``clahe`` or ``none``."""

    method: str = _DEFAULTS.equalize
    clahe_clip: float = _DEFAULTS.clahe_clip
    clahe_tiles: int = _DEFAULTS.clahe_tiles

    def __post_init__(self) -> None:
        FaceParams(equalize=self.method, clahe_clip=self.clahe_clip, clahe_tiles=self.clahe_tiles)


def _clip(ctx: ClipContext) -> np.ndarray:
    return as_rgb_clip(ctx.frames())


def compute_detect(ctx: ClipContext, p: DetectParams) -> dict[str, np.ndarray]:
    """Find the face by detector score on the onset frame (retrying upsampled and on the next frames)."""
    det = detect_step(_clip(ctx), p)
    return {
        "box": np.asarray(det.box, dtype=np.float32),
        "detection": np.array([det.score, det.frame_index, det.upsample], dtype=np.float32),
    }


def compute_landmarks(ctx: ClipContext, p: LandmarkParams) -> dict[str, np.ndarray]:
    """Track 68 landmarks over every frame from the detection, then smooth them without lag."""
    box = ctx.input("detect", "box")
    score, frame_index, upsample = ctx.input("detect", "detection")
    detection = FaceDetection(tuple(float(v) for v in box), float(score), int(frame_index), int(upsample))
    track = track_step(_clip(ctx), detection, p)
    return {"landmarks": track.landmarks, "quality": track.quality.astype(np.float32), "landmarks_raw": track.raw}


def compute_align(ctx: ClipContext, p: AlignParams) -> dict[str, np.ndarray]:
    """Warp every frame with the eye-geometry similarity transform (from the onset frame by default)."""
    aligned = align_step(_clip(ctx), ctx.input("landmarks", "landmarks"), p, ref_frame=0)
    return {
        "frames": aligned.frames,
        "transforms": aligned.transforms.astype(np.float32),
        "landmarks": aligned.landmarks.astype(np.float32),
    }


def compute_equalize(ctx: ClipContext, p: EqualizeParams) -> dict[str, np.ndarray]:
    """Equalise the luminance of each aligned frame."""
    frames = ctx.input("align", "frames")
    out = equalize_frames(frames, p.method, clip_limit=p.clahe_clip, tile_grid=(p.clahe_tiles, p.clahe_tiles))
    return {"frames": np.ascontiguousarray(out, dtype=np.uint8)}


DETECT = register(
    Stage(
        "detect",
        "1",
        DetectParams,
        ("ingest",),
        (
            Output("box", "float32", lambda p: (4,), ("box_side",)),
            Output("detection", "float32", lambda p: (3,), ("detection_field",)),
        ),
        compute_detect,
        "face box (x0, y0, x1, y1) and detection (score, frame, upsample)",
    )
)
LANDMARKS = register(
    Stage(
        "landmarks",
        "2",  # 2: one blurred start per frame, the 5-start ensemble only where the box jumps (issue 18)
        LandmarkParams,
        ("detect",),
        (Output("landmarks", "float32"), Output("quality", "float32"), Output("landmarks_raw", "float32")),
        compute_landmarks,
        "tracked, smoothed 68-point landmarks T×68×2 and per-frame quality",
    )
)
ALIGN = register(
    Stage(
        "align",
        "1",
        AlignParams,
        ("landmarks",),
        (Output("frames", "uint8"), Output("transforms", "float32"), Output("landmarks", "float32")),
        compute_align,
        "aligned face crops T×S×S×3, transforms T×2×3, aligned landmarks",
    )
)
EQUALIZE = register(
    Stage(
        "equalize",
        "1",
        EqualizeParams,
        ("align",),
        (Output("frames", "uint8"),),
        compute_equalize,
        "luminance-equalised aligned frames T×S×S×3",
    )
)

FACE_STAGES = ["detect", "landmarks", "align", "equalize"]
