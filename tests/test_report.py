"""Report tables and figures from run directories."""

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from mer.report import compare_runs, to_markdown, to_text
from mer.report.figures import plot_confusion, plot_history, save_run_figures


def write_run(d, model, inp, uf1, per_dataset, use_provenance=False):
    d.mkdir(parents=True)
    cfg = {
        "model": model,
        "protocol": {"name": "loso", "params": {}},
        "input": None if use_provenance else inp,
    }
    (d / "config.json").write_text(json.dumps(cfg))
    if use_provenance:
        (d / "provenance.json").write_text(json.dumps({"input": inp}))
    metrics = {
        "uf1": uf1,
        "uar": uf1 + 0.01,
        "acc": uf1 + 0.02,
        "wf1": uf1 + 0.03,
        "class_names": ["negative", "positive", "surprise"],
        "confusion_matrix": [[5, 1, 0], [2, 3, 1], [0, 0, 4]],
        "per_dataset": {ds: {"uf1": v, "uar": v, "acc": v, "wf1": v} for ds, v in per_dataset.items()},
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    hist = pd.DataFrame(
        {
            "fold": ["a"] * 3 + ["b"] * 3,
            "epoch": [0, 1, 2] * 2,
            "train_loss": [1.0, 0.5, 0.25, 3.0, 1.5, 0.75],
            "train_acc": [0.2, 0.5, 0.8] * 2,
        }
    )
    hist.to_csv(d / "history.csv", index=False)
    return d


def test_compare_runs_table(tmp_path):
    a = write_run(tmp_path / "r1", "meganet", "mesti", 0.8, {"casme2": 0.85, "samm": 0.7})
    b = write_run(tmp_path / "r2", "resnet50", "apex", 0.5, {"casme2": 0.55}, use_provenance=True)
    df = compare_runs([a, b])
    assert list(df.index) == [("apex", "resnet50"), ("mesti", "meganet")]
    assert df.loc[("mesti", "meganet"), "all/uf1"] == pytest.approx(0.8)
    assert df.loc[("mesti", "meganet"), "all/wf1"] == pytest.approx(0.83)
    assert df.loc[("mesti", "meganet"), "samm/uf1"] == pytest.approx(0.7)
    assert np.isnan(df.loc[("apex", "resnet50"), "samm/uf1"])  # run b has no SAMM scores
    assert df.loc[("apex", "resnet50"), "run"] == "r2"

    md = to_markdown(df).strip().splitlines()
    assert md[0].startswith("| input | model | run | protocol | all/uf1")
    assert len(md) == 4 and md[1].startswith("|---")
    assert "| mesti | meganet | r1 | loso | 0.800 |" in md[3]
    assert "–" in md[2]  # missing value shown as a dash
    txt = to_text(df)
    assert "0.850" in txt and "resnet50" in txt


def test_figures_are_png(tmp_path):
    run = write_run(tmp_path / "r", "meganet", "mesti", 0.8, {"casme2": 0.8})
    cm_path = plot_confusion(run)
    hist_path = plot_history(run, tmp_path / "curves.png")
    for p in (cm_path, hist_path):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.01  # not a blank canvas
    paths = save_run_figures(run)
    assert [p.name for p in paths] == ["confusion.png", "history.png"]
