"""Tests of the synthetic micro-expression generator: layout, determinism, motion bounds and ground truth."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer.pipeline.face.detect import detect_candidates
from mer.pipeline.face.landmarks import predict_on_box
from mer.synthetic import clips as syn
from mer.synthetic import motion as sm
from mer.synthetic.photos import DETECT_THRESHOLD, best_face, photo_face

SIZE = (320, 240)
CONFIG = {"subjects": 2, "clips_per_subject": 3, "classes": 3, "frame_size": SIZE}
FACE_WIDTH = 256 * min(SIZE[0] / 640, SIZE[1] / 480)  # expected face width for SIZE, px


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "annotations.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _frame(clip_dir: Path, n: int) -> np.ndarray:
    bgr = cv2.imread(str(clip_dir / f"img{n:05d}.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing frame {n} in {clip_dir}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _truth(clip_dir: Path) -> dict[str, np.ndarray]:
    with np.load(clip_dir / "truth.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, syn.SynthSummary, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = syn.generate_synthetic(out, seed=0, progress=lambda d, t: calls.append((d, t)), **CONFIG)
    return out, summary, calls


def test_layout_csv_and_summary(dataset):
    root, summary, calls = dataset
    rows = _rows(root)
    with open(root / "annotations.csv", newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == ["subject", "clip", "onset", "apex", "offset", "action_units", "emotion"]
    assert len(rows) == 6 == summary.n_clips
    assert {r["subject"] for r in rows} == {"s01", "s02"}
    assert "seed 0" in (root / "README.txt").read_text(encoding="utf-8")
    total = 0
    for r in rows:
        assert r["clip"].startswith(r["subject"] + "_c") and "/" not in r["clip"]
        clip_dir = root / r["subject"] / r["clip"]
        numbers = sorted(int(p.stem[3:]) for p in clip_dir.glob("img*.jpg"))
        assert all(len(p.stem) == 8 for p in clip_dir.glob("img*.jpg"))  # img + 5 digits
        n = len(numbers)
        assert numbers == list(range(1, n + 1)), "frame numbers must be contiguous from 1"
        assert 30 <= n <= 80
        onset, apex, offset = int(r["onset"]), int(r["apex"]), int(r["offset"])
        assert 1 < onset < apex < offset < n, "neutral frames must exist before onset and after offset"
        for k in (onset, apex, offset):
            assert (clip_dir / f"img{k:05d}.jpg").is_file()
        assert _frame(clip_dir, 1).shape == (SIZE[1], SIZE[0], 3)
        truth = _truth(clip_dir)
        assert (int(truth["onset"]), int(truth["apex"]), int(truth["offset"])) == (onset, apex, offset)
        assert str(truth["emotion"]) == r["emotion"] and str(truth["action_units"]) == r["action_units"]
        total += n
    assert summary.n_frames == total
    assert calls == [(i, 6) for i in range(1, 7)]


def test_classes_balanced_and_aus_match_emotion(dataset):
    root, summary, _ = dataset
    rows = _rows(root)
    for subject in ("s01", "s02"):  # each subject gets every class once with 3 clips and 3 classes
        assert sorted(r["emotion"] for r in rows if r["subject"] == subject) == [
            "negative",
            "positive",
            "surprise",
        ]
    assert summary.emotions == {"positive": 2, "negative": 2, "surprise": 2}
    allowed = {"positive": {"12", "6+12"}, "negative": {"4+15", "4", "15"}, "surprise": {"1+2+26", "1+2"}}
    for r in rows:
        assert r["action_units"] in allowed[r["emotion"]]


def test_five_class_plans_use_casme2_names():
    subject = syn.make_subject(0, "s01", SIZE, seed=3)
    for index in range(3):
        plans = syn.plan_clips(index, subject, 5, 5, seed=3)
        assert sorted(p.emotion for p in plans) == [
            "disgust",
            "happiness",
            "others",
            "repression",
            "surprise",
        ]
        for p in plans:
            aus = set(p.aus)
            if p.emotion == "disgust":
                assert aus & {9, 10}
            if p.emotion == "repression":
                assert aus & {14, 17}


def test_truth_arrays(dataset):
    root, _, _ = dataset
    for r in _rows(root):
        clip_dir = root / r["subject"] / r["clip"]
        t = _truth(clip_dir)
        n = len(list(clip_dir.glob("img*.jpg")))
        onset, apex, offset = int(r["onset"]), int(r["apex"]), int(r["offset"])
        amp = t["amplitude"]
        assert amp.shape == (n,) and amp.min() >= 0 and amp.max() <= 1
        assert np.all(amp[:onset] == 0) and np.all(amp[offset - 1 :] == 0)
        assert amp[apex - 1] == 1 and int(np.argmax(amp)) == apex - 1
        assert t["drift"].shape == (n, 2) and np.allclose(t["drift"][0], 0)
        step = np.linalg.norm(np.diff(t["drift"], axis=0), axis=1)
        assert np.linalg.norm(t["drift"], axis=1).max() <= 1.0 * FACE_WIDTH / 256 * 1.1 + 1e-6
        assert step.max() < 0.2, "head drift must be smooth"
        assert t["flow_onset_apex"].shape == (SIZE[1], SIZE[0], 2) and t["flow_onset_apex"].dtype == np.float32
        assert t["face_mask"].shape == (SIZE[1], SIZE[0]) and t["face_mask"].dtype == bool
        assert t["landmarks"].shape == (n, 68, 2) and t["landmarks"].dtype == np.float32
        lm = t["landmarks"]
        still = lm - t["drift"][:, None, :]
        # neutral frames: the face only drifts; at the apex it also moves
        assert np.abs(still[:onset] - still[0]).max() < 1e-3
        assert np.abs(still[offset - 1 :] - still[0]).max() < 1e-3
        assert np.abs(still[apex - 1] - still[0]).max() > 0.2
        x0, y0, x1, y1 = t["face_box"]
        inside = (lm[0, :, 0] >= x0) & (lm[0, :, 0] <= x1) & (lm[0, :, 1] >= y0) & (lm[0, :, 1] <= y1)
        assert inside.mean() > 0.9
        assert 0 <= x0 < x1 <= SIZE[0] and 0 <= y0 < y1 <= SIZE[1]
        ys, xs = np.nonzero(t["face_mask"])
        margin = 0.02 * SIZE[1]
        assert xs.min() > margin and ys.min() > margin and xs.max() < SIZE[0] - margin and ys.max() < SIZE[1] - margin


def test_face_size_and_peak_displacement_bound(dataset):
    root, _, _ = dataset
    for r in _rows(root):
        t = _truth(root / r["subject"] / r["clip"])
        lm = t["landmarks"]
        fw = float(np.linalg.norm(lm[0, 16] - lm[0, 0]))
        assert 0.85 * FACE_WIDTH < fw < 1.15 * FACE_WIDTH
        bound = 2.0 * fw / 256
        onset, apex = int(r["onset"]), int(r["apex"])
        motion = t["flow_onset_apex"] - (t["drift"][apex - 1] - t["drift"][onset - 1])
        peak = float(np.linalg.norm(motion, axis=2).max())
        assert 0.4 * bound < peak <= bound + 1e-4
        # no frame moves a landmark further than the bound (beyond the drift)
        lm_motion = lm - t["drift"][:, None, :] - lm[0]
        assert np.linalg.norm(lm_motion, axis=2).max() <= bound + 1e-4
        # the motion is local: away from the face, only the drift remains
        reach = int(0.45 * fw)
        kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
        far = ~cv2.dilate(t["face_mask"].astype(np.uint8), kernel).astype(bool)
        assert far.mean() > 0.2
        assert np.abs(motion[far]).max() < 1e-3


def test_same_seed_identical_bytes_different_seed_differs(dataset, tmp_path):
    root, _, _ = dataset
    again = syn.generate_synthetic(tmp_path / "again", seed=0, **CONFIG).out
    other = syn.generate_synthetic(tmp_path / "other", seed=1, **CONFIG).out
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel
    assert (root / "annotations.csv").read_bytes() != (other / "annotations.csv").read_bytes()
    first = root / "s01" / "s01_c01" / "img00001.jpg"
    assert first.read_bytes() != (other / "s01" / "s01_c01" / "img00001.jpg").read_bytes()


def test_flow_maps_onset_to_apex_in_written_frames(dataset):
    """Warping the apex frame back with the true flow reproduces the onset frame where the face moves."""
    root, _, _ = dataset
    grid = sm.pixel_grid((SIZE[1], SIZE[0]))

    def blur(x: np.ndarray) -> np.ndarray:  # sensor noise aside
        return cv2.GaussianBlur(x, (0, 0), 1.5)

    for r in _rows(root):
        clip_dir = root / r["subject"] / r["clip"]
        t = _truth(clip_dir)
        onset, apex = int(r["onset"]), int(r["apex"])
        on = _frame(clip_dir, onset).astype(np.float32)
        ap = _frame(clip_dir, apex).astype(np.float32)
        flow = t["flow_onset_apex"]
        drift = (t["drift"][apex - 1] - t["drift"][onset - 1]).astype(np.float32)
        motion = np.linalg.norm(flow - drift, axis=2)
        region = motion > 0.5 * motion.max()
        back = cv2.remap(ap, grid + flow, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        drift_only = cv2.remap(ap, grid + drift, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        err = np.abs(blur(back) - blur(on))[region].mean()
        err_drift = np.abs(blur(drift_only) - blur(on))[region].mean()
        err_none = np.abs(blur(ap) - blur(on))[region].mean()
        assert err < 0.5 * err_drift and err < 0.5 * err_none, (r["clip"], err, err_drift, err_none)


def test_flow_is_exact_on_noise_free_render():
    """Without noise, on a smooth texture, the true flow explains the apex frame to interpolation accuracy."""
    shape = (SIZE[1], SIZE[0])
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    texture = np.dstack(  # two smooth gratings, so that both flow components matter
        [
            128
            + 60 * np.sin(2 * np.pi * (0.8 * xx + 0.6 * yy) / 15 + c)
            + 60 * np.sin(2 * np.pi * (-0.5 * xx + 0.87 * yy) / 19 + 2 * c)
            for c in (0.0, 1.0, 2.0)
        ]
    ).astype(np.float32)
    grid = sm.pixel_grid(shape)
    for index in range(2):
        subject = dataclasses.replace(syn.make_subject(index, "s", SIZE, seed=5), base=texture)
        for plan in syn.plan_clips(index, subject, 3, 3, seed=5):
            frames = list(syn.render_frames(subject, plan, noise=False))
            on = frames[plan.onset - 1].astype(np.float32)
            ap = frames[plan.apex - 1].astype(np.float32)
            flow = syn.clip_truth(subject, plan)["flow_onset_apex"]
            drift = (plan.drift[plan.apex - 1] - plan.drift[plan.onset - 1]).astype(np.float32)
            motion = np.linalg.norm(flow - drift, axis=2)
            region = motion > 0.3 * motion.max()
            back = cv2.remap(ap, grid + flow, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
            shifted = cv2.remap(ap, grid + drift, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
            err = np.abs(back - on)[region].mean()
            err_drift = np.abs(shifted - on)[region].mean()
            # what remains is uint8 rounding and OpenCV's 1/32-px interpolation grid (~0.1 of the motion)
            assert err < 0.2 * err_drift, (plan.name, err, err_drift)
            # geometry: the apex frame samples, at x + flow(x), the base point the onset frame shows at x
            field = sm.field_grid(plan.bumps, shape)
            box = sm.field_support(plan.bumps, shape, pad=int(np.ceil(plan.peak_px + 2)) + 2)
            amp = float(plan.amplitude[plan.apex - 1])
            mapping = sm.sampling_map(grid, field, box, amp, plan.drift[plan.apex - 1])
            sampled = cv2.remap(mapping, grid + flow, None, cv2.INTER_LINEAR)
            expected = grid - plan.drift[plan.onset - 1].astype(np.float32)
            resid = np.linalg.norm(sampled - expected, axis=2)[10:-10, 10:-10]
            assert resid.max() < 0.05


def test_fixed_point_inverse_beats_first_order():
    """The rendering map solves p + a D(p) + drift = x; the first-order guess x - a D(x) does not."""
    shape = (SIZE[1], SIZE[0])
    subject = syn.make_subject(0, "s", SIZE, seed=0)
    plan = syn.plan_clips(0, subject, 1, 3, seed=0)[0]
    bumps = plan.bumps.scaled(3.0)  # exaggerate to make the second-order term visible
    grid = sm.pixel_grid(shape)
    field = sm.field_grid(bumps, shape)
    drift = np.array([0.3, -0.2])
    box = sm.field_support(bumps, shape, pad=12)
    mapping = sm.sampling_map(grid, field, box, 1.0, drift).astype(np.float64)
    x0, y0, x1, y1 = box
    p = mapping[y0:y1, x0:x1]
    forward = p + sm.field_at(bumps, p) + drift
    assert np.abs(forward - grid[y0:y1, x0:x1]).max() < 0.02
    first_order = grid[y0:y1, x0:x1] - drift - sm.field_at(bumps, grid[y0:y1, x0:x1] - drift)
    forward1 = first_order + sm.field_at(bumps, first_order) + drift
    assert np.abs(forward1 - grid[y0:y1, x0:x1]).max() > 0.05


def test_au_motion_directions():
    """Each AU moves its landmarks the right way (image y grows downwards; faces are nearly upright)."""
    checks = {  # AU -> (landmarks, expected sign of dy or dx-outward)
        12: ((48, 54), "up"),
        15: ((48, 54), "down"),
        4: ((21, 22), "down"),
        1: ((21, 22), "up"),
        2: ((18, 25), "up"),
        26: ((8,), "down"),
        9: ((31, 35), "up"),
        10: ((51,), "up"),
        17: ((8,), "up"),
        7: ((41, 46), "up"),
        14: ((48, 54), "out"),
    }
    seen = set()
    for classes in (3, 5):
        for index in range(2):
            subject = syn.make_subject(index, "s", SIZE, seed=11)
            for plan in syn.plan_clips(index, subject, 10, classes, seed=11):
                lm = subject.landmarks.astype(np.float64)
                moved = lm + sm.field_at(plan.bumps, lm)
                d = moved - lm
                mid_x = lm[27, 0]
                for au in plan.aus:
                    if au not in checks:
                        continue
                    points, way = checks[au]
                    for k in points:
                        if way == "up":
                            assert d[k, 1] < -0.2 * plan.peak_px, (plan.au_string, k, d[k])
                        elif way == "down":
                            assert d[k, 1] > 0.2 * plan.peak_px, (plan.au_string, k, d[k])
                        else:
                            assert d[k, 0] * np.sign(lm[k, 0] - mid_x) > 0.2 * plan.peak_px, (
                                plan.au_string,
                                k,
                            )
                    seen.add(au)
    assert {12, 15, 4, 1, 2, 26} <= seen


def test_landmarks_agree_with_dlib_on_frame_one(dataset):
    root, _, _ = dataset
    for subject in ("s01", "s02"):
        clip_dir = root / subject / f"{subject}_c01"
        t = _truth(clip_dir)
        frame = _frame(clip_dir, 1)
        box, _ = best_face(frame)
        found = predict_on_box(frame, box)
        fw = float(np.linalg.norm(t["landmarks"][0, 16] - t["landmarks"][0, 0]))
        err = np.linalg.norm(found - t["landmarks"][0], axis=1)
        assert np.median(err) < 0.025 * fw and err.mean() < 0.035 * fw, (subject, err.mean())
        # the face box of the truth overlaps dlib's detection on the frame
        assert _iou(box, tuple(t["face_box"])) > 0.5


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_subjects_differ_in_appearance(dataset):
    root, _, _ = dataset
    a = _frame(root / "s01" / "s01_c01", 1).astype(np.float32)
    b = _frame(root / "s02" / "s02_c01", 1).astype(np.float32)
    assert np.abs(a - b).mean() > 20
    # two subjects made from the same photo still differ in placement, size and colour
    s0 = syn.make_subject(0, "s01", SIZE, seed=0)
    s2 = syn.make_subject(2, "s03", SIZE, seed=0)
    assert s0.photo == s2.photo and s0.mirrored != s2.mirrored
    assert np.abs(s0.base - s2.base).mean() > 10
    colour0 = s0.base[s0.face_mask].mean(axis=0)
    colour2 = s2.base[s2.face_mask].mean(axis=0)
    assert np.abs(colour0 - colour2).max() > 2


def test_astronaut_false_face_is_not_chosen():
    """dlib also scores the mission patch on the astronaut's suit; the real face must win."""
    image = photo_face("astronaut").image
    real_face = (175.0, 75.0, 270.0, 175.0)  # judged by eye on skimage's astronaut (512×512)
    for upsample in (0, 1):
        candidates = detect_candidates(image, "hog", upsample, threshold=DETECT_THRESHOLD)
        false = [c.box for c in candidates if _iou(c.box, real_face) < 0.1]
        assert false, "a candidate away from the real face (the suit patch) is expected"
        box, _ = best_face(image, upsample)
        assert _iou(box, real_face) > 0.5
        if upsample == 0:  # here the false face is the larger box: choosing by size would fail
            assert max(b[2] - b[0] for b in false) > box[2] - box[0]
    assert _iou(photo_face("astronaut").box, real_face) > 0.5
    mirrored_face = (512 - real_face[2], real_face[1], 512 - real_face[0], real_face[3])
    assert _iou(photo_face("astronaut", mirrored=True).box, mirrored_face) > 0.5


def test_refuses_foreign_folder_and_replaces_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError):
        syn.generate_synthetic(foreign, subjects=1, clips_per_subject=1, frame_size=(160, 120))
    assert (foreign / "keep.txt").read_text() == "not a dataset"
    out = tmp_path / "own"
    syn.generate_synthetic(out, subjects=1, clips_per_subject=2, frame_size=(160, 120))
    syn.generate_synthetic(out, subjects=1, clips_per_subject=1, frame_size=(160, 120))
    assert len(_rows(out)) == 1 and not (out / "s01" / "s01_c02").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders must be removed"


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        syn.generate_synthetic(tmp_path / "x", classes=4)
    with pytest.raises(ValueError):
        syn.generate_synthetic(tmp_path / "x", subjects=0)
    assert not (tmp_path / "x").exists()
