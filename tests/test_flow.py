"""Tests of the flow kernels on a real face photo warped by known displacement fields."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from scipy import ndimage

from mer.pipeline.flow.codec import FLOW_SCALE, decode_flow, encode_flow, flow_codec_max_error, flow_codec_range
from mer.pipeline.flow.image import flow_image, flow_images, resize_flow
from mer.pipeline.flow.optical_flow import (
    FarnebackParams,
    compute_flows,
    farneback,
    frame_pairs,
    recommended_cv_threads,
    to_grey,
    tvl1,
)
from mer.pipeline.flow.strain import optical_strain
from mer.pipeline.flow.tvl1_params import TVL1Params

# The face of the Grace Hopper photo (600×512); dlib's face box there is (161, 137)–(376, 352).
CROP = (slice(120, 376), slice(140, 396))
FACE = (slice(35, 215), slice(35, 220))  # face region inside the 256×256 crop, away from hair/background


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb[CROP])


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return xx, yy


def _warp(grey: np.ndarray, inv_x: np.ndarray, inv_y: np.ndarray, noise: float, rng) -> tuple:
    """Frames (a, b) with b(X) = a(g(X)), g the inverse of the forward map, plus independent sensor noise."""
    a0 = grey.astype(np.float64)
    b0 = ndimage.map_coordinates(a0, [inv_y, inv_x], order=3, mode="reflect")
    a = np.clip(np.rint(a0 + rng.normal(0, noise, a0.shape)), 0, 255).astype(np.uint8)
    b = np.clip(np.rint(b0 + rng.normal(0, noise, a0.shape)), 0, 255).astype(np.uint8)
    return a, b


def smooth_pair(grey: np.ndarray, amp_x: float, amp_y: float, noise: float, seed: int = 0):
    """Warp by two composed shears, φ(x, y) = (x + s(y), y + r(x + s(y))), whose inverse is exact:
    g(X, Y) = (X − s(Y − r(X)), Y − r(X)). True flow at a's pixel (x, y): (s(y), r(x + s(y)))."""
    xx, yy = _grid(*grey.shape)

    def s(y):
        return amp_x * np.sin(2 * np.pi * y / 180 + 0.3)

    def r(x):
        return amp_y * np.cos(2 * np.pi * x / 150 + 0.7) + 0.3 * amp_y

    true = np.stack([s(yy), r(xx + s(yy))], axis=-1)
    a, b = _warp(grey, xx - s(yy - r(xx)), yy - r(xx), noise, np.random.default_rng(seed))
    return a, b, true


def local_pair(grey: np.ndarray, amp: float, noise: float, seed: int = 0):
    """Warp by localised Gaussian bumps (mouth corners pulled out and up, brows raised); the inverse map
    is solved by fixed-point iteration g = X − f(g) to 1e-9 px (|∇f| < 0.1, so it contracts fast)."""
    h, w = grey.shape
    xx, yy = _grid(h, w)
    specs = [(110, 190, 10, -amp, -0.5 * amp), (150, 190, 10, amp, -0.5 * amp), (80, 80, 12, 0, -amp)]

    def field(x, y):
        u, v = np.zeros_like(x), np.zeros_like(x)
        for cx, cy, sg, du, dv in specs:
            g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sg * sg))
            u, v = u + du * g, v + dv * g
        return u, v

    gx, gy = xx.copy(), yy.copy()
    for _ in range(40):
        fu, fv = field(gx, gy)
        gx, gy = xx - fu, yy - fv
    true = np.stack(field(xx, yy), axis=-1)
    a, b = _warp(grey, gx, gy, noise, np.random.default_rng(seed))
    return a, b, true


def _epe(flow: np.ndarray, true: np.ndarray) -> np.ndarray:
    return np.linalg.norm(flow.astype(np.float64) - true, axis=-1)


