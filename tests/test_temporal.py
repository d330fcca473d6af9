"""Tests of ARP weights, the rank-pooling kernel, single-image encodings and the MESTI figure."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mer.pipeline.image_ops import minmax_uint8
from mer.pipeline.temporal.arp import SCHEMES, arp_weights
from mer.pipeline.temporal.figure import show_mesti_figure
from mer.pipeline.temporal.rank_pool import rank_pool
from mer.pipeline.temporal.single_image import encode_clip, zscore

FAST = settings(max_examples=60, deadline=None)


@st.composite
def n_and_apex(draw, min_n: int = 1, max_n: int = 120):
    n = draw(st.integers(min_n, max_n))
    return n, draw(st.integers(0, n - 1))


# ---------------------------------------------------------------- brute-force references of methods.md


def pairwise_weights(n: int, higher) -> list[int]:
    """w_t = #{j: t must rank above j} - #{j: j must rank above t}, from a relation higher(i, j)."""
    return [sum(higher(t, j) for j in range(n)) - sum(higher(j, t) for j in range(n)) for t in range(n)]


def mesti_relation(a: int):
    def higher(i: int, j: int) -> bool:
        rising = i <= a and j <= a and i > j  # onset..apex: the later frame ranks higher
        falling = i >= a and j >= a and i < j  # apex..offset: the earlier frame ranks higher
        return rising or falling

    return higher


def di_from_definition(n: int) -> list[Fraction]:
    """Coefficients on the frames of sum_t (2t - n - 1) V_t, V_t = mean of frames 1..t (1-based)."""
    coef = [Fraction(0)] * n
    for t in range(1, n + 1):
        for tau in range(1, t + 1):
            coef[tau - 1] += Fraction(2 * t - n - 1, t)
    return coef


# ---------------------------------------------------------------- weights


@FAST
@given(n_and_apex(min_n=2), st.sampled_from(SCHEMES))
def test_weights_sum_to_zero(na, scheme):
    n, a = na
    w = arp_weights(n, a, scheme)
    assert w.dtype == np.float64 and w.shape == (n,)
    assert abs(w.sum()) <= 1e-9 * n * n


@FAST
@given(n_and_apex(min_n=2, max_n=40))
def test_mesti_schemes_match_their_pairwise_relations(na):
    n, a = na
    assert arp_weights(n, a, "mesti").tolist() == pairwise_weights(n, mesti_relation(a))
    dist = pairwise_weights(n, lambda i, j: abs(i - a) < abs(j - a))
    assert arp_weights(n, a, "mesti-distance").tolist() == dist


@FAST
@given(n_and_apex(min_n=2), st.sampled_from(["mesti", "mesti-distance"]))
def test_mesti_unimodal_with_peak_at_apex(na, scheme):
    n, a = na
    w = arp_weights(n, a, scheme)
    assert np.all(np.diff(w[: a + 1]) >= 0) and np.all(np.diff(w[a:]) <= 0)
    assert w[a] == n - 1 and np.all(np.delete(w, a) < w[a])
    if scheme == "mesti":  # piecewise linear: strictly monotone on each side
        assert np.all(np.diff(w[: a + 1]) > 0) and np.all(np.diff(w[a:]) < 0)


@given(st.integers(1, 150))
@FAST
def test_apex_on_last_frame_reduces_to_di_linear(n):
    lin = arp_weights(n, scheme="di-linear")
    assert lin.tolist() == pairwise_weights(n, lambda i, j: i > j)
    for scheme in ("mesti", "mesti-distance"):
        np.testing.assert_array_equal(arp_weights(n, n - 1, scheme), lin)


def test_documented_examples():
    np.testing.assert_array_equal(arp_weights(5, 2, "mesti"), [-2, 0, 4, 0, -2])
    np.testing.assert_array_equal(arp_weights(5, 2, "mesti-distance"), [-3, 1, 4, 1, -3])
    np.testing.assert_allclose(arp_weights(4, scheme="di"), [-29 / 12, 7 / 12, 13 / 12, 3 / 4], rtol=1e-14)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 33, 64, 100])
