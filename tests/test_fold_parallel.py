"""Fold-parallel training (issue 18): the same predictions as sequential folds, no fold sees another's test rows."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import mer.train.experiment as experiment
import mer.train.fold_parallel as fold_parallel
from mer.train.fold_parallel import estimate_fold_bytes, plan_parallel_folds
from mer.train.trainer import TrainConfig, call_model

torch.set_num_threads(1)
TINY = dict(blocks=2, widths=(8, 8), stem_channels=8)


def make_data(seed: int = 0):
    """32 clips of 3x16x16, class 1 with a bright patch; 4 subjects (two per dataset) -> 4 LOSO folds."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(32) % 2
    X = torch.rand(32, 3, 16, 16, generator=g) * 0.5
    X[y == 1, :, 2:8, 2:8] += 1.0
    meta = pd.DataFrame(
        {
            "dataset": ["casme2"] * 16 + ["samm"] * 16,
            "subject": [f"{(i % 16) // 8 + 1:02d}" for i in range(32)],
            "clip_id": [f"clip{i}" for i in range(32)],
            "label": np.where(y.numpy() == 1, "pos", "neg"),
        }
    )
    return X.numpy(), meta


def run(X, meta, out_dir, cfg, parallel, options=None, **kw):
    return experiment.run_experiment(
        X,
        meta,
        "loso",
        "meganet",
        dict(TINY, **(options or {})),
        cfg,
        out_dir,
        ["neg", "pos"],
        save_checkpoints=True,
        parallel_folds=parallel,
        **kw,
    )


def checkpoint(run_dir, fold: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"fold{fold:03d}.pt", weights_only=True)


