"""The face stage on one decoded clip: detect → landmarks (tracked, smoothed) → align → equalise.

``process_clip(frames, FaceParams())`` returns plain arrays for the store:

=====================  ===================  ===========================================================
key                    shape, dtype         meaning
=====================  ===================  ===========================================================
``landmarks``          T×68×2 float32       smoothed landmarks (x, y) in frame pixels
``landmarks_raw``      T×68×2 float32       unsmoothed tracked landmarks
``quality``            T float32            per-frame tracking quality in [0, 1] (see landmarks.py)
``box``                4 float32            detection box (x0, y0, x1, y1), half-open, frame pixels
``detection_score``    () float32           detector score of the chosen face
``detection_frame``    () int32             clip frame on which the face was detected
``transforms``         T×2×3 float32        frame -> aligned pixel coordinates (cv2.warpAffine)
``aligned``            T×S×S×3 uint8        aligned RGB crops, after equalisation
``aligned_landmarks``  T×68×2 float32       ``landmarks`` mapped by ``transforms``
=====================  ===================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mer.pipeline.face.align import ALIGN_MODES, BORDERS, REFERENCES, AlignedClip, align_clip
from mer.pipeline.face.detect import DETECTORS, FaceDetection, detect_face
from mer.pipeline.face.equalize import EQUALIZERS, equalize_frames
from mer.pipeline.face.landmarks import LandmarkTrack, track_landmarks
from mer.pipeline.face.smoothing import SMOOTHERS


@dataclass(frozen=True)
class FaceParams:
    """Parameters of the face stage (all plain values, so they hash as canonical JSON).

    Detection: ``detector`` "hog" (dlib HOG, default) or "cnn" (dlib MMOD, slow on CPU); start on clip
    frame ``onset`` (0), retry upsampled up to ``max_upsample`` (1) and on the next frames, up to
    ``detect_frames`` (3) frames; keep faces with score ≥ ``min_score`` (0.0, dlib's threshold) and side
    ≥ ``min_face_frac`` (0.08) of the frame's shorter side.
    Landmarks: ``n_inits`` (1) predictor starts per frame (1..9) on the face crop blurred by ``landmark_blur``
    (3.5, σ in 1/200 of the face box; 0 = sharp), all 5 starts where the box moved by more than ``recheck``
    (0.05); the face counts as lost when more than ``max_outside`` (0.25) of its landmarks leave the frame.
    Smoothing: ``smoothing`` "one-euro" (default), "savgol" or "none"; one-euro ``min_cutoff`` (0.04
    cycles/frame), ``beta`` (0.2), ``d_cutoff`` (0.2 cycles/frame), ``bidirectional`` (True, zero lag
    offline); Savitzky–Golay
    ``savgol_window`` (7) and ``savgol_order`` (2).
    Alignment: ``reference`` "inner-corners" (points 39/42, STAG; default) or "eye-centres";
    ``align_mode`` "onset" (one transform from frame ``onset``, default) or "per-frame"; output ``size``
    (256); target ``eye_y`` / ``eye_distance`` as fractions of the size (None: 0.36/0.20 for inner
    corners, 0.35/0.33 for eye centres); ``border`` "replicate" (default), "constant" or "reflect".
    Equalisation: ``equalize`` "hist" (default, MESTI), "clahe" or "none"; CLAHE ``clahe_clip`` (2.0)
    and ``clahe_tiles`` (8, an 8×8 grid).
    """

    detector: str = "hog"
    onset: int = 0
    detect_frames: int = 3
    max_upsample: int = 1
    min_score: float = 0.0
    min_face_frac: float = 0.08
    n_inits: int = 1
    landmark_blur: float = 3.5
    recheck: float = 0.05
    max_outside: float = 0.25
    smoothing: str = "one-euro"
    min_cutoff: float = 0.04
    beta: float = 0.2
    d_cutoff: float = 0.2
    bidirectional: bool = True
    savgol_window: int = 7
    savgol_order: int = 2
    reference: str = "inner-corners"
    align_mode: str = "onset"
    size: int = 256
    eye_y: float | None = None
    eye_distance: float | None = None
    border: str = "replicate"
    equalize: str = "hist"
    clahe_clip: float = 2.0
    clahe_tiles: int = 8

    def __post_init__(self) -> None:
        choices = {
            "detector": DETECTORS,
            "smoothing": SMOOTHERS,
            "reference": REFERENCES,
            "align_mode": ALIGN_MODES,
            "border": BORDERS,
            "equalize": EQUALIZERS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"FaceParams.{name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.size < 16:
            raise ValueError(f"FaceParams.size must be at least 16 pixels, got {self.size}")
        if not 1 <= self.n_inits <= 9:
            raise ValueError(f"FaceParams.n_inits must be 1..9, got {self.n_inits}")
        if not 0 <= self.landmark_blur <= 20:
            raise ValueError(f"FaceParams.landmark_blur must be 0..20 canvas pixels, got {self.landmark_blur}")
        if not self.recheck > 0:
            raise ValueError(f"FaceParams.recheck must be > 0 (a box change), got {self.recheck}")
        if self.onset < 0:
            raise ValueError(f"FaceParams.onset must be a frame index ≥ 0, got {self.onset}")

    def to_dict(self) -> dict[str, object]:
        """The parameters as a plain dict (for canonical JSON / provenance)."""
        return asdict(self)


def as_rgb_clip(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Return a clip as T×H×W×3 uint8 (grey T×H×W or T×H×W×1 stacked to 3 channels; no copy when
    already RGB). Raises ValueError naming the first frame whose size or type differs from frame 0."""
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


def process_clip(frames: np.ndarray | Sequence[np.ndarray], params: FaceParams | None = None) -> dict[str, np.ndarray]:
    """Run detect → track landmarks → align → equalise on one decoded clip; returns named arrays."""
    p = FaceParams() if params is None else params
    clip = as_rgb_clip(frames)
    if p.onset >= clip.shape[0]:
        raise ValueError(f"onset frame {p.onset} is outside the clip of {clip.shape[0]} frames")
    det = detect_step(clip, p)
    track = track_step(clip, det, p)
    al = align_step(clip, track.landmarks, p, ref_frame=p.onset)
    aligned = equalize_frames(al.frames, p.equalize, clip_limit=p.clahe_clip, tile_grid=(p.clahe_tiles, p.clahe_tiles))
    return {
        "landmarks": track.landmarks,
        "landmarks_raw": track.raw,
        "quality": track.quality,
        "box": np.asarray(det.box, dtype=np.float32),
        "detection_score": np.asarray(det.score, dtype=np.float32),
        "detection_frame": np.asarray(det.frame_index, dtype=np.int32),
        "transforms": al.transforms,
        "aligned": aligned,
        "aligned_landmarks": al.landmarks,
    }


def detect_step(clip: np.ndarray, p: Any) -> FaceDetection:
    """Detection with the detect fields of ``p`` (FaceParams, or the ``detect`` stage's params: same names)."""
    return detect_face(
        clip,
        detector=p.detector,
        start=p.onset,
        max_frames=p.detect_frames,
        max_upsample=p.max_upsample,
        min_score=p.min_score,
        min_size_frac=p.min_face_frac,
    )


def track_step(clip: np.ndarray, detection: FaceDetection, p: Any) -> LandmarkTrack:
    """Landmark tracking and smoothing with the landmark fields of ``p`` (FaceParams or the stage's params)."""
    return track_landmarks(
        clip,
        detection,
        smoothing=p.smoothing,
        n_inits=p.n_inits,
        blur=p.landmark_blur,
        recheck=p.recheck,
        max_outside=p.max_outside,
        **smooth_kwargs(p),
    )


def align_step(clip: np.ndarray, landmarks: np.ndarray, p: Any, ref_frame: int = 0) -> AlignedClip:
    """Alignment with the align fields of ``p`` (FaceParams or the stage's params), from frame ``ref_frame``."""
    return align_clip(
        clip,
        landmarks,
        size=p.size,
        reference=p.reference,
        mode=p.align_mode,
        ref_frame=ref_frame,
        eye_y=p.eye_y,
        eye_distance=p.eye_distance,
        border=p.border,
    )


def smooth_kwargs(p: Any) -> dict[str, float | int | bool]:
    """The smoothing keyword arguments that ``track_landmarks`` takes for the chosen method."""
    if p.smoothing == "one-euro":
        return {
            "min_cutoff": p.min_cutoff,
            "beta": p.beta,
            "d_cutoff": p.d_cutoff,
            "bidirectional": p.bidirectional,
        }
    if p.smoothing == "savgol":
        return {"window": p.savgol_window, "polyorder": p.savgol_order}
    return {}