# ------------------------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize(("method", "limit"), [(tvl1, 0.15), (farneback, 0.3)])
def test_smooth_field_median_epe(face, method, limit):
    a, b, true = smooth_pair(to_grey(face), amp_x=1.5, amp_y=1.0, noise=1.0)
    flow = method(a, b)
    assert flow.shape == (256, 256, 2) and flow.dtype == np.float32
    assert np.median(_epe(flow, true)[FACE]) < limit


@pytest.mark.parametrize(("method", "limit"), [(tvl1, 0.15), (farneback, 0.3)])
def test_local_field_median_epe_where_it_moves(face, method, limit):
    a, b, true = local_pair(to_grey(face), amp=1.0, noise=1.0)
    flow = method(a, b)
    err = _epe(flow, true)
    moving = np.linalg.norm(true, axis=-1) > 0.2
    assert np.median(err[FACE]) < limit
    assert np.median(err[moving]) < limit
    # the estimate keeps the direction of the true motion where it is large
    big = np.linalg.norm(true, axis=-1) > 0.7
    fb, tb = flow[big].astype(np.float64), true[big]
    cos = np.sum(fb * tb, axis=-1) / (np.linalg.norm(fb, axis=-1) * np.linalg.norm(tb, axis=-1) + 1e-12)
    assert np.median(cos) > 0.95


@pytest.mark.parametrize("method", [tvl1, farneback])
@pytest.mark.parametrize(("dx", "dy"), [(2, 0), (0, 2), (-1, 0), (0, -1)])
def test_sign_convention(face, method, dx, dy):
    """Content moving right (down) gives positive u (v): b(x + dx, y + dy) = a(x, y)."""
    grey = cv2.resize(to_grey(face), (128, 128), interpolation=cv2.INTER_AREA)
    b = np.roll(grey, shift=(dy, dx), axis=(0, 1))
    flow = method(grey, b)
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    med = np.median(inner, axis=0)
    assert med[0] == pytest.approx(dx, abs=0.1)
    assert med[1] == pytest.approx(dy, abs=0.1)


def test_to_grey_uses_rgb_order():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((2, 2, 3), np.uint8)
    blue[..., 2] = 255
    assert to_grey(red)[0, 0] == 76  # 0.299 · 255
    assert to_grey(blue)[0, 0] == 29  # 0.114 · 255
    g = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(to_grey(g), g)
    assert np.array_equal(to_grey(np.dstack([g, g, g])), g)


def test_params_overrides_and_determinism(face):
    grey = cv2.resize(to_grey(face), (96, 96), interpolation=cv2.INTER_AREA)
    b = np.roll(grey, 1, axis=1)
    assert np.array_equal(farneback(grey, b, winsize=21), farneback(grey, b, FarnebackParams(winsize=21)))
    assert not np.array_equal(farneback(grey, b, winsize=21), farneback(grey, b))
    f1 = tvl1(grey, b, TVL1Params(warps=3))
    assert np.array_equal(f1, tvl1(grey, b, warps=3))
    with pytest.raises(TypeError):
        farneback(grey, b, TVL1Params())


def test_same_bytes_for_any_opencv_thread_count(face):
    """Stage keys do not include the thread count, so the result must not depend on it."""
    grey = cv2.resize(to_grey(face), (128, 128), interpolation=cv2.INTER_AREA)
    b = np.roll(grey, (1, 1), axis=(0, 1))
    before = cv2.getNumThreads()
    try:
        out = []
        for n in (1, 2):
            cv2.setNumThreads(n)
            out.append((tvl1(grey, b), farneback(grey, b)))
    finally:
        cv2.setNumThreads(before)
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


