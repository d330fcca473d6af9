"""``mer-cli reproduce`` (issue 13): the paper's grids, the published numbers as package data, and
``reproduce modalities --quick`` end to end on a synthetic store, a second invocation computing nothing."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.train.paper_grids import EXPERIMENTS, get_experiment, published
from mer.train.reproduce import QuickSizes, rewrite_grid


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_grid_cell_has_the_papers_number_and_no_test_fold_choice(name):
    exp = get_experiment(name)
    paper = published(name)
    assert set(paper) == set(exp.rows)
    for row in exp.rows:
        assert set(paper[row]) == set(exp.columns), row
        assert all(0 < v <= 1 for v in paper[row].values())  # fractions, not percentages
    cells = {(c.row, c.column) for c in exp.cells}
    assert len(cells) == len(exp.cells)  # one number per cell
    expected = {(r, c) for r in exp.rows if r not in exp.not_reproduced for c in exp.columns}
    assert cells == expected
    for run in exp.runs():
        assert run.protocol.split(":")[0] in ("holdout", "loso", "megc2019", "cross")


def test_published_numbers_spot_checks():
    assert published("modalities")["MESTI"]["VGG19 CASME II ACC"] == 0.7308
    assert published("meganet-3class")["MESTI-MEGANet"]["SMIC-HS ACC"] == 0.9268
    assert published("cross")["MESTI-MEGANet"]["SAMM->SMIC WF1"] == 0.4089
    assert published("ablation-blocks")["4 blocks"]["UAR"] == 0.878


def test_grids_use_the_networks_and_switches_of_the_paper():
    t3 = get_experiment("meganet-3class").runs()
    assert [(r.datasets, r.protocol, r.labels) for r in t3] == [(("casme2", "samm", "smic"), "megc2019", "3class")]
    modules = {c.row: c.run.model_options for c in get_experiment("ablation-modules").cells}
    assert modules["self-attention only"] == {"gradient_attention": False, "residual": False, "self_attention": True}
    attention = {c.row: c.run.model_options for c in get_experiment("ablation-attention").cells}
    assert attention["SE"] == {"input_attention": "se"} and attention["gradient attention"] == {}
    t1 = get_experiment("modalities")
    assert {r.model for r in t1.runs()} == {"vgg19", "resnet50", "efficientnet_b0"}
    flows = [r.input for r in t1.runs() if r.input.stage == "flow-image"]
    assert {f.params["flow-image"]["pair"] for f in flows} == {0, 1}


def test_subject_independent_option_and_quick_mapping():
    exp = rewrite_grid(get_experiment("modalities"), subject_independent=True)
    assert {r.protocol for r in exp.runs()} == {"holdout:0.1:0:grouped"}
    quick = rewrite_grid(get_experiment("cross"), {"casme2": "synth", "smic": "synth", "samm": "synth"}, QuickSizes())
    assert {r.protocol for r in quick.runs()} == {"holdout:0.5:0:grouped"}  # one dataset stands for both sides
    two = rewrite_grid(get_experiment("cross"), {"casme2": "a", "samm": "b", "smic": "c"}, QuickSizes())
    assert {r.protocol for r in two.runs()} == {"cross:a:c", "cross:b:c"}
    assert {r.input.params["mesti"]["size"] for r in two.runs()} == {32}


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*") if p.is_file()}


def test_reproduce_modalities_quick_end_to_end_then_nothing_again(face_store, tmp_path):
    base, _ = face_store
    store = tmp_path / "store"
    shutil.copytree(base / "store", store)
    out = tmp_path / "out"
    args = ["reproduce", "modalities", "--quick", "--store", str(store), "--out", str(out), "--workers", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "5 run(s) trained, 0 finished run(s) skipped" in " ".join(first.output.split())

    cells = pd.read_csv(out / "modalities.csv")
    exp = get_experiment("modalities")
    done = cells[cells["not_reproduced"].isna()]
    assert len(done) == len(exp.cells) == 5 * 6
    assert done["ours"].between(0, 1).all() and done["paper"].notna().all()
    assert not done["subject_independent"].astype(bool).any()  # the published 90/10 split, flagged
    for _, cell in done.iterrows():  # every number is the run's own pooled accuracy
        metrics = json.loads((out / "runs" / cell["run"] / "metrics.json").read_text())
        assert math.isclose(cell["ours"], metrics["acc"])
        config = json.loads((out / "runs" / cell["run"] / "config.json").read_text())
        assert config["train"]["val_fraction"] == 0 and not config["train"]["early_stopping"]
        if "optical-flow" in cell["run"]:
            assert config["train"]["channels"] == ["u", "v", "strain"]  # the flow image's declaration
    md = (out / "modalities.md").read_text()
    assert "| MESTI | " in md and "(paper 0.731)" in md and "**Warning**" in md
    assert "Not reproduced: Active image" in md
    assert r"\begin{tabular}" in (out / "modalities.tex").read_text()
    assert (out / "modalities.png").stat().st_size > 1000

    store_before, runs_before = _tree(store), _tree(out / "runs")
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "0 run(s) trained, 5 finished run(s) skipped, 0 clip input(s) computed" in " ".join(second.output.split())
    assert _tree(store) == store_before  # nothing built, not even a run report
    assert _tree(out / "runs") == runs_before
    pd.testing.assert_frame_equal(pd.read_csv(out / "modalities.csv"), cells)


def test_reproduce_names_missing_datasets_in_one_line(face_store, tmp_path):
    base, _ = face_store
    result = CliRunner().invoke(app, ["reproduce", "cross", "--store", str(base / "store"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "needs dataset(s) casme2, samm, smic" in text and "Traceback" not in text
