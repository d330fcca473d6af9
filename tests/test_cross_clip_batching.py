"""Cross-clip batching (issue 18): the runner computes a group of short clips in one ``tvl1-torch`` call, with the
same stored bytes as clip by clip; each clip of a group is still claimed, committed and failed on its own."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import mer.pipeline.flow.stages as flow_stages
from mer.pipeline.context import ClipContext, clip_fingerprint
from mer.pipeline.flow.codec import encode_flow
from mer.pipeline.flow.optical_flow import to_grey
from mer.pipeline.flow.stages import FlowParams, compute_flow_many, compute_flow_stage, flow_pair_count
from mer.pipeline.flow.tvl1_params import TVL1Params
from mer.pipeline.flow.tvl1_torch import tvl1_torch_batch
from mer.pipeline.graph import build_plan
from mer.pipeline.group_pass import plan_tasks, process_group
from mer.pipeline.grouping import group_clips
from mer.pipeline.runner import pending_clips, prepare_entries, run_plan
from mer.store import open_store
from mer.store.documents import marker_name

SMALL = {"align": {"size": 48}}  # 48×48 faces: the CPU kernel then runs up to 28 pairs a call (64k pixels)
FLOW = {"flow": {"method": "tvl1-torch", "method_params": {"device": "cpu"}}}


@pytest.fixture(scope="module")
def small_faces(face_store, tmp_path_factory) -> Path:
    """The 6-clip face store with its faces aligned again at 48×48 (equalised, apex chosen)."""
    base, _ = face_store
    dest = tmp_path_factory.mktemp("small_faces") / "store"
    shutil.copytree(base / "store", dest)
    st = open_store(str(dest), "a")
    report = run_plan(st, "synth", build_plan(st, "synth", ["equalize", "apex"], SMALL), workers=1)
    assert not report.failures and report.computed["equalize"] == 6
    return dest


def _copy(src: Path, dest: Path):
    shutil.copytree(src, dest)
    st = open_store(str(dest), "a")
    return st, build_plan(st, "synth", ["flow", "flow-image"], SMALL | FLOW)


def _entry_files(store: Path, stage: str) -> dict[str, bytes]:
    root = store / "synth" / stage
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "zarr.json"}


@pytest.fixture
def kernel_calls(monkeypatch) -> list[int]:
    """Pairs per kernel call of the flow stage, as they happen."""
    calls: list[int] = []
    kernel = flow_stages.compute_flow_batch

    def counted(first, *args, **kwargs):
        calls.append(len(first))
        return kernel(first, *args, **kwargs)

    monkeypatch.setattr(flow_stages, "compute_flow_batch", counted)
    return calls


# ------------------------------------------------------------------------------------------------ the grouping rule
def test_short_clips_fill_the_target_and_a_long_clip_forms_its_own_group():
    units = [(0, 2), (1, 2), (2, 30), (3, 2), (4, 2), (5, 2), (6, 9), (7, 2)]
    groups = group_clips(units, 8)
    assert groups == [[2], [0, 1, 3, 4], [6], [5, 7]]
    assert sorted(i for g in groups for i in g) == list(range(8))
    assert group_clips([(i, 2) for i in range(5)], 1) == [[i] for i in range(5)]  # grouping off
    # two workers and little work: the target falls to half the work, so that neither worker idles
    assert group_clips([(i, 2) for i in range(6)], 64, workers=2) == [[0, 1, 2], [3, 4, 5]]


def test_tasks_group_only_the_clips_that_lack_the_batching_stage(small_faces, tmp_path):
    st, plan = _copy(small_faces, tmp_path / "s")
    rows = st.manifest("synth").to_dict(orient="records")
    assert [flow_pair_count(r, plan[-2].params) for r in rows] == [2] * 6  # onset→apex, apex→offset
    assert plan_tasks(st, "synth", plan, list(range(6)), rows, batch_units=4) == [[0, 1], [2, 3], [4, 5]]
    assert plan_tasks(st, "synth", plan, list(range(6)), rows) == [[0, 1, 2, 3], [4, 5]]  # 8 pairs on the CPU
    assert plan_tasks(st, "synth", plan, list(range(6)), rows, batch_units=1) == [[i] for i in range(6)]
    farneback = build_plan(st, "synth", ["flow"], SMALL | {"flow": {"method": "farneback"}})
    assert plan_tasks(st, "synth", farneback, list(range(6)), rows) == [[i] for i in range(6)]  # no batching kernel
    run_plan(st, "synth", build_plan(st, "synth", ["flow"], SMALL | FLOW), workers=1)
    assert plan_tasks(st, "synth", plan, list(range(6)), rows) == [[i] for i in range(6)]  # flow done: per clip


# ------------------------------------------------------------------------------------------------ determinism
def test_a_store_built_in_groups_holds_the_bytes_of_one_built_clip_by_clip(small_faces, tmp_path, kernel_calls):
    outcomes, files = {}, {}
    for name, batch in (("alone", 1), ("grouped", 8)):
        st, plan = _copy(small_faces, tmp_path / name)
        kernel_calls.clear()
        report = run_plan(st, "synth", plan, workers=1, batch_units=batch)
        assert not report.failures
        assert report.computed["flow"] == 6 and report.computed["flow-image"] == 6
        outcomes[name] = {o.clip_id: o.computed for o in report.outcomes}
        files[name] = {stage: _entry_files(tmp_path / name, stage) for stage in ("flow", "flow-image")}
        if name == "alone":
            assert kernel_calls == [2] * 6
        else:
            assert kernel_calls == [8, 4]  # 4 clips, then 2, in one call each
    assert outcomes["alone"] == outcomes["grouped"] and set(map(tuple, outcomes["alone"].values())) == {
        ("flow", "flow-image")
    }
    assert sum("/_done/" in k for k in files["alone"]["flow"]) == 6
    assert files["alone"] == files["grouped"]
    # two worker processes receive a group each (3 clips, 6 pairs: the target falls so that both have work)
    st, plan = _copy(small_faces, tmp_path / "workers")
    rows = st.manifest("synth").to_dict(orient="records")
    groups = plan_tasks(st, "synth", plan, pending_clips(st, "synth", plan), rows, workers=2)
    assert sorted(map(len, groups)) == [3, 3]
    report = run_plan(st, "synth", plan, workers=2)
    assert not report.failures and len(report.outcomes) == 6
    pid = {o.index: o.pid for o in report.outcomes}
    assert all(len({pid[i] for i in group}) == 1 for group in groups) and os.getpid() not in pid.values()
    assert {stage: _entry_files(tmp_path / "workers", stage) for stage in ("flow", "flow-image")} == files["alone"]


def _context(frames: np.ndarray, apex: int, clip: str) -> ClipContext:
    ctx = ClipContext({"clip_id": clip}, 0)
    ctx.computed = {"equalize": {"frames": frames}, "apex": {"apex": np.array([apex, apex], dtype=np.int32)}}
    return ctx


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))],
)
def test_a_pair_gets_its_own_field_whatever_its_companions_and_their_frame_size(kernel_calls, device):
    """Clips of two frame sizes (odd, so that no vector lane lines up) and motions that converge differently:
    each clip's arrays from one group call are those of its call alone; each frame size is one kernel call."""
    rng = np.random.default_rng(3)
    contexts = []
    for k, (h, w) in enumerate([(40, 36), (33, 47), (40, 36), (33, 47), (40, 36)]):
        base = rng.integers(0, 256, (h + 8, w + 8, 1), dtype=np.uint8).repeat(3, axis=2)
        frames = np.stack([base[4 + dy : 4 + dy + h, 4 + dx : 4 + dx + w] for dy, dx in [(0, 0), (k % 3, k), (1, 0)]])
        contexts.append(_context(frames, 1, f"c{k}"))
    p = FlowParams(method="tvl1-torch", method_params={"device": device, "nscales": 2})
    grouped = compute_flow_many(contexts, p)
    assert sorted(kernel_calls) == [4, 6]
    for ctx, result in zip(contexts, grouped, strict=True):
        alone = compute_flow_stage(ctx, p)
        assert result.keys() == alone.keys()
        for name in alone:
            np.testing.assert_array_equal(result[name], alone[name])
    assert np.abs(grouped[1]["flow"]).max() > 128  # real motion (> 0.5 px), not all-zero fields