def test_di_matches_definition_and_harmonic_form(n):
    w = arp_weights(n, scheme="di")
    H = [Fraction(0)]
    for k in range(1, n + 1):
        H.append(H[-1] + Fraction(1, k))
    harmonic = [2 * (n - t) - (n + 1) * (H[n] - H[t]) for t in range(n)]
    definition = di_from_definition(n)
    assert harmonic == definition
    np.testing.assert_allclose(w, [float(x) for x in harmonic], rtol=1e-12, atol=1e-12 * n)


@pytest.mark.parametrize("n", [2, 3, 5, 16, 50, 99, 200])
def test_di_on_ramp_clip(n):
    w = arp_weights(n, scheme="di")
    expected = (n**3 - n) / 12
    assert w @ np.arange(n) == pytest.approx(expected, rel=1e-12)
    ramp = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 3, 5, 3))
    out = rank_pool(ramp, w)
    np.testing.assert_allclose(out, expected, rtol=(n + 2) * 2.0**-23)


@pytest.mark.parametrize("scheme", ["mesti", "mesti-distance"])
@pytest.mark.parametrize("apex", [-1, 5, 7, None, 2.5])
def test_bad_apex_is_a_clear_error(scheme, apex):
    with pytest.raises(ValueError, match=r"apex") as err:
        arp_weights(5, apex, scheme)
    if apex is not None and float(apex).is_integer():
        assert str(apex) in str(err.value) and "n_frames=5" in str(err.value)


def test_unknown_scheme_and_bad_length():
    with pytest.raises(ValueError, match="scheme"):
        arp_weights(5, 2, "nope")
    with pytest.raises(ValueError, match="n_frames"):
        arp_weights(0, scheme="di")


# ---------------------------------------------------------------- rank pooling kernel


