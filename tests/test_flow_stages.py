"""Flow stages end to end (issue 4): kernel accuracy against the synthetic generator's exact flow, the stored
``flow`` / ``flow-image`` / ``roi-flow`` arrays after ``mer-cli build-flow``, early errors, determinism."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.pipeline.flow.codec import decode_flow, flow_codec_max_error
from mer.pipeline.flow.image import flow_image
from mer.pipeline.flow.optical_flow import FarnebackParams, compute_flow, farneback, to_grey, tvl1
from mer.pipeline.flow.roi import flow_motion, load_roi_set, roi_sequence
from mer.pipeline.frames_io import read_frame
from mer.pipeline.graph import build_plan
from mer.pipeline.runner import run_plan
from mer.store import open_store
from mer.synthetic.clips import generate_synthetic

BROW_AUS = {1, 2, 4}  # AU1 inner / AU2 outer brow raiser, AU4 brow lowerer: bumps on landmarks 17-26 only
MOUTH_AUS = {6, 12, 15}  # AU12 / AU15 lip corners (48, 54); AU6 cheeks below the eyes, neither brows nor lips


# ------------------------------------------------------------------------------------- accuracy on raw frames
@pytest.fixture(scope="module")
def truth_clips(tmp_path_factory) -> list[Path]:
    """truth.npz of 3 clips at 320×240 (AU12, AU1+2, AU4) and one at 640×480 (AU4, peak ≈2 px)."""
    base = tmp_path_factory.mktemp("flow_truth")
    generate_synthetic(base / "small", subjects=1, clips_per_subject=3, classes=3, seed=0, frame_size=(320, 240))
    generate_synthetic(base / "large", subjects=1, clips_per_subject=1, classes=3, seed=1, frame_size=(640, 480))
    return sorted((base / "small").glob("*/*/truth.npz")) + sorted((base / "large").glob("*/*/truth.npz"))


@pytest.mark.parametrize(("method", "limit", "moving_limit"), [(tvl1, 0.15, 0.25), (farneback, 0.3, 0.35)])
def test_median_epe_on_raw_synthetic_frames(truth_clips, method, limit, moving_limit):
    """Default kernel parameters on the raw JPEG frames (sensor noise included), onset → apex, against the exact
    flow: median end-point error over the face region below the issue's limit; where the action unit moves the
    face (AU displacement > 1/4 of the clip's peak) the median stays below ``moving_limit``.

    Measured (this generator, OpenCV 5.0): TV-L1 face 0.022–0.044, moving 0.07–0.16 px; Farneback face
    0.058–0.11, moving 0.115–0.23 px."""
    face_medians, moving_medians = [], []
    for path in truth_clips:
        truth = np.load(path)
        onset, apex = int(truth["onset"]), int(truth["apex"])
        a = read_frame(path.parent / f"img{onset:05d}.jpg")
        b = read_frame(path.parent / f"img{apex:05d}.jpg")
        true = truth["flow_onset_apex"].astype(np.float64)
        flow = method(a, b)
        assert flow.shape == true.shape
        err = np.linalg.norm(flow - true, axis=-1)
        face = truth["face_mask"]
        head = truth["drift"][apex - 1] - truth["drift"][onset - 1]  # the head translation part of the truth
        moving = face & (np.linalg.norm(true - head, axis=-1) > 0.25 * float(truth["peak_px"]))
        assert moving.sum() > 500
        face_medians.append(float(np.median(err[face])))
        moving_medians.append(float(np.median(err[moving])))
    print(f"{method.__name__}: median EPE face {np.round(face_medians, 3)}, moving {np.round(moving_medians, 3)}")
    assert max(face_medians) < limit, face_medians
    assert max(moving_medians) < moving_limit, moving_medians


# ------------------------------------------------------------------------------------- stages on a store
def _copy_store(face_store, dest: Path) -> str:
    base, _ = face_store
    shutil.copytree(base / "store", dest)
    return str(dest)


def _build_flow_cli(store: str, *extra: str) -> None:
    args = ["build-flow", "--store", store, "--dataset", "synth", "--workers", "1", "--quiet", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def flow_store(face_store, tmp_path_factory) -> str:
    """The face-stage store with ``mer-cli build-flow --roi 14`` run on it (Farneback, onset→apex, apex→offset)."""
    store = _copy_store(face_store, tmp_path_factory.mktemp("flow_store") / "store")
    _build_flow_cli(store, "--roi", "14")
    return store


def test_flow_entry_holds_the_annotated_pairs_and_the_kernel_flow(flow_store):
    st = open_store(flow_store)
    assert len(st.ls("synth", "flow")) == 1
    codec_error = flow_codec_max_error()
    assert codec_error == pytest.approx(1 / 512)
    for _, row in st.manifest("synth").iterrows():
        clip = row["clip_id"]
        frames = st.read("synth", "equalize", clip=clip)
        flows = st.read("synth", "flow", clip=clip)
        pairs = st.read("synth", "flow", clip=clip, name="pairs")
        apex = list(row["frame_numbers"]).index(int(row["apex"]))
        assert flows.dtype == np.int16 and flows.shape == (2, 256, 256, 2)
        assert pairs.tolist() == [[0, apex], [apex, len(frames) - 1]]
        for code, (a, b) in zip(flows, pairs, strict=True):
            expected = compute_flow(to_grey(frames[a]), to_grey(frames[b]), "farneback", FarnebackParams())
            decoded = decode_flow(code)
            assert np.abs(expected).max() > 0.2  # real motion, not an all-zero field
            assert np.abs(decoded.astype(np.float64) - expected).max() <= codec_error + 1e-6


def test_flow_image_is_the_signed_uv_strain_of_the_first_pair_and_declares_its_channels(flow_store):
    st = open_store(flow_store)
    images = st.read("synth", "flow-image")
    assert images.shape == (6, 3, 28, 28) and images.dtype == np.float32
    entry = st.find("synth", "flow-image")
    assert entry.attrs["channels"] == ["u", "v", "strain"] and entry.attrs["scaling"]["normalise"] == "maxabs"
    for i, clip in enumerate(st.clips("synth")):
        first = decode_flow(st.read("synth", "flow", clip=clip)[0])
        np.testing.assert_array_equal(images[i], flow_image(first, size=28, normalise="maxabs"))
        assert np.sqrt(images[i, 0] ** 2 + images[i, 1] ** 2).max() == pytest.approx(1.0, abs=1e-6)
        assert images[i, :2].min() < 0 < images[i, :2].max()  # signed
        assert images[i, 2].min() >= 0 and images[i, 2].max() == pytest.approx(1.0)


def test_roi_flow_sequences_and_top_frames(flow_store):
    st = open_store(flow_store)
    sequences = st.read("synth", "roi-flow")
    top = st.read("synth", "roi-flow", name="top_frames")
    assert sequences.shape == (6, 32, 14, 2) and sequences.dtype == np.float32
    assert top.shape == (6, 8) and top.dtype == np.int32
    for i, clip in enumerate(st.clips("synth")):
        flows = decode_flow(st.read("synth", "flow", clip=clip))
        pairs = st.read("synth", "flow", clip=clip, name="pairs")
        landmarks = st.read("synth", "align", clip=clip, name="landmarks")[pairs[:, 0]]
        np.testing.assert_allclose(sequences[i], roi_sequence(flows, landmarks, "stag14", length=32), atol=1e-6)
        # two pairs: both targets (apex, offset) in time order, the rest padded with -1
        assert top[i].tolist() == [int(pairs[0, 1]), int(pairs[1, 1])] + [-1] * 6


def test_roi_motion_lands_in_the_moving_region(flow_store, face_store):
    """Brow-only clips (AU1+2, AU4) move the brow ROIs, mouth-only clips (AU12, AU15, AU6+12) the mouth ROIs.

    Head drift moves the whole face alike, so each ROI vector is taken relative to the median over the ROIs at
    the same time step; a region's score is the motion of its most moving ROI (mean over time)."""
    st = open_store(flow_store)
    sequences = st.read("synth", "roi-flow").astype(np.float64)
    names = load_roi_set("stag14").names
    brow = [j for j, n in enumerate(names) if "brow" in n]
    mouth = [j for j, n in enumerate(names) if n.startswith("mouth")]
    data = face_store[0] / "data"
    seen = set()
    for i, clip in enumerate(st.clips("synth")):
        aus = {int(a) for a in str(np.load(data / clip / "truth.npz")["action_units"]).split("+")}
        relative = sequences[i] - np.median(sequences[i], axis=1, keepdims=True)
        motion = np.linalg.norm(relative, axis=-1).mean(axis=0)
        brow_score, mouth_score = motion[brow].max(), motion[mouth].max()
        if aus <= BROW_AUS:
            seen.add("brow")
            assert brow_score > 2 * mouth_score, (clip, aus, brow_score, mouth_score)
        elif aus <= MOUTH_AUS:
            seen.add("mouth")
            assert mouth_score > 2 * brow_score, (clip, aus, brow_score, mouth_score)
    assert seen == {"brow", "mouth"}  # the fixture's seed has clips of both kinds


def test_sequence_pairs_and_the_largest_motion_frames(face_store, tmp_path):
    store = _copy_store(face_store, tmp_path / "store")
    _build_flow_cli(store, "--pairs", "sequence", "--roi", "6", "--length", "16")
    st = open_store(store)
    sequences = st.read("synth", "roi-flow")
    top = st.read("synth", "roi-flow", name="top_frames")
    assert sequences.shape == (6, 16, 6, 2)
    for i, row in st.manifest("synth").iterrows():
        clip, n = row["clip_id"], int(row["n_frames"])
        pairs = st.read("synth", "flow", clip=clip, name="pairs")
        flows = decode_flow(st.read("synth", "flow", clip=clip))
        assert pairs.tolist() == [[t, t + 1] for t in range(n - 1)]
        assert flows.shape == (n - 1, 256, 256, 2)
        landmarks = st.read("synth", "align", clip=clip, name="landmarks")[:-1]
        np.testing.assert_allclose(sequences[i], roi_sequence(flows, landmarks, "stag6", length=16), atol=1e-6)
        # top_frames: targets of the 8 flows of largest local motion (median removed), in time order
        chosen = top[i] - 1  # pair t -> t+1 has target t+1
        assert len(set(chosen.tolist())) == 8 and np.all(np.diff(chosen) > 0) and chosen.min() >= 0
        motion = flow_motion(flows, remove_global=True)
        others = np.setdiff1d(np.arange(n - 1), chosen)
        assert motion[chosen].min() >= motion[others].max()


def test_unknown_method_or_pair_mode_fails_before_any_clip(face_store, tmp_path):
    store = _copy_store(face_store, tmp_path / "store")
    st = open_store(store, "a")
    with pytest.raises(ValueError, match="method='lk'"):
        build_plan(st, "synth", ["flow"], {"flow": {"method": "lk"}})
    with pytest.raises(ValueError, match="pairs='onset-apex,bogus'"):
        build_plan(st, "synth", ["flow"], {"flow": {"pairs": "onset-apex,bogus"}})
    with pytest.raises(ValueError, match="winsz"):
        build_plan(st, "synth", ["flow"], {"flow": {"method_params": {"winsz": 9}}})
    with pytest.raises(ValueError, match="normalise='mean'"):
        build_plan(st, "synth", ["flow", "flow-image"], {"flow-image": {"normalise": "mean"}})
    with pytest.raises(ValueError, match="unknown ROI set 'stag7'"):
        build_plan(st, "synth", ["flow", "roi-flow"], {"roi-flow": {"roi_set": "stag7"}})

    runner = CliRunner()
    base = ["build-flow", "--store", store, "--dataset", "synth", "--workers", "1", "--quiet"]
    for extra, message in ((["--method", "lk"], "method="), (["--pairs", "sequence,bogus"], "pairs=")):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert runner.invoke(app, [*base, "--roi", "7"]).exit_code == 2
    assert st.ls("synth", "flow") == [] and not (Path(store) / "synth" / "flow").exists()


def _entry_files(store: str, stage: str) -> dict[str, bytes]:
    """Chunks and commit markers of the stage's entries (zarr.json aside: it holds times and hosts)."""
    root = Path(store) / "synth" / stage
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "zarr.json"}


def test_same_inputs_and_params_store_identical_flow_bytes(face_store, tmp_path):
    params = {"flow": {"method": "tvl1", "pairs": "onset-apex"}}
    files = []
    for run in ("a", "b"):
        st = open_store(_copy_store(face_store, tmp_path / run), "a")
        plan = build_plan(st, "synth", ["flow"], params)
        report = run_plan(st, "synth", plan, workers=1)
        assert report.computed["flow"] == 6 and not report.failures
        files.append(_entry_files(str(tmp_path / run), "flow"))
    chunks = [k for k in files[0] if "/_done/" not in k]
    assert len(chunks) >= 12 and sum("/_done/" in k for k in files[0]) == 6  # flow + pairs per clip, 6 markers
    assert files[0] == files[1]
