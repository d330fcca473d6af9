"""Face kernels that need no dlib model: smoothing, alignment geometry, equalisation, params, drawing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mer.config import params_from_dict, to_jsonable
from mer.pipeline.face.align import (
    align_clip,
    alignment_transforms,
    eye_targets,
    reference_points,
    similarity_from_pairs,
    transform_points,
    warp_frames,
)
from mer.pipeline.face.draw import CYAN, GREEN, MAGENTA, YELLOW, draw_face_figure
from mer.pipeline.face.equalize import equalize_frames
from mer.pipeline.face.smoothing import one_euro, savgol, smooth_track
from mer.pipeline.face.stages import AlignParams, DetectParams, EqualizeParams, LandmarkParams, as_rgb_clip

RNG_SEED = 1234


def _mean_face(rng: np.random.Generator) -> np.ndarray:
    """A plausible 68-point layout: jaw, brows, nose, eyes, mouth around (100, 100), with noise."""
    t = np.linspace(-1.2, 1.2, 17)
    jaw = np.c_[100 + 60 * np.sin(t), 100 + 60 * np.cos(t) - 10]
    brows = np.c_[np.r_[np.linspace(55, 90, 5), np.linspace(110, 145, 5)], np.full(10, 70.0)]
    nose = np.c_[np.r_[np.full(4, 100.0), np.linspace(88, 112, 5)], np.r_[np.linspace(85, 115, 4), np.full(5, 120)]]
    eye = np.array([[0, 0], [8, -5], [17, -5], [25, 0], [17, 4], [8, 4]], dtype=float)
    eyes = np.r_[eye + [62, 88], eye + [113, 88]]
    mouth = np.c_[
        100 + 25 * np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
        140 + 8 * np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
    ]
    pts = np.r_[jaw, brows, nose, eyes, mouth]
    assert pts.shape == (68, 2)
    return pts + rng.normal(0, 0.5, pts.shape)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array(
        [[scale * np.cos(a), -scale * np.sin(a), shift[0]], [scale * np.sin(a), scale * np.cos(a), shift[1]]]
    )


# --- smoothing -------------------------------------------------------------------------------------


def test_one_euro_reduces_jitter_on_a_still_point():
    rng = np.random.default_rng(RNG_SEED)
    x = 50.0 + rng.normal(0, 0.35, (200, 68, 2))  # the size of raw landmark jitter
    y = one_euro(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    raw_rms = np.sqrt(np.mean((x - 50.0) ** 2))
    smooth_rms = np.sqrt(np.mean((y - 50.0) ** 2))
    assert smooth_rms < raw_rms / 1.7


def test_one_euro_follows_a_step_within_a_frame():
    rng = np.random.default_rng(RNG_SEED)
    x = np.zeros((60, 68, 2)) + rng.normal(0, 0.2, (60, 68, 2))
    x[30:] += [6.0, -4.0]
    y = one_euro(x).mean(axis=1)  # mean over points
    step = np.array([6.0, -4.0])
    frac = (y @ step) / (step @ step)
    assert frac[30] > 0.8  # first frame after the step
    assert np.all(frac[31:] > 0.9)
    assert np.all(np.abs(frac[:29]) < 0.15)  # no pre-echo before the step


def test_bidirectional_one_euro_has_no_lag_on_a_ramp_but_forward_pass_does():
    t = np.arange(80, dtype=np.float64)
    x = np.repeat((0.1 * t)[:, None, None], 2, axis=2)  # slow drift, 0.1 px/frame
    both = one_euro(x, bidirectional=True)[10:-10, 0, 0]
    fwd = one_euro(x, bidirectional=False)[10:-10, 0, 0]
    truth = 0.1 * t[10:-10]
    assert np.max(np.abs(both - truth)) < 0.02
    assert np.mean(truth - fwd) > 0.1  # a causal filter lags


def test_savgol_keeps_a_quadratic_and_none_is_identity():
    t = np.arange(25, dtype=np.float64)
    x = np.stack([0.3 * t**2 - t, 2 * t + 1], axis=-1)[:, None, :]
    np.testing.assert_allclose(savgol(x, 7, 2), x, atol=1e-3)
    np.testing.assert_array_equal(smooth_track(x, "none"), x.astype(np.float32))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_smoothers_accept_short_clips(n):
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2)
    for method in ("one-euro", "savgol", "none"):
        assert smooth_track(x, method).shape == x.shape


def test_unknown_smoother_raises():
    with pytest.raises(ValueError, match="smoothing method"):
        smooth_track(np.zeros((3, 68, 2)), "kalman")


# --- alignment geometry ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    angle=st.floats(-30, 30),
    scale=st.floats(0.5, 3.0),
    dx=st.floats(-200, 200),
    dy=st.floats(-200, 200),
    size=st.sampled_from([64, 128, 256, 224]),
    reference=st.sampled_from(["inner-corners", "eye-centres"]),
)
def test_aligned_eyes_are_level_symmetric_and_at_their_targets(angle, scale, dx, dy, size, reference):
    lm = transform_points(_mean_face(np.random.default_rng(RNG_SEED))[None], _similarity(angle, scale, (dx, dy))[None])
    m = alignment_transforms(lm, size=size, reference=reference)
    pair = reference_points(transform_points(lm, m)[0], reference)
    centre = (size - 1) / 2
    assert abs(pair[0, 1] - pair[1, 1]) < 1e-3  # level
    assert abs((pair[0, 0] + pair[1, 0]) / 2 - centre) < 1e-3  # symmetric about the centre column
    np.testing.assert_allclose(pair, eye_targets(size, reference), atol=1e-3)


def test_default_targets_are_the_documented_fractions():
    inner = eye_targets(256, "inner-corners")
    np.testing.assert_allclose(inner, [[0.40 * 256 - 0.5, 0.36 * 256 - 0.5], [0.60 * 256 - 0.5, 0.36 * 256 - 0.5]])
    centres = eye_targets(200, "eye-centres", eye_y=0.4, eye_distance=0.3)
    np.testing.assert_allclose(centres, [[0.35 * 200 - 0.5, 79.5], [0.65 * 200 - 0.5, 79.5]])


def test_similarity_maps_pairs_exactly_without_reflection():
    rng = np.random.default_rng(RNG_SEED)
    src = rng.uniform(0, 500, (10, 2, 2))
    dst = rng.uniform(0, 500, (2, 2))
    m = similarity_from_pairs(src, dst)
    mapped = np.einsum("kij,knj->kni", m[..., :2], src) + m[:, None, :, 2]
    np.testing.assert_allclose(mapped, np.broadcast_to(dst, mapped.shape), atol=1e-9)
    assert np.all(np.linalg.det(m[..., :2]) > 0)


def test_onset_mode_uses_one_transform_and_per_frame_mode_cancels_head_motion():
    base = _mean_face(np.random.default_rng(RNG_SEED))
    motions = np.stack([_similarity(2.0 * t, 1.0 + 0.01 * t, (3.0 * t, -2.0 * t)) for t in range(6)])
    lm = transform_points(np.repeat(base[None], 6, axis=0), motions)
    onset = alignment_transforms(lm, mode="onset", ref_frame=2)
    np.testing.assert_allclose(onset, np.repeat(alignment_transforms(lm[2:3], mode="per-frame"), 6, axis=0), atol=1e-5)
    per = transform_points(lm, alignment_transforms(lm, mode="per-frame"))
    np.testing.assert_allclose(per, np.repeat(per[:1], 6, axis=0), atol=1e-3)


def test_warp_moves_a_dot_to_its_transformed_position():
    img = np.zeros((120, 160, 3), dtype=np.uint8)
    cv2.circle(img, (70, 50), 4, (255, 255, 255), -1)
    lm = transform_points(_mean_face(np.random.default_rng(RNG_SEED))[None] * 0.6 + [20, 0], np.eye(2, 3)[None])
    al = align_clip(img[None], lm, size=128, border="constant")
    grey = al.frames[0].astype(np.float64).mean(axis=2)
    ys, xs = np.mgrid[: grey.shape[0], : grey.shape[1]]
    centroid = np.array([(grey * xs).sum(), (grey * ys).sum()]) / grey.sum()
    expect = transform_points(np.array([[[70.0, 50.0]]]), al.transforms)[0, 0]
    np.testing.assert_allclose(centroid, expect, atol=0.15)
    assert al.frames.shape == (1, 128, 128, 3) and al.frames.dtype == np.uint8


def test_alignment_rejects_bad_options():
    lm = _mean_face(np.random.default_rng(RNG_SEED))[None]
    with pytest.raises(ValueError, match="alignment mode"):
        alignment_transforms(lm, mode="sometimes")
    with pytest.raises(ValueError, match="reference"):
        alignment_transforms(lm, reference="nose")
    with pytest.raises(ValueError, match="outside the clip"):
        alignment_transforms(lm, ref_frame=3)


def test_warp_of_grey_frames_gives_three_equal_channels():
    rng = np.random.default_rng(RNG_SEED)
    grey = rng.integers(0, 256, (2, 50, 60), dtype=np.uint8)
    out = warp_frames(grey, np.repeat(np.eye(2, 3, dtype=np.float32)[None], 2, axis=0), size=40)
    assert out.shape == (2, 40, 40, 3)
    np.testing.assert_array_equal(out[..., 0], grey[:, :40, :40])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


# --- equalisation ----------------------------------------------------------------------------------


def _low_contrast_clip(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    ys, xs = np.mgrid[:96, :128]
    base = 90 + 30 * (xs / 127.0) * (0.5 + 0.5 * np.sin(ys / 9.0))
    frames = []
    for t in range(n):
        lum = base + rng.normal(0, 3, base.shape) + t
        rgb = np.stack([lum + 6, lum, lum - 5], axis=-1)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _luma(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb) for f in frames])


def test_hist_equalisation_flattens_the_luminance_histogram_and_keeps_colour():
    clip = _low_contrast_clip()
    out = equalize_frames(clip, "hist")
    assert out.shape == clip.shape and out.dtype == np.uint8
    y_in, y_out = _luma(clip), _luma(out)
    for t in range(len(clip)):
        y = y_out[t, ..., 0]
        # flat histogram <=> the cumulative histogram at each occupied level v is close to v/255
        # (a staircase on the straight line); the input's is far from that line
        occupied = np.flatnonzero(np.bincount(y.ravel(), minlength=256))
        cdf = np.cumsum(np.bincount(y.ravel(), minlength=256)) / y.size
        assert np.max(np.abs(cdf[occupied] - occupied / 255)) < 0.03
        y0 = y_in[t, ..., 0]
        cdf_in = np.cumsum(np.bincount(y0.ravel(), minlength=256)) / y.size
        assert np.max(np.abs(cdf_in[np.unique(y0)] - np.unique(y0) / 255)) > 0.3
        assert y.min() <= 5 and y.max() >= 250
    chroma = np.abs(y_out[..., 1:].astype(int) - y_in[..., 1:].astype(int))
    assert np.percentile(chroma, 99) <= 3  # Cr, Cb kept (up to clipping/rounding)


def test_clahe_raises_contrast_more_with_a_higher_clip_limit_and_none_is_a_copy():
    clip = _low_contrast_clip(2)
    y0 = _luma(clip)[..., 0].std()
    low = _luma(equalize_frames(clip, "clahe", clip_limit=1.0))[..., 0].std()
    high = _luma(equalize_frames(clip, "clahe", clip_limit=4.0, tile_grid=(4, 4)))[..., 0].std()
    assert y0 < low < high
    same = equalize_frames(clip, "none")
    np.testing.assert_array_equal(same, clip)
    assert same is not clip


def test_equalisation_keeps_grey_frames_grey_and_accepts_one_frame():
    grey = _low_contrast_clip(1)[0, ..., 1]
    frame = np.repeat(grey[..., None], 3, axis=2)
    out = equalize_frames(frame, "hist")
    assert out.shape == frame.shape
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], cv2.equalizeHist(grey))
    with pytest.raises(ValueError, match="uint8"):
        equalize_frames(frame.astype(np.float32))
    with pytest.raises(ValueError, match="equalisation"):
        equalize_frames(frame, "gamma")


# --- params and clip input -------------------------------------------------------------------------


def test_face_params_validate_and_round_trip():
    for p in (AlignParams(align_mode="per-frame", size=128), EqualizeParams(method="clahe"), LandmarkParams(beta=0.1)):
        assert params_from_dict(type(p), to_jsonable(p)) == p
    with pytest.raises(ValueError, match=r"DetectParams\.detector='haar'"):
        DetectParams(detector="haar")
    with pytest.raises(ValueError, match=r"LandmarkParams\.n_inits"):
        LandmarkParams(n_inits=0)
    with pytest.raises(ValueError, match=r"AlignParams\.align_mode"):
        AlignParams(align_mode="apex")
    with pytest.raises(ValueError, match=r"EqualizeParams\.method"):
        EqualizeParams(method="gamma")
    with pytest.raises(AttributeError):
        AlignParams().size = 128  # type: ignore[misc]


def test_as_rgb_clip_stacks_grey_and_names_the_odd_frame():
    grey = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)
    rgb = as_rgb_clip(grey)
    assert rgb.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(rgb[..., 2], grey)
    np.testing.assert_array_equal(as_rgb_clip(grey[..., None]), rgb)
    frames = [np.zeros((4, 5, 3), np.uint8)] * 3 + [np.zeros((5, 5, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"frame 3 has shape \(5, 5, 3\)"):
        as_rgb_clip(frames)
    with pytest.raises(ValueError, match="uint8"):
        as_rgb_clip(grey.astype(np.float32))
    clip = np.zeros((2, 4, 5, 3), np.uint8)
    assert as_rgb_clip(clip) is clip  # no copy


# --- drawing ---------------------------------------------------------------------------------------


def test_draw_face_figure_puts_overlays_where_they_belong():
    frame = np.full((200, 260, 3), 60, dtype=np.uint8)
    lm = _mean_face(np.random.default_rng(RNG_SEED)) * 0.8 + [40, 20]
    m = alignment_transforms(lm[None], size=100)[0]
    aligned = np.full((100, 100, 3), 90, dtype=np.uint8)
    box = (30.0, 25.0, 180.0, 175.0)
    fig = draw_face_figure(frame, lm, box, aligned, {"mouth": (200, 150, 240, 190)}, transform=m)
    assert fig.shape[0] == 200 and fig.shape[1] > 260 + 200 - 1
    assert np.all(frame == 60)  # input untouched
    x, y = np.round(lm[30]).astype(int)
    np.testing.assert_array_equal(fig[y, x], GREEN)
    np.testing.assert_array_equal(fig[100, 30], YELLOW)  # left edge of the box
    np.testing.assert_array_equal(fig[170, 200], MAGENTA)  # left edge of the ROI
    inv = cv2.invertAffineTransform(m.astype(np.float64))
    cx, cy = inv @ np.array([49.5, -0.5, 1.0])  # top edge midpoint of the crop, in the frame
    patch = fig[int(cy) - 1 : int(cy) + 2, int(cx) - 1 : int(cx) + 2].reshape(-1, 3)
    assert any(np.array_equal(p, CYAN) for p in patch)
    right = fig[:, -200:]
    assert right.shape[:2] == (200, 200) and np.all(right[:3, :3] == 90)  # aligned panel, scaled to height
