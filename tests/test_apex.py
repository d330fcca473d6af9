"""Tests of apex choice: middle frame, motion-based detection, and the annotated/fallback resolution."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from mer.pipeline.temporal.apex import choose_apex, detected_apex, middle_apex


def bump_clip(n: int, apex: int, seed: int, peak_px: float = 1.5, noise: float = 3.0, size: int = 64):
    """Textured face-sized image warped by a smooth field whose amplitude peaks at ``apex``, plus noise."""
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.standard_normal((size, size)), 2.0)
    texture = (texture - texture.min()) / np.ptp(texture) * 200 + 25
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # a localised smooth displacement (like a mouth-corner raise), mostly vertical
    blob = np.exp(-((xx - 0.6 * size) ** 2 + (yy - 0.65 * size) ** 2) / (2 * (0.2 * size) ** 2))
    frames = []
    for t in range(n):
        amp = peak_px * np.exp(-0.5 * ((t - apex) / (0.12 * n)) ** 2)
        mx = (xx + 0.3 * amp * blob).astype(np.float32)
        my = (yy + amp * blob).astype(np.float32)
        warped = cv2.remap(texture.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        noisy = warped + rng.normal(0, noise, warped.shape)
        grey = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        frames.append(np.repeat(grey[..., None], 3, axis=2))
    return np.stack(frames)


def test_middle_apex():
    assert [middle_apex(n) for n in (1, 2, 3, 4, 5, 6, 31)] == [0, 0, 1, 1, 2, 2, 15]
    with pytest.raises(ValueError):
        middle_apex(0)


@pytest.mark.parametrize(("n", "apex", "seed"), [(30, 8, 0), (30, 15, 1), (30, 22, 2), (24, 5, 3), (40, 31, 4)])
def test_detected_apex_finds_the_motion_peak(n, apex, seed):
    clip = bump_clip(n, apex, seed)
    assert abs(detected_apex(clip) - apex) <= 2


def test_detected_apex_with_flow_measure():
    clip = bump_clip(24, 14, seed=7)
    assert abs(detected_apex(clip, method="flow") - 14) <= 2


def test_detected_apex_ignores_noise_only_frames():
    # pure sensor noise around a static face: no frame should look like a strong apex, but the clip
    # with real motion must beat the noise floor clearly at its apex
    still = bump_clip(20, 10, seed=9, peak_px=0.0)
    moving = bump_clip(20, 10, seed=9, peak_px=1.5)
    from mer.pipeline.temporal.apex import motion_curve

    assert motion_curve(moving)[10] > 2 * motion_curve(still).max()


def resolve_apex(*args, **kwargs) -> int:
    return choose_apex(*args, **kwargs).position


def test_resolve_apex_modes():
    assert resolve_apex("annotated", 20, annotated=7) == 7
    assert resolve_apex("annotated", 20, annotated=np.int64(3)) == 3
    assert resolve_apex("middle", 20, annotated=7) == 9
    assert resolve_apex("annotated", 20, annotated=None, fallback="middle") == 9
    assert resolve_apex("annotated", 20, annotated=float("nan"), fallback="middle") == 9
    clip = bump_clip(20, 13, seed=5)
    assert abs(resolve_apex("annotated", 20, annotated=None, frames=clip, fallback="detected") - 13) <= 2
    assert abs(resolve_apex("detected", 20, frames=clip) - 13) <= 2


def test_resolve_apex_errors():
    with pytest.raises(ValueError, match="no annotated apex"):
        resolve_apex("annotated", 20, annotated=None)
    with pytest.raises(ValueError, match=r"apex=20.*n_frames=20"):
        resolve_apex("annotated", 20, annotated=20)
    with pytest.raises(ValueError, match="needs the clip's frames"):
        resolve_apex("detected", 20)
    with pytest.raises(ValueError, match="mode"):
        resolve_apex("peak", 20)
    with pytest.raises(ValueError, match="fallback"):
        resolve_apex("annotated", 20, fallback="annotated")


def test_choose_apex_names_the_rule_and_keeps_the_detectors_curve():
    from mer.pipeline.temporal.apex import motion_curve

    assert choose_apex("annotated", 20, annotated=7, fallback="middle") == choose_apex("annotated", 20, annotated=7)
    assert (choose_apex("annotated", 20, annotated=7).rule, choose_apex("annotated", 20, annotated=7).motion) == (
        "annotated", None)
    fell_back = choose_apex("annotated", 20, annotated=None, fallback="middle")
    assert (fell_back.position, fell_back.rule) == (9, "middle")
    clip = bump_clip(20, 13, seed=5)
    detected = choose_apex("annotated", 20, annotated=float("nan"), frames=clip, fallback="detected")
    assert detected.rule == "detected" and abs(detected.position - 13) <= 2
    np.testing.assert_array_equal(detected.motion, motion_curve(clip))
    assert detected.position == int(np.argmax(detected.motion))
