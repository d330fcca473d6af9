"""Losses, device augmentation, the whole-tensor trainer and the experiment runner (incl. leakage)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import mer.train.experiment as experiment
from mer.train.augment import augment_batch, hflip, rotate
from mer.train.losses import FocalLoss, make_loss
from mer.train.metrics import compute_metrics
from mer.train.trainer import TrainConfig, fit, inner_split, predict

torch.set_num_threads(1)
TINY = dict(blocks=2, widths=(8, 8), stem_channels=8)


# ---------------------------------------------------------------- losses
def test_focal_with_gamma_zero_equals_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 4), torch.randint(0, 4, (16,))
    torch.testing.assert_close(FocalLoss(gamma=0)(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(
        FocalLoss(gamma=0, label_smoothing=0.1)(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1)
    )
    w = torch.tensor([0.5, 1.0, 2.0, 3.0])
    torch.testing.assert_close(FocalLoss(gamma=0, alpha=w)(logits, y), F.cross_entropy(logits, y, weight=w))


def test_focal_loss_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    y = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    pt = p[torch.arange(2), y]
    expected = (-((1 - pt) ** 2) * torch.log(pt)).mean()
    torch.testing.assert_close(make_loss("focal", gamma=2.0)(logits, y), expected)
    # focusing: a confident correct sample is down-weighted relative to CE
    assert make_loss("focal", gamma=2.0)(logits[:1], y[:1]) < F.cross_entropy(logits[:1], y[:1])


# ---------------------------------------------------------------- augmentation
def test_augmentation_is_seeded_and_deterministic():
    x = torch.rand(8, 3, 12, 12)
    outs = []
    for seed in (5, 5, 6):
        g = torch.Generator().manual_seed(seed)
        outs.append(augment_batch(x, g))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_flip_is_exact_and_angle_zero_is_untouched():
    x = torch.rand(4, 3, 6, 7)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, g, flip_prob=1.0, angles=(0.0,)), x.flip(-1))
    assert torch.equal(augment_batch(x, g, flip_prob=0.0, angles=(0.0,)), x)
    assert torch.equal(x.flip(-1)[..., 0], x[..., -1])


def test_rotation_direction_and_sampling():
    x = torch.rand(2, 1, 8, 8)
    # +90 degrees turns content clockwise as displayed; bilinear at pixel centres is exact up to rounding
    torch.testing.assert_close(rotate(x, torch.tensor([90.0, 90.0])), torch.rot90(x, k=-1, dims=(2, 3)))
    torch.testing.assert_close(rotate(x, torch.tensor([0.0, 0.0])), x)


def _radial_flow(n: int) -> torch.Tensor:
    c = (n - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(n) - c, torch.arange(n) - c, indexing="ij")
    return torch.stack([xx, yy]).float().unsqueeze(0)  # (u, v) = position from the centre


@pytest.mark.parametrize("angle", [10.0, -5.0, 90.0])
def test_flow_rotation_turns_vectors_with_the_image(angle):
    """An outward radial field is rotation-equivariant: rotating it as a flow field leaves it unchanged."""
    f = _radial_flow(21)
    out = rotate(f, torch.tensor([angle]), ("u", "v"))
    inner = slice(5, 16)  # away from the zero-filled corners
    torch.testing.assert_close(out[..., inner, inner], f[..., inner, inner], atol=1e-4, rtol=0)
    # without rotating the vectors the field would be wrong
    plain = rotate(f, torch.tensor([angle]))
    assert (plain[..., inner, inner] - f[..., inner, inner]).abs().max() > 0.3


def test_flow_flip_negates_u():
    f = _radial_flow(9)
    torch.testing.assert_close(hflip(f, ("u", "v")), f)  # radial field is mirror-symmetric
    assert torch.equal(hflip(f)[:, 0], f.flip(-1)[:, 0])


# ---------------------------------------------------------------- trainer
def separable(n: int = 48, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = torch.rand(n, 3, size, size, generator=g) * 0.5
    X[y == 1, :, 2:8, 2:8] += 1.0  # class 1 has a bright patch
    return X, y


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return experiment.create("meganet", 2, image_size=16, **TINY)


def test_tiny_separable_dataset_is_learned_above_chance():
    X, y = separable()
    train, test = np.arange(0, 32), np.arange(32, 48)
    cfg = TrainConfig(epochs=12, batch_size=8, lr=5e-3, loss="ce", device="cpu", augment=False)
    model = _tiny_model()
    hist = fit(model, X, y, cfg, indices=train)
    acc = (predict(model, X, test).argmax(1) == y[test]).float().mean().item()
    assert acc >= 0.8
    assert hist.epochs[-1]["train_loss"] < hist.epochs[0]["train_loss"]
    probs = predict(model, X, test)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(test)))


def test_inner_validation_split_is_by_subject_and_inside_training_rows():
    X, y = separable()
    rows = np.arange(40)
    groups = np.array([f"s{i // 8}" for i in rows])  # 5 subjects of 8 rows
    cfg = TrainConfig(epochs=3, batch_size=8, device="cpu", val_fraction=0.25, early_stopping=True, patience=1)
    hist = fit(_tiny_model(), X, y, cfg, indices=rows, groups=groups)
    assert len(hist.val_rows) > 0
    assert set(hist.val_rows) | set(hist.train_rows) == set(rows)
    assert not set(groups[hist.val_rows]) & set(groups[hist.train_rows])
    assert "val_loss" in hist.epochs[0] and "val_uf1" in hist.epochs[0]
    fit_rows, val_rows = inner_split(rows, y[rows].numpy(), None, 0.25, seed=0)
    assert len(val_rows) == 10 and not set(val_rows) & set(fit_rows)


# ---------------------------------------------------------------- experiment runner
def make_experiment_data(seed: int = 0):
    X, y = separable(n=32, seed=seed)
    meta = pd.DataFrame(
        {
            "dataset": ["casme2"] * 16 + ["samm"] * 16,
            "subject": [f"{(i % 16) // 8 + 1:02d}" for i in range(32)],  # "01","02" in both datasets
            "clip_id": [f"clip{i}" for i in range(32)],
            "label": np.where(y.numpy() == 1, "pos", "neg"),
        }
    )
    return X.numpy(), meta


CFG = TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu")


def _run(X, meta, out_dir, **kw):
    return experiment.run_experiment(
        X, meta, "loso", "meganet", dict(TINY), CFG, out_dir, ["neg", "pos"], save_checkpoints=True, **kw
    )


def test_runner_writes_results_is_reproducible_and_never_trains_on_test_rows(tmp_path, monkeypatch):
    X, meta = make_experiment_data()
    seen = []
    real_fit = experiment.fit

    def spy_fit(model, Xd, yd, config, indices=None, **kw):
        seen.append(np.array(indices))
        return real_fit(model, Xd, yd, config, indices=indices, **kw)

    monkeypatch.setattr(experiment, "fit", spy_fit)
    calls = []
    res = _run(X, meta, tmp_path / "a", provenance={"input": "mesti"}, progress=lambda *a: calls.append(a))
    folds = res.predictions.groupby("fold_index")["row"].apply(set)
    assert len(seen) == 4 == len(folds)
    for fi, train_rows in enumerate(seen):
        assert not set(train_rows) & folds[fi]
    assert len(calls) == 4 * CFG.epochs and calls[0] == (0, 0, pytest.approx(calls[0][2]))

    # files and pooled metrics consistent with the predictions
    out = tmp_path / "a"
    for name in ("metrics.json", "predictions.csv", "config.json", "history.csv", "provenance.json"):
        assert (out / name).exists()
    m = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    assert sorted(pred["row"]) == list(range(32))
    ref = compute_metrics(pred["y_true"], pred["y_pred"], 2)
    assert m["uf1"] == pytest.approx(ref["uf1"]) and m["acc"] == pytest.approx(ref["acc"])
    assert set(m["per_dataset"]) == {"casme2", "samm"}
    casme = pred[pred["dataset"] == "casme2"]
    assert m["per_dataset"]["casme2"]["acc"] == pytest.approx((casme["y_true"] == casme["y_pred"]).mean())
    assert {"score_neg", "score_pos", "clip", "subject", "fold", "y_true", "y_pred"} <= set(pred.columns)
    assert len(m["per_fold"]) == 4
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "meganet" and cfg["input"] == "mesti" and cfg["protocol"]["name"] == "loso"
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 4 * CFG.epochs

    # two CPU runs with one seed: identical
    monkeypatch.setattr(experiment, "fit", real_fit)
    res2 = _run(X, meta, tmp_path / "b")
    assert res2.metrics["uf1"] == res.metrics["uf1"]
    np.testing.assert_array_equal(
        res2.predictions[["score_neg", "score_pos"]].to_numpy(),
        res.predictions[["score_neg", "score_pos"]].to_numpy(),
    )

    # poisoning fold 0's test rows (inputs and labels) must not change fold 0's trained model
    test0 = np.array(sorted(folds[0]))
    Xp, metap = X.copy(), meta.copy()
    Xp[test0] = 100.0 * np.random.default_rng(1).standard_normal(Xp[test0].shape)
    metap.loc[test0, "label"] = np.where(metap.loc[test0, "label"] == "pos", "neg", "pos")
    _run(Xp, metap, tmp_path / "c")
    load = lambda run, f: torch.load(tmp_path / run / "checkpoints" / f"fold{f:03d}.pt", weights_only=True)  # noqa: E731
    a0, c0 = load("a", 0), load("c", 0)
    assert all(torch.equal(a0[k], c0[k]) for k in a0)
    a1, c1 = load("a", 1), load("c", 1)  # ...while it does change a fold that trains on those rows
    assert not all(torch.equal(a1[k], c1[k]) for k in a1)


def test_runner_rejects_misaligned_inputs():
    X, meta = make_experiment_data()
    with pytest.raises(ValueError, match="rows"):
        experiment.run_experiment(X[:-1], meta, "loso", "meganet", TINY, CFG, None, ["neg", "pos"])
    assert math.isfinite(CFG.lr)


def test_train_config_round_trips_through_json():
    cfg = TrainConfig(epochs=7, rotation_angles=(-5.0, 5.0), channels=("u", "v", "strain"), optimizer="adamw")
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
