"""Protocol honesty (issue 13): grouped hold-out, the subject-independence flag measured into config.json, the
report's warning on subject-dependent runs, float32 + deterministic defaults, same seed same metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mer.report.tables import compare_runs, to_markdown, to_text
from mer.train.experiment import run_experiment
from mer.train.protocols import holdout, kfold, overlapping_subjects, parse_protocol, subject_keys
from mer.train.results import read_json
from mer.train.trainer import TrainConfig

torch.set_num_threads(1)


def make_meta(n_subjects: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"dataset": "casme2", "subject": f"{s:02d}", "clip_id": f"{s:02d}/{c}", "label": int(rng.integers(0, 3))}
        for s in range(n_subjects)
        for c in range(int(rng.integers(3, 8)))
    ]
    return pd.DataFrame(rows)


def test_grouped_holdout_keeps_subjects_whole_and_near_the_fraction():
    meta = make_meta()
    keys = subject_keys(meta)
    (fold,) = holdout(meta, 0.25, seed=3, grouped=True)
    assert not set(keys[fold.test_idx]) & set(keys[fold.train_idx])
    assert sorted(np.concatenate([fold.train_idx, fold.test_idx])) == list(range(len(meta)))
    assert 0.1 < len(fold.test_idx) / len(meta) < 0.4
    (again,) = holdout(meta, 0.25, seed=3, grouped=True)
    assert np.array_equal(again.test_idx, fold.test_idx)
    assert overlapping_subjects(meta, [fold]) == 0


def test_plain_holdout_and_kfold_are_measured_subject_dependent():
    meta = make_meta()
    assert overlapping_subjects(meta, list(holdout(meta, 0.25, seed=0))) > 0
    assert overlapping_subjects(meta, list(kfold(meta, 3, seed=0))) > 0
    assert overlapping_subjects(meta, list(kfold(meta, 3, seed=0, grouped=True))) == 0


@pytest.mark.parametrize(
    ("spec", "independent"),
    [
        ("loso", True),
        ("megc2019", True),
        ("cross:casme2:smic", True),
        ("holdout:0.1", False),
        ("holdout:0.1:0:grouped", True),
        ("kfold:5", False),
        ("kfold:5:0:grouped", True),
        ("kfold:5:0:rows", False),
    ],
)
def test_every_protocol_says_whether_it_is_subject_independent(spec, independent):
    proto = parse_protocol(spec)
    assert proto.subject_independent is independent
    assert proto.to_dict()["subject_independent"] is independent


def test_a_misspelt_grouped_flag_is_an_error():
    with pytest.raises(ValueError, match="'grouped' .* or 'rows', not 'grouppd'"):
        parse_protocol("holdout:0.1:0:grouppd")


def _run(meta, protocol, out, seed=0):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(len(meta), 3, 28, 28)).astype(np.float32)
    X[:, 0] += meta["label"].to_numpy()[:, None, None] * 0.5  # something to learn
    cfg = TrainConfig(epochs=2, batch_size=16, seed=seed, device="cpu", rotation_angles=(0.0, 5.0))
    return run_experiment(X, meta, protocol, "ststnet", None, cfg, out, class_names=["a", "b", "c"])


def test_config_and_report_say_whether_the_run_is_subject_independent(tmp_path):
    meta = make_meta(6)
    dependent = _run(meta, "holdout:0.3", tmp_path / "rows")
    grouped = _run(meta, "holdout:0.3:0:grouped", tmp_path / "grouped")
    cfg_dep, cfg_grp = read_json(tmp_path / "rows" / "config.json"), read_json(tmp_path / "grouped" / "config.json")
    assert cfg_dep["subject_independent"] is False and cfg_dep["test_subjects_in_training"] > 0
    assert cfg_grp["subject_independent"] is True and cfg_grp["test_subjects_in_training"] == 0
    # float32 and deterministic algorithms unless asked otherwise, recorded
    assert cfg_dep["precision"] == "float32"
    assert cfg_dep["train"]["amp"] is False and cfg_dep["train"]["deterministic"] is True
    table = compare_runs([tmp_path / "rows", tmp_path / "grouped"])
    protocols = dict(zip(table["run"], table["protocol"], strict=True))
    assert protocols == {"rows": "holdout (subject-dependent)", "grouped": "holdout"}
    md, txt = to_markdown(table), to_text(table)
    assert "**Warning**: 1 run(s) (rows) used a subject-dependent protocol" in md
    assert "Warning: 1 run(s) (rows)" in txt
    assert "Warning" not in to_markdown(compare_runs([tmp_path / "grouped"]))
    assert dependent.metrics["n"] > 0 and grouped.metrics["n"] > 0


def test_two_cpu_runs_with_one_seed_give_identical_metrics(tmp_path):
    meta = make_meta(4)
    a = _run(meta, "loso", tmp_path / "a", seed=7)
    b = _run(meta, "loso", tmp_path / "b", seed=7)
    c = _run(meta, "loso", tmp_path / "c", seed=8)
    pa, pb, pc = (r.predictions.filter(like="score_").to_numpy() for r in (a, b, c))
    assert np.array_equal(pa, pb) and a.metrics["uf1"] == b.metrics["uf1"]
    assert not np.array_equal(pa, pc)