# ------------------------------------------------------------------------------------------------ strain
def test_strain_of_linear_field_is_exact():
    """u = αx + γy, v = δx + βy → strain = sqrt(α² + β² + ½(γ + δ)²) everywhere, borders included."""
    xx, yy = _grid(20, 30)
    al, be, ga, de = 0.02, -0.03, 0.01, 0.05
    flow = np.stack([al * xx + ga * yy, de * xx + be * yy], axis=-1).astype(np.float32)
    expected = np.sqrt(al**2 + be**2 + 0.5 * (ga + de) ** 2)
    s = optical_strain(flow)
    assert s.shape == (20, 30) and s.dtype == np.float32
    np.testing.assert_allclose(s, expected, rtol=1e-4)
    # a pure rotation (γ = −δ) has no strain
    rot = np.stack([-0.01 * yy, 0.01 * xx], axis=-1).astype(np.float32)
    assert np.abs(optical_strain(rot)).max() < 1e-6


def test_strain_of_translation_is_near_zero(face):
    grey = cv2.resize(to_grey(face), (128, 128), interpolation=cv2.INTER_AREA)
    exact = np.zeros((64, 64, 2), np.float32) + np.float32([1.5, -0.7])
    assert optical_strain(exact).max() == 0.0
    b = np.roll(grey, shift=(1, 2), axis=(0, 1))
    for method in (tvl1, farneback):
        s = optical_strain(method(grey, b))[16:-16, 16:-16]
        assert np.median(s) < 0.02  # measured ≈0.006 (TV-L1), ≈0.0002 (Farneback); a 2 % stretch gives 0.02


# ------------------------------------------------------------------------------------------------ pairs
def test_frame_pairs_modes():
    assert frame_pairs("onset-apex", 5, apex=2) == [(0, 2)]
    assert frame_pairs("apex-offset", 5, apex=2) == [(2, 4)]
    assert frame_pairs("sequence", 5) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert frame_pairs("from-onset", 5) == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert frame_pairs("sequence", 1) == []
    assert frame_pairs("onset-apex", 3, apex=0) == [(0, 0)]
    with pytest.raises(ValueError):
        frame_pairs("onset-apex", 5)
    with pytest.raises(ValueError):
        frame_pairs("apex-offset", 5, apex=5)
    with pytest.raises(ValueError):
        frame_pairs("nonsense", 5, apex=1)  # type: ignore[arg-type]


def test_compute_flows_follows_the_pairs(face):
    """A clip whose frame t is the first frame shifted right by t px: from-onset flow k has u ≈ k + 1,
    sequence flows have u ≈ 1; RGB frames are accepted."""
    rgb = cv2.resize(face, (96, 96), interpolation=cv2.INTER_AREA)
    clip = np.stack([np.roll(rgb, t, axis=1) for t in range(4)])
    fo = compute_flows(clip, "from-onset", method="farneback")
    assert fo.shape == (3, 96, 96, 2) and fo.dtype == np.float32
    for k in range(3):
        assert np.median(fo[k, 16:-16, 16:-16, 0]) == pytest.approx(k + 1, abs=0.15)
    seq = compute_flows(clip, "sequence", method="farneback")
    assert np.allclose(np.median(seq[:, 16:-16, 16:-16, 0], axis=(1, 2)), 1.0, atol=0.1)
    oa = compute_flows(clip, "onset-apex", apex=2, method="farneback")
    assert np.array_equal(oa[0], fo[1])  # same pair (0, 2), same bytes
    assert compute_flows(clip[:1], "sequence", method="farneback").shape == (0, 96, 96, 2)


# ------------------------------------------------------------------------------------------------ flow images
@pytest.mark.parametrize("size", [28, 112, 224])
def test_flow_image_minmax(size):
    rng = np.random.default_rng(1)
    xx, yy = _grid(256, 256)
    flow = np.stack([np.sin(xx / 30) + 0.1 * rng.normal(size=xx.shape), 0.02 * yy], -1).astype(np.float32)
    img = flow_image(flow, size, normalise="minmax")
    assert img.shape == (3, size, size) and img.dtype == np.float32
    for c in img:
        assert c.min() == pytest.approx(0.0, abs=1e-6) and c.max() == pytest.approx(1.0, abs=1e-6)
    # a constant channel (v of a pure horizontal shift) becomes zeros, not NaN
    const = np.zeros((64, 64, 2), np.float32) + np.float32([1.0, 0.0])
    img = flow_image(const, size, normalise="minmax")
    assert np.all(np.isfinite(img)) and np.all(img[1:] == 0.0)


