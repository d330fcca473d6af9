"""The runner at scale: two concurrent runs on one store, a Dask cluster, SIGKILLs at random moments, claims.

Every store is compared with a reference made by one uninterrupted single-process ``mer-cli preprocess``:
chunks and commit markers byte for byte (``zarr.json``, ``_runs/``, ``_claims/``, ``_failed/`` aside).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from scale_helpers import (
    DATASET,
    STAGES,
    api_store,
    claim_files,
    cli_env,
    committed_mismatches,
    done_markers,
    leftovers,
    plan_for,
    preprocess_cmd,
    run_cli,
    run_reports,
    store_files,
)

from mer.pipeline.runner import pending_clips, prepare_entries, run_plan
from mer.store import open_store
from mer.synthetic.clips import generate_synthetic

FACE_STAGES = ["ingest", "detect", "landmarks", "align", "equalize"]
ALL_STAGES = [*FACE_STAGES, "apex", "mesti"]  # mesti reads the apex stage
N_CLIPS = 6


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "data"
    generate_synthetic(out, subjects=2, clips_per_subject=3, classes=3, seed=3, frame_size=(320, 240))
    return out


@pytest.fixture(scope="module")
def reference(synth_dir, tmp_path_factory) -> tuple[Path, float]:
    """One uninterrupted single-process run of ``--stages face,mesti`` (and its wall time)."""
    store = tmp_path_factory.mktemp("reference") / "store"
    t0 = time.monotonic()
    done = run_cli(synth_dir, store, STAGES, workers=1)
    assert done.returncode == 0, done.stderr
    (report,) = run_reports(store)
    assert report["computed"] == dict.fromkeys(ALL_STAGES, N_CLIPS) and report["failures"] == []
    return store, time.monotonic() - t0


def _hold_claim_script(location: str, stage: str, index: int, slow_stale_check: float = 0.0) -> str:
    """A child process that claims one clip of a stage, prints whether it got it, and holds it until stdin closes."""
    return textwrap.dedent(
        f"""
        import os, sys, time
        import mer.store.commit as s
        from mer.store import open_store
        if {slow_stale_check!r}:
            _orig = s.claim_is_stale
            def _slow(holder):  # a slow shared filesystem: widen the window between reading and replacing a claim
                time.sleep({slow_stale_check!r})
                return _orig(holder)
            s.claim_is_stale = _slow
        st = open_store({location!r}, "a")
        entry = st.find({DATASET!r}, {stage!r}, complete_only=False)
        go = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
        while time.time() < go:
            time.sleep(0.001)
        got = st.try_claim(entry, {index})
        print(f"{{int(got)}} {{os.getpid()}}", flush=True)
        sys.stdin.read()
        if got:
            st.release_claim(entry, {index})
        """
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- two processes on one store
_START_UP_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[4])
    from scale_helpers import api_store, plan_for
    from mer.pipeline.runner import prepare_entries
    go = float(sys.argv[3])
    while time.time() < go:
        time.sleep(0.0005)
    store = api_store(sys.argv[1], sys.argv[2])
    prepare_entries(store, "synth", plan_for(store))
    """
)


def test_runs_starting_together_on_a_new_store_all_open_it(synth_dir, tmp_path):
    """Store, manifest and entries created by several processes at the same moment: none may see them half made."""
    store = tmp_path / "store"
    go = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _START_UP_SCRIPT, str(synth_dir), str(store), str(go), str(Path(__file__).parent)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e.strip().splitlines()[-1] for e in errors if e.strip()]
    st = open_store(str(store))
    assert {i.stage for i in st.ls(DATASET)} == set(ALL_STAGES) and len(st.clips(DATASET)) == N_CLIPS


def test_two_processes_on_one_store_compute_each_clip_once(synth_dir, reference, tmp_path):
    ref, _ = reference
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(preprocess_cmd(synth_dir, store, STAGES, workers), env=cli_env(), stderr=subprocess.PIPE)
        for workers in (2, 1)
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors

    assert open_store(str(store)).verify() == []
    assert store_files(store) == store_files(ref)
    reports = run_reports(store)
    assert len(reports) == 2 and all(r["failures"] == [] for r in reports)
    totals = {s: sum(r["computed"][s] for r in reports) for s in ALL_STAGES}
    assert totals == dict.fromkeys(ALL_STAGES, N_CLIPS), [r["computed"] for r in reports]
    assert claim_files(store) == []


