"""Baselines as published (issue 13): Off-ApexNet on (u, v) only, STSTNet on (u, v, strain) at 28×28, MEGANet's
``residual=False`` switch; the documented parameter counts, recomputed by hand from the layer sizes."""

from __future__ import annotations

import pytest
import torch

from mer.models import create
from mer.models.meganet import ResidualAttentionBlock


def _n(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_off_apexnet_has_two_streams_on_u_and_v_and_ignores_strain():
    torch.manual_seed(0)
    net = create("off_apexnet", num_classes=3, in_channels=3, image_size=28).eval()
    assert len(net.streams) == 2
    x = torch.randn(4, 3, 28, 28)
    other = x.clone()
    other[:, 2] = torch.randn(4, 28, 28)  # a different strain channel
    torch.testing.assert_close(net(x), net(other))
    for c in (0, 1):
        changed = x.clone()
        changed[:, c] += 1.0
        assert (net(changed) - net(x)).abs().max() > 1e-4
    per_stream = (1 * 25 * 6 + 6) + (6 * 25 * 16 + 16)
    assert _n(net) == 2 * per_stream + (2 * 16 * 7 * 7 * 1024 + 1024) + (1024 * 3 + 3) == 1_614_875
    with pytest.raises(ValueError, match="two of the 1 channels"):
        create("off_apexnet", num_classes=3, in_channels=1, image_size=28)


def test_ststnet_on_uv_strain_at_28():
    net = create("ststnet", num_classes=3, in_channels=3, image_size=28)
    streams = sum(3 * 9 * c + c + 2 * c for c in (3, 5, 8))  # conv weights + bias, BatchNorm scale + shift
    assert _n(net) == streams + (16 * 5 * 5 * 3 + 3) == 1_683  # 16 maps of 5×5 after the 2×2 average pool
    assert net(torch.randn(2, 3, 28, 28)).shape == (2, 3)


@pytest.mark.parametrize("residual", [True, False])
def test_meganet_residual_switch(residual):
    torch.manual_seed(0)
    block = ResidualAttentionBlock(8, 16, stride=2, attention="none", residual=residual).eval()
    x = torch.randn(2, 8, 12, 12)
    expected = block.body(x) + (block.shortcut(x) if residual else 0)
    torch.testing.assert_close(block(x), expected)
    shortcut = 8 * 16 + 2 * 16  # 1×1 projection + BatchNorm
    assert _n(block) == 8 * 9 * 16 + 2 * 16 + 16 * 9 * 16 + 2 * 16 + (shortcut if residual else 0)


def test_meganet_documented_parameter_counts():
    counts = {
        "default": ({}, 1_338_130),
        "no residual": ({"residual": False}, 1_292_178),
        "2 blocks": ({"blocks": 2}, 336_465),
        "4 blocks": ({"blocks": 4}, 5_340_307),
        "no self-attention": ({"self_attention": False}, 1_230_047),
        "no gradient attention": ({"gradient_attention": False}, 1_338_102),
    }
    for name, (options, expected) in counts.items():
        assert _n(create("meganet", num_classes=3, in_channels=3, image_size=224, **options)) == expected, name
    # the three no-residual shortcuts were 64->64, 64->128, 128->256 projections with BatchNorm
    assert sum(a * b + 2 * b for a, b in ((64, 64), (64, 128), (128, 256))) == 1_338_130 - 1_292_178


def test_timm_global_pooling_is_a_deterministic_mean_with_the_same_output():
    from torch import nn

    from mer.models.baselines import GlobalMeanPool

    torch.manual_seed(0)
    net = create("resnet50", num_classes=3, in_channels=3, image_size=64).eval()
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.modules())
    assert isinstance(net.global_pool.pool, GlobalMeanPool)
    x = torch.randn(2, 3, 64, 64)
    feats = net.forward_features(x)
    torch.testing.assert_close(net.global_pool.pool(feats), nn.AdaptiveAvgPool2d(1)(feats))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_two_gpu_runs_with_one_seed_give_identical_metrics(tmp_path):
    import numpy as np
    import pandas as pd

    from mer.train.experiment import run_experiment
    from mer.train.trainer import TrainConfig

    rng = np.random.default_rng(0)
    meta = pd.DataFrame(
        [{"dataset": "d", "subject": f"s{i % 4}", "clip_id": str(i), "label": i % 3} for i in range(24)]
    )
    X = rng.normal(size=(24, 3, 32, 32)).astype(np.float32)
    cfg = TrainConfig(epochs=3, batch_size=8, device="cuda")
    runs = [
        run_experiment(X, meta, "loso", model, opts, cfg, None, class_names=["a", "b", "c"])
        for model, opts in (("meganet", {}), ("meganet", {}), ("resnet50", {}), ("resnet50", {}))
    ]
    scores = [r.predictions.filter(like="score_").to_numpy() for r in runs]
    assert np.array_equal(scores[0], scores[1]) and np.array_equal(scores[2], scores[3])