def test_flow_image_none_keeps_pixel_units():
    """A uniform (2, −1) px shift on a 256² grid is (2·28/256, −1·28/256) px on the 28² grid; strain 0."""
    flow = np.zeros((256, 256, 2), np.float32) + np.float32([2.0, -1.0])
    img = flow_image(flow, 28, normalise="none")
    np.testing.assert_allclose(img[0], 2.0 * 28 / 256, rtol=1e-5)
    np.testing.assert_allclose(img[1], -1.0 * 28 / 256, rtol=1e-5)
    assert np.abs(img[2]).max() == 0.0
    # non-square input: u scales with width, v with height
    r = resize_flow(np.ones((100, 200, 2), np.float32), 50)
    np.testing.assert_allclose(r[..., 0], 0.25, rtol=1e-5)
    np.testing.assert_allclose(r[..., 1], 0.5, rtol=1e-5)
    # the strain of a linear field survives resizing unchanged (dimensionless)
    xx, yy = _grid(256, 256)
    lin = np.stack([0.01 * xx, 0.0 * yy], -1).astype(np.float32)
    np.testing.assert_allclose(flow_image(lin, 112, normalise="none")[2], 0.01, rtol=1e-3)
    batch = flow_images(np.stack([flow, lin]), 28, normalise="none")
    assert batch.shape == (2, 3, 28, 28)
    np.testing.assert_array_equal(batch[0], img)


# ------------------------------------------------------------------------------------------------ codec
def test_codec_round_trip_error_bound():
    rng = np.random.default_rng(7)
    lim = flow_codec_range()
    assert lim == pytest.approx(32767 / 256)
    x = rng.uniform(-lim, lim, size=(64, 64, 2)).astype(np.float32)
    # worst cases: exact half steps, the range ends, tiny values
    x[0, :8, 0] = (np.arange(8) + 0.5) / FLOW_SCALE
    x[0, :2, 1] = [lim, -lim]
    x[1, :3, 0] = [1e-6, -1e-6, 0.0]
    code = encode_flow(x)
    assert code.dtype == np.int16 and code.shape == x.shape
    back = decode_flow(code)
    assert back.dtype == np.float32
    err = np.abs(back.astype(np.float64) - x.astype(np.float64))
    assert err.max() <= flow_codec_max_error() == 1 / 512
    assert err.max() > 0.9 / 512  # the bound is tight: half steps reach it


def test_codec_clips_out_of_range_and_rejects_nan():
    x = np.array([200.0, -200.0, np.inf, -np.inf, 127.0], np.float32)
    back = decode_flow(encode_flow(x))
    np.testing.assert_allclose(back, [32767 / 256, -32767 / 256, 32767 / 256, -32767 / 256, 127.0])
    assert encode_flow(x).min() == -32767
    with pytest.raises(ValueError):
        encode_flow(np.array([np.nan], np.float32))
    # a coarser scale: 1/16 px steps, ±2047.9 px range
    y = np.linspace(-100, 100, 1001).astype(np.float32)
    assert np.abs(decode_flow(encode_flow(y, scale=16), scale=16) - y).max() <= flow_codec_max_error(16)


# ------------------------------------------------------------------------------------------------ threads
def test_recommended_cv_threads():
    assert recommended_cv_threads("farneback", 1, cores=2) == 1
    assert recommended_cv_threads("farneback", 2, cores=2) == 1
    assert recommended_cv_threads("tvl1", 1, cores=2) == 2
    assert recommended_cv_threads("tvl1", 2, cores=2) == 1
    assert recommended_cv_threads("tvl1", 4, cores=2) == 1
    with pytest.raises(ValueError):
        recommended_cv_threads("lk", 1)  # type: ignore[arg-type]