# --------------------------------------------------------------------------- Dask
def test_dask_cluster_runs_the_stages_in_its_worker_processes(synth_dir, reference, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    ref, _ = reference
    store = api_store(synth_dir, tmp_path / "store")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster.scheduler_address) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        # ingest through the explicit argument, the rest through the environment variable
        first = run_plan(store, DATASET, plan_for(store, "ingest"), workers=1, scheduler=cluster.scheduler_address)
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        second = run_plan(store, DATASET, plan_for(store, STAGES), workers=1)

        # The thread counts as the clips saw them: probed in each worker's task thread (Numba's is per thread).
        workers = list(client.scheduler_info()["workers"])
        probes = [client.submit(_thread_counts, pure=False, workers=[w], allow_other_workers=False) for w in workers]
        worker_threads = {f.result() for f in probes}

    assert first.computed == {"ingest": N_CLIPS} and first.failures == []
    assert second.computed == {**dict.fromkeys(ALL_STAGES, N_CLIPS), "ingest": 0} and second.failures == []
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    pids = {o.pid for o in first.outcomes + second.outcomes}
    assert pids == worker_pids, f"clips ran in {pids}, cluster workers are {worker_pids}"
    assert worker_threads == {(1, 1)}, "one OpenCV and one Numba thread per worker"
    assert open_store(store.location).verify() == []
    assert store_files(Path(store.location)) == store_files(ref)


def _thread_counts() -> tuple[int, int]:
    import cv2
    import numba

    return cv2.getNumThreads(), numba.get_num_threads()


# --------------------------------------------------------------------------- SIGKILL loop
def test_sigkill_at_random_moments_never_leaves_a_wrong_commit(synth_dir, reference, tmp_path):
    ref, _ = reference
    store = tmp_path / "store"
    rng = random.Random(20)
    phases: list[str] = []
    t_start = time.monotonic()
    for it in range(20):
        if phases[-1:] == ["finished"]:
            shutil.rmtree(store)  # start over, so that kills land in every phase again
        workers = 2 if it % 4 == 3 else 1
        # A third of the kills land in start-up (imports, manifest, entries: about 1.3 s), the rest within the
        # first clips of the run (0.5 to 1 s each, most of it landmark tracking, then the commits).
        delay = rng.uniform(0.05, 1.3) if it % 3 == 0 else rng.uniform(1.3, 2.8)
        markers_before, orphans_before = len(done_markers(store)), uncommitted(store)
        proc = subprocess.Popen(
            preprocess_cmd(synth_dir, store, STAGES, workers),
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=delay)
            assert proc.returncode == 0
            phases.append("finished")
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: joblib's workers die with the run
            proc.wait()
            if uncommitted(store) - orphans_before:
                phases.append("chunks without marker")
            else:
                phases.append("no new commit" if len(done_markers(store)) == markers_before else "between commits")
        _wait_group_gone(proc.pid)
        if (store / "zarr.json").exists():
            issues = open_store(str(store)).verify()
            assert issues == [], f"iteration {it} (kill after {delay:.2f} s): {[str(i) for i in issues]}"
        assert committed_mismatches(store, ref) == [], f"iteration {it} (kill after {delay:.2f} s)"
    loop_seconds = time.monotonic() - t_start

    final = run_cli(synth_dir, store, STAGES, workers=1)
    assert final.returncode == 0, final.stderr
    assert open_store(str(store)).verify() == []
    assert store_files(store) == store_files(ref)
    assert claim_files(store) == []
    counts = {p: phases.count(p) for p in sorted(set(phases))}
    print(f"\nSIGKILL loop: {loop_seconds:.1f} s, {counts}, temporary leftovers {len(leftovers(store))}")
    assert counts.get("no new commit", 0) >= 3 and len(phases) - counts.get("finished", 0) >= 15, counts