CASES = {
    # BatchNorm (MEGANet) + dropout + focal loss + flip/rotation augmentation
    "dropout": (TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu"), {"dropout": 0.5}),
    # inner split with early stopping (folds stop at different epochs), MixUp/CutMix soft targets, oversampling
    "early-stop-mix-oversample": (
        TrainConfig(
            epochs=4,
            batch_size=6,
            lr=1e-3,
            device="cpu",
            val_fraction=0.34,
            early_stopping=True,
            patience=1,
            mixup_alpha=0.4,
            cutmix_alpha=1.0,
            oversample=1.0,
        ),
        {},
    ),
    # SWA over the last epochs (BatchNorm statistics refreshed) after a warm-up cosine schedule
    "swa": (
        TrainConfig(epochs=3, batch_size=8, lr=1e-3, device="cpu", swa_start=0.5, lr_schedule="warmup_cosine"),
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_parallel_folds_give_the_sequential_predictions_bit_for_bit(case, tmp_path):
    cfg, options = CASES[case]
    X, meta = make_data()
    seq = run(X, meta, tmp_path / "seq", cfg, 1, options)
    calls = []
    par = run(X, meta, tmp_path / "par", cfg, 3, options, progress=lambda *a: calls.append(a))
    # the parallel run really interleaves: the first epoch of three folds ends before any fold's second epoch
    assert [fold for fold, _epoch, _loss in calls[:3]] == [0, 1, 2]
    # same per-fold predictions (scores bit-identical), same files in the same form
    assert par.predictions.equals(seq.predictions)
    timing = ["epoch_time"]
    pd.testing.assert_frame_equal(par.history.drop(columns=timing), seq.history.drop(columns=timing))
    assert list(par.history.columns) == list(seq.history.columns)
    for name in ("predictions.csv", "metrics.json", "history.csv", "config.json"):
        assert (tmp_path / "par" / name).exists()
    assert (tmp_path / "par" / "predictions.csv").read_bytes() == (tmp_path / "seq" / "predictions.csv").read_bytes()
    for fold in range(4):
        a, b = checkpoint(tmp_path / "seq", fold), checkpoint(tmp_path / "par", fold)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = {"train_seconds"}
    assert {k: v for k, v in par.metrics.items() if k not in drop} == {
        k: v for k, v in seq.metrics.items() if k not in drop
    }
    recorded = json.loads((tmp_path / "par" / "config.json").read_text())
    assert recorded["parallel_folds"] == 3 and "3 of 4 folds" in recorded["parallel_folds_basis"]
    assert json.loads((tmp_path / "seq" / "config.json").read_text())["parallel_folds"] == 1
    if case == "early-stop-mix-oversample":
        assert par.history.groupby("fold")["epoch"].max().nunique() > 1  # folds did stop at different epochs


def test_no_parallel_fold_sees_another_folds_test_rows(tmp_path):
    """Poisoning fold 0's test rows (inputs and labels) leaves fold 0's model unchanged, trained beside the others."""
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu")
    X, meta = make_data()
    clean = run(X, meta, tmp_path / "a", cfg, 4)
    test0 = np.sort(clean.predictions.loc[clean.predictions["fold_index"] == 0, "row"].to_numpy())
    Xp, metap = X.copy(), meta.copy()
    Xp[test0] = 100.0 * np.random.default_rng(1).standard_normal(Xp[test0].shape)
    metap.loc[test0, "label"] = np.where(metap.loc[test0, "label"] == "pos", "neg", "pos")
    run(Xp, metap, tmp_path / "c", cfg, 4)
    a0, c0 = checkpoint(tmp_path / "a", 0), checkpoint(tmp_path / "c", 0)
    assert all(torch.equal(a0[k], c0[k]) for k in a0)  # incl. the standardisation statistics
    a1, c1 = checkpoint(tmp_path / "a", 1), checkpoint(tmp_path / "c", 1)  # a fold that trains on those rows changes
    assert not all(torch.equal(a1[k], c1[k]) for k in a1)
    assert not torch.equal(a1["norm.mean"], c1["norm.mean"])  # its statistics come from its own training rows


def test_plan_parallel_folds(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert plan_parallel_folds(None, 26, cpu, lambda: 1)[0] == 1
    assert plan_parallel_folds(8, 26, cpu, lambda: 1) == (8, "8 of 26 folds at a time (as asked)")
    assert plan_parallel_folds(40, 26, cpu, lambda: 1)[0] == 26
    with pytest.raises(ValueError, match="at least 1, got 0"):
        plan_parallel_folds(0, 26, cpu, lambda: 1)
    monkeypatch.setattr(fold_parallel.torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 20 * 2**30))
    k, basis = plan_parallel_folds(None, 26, cuda, lambda: 2**30)  # 1 GiB a fold, 70 % of 10 GiB free
    assert k == 7 and "1024 MiB a fold" in basis and "10.0 GiB free" in basis
    assert plan_parallel_folds(None, 4, cuda, lambda: 2**20)[0] == 4  # never more than the folds
    assert plan_parallel_folds(None, 26, cuda, lambda: 2**40)[0] == 1  # at least one


def test_fold_memory_estimate_counts_parameter_state_and_activations():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    params = (4 * 3 + 3) + (3 * 2 + 2)  # 23 float32
    activations = 5 * (3 + 3 + 2)  # leaf outputs for a batch of 5 rows
    expected = fold_parallel.STATE_COPIES * 4 * params + 2 * 4 * activations
    assert estimate_fold_bytes(model, {"x": torch.zeros(9, 4)}, 5, call_model) == expected
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model itself is left alone


def test_interleaved_folds_each_draw_their_own_random_stream():
    """Fold f seeds the default generator with f; its draws are those of fold f alone, whatever runs beside it."""
    lengths = [5, 2, 4, 3]  # steps per fold: folds finish out of order and slots are refilled
    draws: dict[int, list[float]] = {f: [] for f in range(len(lengths))}
    order, finished = [], []

    def start(fold):
        torch.manual_seed(fold)
        model = nn.Linear(1, 1)  # draws from the default generator like a model's initialisation

        def steps():
            for _ in range(lengths[fold]):
                draws[fold].append(float(torch.rand(())))  # as dropout does
                order.append(fold)
                yield
            return f"history {fold}"

        return model, steps()

    fold_parallel.train_interleaved(4, 2, start, lambda f, m, h: finished.append((f, h)), torch.device("cpu"))
    for fold, n in enumerate(lengths):
        torch.manual_seed(fold)
        nn.Linear(1, 1)
        assert draws[fold] == [float(torch.rand(())) for _ in range(n)]
    assert order[:7] == [0, 1, 0, 1, 0, 0, 2]  # two slots, step by step; fold 2 takes the slot fold 1 left
    assert [f for f, _ in finished] == [1, 0, 2, 3] and dict(finished)[2] == "history 2"


def test_an_error_in_one_fold_leaves_no_global_mode_behind():
    def start(fold):
        def steps():
            yield
            if fold == 1:
                raise ValueError("fold 1 fails")
            yield

        return nn.Linear(1, 1), steps()

    before = torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="fold 1 fails"):
        fold_parallel.train_interleaved(3, 3, start, lambda *a: None, torch.device("cpu"), deterministic=not before)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_plan_falls_back_to_one_fold_when_memory_cannot_be_estimated(monkeypatch):
    monkeypatch.setattr(fold_parallel.torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 20 * 2**30))

    def unsupported():
        raise NotImplementedError("aten::foo on Meta")

    k, basis = plan_parallel_folds(None, 26, torch.device("cuda"), unsupported)
    assert k == 1 and "could not be estimated (NotImplementedError)" in basis


def test_a_multi_input_model_trains_fold_parallel_with_the_sequential_predictions(tmp_path):
    """STAG (named inputs roi_flow + au, dropout, ROI-mirror augmentation): the same scores fold-parallel."""
    rng = np.random.default_rng(0)
    y = np.arange(24) % 3
    inputs = {
        "roi_flow": rng.standard_normal((24, 6, 14, 2)).astype(np.float32) + y[:, None, None, None],
        "au": rng.random((24, 21)).astype(np.float32),
    }
    meta = pd.DataFrame({"dataset": "synth", "subject": [f"s{i % 3}" for i in range(24)], "label": y})
    small = dict(embed_dim=8, hidden_dim=8, graph_layers=1, heads=2, graph_dim=8, transformer_dim=8)
    small |= dict(transformer_layers=1, transformer_heads=2, fusion_dim=8, au_dim=4, roi_set="stag14")
    cfg = TrainConfig(epochs=2, batch_size=6, lr=1e-3, device="cpu", roi_flip_prob=0.5, tta="flip")
    runs = [
        experiment.run_experiment(inputs, meta, "loso", "stag", small, cfg, tmp_path / str(k), parallel_folds=k)
        for k in (1, 3)
    ]
    assert runs[1].config["parallel_folds"] == 3 and len(runs[1].predictions) == 24
    assert runs[1].predictions.equals(runs[0].predictions)
