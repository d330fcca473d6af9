"""STAG through the named-input trainer with the recipe's extras: LOSO above chance, ablation, config values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mer.datasets.aus import AU_LIST, au_vector
from mer.pipeline.flow.optical_flow import compute_flow, to_grey
from mer.pipeline.flow.roi import roi_sequence
from mer.synthetic import clips as syn
from mer.train.experiment import run_experiment
from mer.train.recipes import get_recipe
from mer.train.trainer import TrainConfig, fit

SMALL = dict(
    embed_dim=16,
    hidden_dim=16,
    graph_layers=2,
    heads=2,
    graph_dim=16,
    transformer_dim=16,
    transformer_layers=1,
    transformer_heads=2,
    fusion_dim=16,
    au_dim=8,
)


@pytest.fixture(scope="module")
def roi_sequences():
    """ROI-flow sequences (T = 12, stag14) of a synthetic set, 5 subjects × 6 clips at 320×240: consecutive
    Farneback flows of the rendered frames aggregated over the true landmarks (the roi-flow stage's kernels)."""
    rows, seqs, aus = [], [], []
    classes = list(syn.CLASS_AUS[3])
    for index, name in enumerate(syn.subject_names(5)):
        subject = syn.make_subject(index, name, (320, 240), 7)
        for plan in syn.plan_clips(index, subject, 6, 3, 7):
            frames = list(syn.render_frames(subject, plan))
            landmarks = syn.clip_truth(subject, plan)["landmarks"]
            idx = list(range(max(plan.onset - 3, 0), min(plan.offset + 2, plan.n_frames), 2))
            grey = [to_grey(frames[i]) for i in idx]
            flows = np.stack([compute_flow(a, b, "farneback") for a, b in zip(grey[:-1], grey[1:], strict=True)])
            seqs.append(roi_sequence(flows, landmarks[idx[:-1]], "stag14", length=12))
            aus.append(au_vector(plan.aus))
            rows.append(
                {"dataset": "synth", "subject": name, "clip_id": plan.name, "label": classes.index(plan.emotion)}
            )
    inputs = {"roi_flow": np.stack(seqs).astype(np.float32), "au": np.asarray(aus, dtype=np.float32)}
    assert inputs["au"].shape[1] == len(AU_LIST)
    return inputs, pd.DataFrame(rows)


def _config(**values) -> TrainConfig:
    recipe = get_recipe("stag-paper")
    base = dict(recipe.values) | dict(
        epochs=30, batch_size=8, lr=2e-3, warmup_epochs=2, device="cpu", val_fraction=0.0, early_stopping=False
    )
    return TrainConfig(**(base | values))


@pytest.mark.slow
@pytest.mark.parametrize(("options", "floor"), [(dict(au=False), 0.6), (dict(au=False, graph=False), 0.45)])
def test_stag_loso_on_synthetic_roi_flow_is_clearly_above_chance(roi_sequences, options, floor, tmp_path):
    """Flow only (the synthetic AU codes give the class away): chance is 1/3."""
    inputs, meta = roi_sequences
    names = inputs if options.get("au", True) else {"roi_flow": inputs["roi_flow"]}
    result = run_experiment(
        names,
        meta,
        "loso",
        "stag",
        {"roi_set": "stag14", **SMALL, **options},
        _config(),
        tmp_path / "run",
        class_names=["positive", "negative", "surprise"],
    )
    print(options, result.metrics["acc"], result.metrics["uf1"])
    assert result.metrics["acc"] > floor and result.metrics["uf1"] > floor - 0.05
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    train = config["train"]
    assert train["optimizer"] == "adamw" and train["lr_schedule"] == "warmup_cosine" and train["tta"] == "flip"
    assert train["mixup_alpha"] == 0.2 and train["oversample"] == 1.0 and train["swa_start"] == 0.75
    assert config["model_options"].get("graph", True) is options.get("graph", True)


def test_fit_averages_the_last_epochs_and_records_it():
    from mer.models import create

    torch.manual_seed(0)
    model = create("stag", num_classes=3, roi_set="stag14", au=False, **SMALL)
    X = {"roi_flow": torch.randn(24, 6, 14, 2, generator=torch.Generator().manual_seed(0))}
    y = torch.arange(24) % 3
    snapshots = []
    hist = fit(
        model,
        X,
        y,
        _config(epochs=4, swa_start=0.5),
        progress=lambda e, loss: snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()}),
    )
    assert hist.swa_epochs == 2
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (snapshots[2][k] + snapshots[3][k]) / 2)
    with pytest.raises(ValueError, match="lr_decay cannot be combined"):
        fit(model, X, y, _config(epochs=1, lr_decay=0.9))
