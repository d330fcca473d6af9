"""Folds as tasks on a Dask cluster (issue 18, item 5): ``mer-cli train --scheduler`` on a CPU ``LocalCluster``
gives the files of a local run, reports a failed fold in one line and writes nothing then."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mer.cli import app
from mer.store import open_store
from mer.store.errors import AmbiguousEntryError
from mer.train.distributed import ClusterRun, FoldTaskError, run_on_cluster, train_inputs
from mer.train.store_inputs import load_training_inputs
from mer.train.trainer import TrainConfig

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def mesti_store(face_store, tmp_path_factory):
    base, dataset = face_store
    target = tmp_path_factory.mktemp("cluster") / "store"
    shutil.copytree(base / "store", target)
    result = CliRunner().invoke(
        app, ["build-mesti", "--store", str(target), "--dataset", dataset, "--size", "16", "--workers", "1", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return target, dataset


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on 127.0.0.1, each declaring one GPU (the folds ask for it)."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        resources={"GPU": 1},
    ) as c:
        yield c.scheduler_address


def _train(store, dataset, out, *extra):
    args = ["train", "--store", str(store), "--dataset", dataset, "--input", "mesti", "--model", "meganet",
            "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--seed", "5", "--out", str(out), *extra]
    return CliRunner().invoke(app, args)


def test_cluster_run_writes_the_files_of_a_local_run(mesti_store, cluster, tmp_path):
    store, ds = mesti_store
    local = _train(store, ds, tmp_path / "local", "--checkpoints")
    assert local.exit_code == 0, local.output
    remote = _train(store, ds, tmp_path / "remote", "--checkpoints", "--scheduler", cluster)
    assert remote.exit_code == 0, remote.output

    for name in ("predictions.csv", "history.csv", "provenance.json"):
        if name == "history.csv":  # epoch times differ; every other column is the same
            a, b = (pd.read_csv(tmp_path / r / name).drop(columns="epoch_time") for r in ("local", "remote"))
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        elif name == "provenance.json":
            a, b = (json.loads((tmp_path / r / name).read_text()) for r in ("local", "remote"))
            assert a["entries"] == b["entries"] and a["inputs"] == b["inputs"]
        else:
            assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "remote" / name).read_bytes()
    m_local, m_remote = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("local", "remote"))
    m_local.pop("train_seconds"), m_remote.pop("train_seconds")
    assert m_local == m_remote

    c_local, c_remote = (json.loads((tmp_path / r / "config.json").read_text()) for r in ("local", "remote"))
    record = c_remote.pop("cluster")
    assert c_remote.pop("parallel_folds_basis") == "one fold per task on the cluster"
    assert "automatic choice" in c_local.pop("parallel_folds_basis")
    assert c_local == c_remote
    folds = sorted(pd.read_csv(tmp_path / "local" / "predictions.csv")["fold"].unique())
    assert sorted(record["workers"]) == folds and record["scheduler"] == cluster
    assert all(w.startswith("tcp://127.0.0.1:") for w in record["workers"].values())  # trained on the workers

    for fi in range(len(folds)):  # the same weights, saved on the client from the worker's bytes
        a = torch.load(tmp_path / "local" / "checkpoints" / f"fold{fi:03d}.pt", weights_only=True)
        b = torch.load(tmp_path / "remote" / "checkpoints" / f"fold{fi:03d}.pt", weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    out = " ".join(remote.output.split())
    assert all(f"fold {f} done on tcp://127.0.0.1:" in out for f in folds)  # progress as each fold completes


def test_a_failed_fold_is_one_line_naming_it_and_nothing_is_written(mesti_store, cluster, tmp_path):
    store, ds = mesti_store
    st = open_store(str(store))
    data = load_training_inputs(st, ds, {"x": "mesti"})
    source = train_inputs(st, data, {"x": "mesti"}, None)
    out = tmp_path / "run"
    run = ClusterRun(source, data.meta, data.class_names, "loso", "meganet", {"no_such_option": 1},
                     TrainConfig(epochs=1, batch_size=4, device="cpu"), out)
    with pytest.raises(FoldTaskError) as err:
        list(run_on_cluster([run], cluster))
    message = str(err.value)
    assert "\n" not in message and "no_such_option" in message
    subjects = sorted(f"{ds}/{s}" for s in data.meta["subject"].unique())
    assert any(f"fold '{s}' (" in message and f"test subject {s})" in message for s in subjects)
    assert not out.exists()


def test_a_worker_refuses_a_clip_table_other_than_the_clients(mesti_store, cluster, tmp_path):
    store, ds = mesti_store
    st = open_store(str(store))
    data = load_training_inputs(st, ds, {"x": "mesti"})
    meta = data.meta.copy()
    meta.loc[0, "label"] = (meta.loc[0, "label"] + 1) % len(data.class_names)  # the client saw other labels
    changed = data.__class__(data.inputs, meta, data.class_names, data.provenance)
    run = ClusterRun(train_inputs(st, changed, {"x": "mesti"}, None), meta, data.class_names, "loso", "meganet", {},
                     TrainConfig(epochs=1, batch_size=4, device="cpu"), tmp_path / "run")
    with pytest.raises(FoldTaskError, match="differ from those the run started with"):
        list(run_on_cluster([run], cluster))
    assert not (tmp_path / "run").exists()


def test_an_unreachable_scheduler_is_one_line(mesti_store, tmp_path):
    import dask

    store, ds = mesti_store
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = _train(store, ds, tmp_path / "run", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "Dask scheduler tcp://127.0.0.1:9: cannot connect" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_reproduce_on_the_cluster_fills_the_table_of_a_local_reproduction(face_store, cluster, tmp_path):
    base, _ = face_store
    shutil.copytree(base / "store", tmp_path / "local" / "store")
    outputs = {}
    for where in ("local", "cluster"):
        if where == "cluster":  # the inputs the local reproduction built, so that only the training differs
            shutil.copytree(tmp_path / "local" / "store", tmp_path / where / "store")
        out = tmp_path / where / "out"
        store = tmp_path / where / "store"
        args = ["reproduce", "ablation-blocks", "--quick", "--store", str(store), "--out", str(out), "--workers", "1"]
        result = CliRunner().invoke(app, args + (["--scheduler", cluster] if where == "cluster" else []))
        assert result.exit_code == 0, result.output
        assert "3 run(s) trained, 0 finished run(s) skipped" in " ".join(result.output.split())
        outputs[where] = (out, result.output)
    (local, _), (remote, log) = outputs["local"], outputs["cluster"]
    table = "ablation-blocks.csv"
    pd.testing.assert_frame_equal(pd.read_csv(local / table), pd.read_csv(remote / table))
    runs = sorted(p.name for p in (local / "runs").iterdir())
    assert runs == sorted(p.name for p in (remote / "runs").iterdir()) and len(runs) == 3
    for run in runs:  # three runs' folds were tasks at once; each run's folder has its own folds' predictions
        assert (local / "runs" / run / "predictions.csv").read_bytes() == (
            remote / "runs" / run / "predictions.csv"
        ).read_bytes()
        config = json.loads((remote / "runs" / run / "config.json").read_text())
        assert set(config["cluster"]["workers"]) == {"synth/s01", "synth/s02"}
        assert f"{run}: fold synth/s01 done on tcp://127.0.0.1:" in " ".join(log.split())


def test_workers_read_the_entries_pinned_when_the_run_started(mesti_store, tmp_path):
    store, ds = mesti_store
    target = tmp_path / "store"
    shutil.copytree(store, target)
    st = open_store(str(target))
    first = load_training_inputs(st, ds, {"x": "mesti"})
    single = train_inputs(st, first, {"x": "mesti"}, None)
    key16 = first.provenance["entries"][ds]["entry"].rsplit("/", 1)[-1]
    result = CliRunner().invoke(  # a second complete mesti entry: "mesti" alone no longer names one
        app, ["build-mesti", "--store", str(target), "--dataset", ds, "--size", "8", "--workers", "1", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    st = open_store(str(target))
    with pytest.raises(AmbiguousEntryError, match="2 complete entries"):
        load_training_inputs(st, ds, {"x": "mesti"})
    again = single.load()  # what a worker reads: the entry the client read, by its key
    assert single.keys == {ds: {"x": key16}}
    assert again.X.shape == first.X.shape and (again.X == first.X).all()
    pd.testing.assert_frame_equal(again.meta, first.meta)

    key8 = next(e.ref.key for e in st.ls(ds, "mesti") if e.ref.key != key16)
    inputs = {"big": f"mesti@{key16[:6]}", "small": f"mesti@{key8[:6]}", "au": "manifest:au_vector"}
    named = load_training_inputs(st, ds, inputs)
    source = train_inputs(st, named, inputs, None)
    assert source.keys == {ds: {"big": key16, "small": key8}}  # each input's entry, by its full key
    loaded = source.load()
    for name in inputs:
        assert (loaded.inputs[name] == named.inputs[name]).all()
    assert loaded.inputs["small"].shape[-1] == 8 and loaded.inputs["big"].shape[-1] == 16