def uncommitted(store: Path) -> set[str]:
    """Per-clip array folders and dataset-array chunks written for a clip that has no commit marker."""
    out = set()
    for entry in {m.parent for m in store.glob("*/*/*/zarr.json")}:
        done = {json.loads(m.read_text())["clip"] for m in (entry / "_done").glob("*.json")}
        indices = {int(m.stem) for m in (entry / "_done").glob("*.json")}
        for chunk in entry.glob("clips/*/*/*/c/**/*"):
            clip = "/".join(chunk.relative_to(entry).parts[1:3])
            if chunk.is_file() and clip not in done:
                out.add(f"{entry.name}/{clip}")
        for chunk in entry.glob("*/c/*"):
            if chunk.name.isdigit() and int(chunk.name) not in indices:
                out.add(f"{entry.name}/{chunk.name}")
    return out


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process group {pgid} still alive after SIGKILL")


# --------------------------------------------------------------------------- local workers
def test_two_workers_store_the_same_bytes_as_one_longest_clips_first(synth_dir, reference, tmp_path):
    ref, _ = reference
    store = api_store(synth_dir, tmp_path / "store")
    plan = plan_for(store)
    prepare_entries(store, DATASET, plan)
    lengths = store.manifest(DATASET)["n_frames"].tolist()
    assert pending_clips(store, DATASET, plan) == sorted(range(N_CLIPS), key=lambda i: (-lengths[i], i))
    assert len(set(lengths)) > 1, "the synthetic clips should differ in length for this check to mean something"

    report = run_plan(store, DATASET, plan, workers=2)
    assert report.failures == [] and report.computed == dict.fromkeys(ALL_STAGES, N_CLIPS)
    pids = {o.pid for o in report.outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert store_files(Path(store.location)) == store_files(ref)


# --------------------------------------------------------------------------- claims
def test_live_claim_defers_the_clip_until_released(synth_dir, reference, tmp_path):
    ref, _ = reference
    store = api_store(synth_dir, tmp_path / "store")
    plan = plan_for(store, "face")
    prepare_entries(store, DATASET, plan)
    held = pending_clips(store, DATASET, plan)[0]  # the first clip the run reaches
    clip = store.clips(DATASET)[held]
    holder = subprocess.Popen(
        [sys.executable, "-c", _hold_claim_script(store.location, "equalize", held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        got, holder_pid = holder.stdout.readline().split()
        assert got == "1"
        result = {}
        runner = threading.Thread(
            target=lambda: result.update(report=run_plan(store, DATASET, plan, workers=1, poll_seconds=0.05))
        )
        runner.start()
        equalize = store.entry(plan[-1].ref(DATASET))
        deadline = time.monotonic() + 120
        while len(store.done_indices(equalize.ref)) < N_CLIPS - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # several polls of the deferred clip
        assert store.done_indices(equalize.ref) == set(range(N_CLIPS)) - {held}
        assert runner.is_alive(), "the run must wait for the held clip"
        align = store.entry(plan[-2].ref(DATASET))
        assert held in store.done_indices(align.ref), "stages before the held one are done in the first pass"
        claim = json.loads((Path(store.location) / equalize.ref.path / "_claims" / f"{held:06d}.json").read_text())
        assert claim["pid"] == int(holder_pid)
    finally:
        holder.communicate("")  # the holder releases its claim and exits
    runner.join(timeout=120)
    report = result["report"]
    # every stage of the held clip counted once, including those computed before it was deferred
    assert report.computed == dict.fromkeys(FACE_STAGES, N_CLIPS) and report.failures == []
    assert store.done_indices(equalize.ref) == set(range(N_CLIPS))
    assert committed_mismatches(Path(store.location), ref) == []
    assert store.read(DATASET, "equalize", clip=clip).shape[0] == len(store.read(DATASET, "ingest", clip=clip))
    assert claim_files(Path(store.location)) == []


def test_stale_claims_are_taken_over(synth_dir, reference, tmp_path, monkeypatch):
    ref, _ = reference
    store = api_store(synth_dir, tmp_path / "store")
    plan = plan_for(store, "ingest,detect")
    prepare_entries(store, DATASET, plan)
    ingest, detect = (store.entry(p.ref(DATASET)) for p in plan)
    root = Path(store.location)
    monkeypatch.setenv("MER_CLAIM_TIMEOUT", "600")

    def write_claim(entry, index: int, record: dict | None) -> None:
        path = root / entry.ref.path / "_claims" / f"{index:06d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record) if record is not None else "")

    here = socket.gethostname()
    write_claim(ingest, 0, {"host": here, "pid": _dead_pid(), "time": time.time()})  # killed process, this host
    write_claim(ingest, 1, {"host": "elsewhere", "pid": 1, "time": time.time() - 3600})  # older than the timeout
    write_claim(detect, 2, {"host": here, "pid": _dead_pid(), "time": time.time()})
    write_claim(detect, 3, None)  # cut short
    fresh = {"host": "elsewhere", "pid": 1, "time": time.time()}
    write_claim(detect, 4, fresh)
    assert not store.try_claim(detect, 4), "a fresh claim from another host is respected"
    write_claim(detect, 4, {**fresh, "time": time.time() - 3600})

    report = run_plan(store, DATASET, plan, workers=1, poll_seconds=0.05)
    assert report.computed == {"ingest": N_CLIPS, "detect": N_CLIPS} and report.failures == []
    assert claim_files(root) == []
    assert store_files(root) == store_files(ref, ["ingest", "detect"])


def test_a_claim_left_on_a_committed_clip_by_a_dead_process_is_removed_by_the_next_run(synth_dir, tmp_path):
    """A process killed between a clip's commit marker and its claim's release leaves a claim nothing would release
    (the clip is done, so no run claims it again); the next run removes it, and leaves a live holder's alone."""
    store = api_store(synth_dir, tmp_path / "store")
    plan = plan_for(store, "ingest")
    run_plan(store, DATASET, plan, workers=1)
    root = Path(store.location)
    (entry,) = (store.entry(p.ref(DATASET)) for p in plan)
    claims = root / entry.ref.path / "_claims"
    claims.mkdir(exist_ok=True)
    here = socket.gethostname()
    (claims / "000000.json").write_text(json.dumps({"host": here, "pid": _dead_pid(), "time": time.time()}))
    (claims / "000001.json").write_text("")  # cut short
    live = {"host": here, "pid": os.getpid(), "time": time.time()}  # e.g. a process checking the marker right now
    (claims / "000002.json").write_text(json.dumps(live))
    report = run_plan(store, DATASET, plan, workers=1)
    assert report.computed == {"ingest": 0} and report.skipped == N_CLIPS
    assert sorted(p.name for p in claims.glob("*.json")) == ["000002.json"]
    assert json.loads((claims / "000002.json").read_text()) == live


def test_stale_claim_is_taken_over_by_exactly_one_of_several_processes(synth_dir, tmp_path):
    store = api_store(synth_dir, tmp_path / "store")
    plan = plan_for(store, "ingest")
    prepare_entries(store, DATASET, plan)
    claim = Path(store.location) / plan[0].ref(DATASET).path / "_claims" / "000002.json"
    claim.parent.mkdir(parents=True)
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "time": time.time()}))

    go = time.time() + 3.0  # all contenders read the stale claim at about the same moment
    script = _hold_claim_script(store.location, "ingest", 2, slow_stale_check=0.3)
    contenders = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    try:
        results = [p.stdout.readline().split() for p in contenders]
        winners = [int(pid) for got, pid in results if got == "1"]
        assert len(winners) == 1, f"{len(winners)} processes took over the same claim: {results}"
        assert json.loads(claim.read_text())["pid"] == winners[0]
    finally:
        for p in contenders:
            p.communicate("")
    assert not claim.exists(), "the winner released its claim"


def test_worker_init_gives_one_numba_thread_in_every_thread_that_runs_clips():
    """Numba's thread count is per thread: a Dask worker running tasks on several threads needs it in each."""
    code = textwrap.dedent(
        """
        import threading, cv2, numba
        from mer.pipeline.worker_setup import init_worker
        seen = []
        def task():
            init_worker()
            seen.append((cv2.getNumThreads(), numba.get_num_threads()))
        for _ in range(3):
            t = threading.Thread(target=task)
            t.start()
            t.join()
        print(seen)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[(1, 1), (1, 1), (1, 1)]"
