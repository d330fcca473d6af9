"""Training extras: class-balanced focal loss, schedules, MixUp/CutMix, oversampling, SWA, flip TTA, presets."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mer.train.experiment import run_experiment
from mer.train.extras import TrainingExtras
from mer.train.losses import FocalLoss, class_weights, effective_number_weights
from mer.train.mixing import MixConfig, mix_batch
from mer.train.presets import available_presets, load_preset
from mer.train.recipes import get_recipe
from mer.train.sampling import oversample_counts, oversample_rows
from mer.train.schedules import lr_factor, make_scheduler, warmup_cosine_factor
from mer.train.swa import WeightAverage, refresh_batch_norm, swa_start_epoch
from mer.train.trainer import TrainConfig
from mer.train.tta import flip_batch, flip_tta_probs


def test_focal_with_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 5, generator=g), torch.randint(0, 5, (16,), generator=g)
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, label_smoothing=0.1)(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1)
    )
    w = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0])
    torch.testing.assert_close(FocalLoss(gamma=0.0, alpha=w)(logits, y), F.cross_entropy(logits, y, weight=w))
    # soft targets (MixUp): the same as cross-entropy with probability targets
    q = torch.softmax(torch.randn(16, 5, generator=g), 1)
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, q), F.cross_entropy(logits, q))


def test_focal_down_weights_easy_samples_per_class_gamma():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 1])
    p = torch.softmax(logits, 1)[0, 0]
    expected = -((1 - p) ** 2) * torch.log(p)
    torch.testing.assert_close(FocalLoss(gamma=2.0)(logits, y), expected)
    # per-class gamma: class 0 uses gamma 0 (CE term), class 1 gamma 2
    per = FocalLoss(gamma=[0.0, 2.0])(logits, y)
    torch.testing.assert_close(per, (-torch.log(p) + expected) / 2)


def test_effective_number_weights_follow_the_formula():
    y = [0] * 100 + [1] * 10 + [2] * 1
    beta = 0.99
    w = effective_number_weights(y, 4, beta)
    inv_e = [(1 - beta) / (1 - beta**n) for n in (100, 10, 1)]
    expected = [v / sum(inv_e) * 3 for v in inv_e] + [0.0]
    assert w == pytest.approx(expected, rel=1e-12)
    assert effective_number_weights(y, 3, 0.0) == pytest.approx([1.0, 1.0, 1.0])
    # beta -> 1 tends to inverse frequency
    near = effective_number_weights(y, 3, 1 - 1e-9)
    inv = [1 / 100, 1 / 10, 1]
    assert near == pytest.approx([v / sum(inv) * 3 for v in inv], rel=1e-5)
    assert class_weights("none", y, 3) is None
    with pytest.raises(ValueError, match="unknown class_weights 'x'"):
        class_weights("x", y, 3)


def test_warmup_then_cosine():
    e, w = 20, 4
    assert [warmup_cosine_factor(i, e, w) for i in range(w)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert warmup_cosine_factor(w, e, w) == 1.0
    assert warmup_cosine_factor(e - 1, e, w, min_factor=0.1) == pytest.approx(0.1)
    mid = w + (e - 1 - w) / 2
    assert warmup_cosine_factor(int(mid), e, w) == pytest.approx(0.5 * (1 + math.cos(math.pi * (int(mid) - w) / 15)))
    assert lr_factor(17, e, "warmup_cosine", w, swa_start=15, swa_factor=0.3) == 0.3
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = make_scheduler(opt, e, schedule="warmup_cosine", warmup=w)
    seen = []
    for _ in range(e):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([warmup_cosine_factor(i, e, w) for i in range(e)])
    with pytest.raises(ValueError, match="unknown lr schedule"):
        make_scheduler(opt, e, schedule="step")


def test_swa_weights_are_the_mean_of_the_snapshots():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    avg = WeightAverage()
    snaps = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].num_batches_tracked += 1
        snaps.append({k: v.clone() for k, v in model.state_dict().items()})
        avg.update(model)
    avg.copy_to(model)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, torch.stack([s[k] for s in snaps]).mean(0))
    assert int(model[1].num_batches_tracked) == 3
    assert swa_start_epoch(200, 0.75) == 150 and swa_start_epoch(10, None) is None
    x = torch.randn(64, 3) * 2 + 1
    assert refresh_batch_norm(model, [x[:32], x[32:]], lambda m, b: m(b))
    with torch.no_grad():
        h = model[0](x)
    torch.testing.assert_close(model[1].running_mean, h.mean(0), atol=1e-5, rtol=1e-5)
    assert not refresh_batch_norm(torch.nn.Linear(2, 2), [], lambda m, b: m(b))


def test_oversampling_brings_minorities_up():
    rows = np.arange(100, 116)
    y = np.array([0] * 10 + [1] * 4 + [2] * 2)
    rng = np.random.default_rng(0)
    out = oversample_rows(rows, y, 1.0, rng)
    lab = dict(zip(rows, y, strict=True))
    counts = np.bincount([lab[r] for r in out])
    assert counts.tolist() == [10, 10, 10]
    assert set(out) == set(rows)  # every row kept at least once
    assert oversample_counts(y, 0.5) == {0: 10, 1: 5, 2: 5}
    assert np.array_equal(oversample_rows(rows, y, 0.0, rng), rows)
    a = oversample_rows(rows, y, 0.7, np.random.default_rng(3))
    b = oversample_rows(rows, y, 0.7, np.random.default_rng(3))
    assert np.array_equal(a, b)


def _seq_batch(b=8, t=12, r=6):
    g = torch.Generator().manual_seed(0)
    return {
        "roi_flow": torch.randn(b, t, r, 2, generator=g),
        "roi_flow_mask": torch.ones(b, t, dtype=torch.bool),
        "au": (torch.rand(b, 21, generator=g) < 0.3).float(),
    }, torch.arange(b) % 3


def test_mixup_blends_inputs_and_targets_with_one_lambda():
    batch, y = _seq_batch()
    g = torch.Generator().manual_seed(5)
    out, soft = mix_batch(batch, y, 3, MixConfig(mixup_alpha=0.4), g)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    lam = soft[torch.arange(8), y].clamp(max=1.0)
    # each row is lam * itself + (1 - lam) * one other row of the batch, with the lam of its targets
    x, xo = batch["roi_flow"].reshape(8, -1), out["roi_flow"].reshape(8, -1)
    lam0 = float(soft.max(1).values.min())
    for i in range(8):
        errs = [
            float((xo[i] - (l * x[i] + (1 - l) * x[j])).abs().max())
            for j in range(8)
            for l in (float(lam[i]), lam0, 1 - lam0)
        ]
        assert min(errs) < 1e-5
    unchanged, soft0 = mix_batch(batch, y, 3, MixConfig(), g)
    assert unchanged["roi_flow"] is batch["roi_flow"] and torch.equal(soft0, F.one_hot(y, 3).float())


def test_cutmix_pastes_a_block_of_frames_and_mixes_targets_by_its_length():
    batch, _ = _seq_batch()
    y = torch.arange(8)  # one class per row: a row's soft target shows the share it kept
    g = torch.Generator().manual_seed(2)
    out, soft = mix_batch(batch, y, 8, MixConfig(cutmix_alpha=1.0), g)
    x, xo = batch["roi_flow"], out["roi_flow"]
    changed = (xo != x).flatten(2).any(2)  # B×T frames that came from the partner
    block = changed.any(0).nonzero().flatten()  # one block for every row (a row paired with itself: none)
    assert len(block) > 0 and torch.equal(block, torch.arange(int(block[0]), int(block[-1]) + 1))
    assert all(row.sum() in (0, len(block)) for row in changed)
    kept = 1 - len(block) / 12
    moved = changed.any(1)
    torch.testing.assert_close(soft[moved].max(1).values, torch.full((int(moved.sum()),), max(kept, 1 - kept)))
    # AU vectors blend with the pasted share
    torch.testing.assert_close(out["au"].sum(), batch["au"].sum())


def test_flip_tta_averages_a_batch_and_its_mirror():
    from mer.train.roi_flip import flip_roi_flow, roi_flip_permutation

    perm = roi_flip_permutation("stag6")
    batch, _ = _seq_batch()
    flipped = flip_batch(batch, perm)
    torch.testing.assert_close(flipped["roi_flow"], flip_roi_flow(batch["roi_flow"], perm))
    assert flipped["au"] is batch["au"]
    torch.testing.assert_close(flip_batch(flipped, perm)["roi_flow"], batch["roi_flow"])

    def model(roi_flow, au=None, roi_flow_mask=None):  # a "model" that only looks at the left brow's u
        return torch.stack([roi_flow[:, :, 0, 0].mean(1), torch.zeros(len(roi_flow))], 1)

    p = flip_tta_probs(model, batch, perm)
    right = -batch["roi_flow"][:, :, 1, 0].mean(1)
    expected = (torch.softmax(model(**batch), 1) + torch.softmax(torch.stack([right, torch.zeros(8)], 1), 1)) / 2
    torch.testing.assert_close(p, expected)
    with pytest.raises(ValueError, match="no mirror is defined for input 'apex'"):
        flip_batch({"apex": torch.zeros(1, 3, 4, 4)}, perm)


def test_stag_preset_is_data():
    assert "stag" in available_presets()
    p = load_preset("stag")
    assert p["model"]["name"] == "stag"
    assert p["train"]["optimizer"] == "adamw" and p["train"]["epochs"] == 200
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_extras_hooks_follow_the_options():
    from mer.models.stag import STAG
    from mer.train.extras import (
        SwaTracker,
        TrainingExtras,
        augment_named,
        epoch_rows,
        make_extras_loss,
        make_extras_scheduler,
        predict_probs,
        roi_permutation_for,
        split_train_options,
    )

    rest, opts = split_train_options(load_preset("stag")["train"])
    assert rest["optimizer"] == "adamw" and rest["epochs"] == 200 and "mixup_alpha" not in rest
    assert opts.class_weights == "effective" and opts.tta == "flip" and opts.swa_start == 0.75
    assert TrainingExtras.from_dict(opts.to_dict()) == opts
    with pytest.raises(ValueError, match="unknown training option.*mixup"):
        TrainingExtras.from_dict({"mixup": 0.2})
    y = np.array([0] * 8 + [1] * 2)
    rows = epoch_rows(np.arange(10), y, opts, np.random.default_rng(0))
    assert np.bincount(y[rows]).tolist() == [8, 8]
    loss = make_extras_loss(opts, y, 2)
    assert loss.alpha.tolist() == pytest.approx(effective_number_weights(y, 2, 0.999))
    model = torch.nn.Linear(2, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = make_extras_scheduler(sgd, 200, opts)
    lrs = []
    for _ in range(200):
        lrs.append(sgd.param_groups[0]["lr"])
        sgd.step()
        sched.step()
    assert lrs[0] == pytest.approx(1 / 11) and lrs[10] == 1.0 and lrs[150:] == pytest.approx([0.2] * 50)
    swa = SwaTracker(opts, 200)
    for e in range(200):
        with torch.no_grad():
            model.weight.fill_(float(e))
        swa.after_epoch(model, e)
    assert swa.count == 50 and swa.finish(model)
    assert float(model.weight.detach()[0, 0]) == pytest.approx(np.mean(np.arange(150, 200)))
    stag = STAG(
        2,
        "stag6",
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
    ).eval()
    perm = roi_permutation_for(stag)
    assert perm.tolist() == [1, 0, 3, 2, 4, 5] and roi_permutation_for(model) is None
    batch = {"roi_flow": torch.randn(4, 5, 6, 2), "au": torch.zeros(4, 21)}
    aug, soft = augment_named(batch, torch.tensor([0, 1, 0, 1]), 2, opts, torch.Generator().manual_seed(0), perm)
    assert soft.shape == (4, 2) and aug["roi_flow"].shape == batch["roi_flow"].shape
    torch.testing.assert_close(predict_probs(stag, batch, opts, perm), flip_tta_probs(stag, batch, perm))
    plain = TrainingExtras()
    torch.testing.assert_close(predict_probs(stag, batch, plain, perm), torch.softmax(stag(**batch), 1))


def test_a_recipe_run_writes_each_extra_once_with_its_value(tmp_path):
    """config.json of a run from the stag-paper recipe: every training extra stands once in ``train``, with the
    preset's value; the config reads back equal; a config's extras default to the extras' own defaults."""
    g = torch.Generator().manual_seed(0)
    inputs = {"roi_flow": torch.randn(12, 6, 14, 2, generator=g).numpy()}
    meta = pd.DataFrame(
        {"dataset": "synth", "subject": [f"s{i % 3}" for i in range(12)], "clip_id": [f"c{i}" for i in range(12)],
         "label": [i % 3 for i in range(12)]}
    )
    config = get_recipe("stag-paper").config(epochs=2, batch_size=4, warmup_epochs=1, device="cpu")
    small = dict(embed_dim=8, hidden_dim=8, graph_layers=1, heads=2, graph_dim=8, transformer_dim=8,
                 transformer_layers=1, transformer_heads=2, fusion_dim=8, au=False)
    run_experiment(inputs, meta, "loso", "stag", {"roi_set": "stag14", **small}, config, tmp_path, ["a", "b", "c"],
                   recipe="stag-paper")

    def no_repeats(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"repeated keys {sorted(k for k in keys if keys.count(k) > 1)}"
        return dict(pairs)

    train = json.loads((tmp_path / "config.json").read_text(), object_pairs_hook=no_repeats)["train"]
    preset = load_preset("stag")["train"] | {"epochs": 2, "batch_size": 4, "warmup_epochs": 1}
    extra_names = [f.name for f in dataclasses.fields(TrainingExtras)]
    assert set(extra_names) <= set(preset)  # the preset sets every extra: each value below is the preset's
    assert {k: train[k] for k in extra_names} == {k: preset[k] for k in extra_names}
    assert set(train) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert TrainConfig.from_dict(train) == dataclasses.replace(config, channels=None)
    defaults = TrainConfig()
    assert {k: getattr(defaults, k) for k in extra_names} == TrainingExtras().to_dict()