def error_bound(frames: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Recursive-summation bound for float32 accumulation with float32-rounded weights."""
    mag = np.tensordot(np.abs(w), np.abs(frames.astype(np.float64)), 1)
    return (len(w) + 2) * 2.0**-23 * mag + 1e-30


@st.composite
def clip_and_weights(draw):
    t = draw(st.integers(1, 20))
    shape = (t, draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 3)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        frames = (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 100.0]))).astype(np.float32)
    w = np.array(draw(st.lists(st.floats(-100, 100), min_size=t, max_size=t)))
    return frames, w


@FAST
@given(clip_and_weights())
def test_rank_pool_matches_float64_reference(cw):
    frames, w = cw
    out = rank_pool(frames, w)
    ref = np.tensordot(w, frames.astype(np.float64), 1)
    assert out.dtype == np.float32 and out.shape == frames.shape[1:]
    assert np.all(np.abs(out - ref) <= error_bound(frames, w))


@pytest.mark.parametrize("t", [3, 8, 11, 17])
def test_rank_pool_across_tiles_and_views(t):
    rng = np.random.default_rng(t)
    big = rng.integers(0, 256, (t + 2, 50, 47, 4), dtype=np.uint8)
    frames = big[1:-1, :, 3:40, :3]  # a non-contiguous view spanning several tiles
    w = rng.standard_normal(t)
    ref = np.tensordot(w, frames.astype(np.float64), 1)
    out = rank_pool(frames, w)
    assert np.all(np.abs(out - ref) <= error_bound(frames, w))
    np.testing.assert_array_equal(rank_pool(np.ascontiguousarray(frames), w), out)
    out16 = rank_pool(frames.astype(np.uint16), w)  # other dtypes go through float32
    assert np.all(np.abs(out16 - ref) <= error_bound(frames, w))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_constant_clip_pools_to_zero(scheme):
    frames = np.full((13, 6, 5, 3), 200, dtype=np.uint8)
    w = arp_weights(13, 4, scheme)
    out = rank_pool(frames, w)
    if scheme == "di":  # fractional weights: zero up to float32 rounding
        assert np.all(np.abs(out) <= error_bound(frames, w))
    else:  # integer weights and values: exact
        assert np.all(out == 0)


def test_rank_pool_rejects_mismatched_weights():
    with pytest.raises(ValueError, match="one value per frame"):
        rank_pool(np.zeros((4, 2, 2, 3), np.uint8), np.ones(3))


# ---------------------------------------------------------------- single-image encodings


def make_clip(t: int = 9, h: int = 20, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@FAST
@given(st.integers(0, 2**32 - 1), st.sampled_from(["mesti", "dynamic", "apex-frame", "onset", "diff"]))
def test_minmax_output_spans_0_255(seed, kind):
    clip = make_clip(seed=seed % 1000)
    img = encode_clip(clip, kind, apex=3, size=12)
    assert img.dtype == np.uint8 and img.shape == (3, 12, 12)
    assert img.min() == 0 and img.max() == 255


@FAST
@given(st.integers(0, 2**32 - 1), st.sampled_from(["mesti", "dynamic", "diff"]))
def test_zscore_output_is_standardised(seed, kind):
    img = encode_clip(make_clip(seed=seed % 1000), kind, apex=5, size=10, norm="zscore")
    assert img.dtype == np.float32 and img.shape == (3, 10, 10)
    assert abs(float(img.mean())) < 1e-5 and abs(float(img.std()) - 1) < 1e-5


def test_constant_images_normalise_to_zero():
    assert np.all(minmax_uint8(np.full((4, 4, 3), 7.5)) == 0)
    assert np.all(zscore(np.full((4, 4, 3), -2.0)) == 0)
    clip = np.full((6, 8, 8, 3), 90, np.uint8)
    assert np.all(encode_clip(clip, "mesti", apex=2, size=8) == 0)


def test_minmax_maps_linearly():
    x = np.array([[[-3.0, 0.0, 1.0]], [[2.0, 5.0, 4.0]]])  # min -3, max 5: step 255/8 per unit
    np.testing.assert_array_equal(minmax_uint8(x), np.rint((x + 3) * 255 / 8).astype(np.uint8))


def test_frame_kinds_pick_the_right_frames():
    clip = make_clip(t=7, h=8, w=8)
    chw = lambda im: im.transpose(2, 0, 1)  # noqa: E731
    np.testing.assert_array_equal(encode_clip(clip, "apex-frame", apex=4, size=8, norm="none"), chw(clip[4]))
    np.testing.assert_array_equal(encode_clip(clip, "onset", size=8, norm="none"), chw(clip[0]))
    diff = clip[4].astype(np.float32) - clip[0].astype(np.float32)
    np.testing.assert_array_equal(encode_clip(clip, "diff", apex=4, size=8, norm="none"), chw(diff))
    mesti = rank_pool(clip, arp_weights(7, 4, "mesti"))
    np.testing.assert_array_equal(encode_clip(clip, "mesti", apex=4, size=8), chw(minmax_uint8(mesti)))


def test_shrinking_averages_blocks():
    # 2x2 blocks of constant value; INTER_AREA to half size gives one pixel per block.
    small = np.random.default_rng(1).integers(0, 256, (1, 4, 4, 3)).astype(np.uint8)
    clip = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)
    out = encode_clip(clip, "onset", size=4, norm="none")
    np.testing.assert_allclose(out, small[0].transpose(2, 0, 1), atol=1e-4)


def test_encode_clip_errors():
    clip = make_clip()
    with pytest.raises(ValueError, match="apex"):
        encode_clip(clip, "mesti", apex=None)
    with pytest.raises(ValueError, match=r"apex=9"):
        encode_clip(clip, "apex-frame", apex=9)
    with pytest.raises(ValueError, match="kind"):
        encode_clip(clip, "flow")
    with pytest.raises(ValueError, match="scheme"):
        encode_clip(clip, "dynamic", scheme="mesti")
    with pytest.raises(ValueError, match="normalisation"):
        encode_clip(clip, "onset", norm="l2")


def test_show_mesti_figure_renders_rgb():
    img = show_mesti_figure(make_clip(t=10, h=32, w=32), apex=4, dpi=40)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[1] > 2 * img.shape[0]  # four panels side by side
    assert img.std() > 10  # not a blank canvas
