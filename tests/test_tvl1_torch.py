"""``tvl1-torch`` (issue 18): the PyTorch Dual TV-L1 against OpenCV's on exact ground truth, its building blocks
against the OpenCV functions they reproduce, batching, per-pair convergence, and the flow stage / CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer.cli import app
from mer.pipeline.flow.codec import decode_flow, encode_flow
from mer.pipeline.flow.median_net import median_filter, selection_network
from mer.pipeline.flow.optical_flow import compute_flows, to_grey, tvl1
from mer.pipeline.flow.stages import FlowParams
from mer.pipeline.flow.tvl1_params import TVL1Params
from mer.pipeline.flow.tvl1_torch import (
    centred_gradient,
    dual_tvl1,
    resize_linear,
    tvl1_torch,
    tvl1_torch_batch,
    warp_bicubic,
)
from mer.store import open_store
from mer.synthetic import clips as syn

OPENCV_DEFAULTS = TVL1Params(epsilon=0.01)  # tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, 30×10, 0.8, 5×5


@pytest.fixture(autouse=True)
def one_torch_thread():
    """``dual_tvl1`` called directly runs on the caller's threads; one, as ``tvl1_torch_batch`` uses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _epe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a.astype(np.float64) - b, axis=-1)


# ------------------------------------------------------------------------------------------------ accuracy
@pytest.fixture(scope="module")
def synthetic_pairs() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Onset and apex frames (grey) of two synthetic clips at 240×180, their exact flow and face mask."""
    subject = syn.make_subject(0, "s", (240, 180), seed=0)
    out = []
    for plan in syn.plan_clips(0, subject, 2, 3, seed=0):
        frames = list(syn.render_frames(subject, plan))
        truth = syn.clip_truth(subject, plan)
        a, b = to_grey(frames[plan.onset - 1]), to_grey(frames[plan.apex - 1])
        out.append((a, b, truth["flow_onset_apex"], truth["face_mask"]))
    return out


def test_matches_opencv_on_synthetic_clips(synthetic_pairs):
    """OpenCV's parameters on both: the two fields differ by a median < 0.05 px over the frame, and the error
    against the exact flow on the face is within 10 % of OpenCV's (measured: 0.0007–0.008 px apart, errors
    0.0122 vs 0.0122 and 0.0268 vs 0.0268 px). The two clips run as one batch."""
    firsts = np.stack([a for a, _, _, _ in synthetic_pairs])
    seconds = np.stack([b for _, b, _, _ in synthetic_pairs])
    ours = tvl1_torch_batch(firsts, seconds, OPENCV_DEFAULTS)
    assert ours.shape == (2, 180, 240, 2) and ours.dtype == np.float32
    for flow, (a, b, true, face) in zip(ours, synthetic_pairs, strict=True):
        reference = tvl1(a, b, OPENCV_DEFAULTS)
        assert np.median(_epe(flow, reference)) < 0.05
        ours_err, cv_err = np.median(_epe(flow, true)[face]), np.median(_epe(reference, true)[face])
        assert cv_err > 0.005  # a real estimate: not a trivially exact field
        assert ours_err <= 1.10 * cv_err, (ours_err, cv_err)


def test_matches_opencv_on_the_middlebury_motorcycle():
    """Middlebury 2014 motorcycle, ÷6 (83×123, disparities ≈ 1.2–10 px): left → right flow is (−disparity, 0).
    Measured: fields 0.010 px apart (median), errors 0.379 vs 0.381 px."""
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    h, w = left.shape[0] // 6, left.shape[1] // 6
    a = cv2.resize(to_grey(left), (w, h), interpolation=cv2.INTER_AREA)
    b = cv2.resize(to_grey(right), (w, h), interpolation=cv2.INTER_AREA)
    disp = np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)
    disp = cv2.resize(disp, (w, h), interpolation=cv2.INTER_AREA) / 6  # NaN where any source pixel is unknown
    valid = np.isfinite(disp)
    assert valid.mean() > 0.5  # 63 % known (the rest is occluded or unmeasured in the ground truth)
    true = np.stack([-np.nan_to_num(disp), np.zeros_like(disp)], axis=-1)
    ours, reference = tvl1_torch(a, b, OPENCV_DEFAULTS), tvl1(a, b, OPENCV_DEFAULTS)
    assert np.median(_epe(ours, reference)) < 0.05
    ours_err, cv_err = np.median(_epe(ours, true)[valid]), np.median(_epe(reference, true)[valid])
    assert ours_err <= 1.10 * cv_err, (ours_err, cv_err)


# ------------------------------------------------------------------------------------------------ batching
@pytest.fixture(scope="module")
def three_pairs(synthetic_pairs) -> tuple[np.ndarray, np.ndarray]:
    """Three 64×64 pairs that converge differently: a static one, a 1-px shift, a warped face."""
    a, b = (cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA) for x in synthetic_pairs[0][:2])
    firsts = np.stack([a, a, a])
    seconds = np.stack([a, np.roll(a, 1, axis=1), np.roll(b, (1, -1), axis=(0, 1))])
    return firsts, seconds


def test_a_batch_gives_the_fields_of_the_pairs_one_by_one(three_pairs):
    firsts, seconds = three_pairs
    batch = tvl1_torch_batch(firsts, seconds, batch_size=3)
    assert np.abs(batch[2]).max() > 0.5  # real motion
    for k in range(3):
        np.testing.assert_array_equal(batch[k], tvl1_torch(firsts[k], seconds[k]))
    np.testing.assert_array_equal(batch, tvl1_torch_batch(firsts, seconds, batch_size=2))


def test_a_converged_pair_stops_changing_while_others_iterate(three_pairs):
    """The static pair converges at once in every warp: in a batch with moving pairs it does fewer iterations
    and ends bit-identical to its run alone, although more iterations would have changed it."""
    firsts, seconds = three_pairs
    i0 = torch.from_numpy(firsts).float()
    i1 = torch.from_numpy(seconds).float()
    p = TVL1Params()
    for check_every in (1, 7):  # compaction after every iteration, or masking in between (the CUDA path)
        flow, iterations = dual_tvl1(i0, i1, p, check_every=check_every, return_iterations=True)
        assert iterations[0] < iterations[1] and iterations[0] < iterations[2], iterations
        alone, alone_iterations = dual_tvl1(i0[:1], i1[:1], p, return_iterations=True)
        assert iterations[0] == alone_iterations[0]
        assert torch.equal(flow[0], alone[0])
    longer, more = dual_tvl1(i0[:1], i1[:1], TVL1Params(epsilon=0.005), return_iterations=True)
    assert more[0] > iterations[0] and not torch.equal(longer[0], flow[0])  # without the stop it keeps moving


def test_same_bytes_for_any_thread_count(three_pairs):
    firsts, seconds = three_pairs
    np.testing.assert_array_equal(
        tvl1_torch_batch(firsts[1:], seconds[1:], threads=1), tvl1_torch_batch(firsts[1:], seconds[1:], threads=2)
    )


# ------------------------------------------------------------------------------------------------ building blocks
def test_resize_matches_opencv_linear():
    img = np.random.default_rng(0).uniform(0, 255, (41, 57)).astype(np.float32)
    down = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours = resize_linear(torch.from_numpy(img), *down.shape, 1 / 0.8, 1 / 0.8).numpy()
    np.testing.assert_allclose(ours, down, atol=1e-3)
    up = cv2.resize(down, (57, 41), interpolation=cv2.INTER_LINEAR)
    ours_up = resize_linear(torch.from_numpy(down), 41, 57, down.shape[0] / 41, down.shape[1] / 57).numpy()
    np.testing.assert_allclose(ours_up, up, atol=1e-3)


def test_warp_matches_opencv_remap_cubic_with_zero_border():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, (30, 40)).astype(np.float32)
    flow = rng.uniform(-4, 4, (30, 40, 2)).astype(np.float32)  # reaches outside the image at the borders
    grid = np.dstack(np.meshgrid(np.arange(40), np.arange(30))).astype(np.float32)
    expected = cv2.remap(img, grid + flow, None, cv2.INTER_CUBIC)
    ours = warp_bicubic(torch.from_numpy(img)[None, None], torch.from_numpy(flow).permute(2, 0, 1)[None])
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, atol=2e-3)


def test_centred_gradient_halves_the_differences_and_the_border_steps():
    img = torch.tensor([[0.0, 2.0, 6.0], [1.0, 5.0, 7.0], [4.0, 4.0, 9.0]])[None]
    dx, dy = centred_gradient(img)
    assert dx[0].tolist() == [[1.0, 3.0, 2.0], [2.0, 3.0, 1.0], [0.0, 2.5, 2.5]]
    assert dy[0].tolist() == [[0.5, 1.5, 0.5], [2.0, 1.0, 1.5], [1.5, -0.5, 1.0]]


@pytest.mark.parametrize("size", [3, 5])
def test_median_network_matches_opencv(size):
    x = np.random.default_rng(size).normal(size=(2, 23, 31)).astype(np.float32)
    x[0, 3:9, 4:12] = 1.0  # ties
    x[1, :, 5] = 2.0
    ours = median_filter(torch.from_numpy(x), size).numpy()
    for k in range(2):
        np.testing.assert_array_equal(ours[k], cv2.medianBlur(x[k], size))
    assert len(selection_network(5)[0]) < 160  # far fewer min/max than sorting 25 values per pixel


# ------------------------------------------------------------------------------------------------ stage and CLI
def test_flow_params_resolve_the_device_and_reject_bad_ones():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    p = FlowParams(method="tvl1-torch")
    assert p.method_params == {"device": expected} and p.device == expected
    assert p.kernel_params() == TVL1Params()
    assert FlowParams(method="tvl1-torch", method_params={"device": "cpu", "warps": 3}).kernel_params().warps == 3
    with pytest.raises(ValueError, match="device='tpu'"):
        FlowParams(method="tvl1-torch", method_params={"device": "tpu"})
    # an entry made on a GPU machine can still be named on a CPU-only one; only running it needs CUDA
    assert FlowParams(method="tvl1-torch", method_params={"device": "cuda"}).device == "cuda"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            tvl1_torch(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), device="cuda")
    with pytest.raises(ValueError, match="device"):
        FlowParams(method="tvl1", method_params={"device": "cpu"})  # OpenCV's TV-L1 has no device
    with pytest.raises(ValueError, match="gamma=0.1"):
        tvl1_torch(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), gamma=0.1)


def test_compute_flows_batches_the_pairs_of_a_clip(three_pairs):
    firsts, seconds = three_pairs
    clip = np.stack([firsts[0], seconds[1], seconds[2]])
    flows = compute_flows(clip, "from-onset", method="tvl1-torch")
    np.testing.assert_array_equal(flows, tvl1_torch_batch(firsts[:2], seconds[1:]))


def test_build_flow_tvl1_torch_stores_the_kernel_fields(face_store, tmp_path):
    import shutil

    base, _ = face_store
    store = str(tmp_path / "store")
    shutil.copytree(base / "store", store)
    runner = CliRunner()
    args = ["build-flow", "--store", store, "--dataset", "synth", "--workers", "1", "--quiet", "--pairs", "onset-apex"]
    result = runner.invoke(app, [*args, "--method", "tvl1-torch", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    st = open_store(store)
    (entry,) = st.ls("synth", "flow")
    for clip in st.clips("synth")[:2]:
        frames = st.read("synth", "equalize", clip=clip)
        pairs = st.read("synth", "flow", clip=clip, name="pairs")
        stored = st.read("synth", "flow", clip=clip)
        assert stored.dtype == np.int16 and stored.shape == (1, *frames.shape[1:3], 2)
        a, b = to_grey(frames[pairs[0, 0]]), to_grey(frames[pairs[0, 1]])
        np.testing.assert_array_equal(stored[0], encode_flow(tvl1_torch(a, b)))
        assert np.median(_epe(decode_flow(stored[0]), tvl1(a, b))) < 0.05
    result = runner.invoke(app, [*args, "--method", "farneback", "--device", "cpu"])
    assert result.exit_code == 2 and "tvl1-torch" in result.output
    if not torch.cuda.is_available():
        result = runner.invoke(app, [*args, "--method", "tvl1-torch", "--device", "cuda"])
        assert result.exit_code == 2 and "no CUDA device" in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output
