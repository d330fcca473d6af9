"""``mer-cli preprocess`` as a user runs it: kill and resume, bad input, determinism, verify and export."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scale_helpers import store_files
from typer.testing import CliRunner

from mer.cli import app
from mer.store import open_store
from mer.synthetic.clips import generate_synthetic

MER_CLI = [sys.executable, "-c", "from mer.cli import app; app()"]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(out, subjects=2, clips_per_subject=3, classes=3, seed=3, frame_size=(320, 240))
    return out


def _preprocess_args(root: Path, store: Path) -> list[str]:
    """One worker: the kill test SIGKILLs one process (worker processes would outlive their parent's kill)."""
    return [
        "preprocess",
        "--root",
        str(root),
        "--store",
        str(store),
        "--name",
        "synth",
        "--labels",
        "3class",
        "--workers",
        "1",
        "--quiet",
    ]


def _array_files(store: Path) -> dict[str, bytes]:
    """Every chunk and commit marker (metadata with times, run reports, claims and killed writes' temp files aside)."""
    return store_files(store)


def _done_markers(store: Path, stage: str) -> int:
    return sum(1 for _ in (store / "synth" / stage).glob("*/_done/*.json")) if (store / "synth").exists() else 0


def test_sigkill_then_rerun_completes_with_identical_arrays(synth_dir, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert subprocess.run([*MER_CLI, *_preprocess_args(synth_dir, whole)], capture_output=True).returncode == 0

    proc = subprocess.Popen(
        [*MER_CLI, *_preprocess_args(synth_dir, killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _done_markers(killed, "equalize") < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = _done_markers(killed, "equalize")
    assert 1 <= done_at_kill < 6, "the kill should land mid-run"

    rerun = subprocess.run([*MER_CLI, *_preprocess_args(synth_dir, killed)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    reports = sorted((killed / "_runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    last = json.loads(reports[-1].read_text())
    assert last["computed"]["equalize"] == 6 - done_at_kill
    assert last["skipped"] == done_at_kill
    assert _array_files(killed) == _array_files(whole)
    assert open_store(str(killed)).verify() == []


def test_bad_input_fails_only_its_clips_and_exits_1(synth_dir, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_dir, root)
    corrupt = root / "s01" / "s01_c02" / "img00012.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    sheet = root / "annotations.csv"
    lines = sheet.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[4].split(",")  # s02_c01
    row[header.index("onset")], row[header.index("offset")] = "70", "5"
    lines[4] = ",".join(row)
    sheet.write_text("\n".join(lines) + "\n")

    result = CliRunner().invoke(app, _preprocess_args(root, tmp_path / "store"))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "img00012.jpg" in text and "s01/s01_c02" in text
    assert "annotations.csv" in text and "s02_c01" in text
    st = open_store(str(tmp_path / "store"))
    assert len(st.clips("synth")) == 5
    status = {i.stage: i.status for i in st.ls("synth")}
    assert status["ingest"] == "done with 1 failed" and status["equalize"] == "partial 4/5"


def test_store_cli_ls_info_verify_export(synth_dir, tmp_path):
    store = tmp_path / "store"
    runner = CliRunner()
    assert runner.invoke(app, _preprocess_args(synth_dir, store)).exit_code == 0
    listing = runner.invoke(app, ["store", "ls", str(store)])
    assert listing.exit_code == 0 and all(s in listing.output for s in ("ingest", "landmarks", "equalize"))
    info = json.loads(runner.invoke(app, ["store", "info", str(store), "synth/landmarks", "--json"]).output)
    assert info["status"] == "complete" and info["params"]["smoothing"] == "one-euro"
    assert info["inputs"].keys() == {"detect"} and "numpy" in info["provenance"]["versions"]
    assert runner.invoke(app, ["store", "verify", str(store)]).exit_code == 0

    h5 = tmp_path / "lm.h5"
    assert runner.invoke(app, ["store", "export", str(store), "synth/landmarks", "--to", str(h5)]).exit_code == 0
    import h5py

    st = open_store(str(store))
    clip = st.clips("synth")[0]
    with h5py.File(h5) as f:
        assert (f[f"clips/{clip}/landmarks"][...] == st.read("synth", "landmarks", clip=clip)).all()

    chunk = next((store / "synth" / "equalize").glob("*/clips/s01/*/frames/c/0/0/0/0"))
    chunk.write_bytes(chunk.read_bytes()[:-100])
    damaged = runner.invoke(app, ["store", "verify", str(store)])
    assert damaged.exit_code == 1 and "altered" in damaged.output


def test_landmarks_are_read_back_per_clip_with_expected_shapes(synth_dir, tmp_path):
    store = tmp_path / "store"
    assert CliRunner().invoke(app, _preprocess_args(synth_dir, store)).exit_code == 0
    st = open_store(str(store))
    clip = st.clips("synth")[2]
    n = int(st.manifest("synth").set_index("clip_id").loc[clip, "n_frames"])
    assert st.read("synth", "landmarks", clip=clip).shape == (n, 68, 2)
    assert st.read("synth", "equalize", clip=clip).shape == (n, 256, 256, 3)
    assert st.read("synth", "detect", name="box").shape == (6, 4)
