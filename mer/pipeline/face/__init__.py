"""Face kernels: detection, tracked 68-point landmarks, eye-based alignment, equalisation, figures.

Plain functions on arrays (RGB uint8 frames, T×H×W×3 clips); ``process_clip`` chains them for one clip.
"""

from mer.pipeline.face.align import AlignedClip, align_clip, alignment_transforms, eye_targets
from mer.pipeline.face.chain import FaceParams, as_rgb_clip, process_clip
from mer.pipeline.face.detect import FaceDetection, FaceNotFoundError, detect_face
from mer.pipeline.face.draw import draw_face_figure
from mer.pipeline.face.equalize import equalize_frames
from mer.pipeline.face.landmarks import FaceLostError, LandmarkTrack, predict_landmarks, track_landmarks
from mer.pipeline.face.models import FaceModelMissingError
from mer.pipeline.face.smoothing import smooth_track

__all__ = [
    "AlignedClip",
    "FaceDetection",
    "FaceLostError",
    "FaceModelMissingError",
    "FaceNotFoundError",
    "FaceParams",
    "LandmarkTrack",
    "align_clip",
    "alignment_transforms",
    "as_rgb_clip",
    "detect_face",
    "draw_face_figure",
    "equalize_frames",
    "eye_targets",
    "predict_landmarks",
    "process_clip",
    "smooth_track",
    "track_landmarks",
]