def test_a_clip_whose_inputs_fail_gets_its_error_and_the_others_their_fields():
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    p = FlowParams(method="tvl1-torch", method_params={"device": "cpu", "nscales": 1, "warps": 1})
    results = compute_flow_many([_context(frames, 1, "good"), _context(frames, 7, "bad")], p)
    assert isinstance(results[1], ValueError) and "apex 7 outside the clip" in str(results[1])
    np.testing.assert_array_equal(results[0]["flow"], compute_flow_stage(_context(frames, 1, "good"), p)["flow"])


# ------------------------------------------------------------------------------------------------ one clip each
def _spoil_apex(st, plan, index: int) -> str:
    """Commit an apex outside the clip for one clip (a bad input of the flow stage); its clip id."""
    apex = next(p for p in plan if p.stage.name == "apex")
    entry = st.entry(apex.ref("synth"))
    row = st.manifest("synth").to_dict(orient="records")[index]
    read = {name: np.array(st.read("synth", "apex", key=apex.key, clip=row["clip_id"], name=name))
            for name in ("apex", "rule", "motion")}
    st.commit_clip(entry, index, read | {"apex": np.array([999, 999], dtype=np.int32)}, clip_fingerprint(row))
    return row["clip_id"]


def test_one_bad_clip_fails_alone_and_the_rest_of_its_group_is_committed(small_faces, tmp_path):
    st, plan = _copy(small_faces, tmp_path / "s")
    bad = _spoil_apex(st, plan, 1)
    rows = st.manifest("synth").to_dict(orient="records")
    assert [1] in [[i for i in t if i == 1] for t in plan_tasks(st, "synth", plan, list(range(6)), rows)]
    report = run_plan(st, "synth", plan, workers=1, batch_units=8)
    (failure,) = report.failures
    assert failure.clip_id == bad and failure.failed_stage == "flow"
    assert failure.error == f"ValueError: apex 999 outside the clip [0, {int(rows[1]['n_frames']) - 1}]"
    assert failure.computed == []
    flow = next(p for p in plan if p.stage.name == "flow")
    entry = st.entry(flow.ref("synth"))
    assert [st.is_done(entry, i) for i in range(6)] == [True, False, True, True, True, True]
    assert {o.clip_id: o.computed for o in report.outcomes if o.error is None} == {
        r["clip_id"]: ["flow", "flow-image"] for i, r in enumerate(rows) if i != 1
    }
    record = json.loads((tmp_path / "s" / flow.ref("synth").path / "_failed" / marker_name(1)).read_bytes())
    assert record["clip"] == bad and "apex 999" in record["error"]
    for i in (0, 2):  # the companions hold their own fields
        clip = rows[i]["clip_id"]
        frames = st.read("synth", "equalize", clip=clip, key=plan[[p.stage.name for p in plan].index("equalize")].key)
        pairs = st.read("synth", "flow", key=flow.key, clip=clip, name="pairs")
        first = np.stack([to_grey(frames[a]) for a, _ in pairs])
        second = np.stack([to_grey(frames[b]) for _, b in pairs])
        expected = encode_flow(tvl1_torch_batch(first, second, TVL1Params()))
        np.testing.assert_array_equal(st.read("synth", "flow", key=flow.key, clip=clip), expected)


