"""``mer-cli show-stag RUN CLIP``: the figure and the per-class ROI importance of a STAG run with checkpoints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mer.cli import app
from mer.models import create
from mer.store import open_store

OPTIONS = dict(
    roi_set="stag6",
    embed_dim=8,
    hidden_dim=8,
    graph_layers=1,
    heads=2,
    graph_dim=8,
    transformer_dim=8,
    transformer_layers=1,
    transformer_heads=2,
    fusion_dim=8,
    au_dim=4,
)


@pytest.fixture(scope="module")
def stag_run(face_store, tmp_path_factory):
    """The face store with ``build-flow --roi 6``, and a run folder in the trainer's layout: 2 LOSO folds with
    seeded (untrained) STAG checkpoints."""
    base, dataset = face_store
    root = tmp_path_factory.mktemp("stag_run")
    store = root / "store"
    shutil.copytree(base / "store", store)
    args = [
        "build-flow",
        "--store",
        str(store),
        "--dataset",
        dataset,
        "--roi",
        "6",
        "--length",
        "8",
        "--workers",
        "1",
        "--quiet",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    st = open_store(str(store))
    entry = st.find(dataset, "roi-flow")
    manifest = st.manifest(dataset)
    subjects = sorted(manifest["subject"].astype(str).unique())
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    names = ["negative", "positive", "surprise"]
    preds = pd.DataFrame(
        {
            "dataset": dataset,
            "clip": manifest["clip_id"],
            "subject": manifest["subject"].astype(str),
            "fold_index": [subjects.index(s) for s in manifest["subject"].astype(str)],
            "y_true": manifest["label"].astype(int),
        }
    )
    preds.to_csv(run / "predictions.csv", index=False)
    (run / "config.json").write_text(
        json.dumps({"model": "stag", "model_options": OPTIONS, "num_classes": 3, "class_names": names})
    )
    (run / "provenance.json").write_text(
        json.dumps({"store": str(store), "entries": {dataset: {"roi_flow": {"entry": str(entry.ref)}, "au": {}}}})
    )
    for fold in range(len(subjects)):
        torch.manual_seed(fold)
        torch.save(create("stag", num_classes=3, **OPTIONS).state_dict(), run / "checkpoints" / f"fold{fold:03d}.pt")
    return run, store, dataset, preds


def test_show_stag_writes_the_figure_and_the_mean_importance_of_each_class(stag_run, tmp_path):
    run, store, dataset, preds = stag_run
    clip = preds["clip"].iloc[0]
    out = tmp_path / "fig" / "stag.png"
    result = CliRunner().invoke(app, ["show-stag", str(run), clip, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(tmp_path / "fig" / "stag_importance.csv")
    st = open_store(str(store))
    entry = st.find(dataset, "roi-flow")
    manifest = st.manifest(dataset).set_index("clip_id")
    # recompute every clip's importance with its own fold's model, then the class means
    imp = []
    for _, row in preds.iterrows():
        torch.manual_seed(int(row["fold_index"]))
        model = create("stag", num_classes=3, **OPTIONS).eval()
        batch = {
            "roi_flow": torch.from_numpy(st.read_entry(entry, clip=row["clip"]))[None],
            "au": torch.tensor([list(manifest.loc[row["clip"], "au_vector"])], dtype=torch.float32),
        }
        imp.append(model.explain(batch)["roi_importance"][0].numpy())
    imp = np.stack(imp)
    rois = ["left_brow", "right_brow", "left_eye", "right_eye", "nose_tip", "mouth"]
    assert list(table.columns) == ["class", "n", *rois]
    for _, row in table.iterrows():
        k = ["negative", "positive", "surprise"].index(row["class"])
        members = (preds["y_true"] == k).to_numpy()
        assert row["n"] == members.sum()
        np.testing.assert_allclose(row[rois].to_numpy(float), imp[members].mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(table[rois].sum(axis=1), 1.0, atol=1e-4)


def test_show_stag_errors_are_one_line(stag_run, tmp_path):
    run, _, _, _ = stag_run
    result = CliRunner().invoke(app, ["show-stag", str(run), "nobody/none", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "clip 'nobody/none' is not a test clip" in result.output
    assert "Traceback" not in result.output
    broken = tmp_path / "run14"
    shutil.copytree(run, broken)
    config = json.loads((broken / "config.json").read_text())
    config["model_options"]["roi_set"] = "stag14"
    (broken / "config.json").write_text(json.dumps(config))
    for f in (broken / "checkpoints").iterdir():
        torch.save(create("stag", num_classes=3, **config["model_options"]).state_dict(), f)
    clip = pd.read_csv(run / "predictions.csv")["clip"].iloc[0]
    result = CliRunner().invoke(app, ["show-stag", str(broken), clip, "--out", str(tmp_path / "y.png")])
    assert result.exit_code == 2 and "built for roi_set=stag14" in result.output and "roi_set=stag6" in result.output
    shutil.rmtree(broken / "checkpoints")
    result = CliRunner().invoke(app, ["show-stag", str(broken), clip, "--out", str(tmp_path / "z.png")])
    assert result.exit_code == 2 and "--checkpoints" in result.output


def test_report_table_of_a_stag_run(stag_run, tmp_path):
    from mer.report.stag_explain import stag_importance_report

    run, _, _, preds = stag_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    table = stag_importance_report(copy)
    assert list(table["class"]) == sorted(set(table["class"]), key=["negative", "positive", "surprise"].index)
    assert table["n"].sum() == len(preds)
    assert pd.read_csv(copy / "roi_importance.csv").shape == table.shape
    shutil.rmtree(copy / "checkpoints")
    assert stag_importance_report(copy) is None
    (copy / "config.json").write_text(json.dumps({"model": "meganet"}))
    assert stag_importance_report(copy) is None
