"""The face stages ``detect`` → ``landmarks`` → ``align`` → ``equalize``, each storing per-clip arrays, and
:func:`run_face_stages`, which runs the same four computes with the same parameter classes on frames in memory.

A stage's frames are the clip's onset..offset (:meth:`ClipContext.frames`), so position 0 is the onset: detection
starts there and onset alignment takes its transform from there (:data:`ONSET`), in the stages and in
:func:`run_face_stages` alike. The parameter classes below are the only parameter classes of the face path.

===========================  ==============  =======================================================
stage / output               shape, dtype    meaning
===========================  ==============  =======================================================
``detect/box``               4 float32       face box (x0, y0, x1, y1), half-open, frame pixels
``detect/detection``         3 float32       (detector score, frame position, upsampling used)
``landmarks/landmarks``      T×68×2 float32  smoothed landmarks (x, y) in frame pixels
``landmarks/quality``        T float32       per-frame tracking quality in [0, 1] (see landmarks.py)
``landmarks/landmarks_raw``  T×68×2 float32  unsmoothed tracked landmarks
``align/frames``             T×S×S×3 uint8   aligned RGB crops
``align/transforms``         T×2×3 float32   frame → aligned pixel coordinates (cv2.warpAffine)
``align/landmarks``          T×68×2 float32  ``landmarks`` mapped by ``transforms``
``equalize/frames``          T×S×S×3 uint8   aligned crops after luminance equalisation
===========================  ==============  =======================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mer.pipeline.context import ClipContext
from mer.pipeline.face.align import ALIGN_DEFAULTS, ALIGN_MODES, BORDERS, REFERENCES, align_clip
from mer.pipeline.face.detect import DETECT_DEFAULTS, DETECTORS, FaceDetection, detect_face
from mer.pipeline.face.equalize import (
    DEFAULT_CLIP_LIMIT,
    DEFAULT_METHOD,
    DEFAULT_TILES,
    EQUALIZERS,
    equalize_frames,
)
from mer.pipeline.face.landmarks import MAX_INITS, TRACK_DEFAULTS, track_landmarks
from mer.pipeline.face.smoothing import SMOOTH_DEFAULTS, SMOOTHERS
from mer.pipeline.stage import Output, Stage, register

ONSET = 0
"""Position of the onset in a clip's frames (they run onset..offset): where detection starts and the reference
frame of onset alignment."""


def _check_choices(params: object, choices: dict[str, tuple[str, ...]]) -> None:
    name = type(params).__name__
    for field, allowed in choices.items():
        value = getattr(params, field)
        if value not in allowed:
            raise ValueError(f"{name}.{field}={value!r}; choose one of {allowed}")


@dataclass(frozen=True)
class DetectParams:
    """Face detection on the onset frame (:func:`mer.pipeline.face.detect.detect_face`).

    Parameters
    ----------
    detector : {"hog", "cnn"}
        dlib HOG + linear SVM (default) or the MMOD CNN (slow on a CPU).
    detect_frames : int
        Frames tried from the onset on (3): the onset, then the next ones while no face is found.
    max_upsample : int
        Upsamplings (×2 each) tried on a frame before the next one (1).
    min_score : float
        Lowest detector score kept (0.0, dlib's threshold).
    min_face_frac : float
        Smallest face side kept, as a fraction of the frame's shorter side (0.08).
    """

    detector: str = DETECT_DEFAULTS.detector
    detect_frames: int = DETECT_DEFAULTS.max_frames
    max_upsample: int = DETECT_DEFAULTS.max_upsample
    min_score: float = DETECT_DEFAULTS.min_score
    min_face_frac: float = DETECT_DEFAULTS.min_size_frac

    def __post_init__(self) -> None:
        _check_choices(self, {"detector": DETECTORS})
        if self.detect_frames < 1 or self.max_upsample < 0:
            raise ValueError(
                f"DetectParams.detect_frames must be ≥ 1 and max_upsample ≥ 0, got {self.detect_frames}, "
                f"{self.max_upsample}"
            )


@dataclass(frozen=True)
class LandmarkParams:
    """68-point tracking from the previous frame's landmarks, then smoothing without lag
    (:func:`mer.pipeline.face.landmarks.track_landmarks`, :func:`mer.pipeline.face.smoothing.smooth_track`).

    The defaults are the kernels' (:data:`~mer.pipeline.face.landmarks.TRACK_DEFAULTS`,
    :data:`~mer.pipeline.face.smoothing.SMOOTH_DEFAULTS`), named here as the stage stores them (``landmark_blur``
    is the tracker's ``blur``, ``savgol_window``/``savgol_order`` the smoother's ``window``/``polyorder``).

    Parameters
    ----------
    n_inits : int
        Predictor starts per tracked frame, 1..9 (3).
    landmark_blur : float
        σ of the Gaussian blur of the face crop, in canvas pixels (1/200 of the face box), 0..20; 0 is sharp (7.0).
    stride : int
        Track every ``stride``-th frame from the detection frame (and the clip's ends), interpolate the landmarks
        between them; every frame between two tracked ones whose box moved by more than ``recheck`` is tracked too,
        1..8 (4).
    half_res_blur : bool
        Blur the crop at half its resolution, then enlarge it: the same low-pass image at a quarter of the cost (True).
    calibration_frames : int
        Frames (spread over the tracked ones, the first one first) where the sharp 5-start ensemble calibrates the
        blurred starts' offset, 0..8 (1; stage 3 used 2: the offset is a constant, one frame fixes it as well).
    runaway_scale : float
        Largest |log| change of the blurred landmarks' size from the detection frame before the clip is tracked
        again with the box's size held at the detection frame's; 0 turns the check and the second pass off (0.15).
        Stage 3's tracker is ``n_inits=1, stride=1, half_res_blur=False, calibration_frames=2, runaway_scale=0``.
    changed_frame_limit : float
        A frame between tracked ones whose face region differs from the blend of its two tracked neighbours by more
        than this many grey levels (mean over a 16×16 thumbnail; a black, spliced or flashed frame) is tracked
        itself, so it keeps its own quality for QC; 0..255, 0 is off (6.0).
    recheck : float
        Relative box change from the start box (centre shift / size + |log size ratio|) above which all 5
        starts run, > 0 (0.05).
    max_outside : float
        Fraction of landmarks outside the frame at which the face counts as lost (0.25).
    follow_rotation : bool
        Turn each frame's crop back by the face's rotation since the detection frame (True).
    smoothing : {"one-euro", "savgol", "none"}
        Temporal smoother (one-euro).
    min_cutoff, beta, d_cutoff : float
        One-euro cut-off (0.04 cycles/frame), speed coefficient (0.2 (cycles/frame) per (px/frame)) and derivative
        cut-off (0.2 cycles/frame).
    bidirectional : bool
        One-euro forwards and backwards, averaged: no lag offline (True).
    savgol_window, savgol_order : int
        Savitzky–Golay window (7 frames) and polynomial order (2).
    """

    n_inits: int = TRACK_DEFAULTS.n_inits
    landmark_blur: float = TRACK_DEFAULTS.blur
    recheck: float = TRACK_DEFAULTS.recheck
    max_outside: float = TRACK_DEFAULTS.max_outside
    follow_rotation: bool = TRACK_DEFAULTS.follow_rotation
    stride: int = TRACK_DEFAULTS.stride
    half_res_blur: bool = TRACK_DEFAULTS.half_res_blur
    calibration_frames: int = TRACK_DEFAULTS.calibration_frames
    runaway_scale: float = TRACK_DEFAULTS.runaway_scale or 0.0  # 0 here is the kernel's None (off)
    changed_frame_limit: float = TRACK_DEFAULTS.changed_frame_limit
    smoothing: str = SMOOTH_DEFAULTS.method
    min_cutoff: float = SMOOTH_DEFAULTS.min_cutoff
    beta: float = SMOOTH_DEFAULTS.beta
    d_cutoff: float = SMOOTH_DEFAULTS.d_cutoff
    bidirectional: bool = SMOOTH_DEFAULTS.bidirectional
    savgol_window: int = SMOOTH_DEFAULTS.window
    savgol_order: int = SMOOTH_DEFAULTS.polyorder

    def __post_init__(self) -> None:
        _check_choices(self, {"smoothing": SMOOTHERS})
        if not 1 <= self.n_inits <= MAX_INITS:
            raise ValueError(f"LandmarkParams.n_inits must be 1..{MAX_INITS}, got {self.n_inits}")
        if not 0 <= self.landmark_blur <= 20:
            raise ValueError(f"LandmarkParams.landmark_blur must be 0..20 canvas pixels, got {self.landmark_blur}")
        if not self.recheck > 0:
            raise ValueError(f"LandmarkParams.recheck must be > 0 (a box change), got {self.recheck}")
        if not 1 <= self.stride <= 8:
            raise ValueError(f"LandmarkParams.stride must be 1..8 frames, got {self.stride}")
        if not 0 <= self.calibration_frames <= 8:
            raise ValueError(f"LandmarkParams.calibration_frames must be 0..8, got {self.calibration_frames}")
        if not 0 <= self.changed_frame_limit <= 255:
            limit = self.changed_frame_limit
            raise ValueError(f"LandmarkParams.changed_frame_limit must be 0..255 grey levels, got {limit}")
        if not self.runaway_scale >= 0:
            raise ValueError(f"LandmarkParams.runaway_scale must be >= 0 (0: off), got {self.runaway_scale}")

    def track_kwargs(self) -> dict[str, float | int | bool | None]:
        """The keyword arguments of :func:`~mer.pipeline.face.landmarks.track_landmarks` these parameters give
        (without the smoother's: :meth:`smooth_kwargs`)."""
        return {
            "n_inits": self.n_inits,
            "blur": self.landmark_blur,
            "recheck": self.recheck,
            "max_outside": self.max_outside,
            "follow_rotation": self.follow_rotation,
            "stride": self.stride,
            "half_res_blur": self.half_res_blur,
            "calibration_frames": self.calibration_frames,
            "runaway_scale": self.runaway_scale or None,
            "changed_frame_limit": self.changed_frame_limit,
        }

    def smooth_kwargs(self) -> dict[str, float | int | bool]:
        """The keyword arguments of :func:`~mer.pipeline.face.smoothing.smooth_track` for the chosen method."""
        if self.smoothing == "one-euro":
            return {
                "min_cutoff": self.min_cutoff,
                "beta": self.beta,
                "d_cutoff": self.d_cutoff,
                "bidirectional": self.bidirectional,
            }
        if self.smoothing == "savgol":
            return {"window": self.savgol_window, "polyorder": self.savgol_order}
        return {}


@dataclass(frozen=True)
class AlignParams:
    """Similarity alignment from eye geometry (:func:`mer.pipeline.face.align.align_clip`); the defaults are the
    kernel's (:data:`~mer.pipeline.face.align.ALIGN_DEFAULTS`; ``align_mode`` is its ``mode``).

    Parameters
    ----------
    reference : {"inner-corners", "eye-centres"}
        Points 39/42 (STAG, default) or the centroids of 36–41 and 42–47.
    align_mode : {"onset", "per-frame"}
        One transform from the onset frame for the whole clip (default), or one per frame.
    size : int
        Output side in pixels, ≥ 16 (256).
    eye_y, eye_distance : float or None
        Target height and spacing of the reference pair as fractions of ``size`` (None: 0.36/0.20 for inner
        corners, 0.35/0.33 for eye centres).
    border : {"replicate", "constant", "reflect"}
        Pixels outside the frame.
    """

    reference: str = ALIGN_DEFAULTS.reference
    align_mode: str = ALIGN_DEFAULTS.mode
    size: int = ALIGN_DEFAULTS.size
    eye_y: float | None = ALIGN_DEFAULTS.eye_y
    eye_distance: float | None = ALIGN_DEFAULTS.eye_distance
    border: str = ALIGN_DEFAULTS.border

    def __post_init__(self) -> None:
        _check_choices(self, {"reference": REFERENCES, "align_mode": ALIGN_MODES, "border": BORDERS})
        if self.size < 16:
            raise ValueError(f"AlignParams.size must be at least 16 pixels, got {self.size}")


@dataclass(frozen=True)
class EqualizeParams:
    """Luminance equalisation of the aligned frames (:func:`mer.pipeline.face.equalize.equalize_frames`).

    Parameters
    ----------
    method : {"hist", "clahe", "none"}
        Global histogram equalisation of Y (MESTI, default), CLAHE, or none.
    clahe_clip : float
        CLAHE clip limit (2.0).
    clahe_tiles : int
        CLAHE tiles per side (8: an 8×8 grid).
    """

    method: str = DEFAULT_METHOD
    clahe_clip: float = DEFAULT_CLIP_LIMIT
    clahe_tiles: int = DEFAULT_TILES

    def __post_init__(self) -> None:
        _check_choices(self, {"method": EQUALIZERS})
        if self.clahe_tiles < 1 or not self.clahe_clip > 0:
            raise ValueError(
                f"EqualizeParams.clahe_clip must be > 0 and clahe_tiles ≥ 1, got {self.clahe_clip}, {self.clahe_tiles}"
            )


def as_rgb_clip(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """A clip as ``T×H×W×3`` uint8 RGB.

    Parameters
    ----------
    frames : ndarray or sequence of ndarray
        ``T×H×W×3`` (returned as it is, no copy), ``T×H×W`` or ``T×H×W×1`` grey (stacked to 3 channels) uint8, or
        a sequence of such frames of one size.

    Raises
    ------
    ValueError
        Naming the first frame whose size or type differs from frame 0, or an empty clip.
    """
    if isinstance(frames, np.ndarray) and frames.ndim in (3, 4):
        clip = frames
        if clip.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got dtype {clip.dtype}")
    else:
        seq = [np.asarray(f) for f in frames]
        if not seq:
            raise ValueError("the clip has no frames")
        ref = seq[0]
        for t, f in enumerate(seq):
            if f.dtype != np.uint8:
                raise ValueError(f"frame {t} has dtype {f.dtype}; frames must be uint8")
            if f.shape != ref.shape:
                raise ValueError(
                    f"frame {t} has shape {f.shape} but frame 0 has shape {ref.shape}: "
                    "all frames of a clip must have the same size"
                )
        clip = np.stack(seq)
    if clip.shape[0] == 0:
        raise ValueError("the clip has no frames")
    if clip.ndim == 4 and clip.shape[3] == 1:
        clip = clip[..., 0]
    if clip.ndim == 3:
        return np.repeat(clip[..., None], 3, axis=3)
    if clip.ndim != 4 or clip.shape[3] != 3:
        raise ValueError(f"a clip must be T×H×W (grey) or T×H×W×3 (RGB), got shape {clip.shape}")
    return clip


def compute_detect(ctx: ClipContext, p: DetectParams) -> dict[str, np.ndarray]:
    """Find the face by detector score on the onset frame (retrying upsampled and on the next frames)."""
    det = detect_face(
        as_rgb_clip(ctx.frames()),
        detector=p.detector,
        start=ONSET,
        max_frames=p.detect_frames,
        max_upsample=p.max_upsample,
        min_score=p.min_score,
        min_size_frac=p.min_face_frac,
    )
    return {
        "box": np.asarray(det.box, dtype=np.float32),
        "detection": np.array([det.score, det.frame_index, det.upsample], dtype=np.float32),
    }


def compute_landmarks(ctx: ClipContext, p: LandmarkParams) -> dict[str, np.ndarray]:
    """Track 68 landmarks over every frame from the detection, then smooth them without lag."""
    box = ctx.input("detect", "box")
    score, frame_index, upsample = ctx.input("detect", "detection")
    detection = FaceDetection(tuple(float(v) for v in box), float(score), int(frame_index), int(upsample))
    track = track_landmarks(
        as_rgb_clip(ctx.frames()),
        detection,
        smoothing=p.smoothing,
        **p.track_kwargs(),  # type: ignore[arg-type]
        **p.smooth_kwargs(),
    )
    return {"landmarks": track.landmarks, "quality": track.quality.astype(np.float32), "landmarks_raw": track.raw}


def compute_align(ctx: ClipContext, p: AlignParams) -> dict[str, np.ndarray]:
    """Warp every frame with the eye-geometry similarity transform (from the onset frame by default)."""
    aligned = align_clip(
        as_rgb_clip(ctx.frames()),
        ctx.input("landmarks", "landmarks"),
        size=p.size,
        reference=p.reference,
        mode=p.align_mode,
        ref_frame=ONSET,
        eye_y=p.eye_y,
        eye_distance=p.eye_distance,
        border=p.border,
    )
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
        "2",  # 2: no ``onset`` parameter (detection starts at the onset, position 0); values as in 1
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
        "4",  # 2: one blurred start per frame, 5 where the box jumps; 3: crop turned with the face, blur 7 (issue 18);
        # 4: 3 starts on every 4th frame, interpolated between, blur at half resolution, 1 calibration frame, box size
        # held on a runaway
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


class FramesContext(ClipContext):
    """A :class:`ClipContext` over frames already in memory (onset..offset), with no manifest row and no store."""

    def __init__(self, frames: np.ndarray):
        super().__init__({"clip_id": "frames in memory"}, 0)
        self._clip = frames

    def frames(self) -> np.ndarray:
        return self._clip


def run_face_stages(
    frames: np.ndarray | Sequence[np.ndarray],
    detect: DetectParams | None = None,
    landmarks: LandmarkParams | None = None,
    align: AlignParams | None = None,
    equalize: EqualizeParams | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Run the four face stages' computes on one decoded clip, as the runner does, without a store.

    Parameters
    ----------
    frames : ndarray or sequence of ndarray
        The clip from its onset to its offset: ``T×H×W×3`` RGB or ``T×H×W`` grey uint8 (see :func:`as_rgb_clip`).
    detect, landmarks, align, equalize : params or None
        Each stage's parameters (None: the defaults).

    Returns
    -------
    dict of str to dict of str to ndarray
        Stage name → output name → array, the values the stages would store (see the module's table).
    """
    ctx = FramesContext(as_rgb_clip(frames))
    chosen = (
        (DETECT, detect or DetectParams()),
        (LANDMARKS, landmarks or LandmarkParams()),
        (ALIGN, align or AlignParams()),
        (EQUALIZE, equalize or EqualizeParams()),
    )
    for stage, params in chosen:
        if not isinstance(params, stage.params_type):
            raise TypeError(f"{stage.name} takes {stage.params_type.__name__}, got {type(params).__name__}")
        arrays = stage.compute(ctx, params)
        ctx.computed[stage.name] = {o.name: arrays[o.name] for o in stage.outputs}
    return ctx.computed