def test_a_failing_group_call_falls_back_to_each_clip_alone(small_faces, tmp_path, monkeypatch):
    kernel = flow_stages.compute_flow_batch
    attempts: list[int] = []

    def no_large_batches(first, *args, **kwargs):
        attempts.append(len(first))
        if len(first) > 2:
            raise RuntimeError("out of memory")  # e.g. a device that cannot hold the group
        return kernel(first, *args, **kwargs)

    monkeypatch.setattr(flow_stages, "compute_flow_batch", no_large_batches)
    st, plan = _copy(small_faces, tmp_path / "s")
    report = run_plan(st, "synth", plan, workers=1, batch_units=8)
    assert not report.failures and report.computed["flow"] == 6
    assert attempts == [8] + [2] * 4 + [4] + [2] * 2  # each group tried once, then its clips one by one


def test_a_clip_claimed_by_another_process_is_deferred_not_computed(small_faces, tmp_path):
    st, plan = _copy(small_faces, tmp_path / "s")
    prepare_entries(st, "synth", plan)
    flow = next(p for p in plan if p.stage.name == "flow")
    claim = tmp_path / "s" / flow.ref("synth").path / "_claims" / marker_name(2)
    claim.parent.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": os.getppid(), "time": time.time()}  # a live process
    claim.write_text(json.dumps(holder))
    rows = st.manifest("synth").to_dict(orient="records")
    outcomes = process_group(st, "synth", plan, [0, 1, 2, 3], [rows[i] for i in range(4)])
    assert [o.deferred for o in outcomes] == [False, False, True, False]
    assert [o.computed for o in outcomes] == [["flow", "flow-image"]] * 2 + [[]] + [["flow", "flow-image"]]
    entry = st.entry(flow.ref("synth"))
    assert [st.is_done(entry, i) for i in range(4)] == [True, True, False, True]
    assert json.loads(claim.read_text()) == holder  # the other process's claim is left alone
    claim.unlink()  # that process gave up: the clip is computed when it comes back
    (again,) = process_group(st, "synth", plan, [2], [rows[2]])
    assert again.computed == ["flow", "flow-image"] and st.is_done(entry, 2)


