"""The image kernels the temporal and flow topics share (resize to a square, min-max) and the proof that moving single
images and flow images onto them kept their values. ``_old_*`` below are the definitions as they stood in
``single_image.py`` and ``flow/image.py`` before (commit aceab8b), kept only as references: single images (mesti,
dynamic, apex, onset, diff; every norm) and raw frames are byte-identical, and so are flow images with ``maxabs``
and ``none``. Two deliberate unifications changed ``flow-image`` (version 2 → 3): ``minmax`` is now computed in
float64 like the single images' and rounded once to float32 (the old float32 arithmetic rounded three times: at most
2 float32 ulps apart), and INTER_AREA now also serves a non-square flow whose shorter side equals the size (as for
single images; aligned faces are square, so no stored flow image of the pipeline took that branch)."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer.pipeline.flow.image import flow_image, resize_flow
from mer.pipeline.image_ops import minmax_scale, minmax_uint8, resize_square
from mer.pipeline.temporal.single_image import KINDS, NORMS, encode_clip, raw_frame, zscore


# ------------------------------------------------------------------------------------------ references (aceab8b)
def _old_resize_image(image, size):
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (size, size), interpolation=interp)
    return out.reshape(size, size, *image.shape[2:])


def _old_minmax_uint8(image):
    x = np.asarray(image, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.rint((x - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _old_finish(image, size, norm):
    img = _old_resize_image(np.asarray(image, dtype=np.float32), int(size))
    if img.ndim == 2:
        img = img[..., None]
    if norm == "minmax":
        img = _old_minmax_uint8(img)
    elif norm == "zscore":
        img = zscore(img)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def _old_raw(frames, kind, apex):
    f = frames.astype(np.float32)
    return {"apex-frame": f[apex], "onset": f[0], "diff": f[apex] - f[0]}[kind]


def _old_flow_resize(channel, size):
    h, w = channel.shape
    if (h, w) == (size, size):
        return channel.astype(np.float32, copy=True)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(channel.astype(np.float32), (size, size), interpolation=interp)


def _old_flow_minmax(channel):
    lo, hi = float(channel.min()), float(channel.max())
    if not hi > lo:
        return np.zeros_like(channel, dtype=np.float32)
    return ((channel - lo) / (hi - lo)).astype(np.float32)


def _old_flow_image(flow, size, normalise, strain):
    flow = np.asarray(flow, dtype=np.float32)
    h, w = flow.shape[:2]
    u = _old_flow_resize(flow[..., 0], size) * np.float32(size / w)
    v = _old_flow_resize(flow[..., 1], size) * np.float32(size / h)
    img = np.stack([u, v, _old_flow_resize(strain, size)], axis=0)
    if normalise == "minmax":
        img = np.stack([_old_flow_minmax(c) for c in img], axis=0)
    elif normalise == "maxabs":
        out = img.astype(np.float32, copy=True)
        length = float(np.sqrt(img[0].astype(np.float64) ** 2 + img[1].astype(np.float64) ** 2).max())
        out[:2] /= np.float32(length)
        out[2] /= np.float32(float(np.abs(img[2]).max()))
        img = out
    return np.ascontiguousarray(img, dtype=np.float32)


# ------------------------------------------------------------------------------------------ data
def _clip(seed: int, h: int = 20, w: int = 20, t: int = 7, levels: int = 256) -> np.ndarray:
    """Smooth moving pattern plus noise, uint8 T×H×W×3; ``levels`` < 256 gives few grey levels (exact ties of
    the min-max rounding, where a changed formula would show)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    frames = [128 + 60 * np.sin(0.3 * x + 0.2 * y + 0.4 * k) + rng.normal(0, 8, (h, w)) for k in range(t)]
    clip = np.stack([np.stack([f, f * 0.9, f * 1.1], axis=-1) for f in frames])
    step = 256 // levels
    return (np.clip(clip, 0, 255).astype(np.uint8) // step * step).astype(np.uint8)


def _flow(seed: int, h: int = 24, w: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u = 1.5 * np.sin(x / 5) + 0.2 * rng.standard_normal((h, w))
    v = -0.7 * np.cos(y / 4) + 0.01 * x + 0.2 * rng.standard_normal((h, w))
    return np.stack([u, v], axis=-1).astype(np.float32)


SIZES = [(20, 20, 20), (20, 20, 8), (20, 20, 31), (16, 24, 16), (16, 24, 12), (16, 24, 20)]
"""(H, W, size): unchanged, shrunk, enlarged, and non-square with the shorter side kept, shrunk or in between."""


# ------------------------------------------------------------------------------------------ single images
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("h", "w", "size"), SIZES)
@pytest.mark.parametrize("levels", [256, 8])
def test_single_images_are_byte_identical_to_the_previous_definitions(kind, norm, h, w, size, levels):
    from mer.pipeline.temporal.single_image import dynamic_image, mesti_image

    clip = _clip(3 * h + w + levels, h, w, levels=levels)
    apex = 4
    if kind == "mesti":
        raw = mesti_image(clip, apex)
    elif kind == "dynamic":
        raw = dynamic_image(clip)
    else:
        raw = _old_raw(clip, kind, apex)
    new = encode_clip(clip, kind, apex=apex, size=size, norm=norm)
    old = _old_finish(raw, size, norm)
    assert new.dtype == old.dtype and new.shape == old.shape
    assert new.tobytes() == old.tobytes()


@pytest.mark.parametrize(("h", "w", "size"), SIZES)
def test_raw_frames_are_byte_identical_to_the_previous_definition(h, w, size):
    frame = _clip(h * w, h, w)[2]
    old = _old_resize_image(frame.astype(np.float32), size)
    old = np.rint(old).clip(0, 255).astype(np.uint8).transpose(2, 0, 1)
    assert raw_frame(frame, size).tobytes() == np.ascontiguousarray(old).tobytes()


def test_minmax_uint8_keeps_its_rounding_on_exact_ties():
    # (x - lo) * (255 / span) rounds 2 * 255 / 68 = 7.5 to 8 (half to even); the float64 rule is kept to the bit
    x = np.array([0.0, 2.0, 68.0, 34.0, 1.0])
    np.testing.assert_array_equal(minmax_uint8(x), _old_minmax_uint8(x))
    assert minmax_uint8(x).tolist() == [0, 8, 255, 128, 4]
    grid = np.arange(0, 1021, dtype=np.float64)
    for span in range(1, 1021, 7):
        np.testing.assert_array_equal(minmax_uint8(grid[: span + 1]), _old_minmax_uint8(grid[: span + 1]))


# ------------------------------------------------------------------------------------------ flow images
@pytest.mark.parametrize("normalise", ["maxabs", "none"])
@pytest.mark.parametrize("size", [24, 12, 7, 40])
def test_flow_images_are_byte_identical_to_the_previous_definitions(normalise, size):
    from mer.pipeline.flow.strain import optical_strain

    flow = _flow(size)
    new = flow_image(flow, size=size, normalise=normalise)
    assert new.tobytes() == _old_flow_image(flow, size, normalise, optical_strain(flow)).tobytes()


@pytest.mark.parametrize("size", [24, 12, 40])
def test_minmax_flow_images_differ_from_the_previous_ones_by_at_most_two_ulps(size):
    from mer.pipeline.flow.strain import optical_strain

    flow = _flow(size + 1)
    new = flow_image(flow, size=size, normalise="minmax")
    old = _old_flow_image(flow, size, "minmax", optical_strain(flow))
    ulps = np.abs(new.view(np.int32).astype(np.int64) - old.view(np.int32).astype(np.int64))
    # old: float32 subtraction, span rounded to float32, float32 division (3 roundings of <= 1/2 ulp); new: 1
    assert ulps.max() <= 2 and (ulps > 0).any()
    # the new values are the float64 min-max rounded once to float32
    plain = _old_flow_image(flow, size, "none", optical_strain(flow))
    expected = np.stack([minmax_scale(c).astype(np.float32) for c in plain])
    np.testing.assert_array_equal(new, expected)


def test_a_non_square_flow_keeping_its_shorter_side_is_resampled_by_area_like_single_images():
    flow = _flow(5, 16, 24)
    new = resize_flow(flow, 16)
    area = cv2.resize(flow[..., 0].copy(), (16, 16), interpolation=cv2.INTER_AREA) * np.float32(16 / 24)
    np.testing.assert_array_equal(new[..., 0], area)
    assert not np.array_equal(new[..., 0], _old_flow_resize(flow[..., 0], 16) * np.float32(16 / 24))
    # ... and exactly as a single image of the same values is resampled
    np.testing.assert_array_equal(new[..., 1], resize_square(flow[..., 1], 16) * np.float32(16 / 16))


# ------------------------------------------------------------------------------------------ the kernels themselves
def test_resize_square_rules():
    img = np.arange(6 * 9 * 2, dtype=np.float32).reshape(6, 9, 2)
    same = np.ascontiguousarray(img[:, :6])
    assert resize_square(same, 6) is same  # nothing to resample, no copy
    out = resize_square(img, 3)  # both sides shrink by whole factors: 2×3 box means
    np.testing.assert_allclose(out[0, 0], img[:2, :3].reshape(-1, 2).mean(axis=0), rtol=1e-6)
    assert resize_square(img[..., :1], 4).shape == (4, 4, 1)  # a channel axis of 1 is kept
    up = resize_square(np.array([[0.0, 10.0]]), 4)  # grows: bilinear, ends clamped
    np.testing.assert_allclose(up[0], [0.0, 2.5, 7.5, 10.0])
    with pytest.raises(ValueError, match="size must be >= 1"):
        resize_square(img, 0)
    with pytest.raises(ValueError, match="H x W"):
        resize_square(np.zeros(5), 2)


def test_minmax_scale_maps_min_to_0_and_max_to_top():
    x = np.array([[-3.0, 1.0], [5.0, 0.0]])
    np.testing.assert_array_equal(minmax_scale(x), (x + 3) / 8)
    np.testing.assert_array_equal(minmax_scale(x, 255.0)[1, 0], 255.0)
    assert minmax_scale(np.full((2, 3), 4.0)).tolist() == [[0.0] * 3] * 2
    assert minmax_scale(x).dtype == np.float64


def test_the_shared_image_kernels_import_no_topic():
    import mer.pipeline.image_ops as ops

    tree = ast.parse(Path(ops.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith("mer")}, imported
