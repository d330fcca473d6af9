"""``mer-cli train`` and ``report`` on a stored input: files, metric values, determinism, relabelling (issue 6)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from typer.testing import CliRunner

from mer.cli import app
from mer.store import open_store


@pytest.fixture(scope="module")
def mesti_store(face_store, tmp_path_factory):
    base, dataset = face_store
    target = tmp_path_factory.mktemp("train") / "store"
    shutil.copytree(base / "store", target)
    result = CliRunner().invoke(
        app, ["build-mesti", "--store", str(target), "--dataset", dataset, "--size", "16", "--workers", "1", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return target, dataset


def _train(store, dataset, out, *extra):
    args = [
        "train",
        "--store",
        str(store),
        "--dataset",
        dataset,
        "--input",
        "mesti",
        "--model",
        "meganet",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def test_train_writes_metrics_that_match_its_predictions(mesti_store, tmp_path):
    store, ds = mesti_store
    metrics = _train(store, ds, tmp_path / "run")
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert {"clip", "subject", "fold", "y_true", "y_pred"} <= set(predictions.columns)
    assert len(predictions) == 6 and predictions["fold"].nunique() == 2  # LOSO over 2 subjects
    y, p = predictions["y_true"], predictions["y_pred"]
    assert metrics["acc"] == pytest.approx(accuracy_score(y, p))
    assert metrics["uf1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert metrics["uar"] == pytest.approx(recall_score(y, p, average="macro", labels=sorted(set(y))))
    assert metrics["wf1"] == pytest.approx(f1_score(y, p, average="weighted"))
    manifest = open_store(str(store)).manifest(ds).set_index("clip_id")
    for _, row in predictions.iterrows():
        assert manifest.loc[row["clip"], "label"] == row["y_true"]
        assert row["subject"] == manifest.loc[row["clip"], "subject"]
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["input"] == "mesti" and provenance["entries"][ds]["entry"].startswith(f"{ds}/mesti/")


def test_same_seed_same_metrics_and_relabelling(mesti_store, tmp_path):
    """One seed, the same metrics and scores: also with the folds trained together (--parallel-folds)."""
    store, ds = mesti_store
    a = _train(store, ds, tmp_path / "a", "--seed", "3")
    b = _train(store, ds, tmp_path / "b", "--seed", "3", "--parallel-folds", "2")
    assert a["uf1"] == b["uf1"] and a["per_fold"] == b["per_fold"]
    config_a, config_b = (json.loads((tmp_path / r / "config.json").read_text()) for r in "ab")
    assert config_a["parallel_folds"] == 1 and "on the CPU" in config_a["parallel_folds_basis"]  # the CPU default
    assert config_b["parallel_folds"] == 2
    pa = pd.read_csv(tmp_path / "a" / "predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "predictions.csv")
    score_columns = [c for c in pa.columns if c not in ("clip", "subject", "fold", "dataset", "y_true", "y_pred")]
    np.testing.assert_array_equal(pa[score_columns].to_numpy(), pb[score_columns].to_numpy())
    relabelled = _train(store, ds, tmp_path / "c", "--classes", "3")
    assert relabelled["class_names"] == ["negative", "positive", "surprise"]


def test_parallel_folds_below_one_is_one_line(mesti_store, tmp_path):
    store, ds = mesti_store
    args = ["train", "--store", str(store), "--dataset", ds, "--parallel-folds", "0", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "--parallel-folds must be at least 1, got 0" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_report_compares_runs(mesti_store, tmp_path):
    store, ds = mesti_store
    _train(store, ds, tmp_path / "runs" / "one")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "runs" / "one")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "runs" / "report.md").read_text()
    uf1 = json.loads((tmp_path / "runs" / "one" / "metrics.json").read_text())["uf1"]
    assert "mesti" in text and "meganet" in text and f"{uf1:.3f}" in text
    assert (tmp_path / "runs" / "one" / "confusion.png").stat().st_size > 1000