def _counted_reads(st, monkeypatch) -> Counter:
    """Count this store's reads as they happen: backend reads and existence checks (commit markers: one request
    each on S3) by key, and entry arrays read as ``stage/clip/name``."""
    reads: Counter = Counter()
    for method in ("read_bytes", "exists"):
        real = getattr(st.backend, method)

        def counted(key, *args, _real=real, _method=method, **kwargs):
            reads[_method, key] += 1
            return _real(key, *args, **kwargs)

        monkeypatch.setattr(st.backend, method, counted)
    read_entry = st.read_entry

    def counted_read(entry, clip=None, name=None, **kwargs):
        reads["read_entry", f"{entry.ref.stage}/{clip}/{name}"] += 1
        return read_entry(entry, clip=clip, name=name, **kwargs)

    monkeypatch.setattr(st, "read_entry", counted_read)
    return reads


def test_a_grouped_clip_reads_the_store_once_as_a_clip_computed_alone(small_faces, tmp_path, monkeypatch):
    """With a stage after the batching one (``flow-image`` after ``flow``), each clip of a group checks its entries'
    commit markers and reads its inputs as often as a clip computed alone: the stages after the group's call take
    its values from memory and do not go over the stages before it again."""
    reads = {}
    for name, batch in (("alone", 1), ("grouped", 8)):
        st, plan = _copy(small_faces, tmp_path / name)
        prepare_entries(st, "synth", plan)
        reads[name] = _counted_reads(st, monkeypatch)
        report = run_plan(st, "synth", plan, workers=1, batch_units=batch)
        assert not report.failures and report.computed["flow-image"] == 6
        monkeypatch.undo()
    markers = Counter({k: n for k, n in reads["grouped"].items() if "/flow/" in k[1] and "/_done/" in k[1]})
    assert sorted(markers.values()) == [2] * 6  # each clip's flow marker: before and after its claim, no more
    assert not [k for k in reads["grouped"] if k[0] == "read_entry" and k[1].startswith("flow/")]
    assert reads["grouped"] == reads["alone"]


def test_build_flow_groups_clips_and_names_the_one_bad_clip(face_store, tmp_path):
    """``mer-cli build-flow --method tvl1-torch --batch-pairs 3``: the bad clip is one line naming it (exit 1), its
    group companions are stored; a bad ``--batch-pairs`` is refused before any clip."""
    from typer.testing import CliRunner

    from mer.cli import app

    base, _ = face_store
    store = tmp_path / "store"
    shutil.copytree(base / "store", store)
    st = open_store(str(store), "a")
    plan = build_plan(st, "synth", ["apex"])
    run_plan(st, "synth", plan, workers=1)
    bad = _spoil_apex(st, plan, 4)
    args = ["build-flow", "--store", str(store), "--dataset", "synth", "--workers", "1", "--quiet",
            "--method", "tvl1-torch", "--device", "cpu", "--pairs", "onset-apex"]
    runner = CliRunner()
    for wrong in (["--batch-pairs", "0"], ["--method", "tvl1", "--batch-pairs", "4"]):
        result = runner.invoke(app, [*args, *wrong])
        assert result.exit_code == 2 and "--batch-pairs" in result.output, result.output
    result = runner.invoke(app, [*args, "--batch-pairs", "3"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"failed {bad} at flow: ValueError: apex 999 outside the clip" in text and "Traceback" not in text
    assert "computed 5 clip(s)" in text
    (info,) = st.ls("synth", "flow")
    assert sorted(st.done_indices(info.ref)) == [0, 1, 2, 3, 5]


def test_dask_workers_receive_groups_and_store_the_bytes_of_one_clip_per_call(small_faces, tmp_path, monkeypatch):
    """Through a Dask scheduler (in-process workers, to keep the test short: the worker processes of joblib are
    checked above): the workers get the planned groups, and every clip's bytes are those of one clip per call."""
    import mer.pipeline.executors as executors

    distributed = pytest.importorskip("distributed")
    received: list[list[int]] = []
    group_runner = executors.process_group

    def recorded(store, dataset, plan, indices, rows):
        received.append(list(indices))
        return group_runner(store, dataset, plan, indices, rows)

    monkeypatch.setattr(executors, "process_group", recorded)  # what a worker's task calls
    st, plan = _copy(small_faces, tmp_path / "alone")
    assert not run_plan(st, "synth", plan, workers=1, batch_units=1).failures
    st, plan = _copy(small_faces, tmp_path / "dask")
    rows = st.manifest("synth").to_dict(orient="records")
    groups = plan_tasks(st, "synth", plan, pending_clips(st, "synth", plan), rows, batch_units=4)
    assert sorted(map(len, groups)) == [2, 2, 2]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster.scheduler_address),
    ):
        report = run_plan(st, "synth", plan, scheduler=cluster.scheduler_address, batch_units=4)
    assert not report.failures and report.computed["flow"] == 6 and len(report.outcomes) == 6
    assert sorted(received) == sorted(groups)
    for stage in ("flow", "flow-image"):
        assert _entry_files(tmp_path / "dask", stage) == _entry_files(tmp_path / "alone", stage)


def test_the_fixed_point_stopping_sum_gives_each_pair_its_own_field_in_any_batch():
    """The int64 stopping sum used off the CPU (CUDA's float reductions change order with the batch size), run here
    on the CPU: a pair's field and iteration count are the same alone and among companions of other motions, and
    the fields are those of the float64 sum to far below the codec's 1/512 px."""
    import cv2

    from mer.pipeline.flow.tvl1_torch import dual_tvl1

    rng = np.random.default_rng(5)
    base = cv2.GaussianBlur(rng.integers(0, 256, (45, 37), dtype=np.uint8), (5, 5), 1.5)
    shifted = [cv2.warpAffine(base, np.float32([[1, 0, 0.4 * k], [0, 1, -0.3 * k]]), (37, 45),
                              borderMode=cv2.BORDER_REFLECT) for k in range(5)]
    i0 = torch.from_numpy(np.stack([base] * 5)).float()
    i1 = torch.from_numpy(np.stack(shifted)).float()
    p = TVL1Params()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for check_every in (1, 10):  # compaction every iteration, or masking in between (the CUDA default)
            batch, n = dual_tvl1(i0, i1, p, check_every, True, fixed_point=True)
            assert len(set(n.tolist())) > 1  # the pairs converge differently
            for k in range(5):
                alone, n_alone = dual_tvl1(i0[k : k + 1], i1[k : k + 1], p, check_every, True, fixed_point=True)
                assert torch.equal(batch[k], alone[0]) and n[k] == n_alone[0]
        floating = dual_tvl1(i0, i1, p, fixed_point=False)
    finally:
        torch.set_num_threads(before)
    assert float((batch - floating).abs().max()) < 1e-4


def test_without_a_batching_kernel_the_runner_takes_the_clip_by_clip_path(small_faces, tmp_path, monkeypatch):
    import mer.pipeline.executors as executors
    import mer.pipeline.runner as runner

    def no_groups(*args, **kwargs):
        raise AssertionError("a group was formed")

    monkeypatch.setattr(runner, "execute_groups", no_groups)  # where run_plan looks it up
    monkeypatch.setattr(executors, "process_group", no_groups)  # where the executors look it up
    st, _ = _copy(small_faces, tmp_path / "s")
    farneback = build_plan(st, "synth", ["flow", "flow-image"], SMALL | {"flow": {"method": "farneback"}})
    report = run_plan(st, "synth", farneback, workers=1)
    assert not report.failures and report.computed["flow"] == 6
    torch_alone = build_plan(st, "synth", ["flow"], SMALL | FLOW)
    report = run_plan(st, "synth", torch_alone, workers=1, batch_units=1)
    assert not report.failures and report.computed["flow"] == 6
