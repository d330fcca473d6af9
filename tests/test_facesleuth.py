"""FaceSleuth and MMNet (issue 14): SOA/CVA equivalence, θ, zero motion, AU vector, shapes, paired
augmentation, multi-input LOSO training and determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mer.datasets import AU_LIST, au_vector, parse_aus
from mer.models import create, default_inputs
from mer.models.facesleuth import FaceSleuth, VerticalAttentionBlock
from mer.train.augment import apply_transform, draw_transform
from mer.train.experiment import run_experiment
from mer.train.trainer import TrainConfig, fit, predict

torch.set_num_threads(1)
# A tiny FaceSleuth for 32 px: motion 32 -> 16 -> 16/8/4/2; Swin patch 4 -> 8/4/2 with window 2.
TINY = dict(
    widths=(8, 8, 16, 32), stem_channels=8, fpf_embed=8, fpf_depths=(1, 1, 1), fpf_heads=(1, 2, 4), window=2,
    hidden=(16, 8), drop_path=0.0,
)


def tiny(num_classes: int = 3, seed: int = 0, **options) -> FaceSleuth:
    torch.manual_seed(seed)
    return create("facesleuth", num_classes, image_size=32, **(TINY | options))


def pair(n: int = 4, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    onset = torch.rand(n, 3, size, size, generator=g)
    apex = (onset + 0.2 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)
    au = (torch.rand(n, 21, generator=g) > 0.7).float()
    return onset, apex, au


# ---------------------------------------------------------------- SOA and CVA
@pytest.mark.parametrize("train_mode", [False, True])
def test_soa_at_right_angle_equals_cva_with_the_same_weights(train_mode):
    cva, soa = tiny(orientation="cva", fpf=False), tiny(orientation="soa", fpf=False, seed=1)
    missing, unexpected = soa.load_state_dict(cva.state_dict(), strict=False)
    assert not unexpected and missing and all(k.endswith("theta_logit") for k in missing)
    assert all(b.theta == pytest.approx(math.pi / 2) for b in soa.soa_blocks()) and len(soa.soa_blocks()) == 4
    onset, apex, au = pair()
    cva.train(train_mode)
    soa.train(train_mode)
    torch.testing.assert_close(soa(onset, apex, au), cva(onset, apex, au), rtol=1e-4, atol=1e-5)
    if train_mode:  # ...and a different angle changes the output (batch statistics make the effect visible)
        with torch.no_grad():
            soa.soa_blocks()[1].theta_logit.fill_(1.0)
        assert not torch.allclose(soa(onset, apex, au), cva(onset, apex, au), atol=1e-4)


def test_theta_gets_gradients_stays_in_open_interval_and_is_logged_per_epoch():
    model = tiny(2, orientation="soa", fpf=False, au=False)
    onset, apex, _ = pair(8)
    model(onset, apex).logsumexp(1).sum().backward()
    grads = [b.theta_logit.grad for b in model.soa_blocks()]
    assert all(g is not None and torch.isfinite(g) and g != 0 for g in grads)

    model = tiny(2, orientation="soa", fpf=False, au=False)
    y = torch.arange(8) % 2
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-3, device="cpu", lr_groups={"theta": 5.0}, augment=False)
    hist = fit(model, {"onset": onset, "apex": apex}, y, cfg)
    thetas = [[rec[f"theta_{i}"] for i in range(1, 5)] for rec in hist.epochs]
    assert len(thetas) == 4
    assert all(0 < t < 180 for row in thetas for t in row)
    assert any(abs(t - 90) > 1 for t in thetas[-1])  # the large θ learning rate moved them
    assert thetas[-1] == pytest.approx([math.degrees(b.theta) for b in model.soa_blocks()])


def test_shared_theta_is_one_parameter():
    model = tiny(orientation="soa", fpf=False, shared_theta=True)
    assert len({id(b.theta_logit) for b in model.soa_blocks()}) == 1
    assert sum(1 for n, _ in model.named_parameters() if "theta" in n) == 1


def test_only_theta_gets_the_group_learning_rate():
    from mer.train.trainer import parameter_groups

    model = tiny(2, orientation="soa", fpf=False, au=False)
    groups = parameter_groups(model, TrainConfig(lr=1e-3, lr_groups={"theta": 0.5}))
    assert len(groups) == 2 and len(groups[1]["params"]) == 4 and groups[1]["lr"] == 0.5
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_cva_attention_is_a_per_row_profile():
    block = VerticalAttentionBlock(4, 4).eval()
    x = torch.rand(1, 4, 6, 5)
    out, a_h = block(x, None)
    assert a_h.shape == (1, 4, 6, 1) and ((a_h > 0) & (a_h < 1)).all()
    torch.testing.assert_close(out, block.unit(x) * a_h)


# ---------------------------------------------------------------- zero motion and AUs
def test_onset_equal_apex_leaves_only_position_and_aus():
    onset, _, au = pair(4, seed=3)
    other, _, _ = pair(4, seed=4)
    model = tiny(orientation="soa").eval()
    assert torch.count_nonzero(model.motion_input(onset, onset)) == 0
    with torch.no_grad():
        ref = model(onset, onset, au)
        model.motion.stem[0].weight.normal_()  # the motion stem only ever sees zeros: no effect
        torch.testing.assert_close(model(onset, onset, au), ref)
        assert not torch.allclose(model(other, other, au), ref)  # the position branch sees the images
        no_fpf = tiny(fpf=False).eval()
        torch.testing.assert_close(no_fpf(onset, onset, au), no_fpf(other, other, au))  # nothing sees them
        assert not torch.allclose(no_fpf(onset, onset, 1 - au), no_fpf(onset, onset, au))  # AUs count
        plain = tiny(fpf=False, au=False).eval()
        torch.testing.assert_close(plain(onset, onset), plain(other, other))


def test_au_vector_of_a_facs_coding():
    v = np.asarray(au_vector(parse_aus("AU1+AU2+R12").numbers))
    assert v.shape == (21,) and len(AU_LIST) == 21
    assert [AU_LIST[i] for i in np.flatnonzero(v)] == [1, 2, 12]


def test_default_inputs_follow_the_options():
    assert default_inputs("facesleuth") == {"onset": "onset-raw", "apex": "apex-frame-raw", "au": "manifest:au_vector"}
    assert default_inputs("facesleuth", {"au": False}) == {"onset": "onset-raw", "apex": "apex-frame-raw"}
    assert default_inputs("meganet") is None
    assert tiny(au=False).input_names == ("onset", "apex")


# ---------------------------------------------------------------- shapes at 224
def test_output_shapes_at_224():
    onset = torch.rand(2, 3, 224, 224)
    au = torch.zeros(2, 21)
    for k, fpf in ((3, True), (5, False)):  # the Swin FPF once (the slow part on a CPU)
        torch.manual_seed(0)
        m = create("facesleuth", k, fpf=fpf).eval()
        assert fpf == (m.fpf is not None) and (not fpf or m.fpf.out_channels == 512)
        with torch.no_grad():
            assert m(onset, onset.flip(-1), au).shape == (2, k)
            if fpf:
                assert m.fpf(onset).shape == (2, 512, 14, 14)
    mm = create("mmnet", 5).eval()
    with torch.no_grad():
        assert mm(onset, onset.flip(-1)).shape == (2, 5)
        assert mm.motion(mm.motion_input(onset, onset)).shape == (2, 512, 14, 14)


def test_mmnet_with_onset_equal_apex_depends_on_the_onset_only_through_position():
    torch.manual_seed(0)
    mm = create("mmnet", 3, image_size=32, widths=(8, 8, 16, 32), stem_channels=8, vit_depth=1, vit_heads=2).eval()
    a, _, _ = pair(2, seed=5)
    b, _, _ = pair(2, seed=6)
    with torch.no_grad():
        assert not torch.allclose(mm(a, a), mm(b, b))
        mm.position = None
        torch.testing.assert_close(mm(a, a), mm(b, b))


# ---------------------------------------------------------------- paired augmentation
def test_the_same_transform_keeps_onset_and_apex_aligned():
    g = torch.Generator().manual_seed(0)
    onset = torch.rand(16, 3, 20, 20, generator=g)
    apex = onset.clone()
    apex[:, :, 4:9, 11:15] += 0.5  # a motion in the upper right
    tf = draw_transform(16, g, "cpu", flip_prob=0.5, angles=(-10.0, 0.0, 10.0), crop_padding=3)
    assert tf.flip.any() and not tf.flip.all() and (tf.degrees != 0).any() and (tf.shift != 0).any()
    o, a = apply_transform(onset, tf), apply_transform(apex, tf)
    diff = apply_transform(apex - onset, tf)
    torch.testing.assert_close(a - o, diff, atol=1e-5, rtol=0)  # the transform is linear and shared
    flipped_only = (tf.flip & (tf.degrees == 0) & (tf.shift == 0).all(1)).nonzero().flatten()
    for i in flipped_only:
        assert torch.equal(o[i], onset[i].flip(-1))


def test_trainer_gives_every_image_input_of_a_batch_the_same_transform():
    seen = []

    class Spy(torch.nn.Module):
        input_names = ("onset", "apex", "au")
        image_inputs = ("onset", "apex")
        num_classes = 2

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(1, 2)

        def forward(self, onset, apex, au):
            seen.append((onset.clone(), apex.clone(), au.clone()))
            return self.fc((apex - onset).mean((1, 2, 3)).unsqueeze(1) + au[:, :1])

    g = torch.Generator().manual_seed(1)
    onset = torch.rand(12, 3, 16, 16, generator=g)
    apex = onset + 0.25
    au = torch.arange(12.0).unsqueeze(1).repeat(1, 21)
    cfg = TrainConfig(epochs=2, batch_size=6, device="cpu", crop_padding=2, rotation_angles=(0.0,))
    fit(Spy(), {"onset": onset, "apex": apex, "au": au}, torch.arange(12) % 2, cfg)
    assert len(seen) == 4
    changed = 0
    for o, a, u in seen:
        inside = o != 0  # crop padding fills zeros in both
        torch.testing.assert_close((a - o)[inside], torch.full_like(o[inside], 0.25))
        rows = u[:, 0].long()
        torch.testing.assert_close(u, au[rows])  # non-image inputs are never transformed
        changed += int(not torch.equal(o, onset[rows]))
    assert changed > 0


# ---------------------------------------------------------------- LOSO on a synthetic set
def synthetic_pairs(subjects: int = 4, per_subject: int = 9, size: int = 32, seed: int = 0):
    """Onset: random texture; apex: the onset with a class-dependent brightening (upper/middle/lower band)."""
    rng = np.random.default_rng(seed)
    n = subjects * per_subject
    y = np.arange(n) % 3
    onset = rng.integers(40, 200, (n, 3, size, size)).astype(np.uint8)
    apex = onset.astype(np.int16)
    band = size // 3
    for i, c in enumerate(y):
        apex[i, :, c * band : (c + 1) * band, 4:-4] += 50
    meta = pd.DataFrame(
        {
            "dataset": "synth",
            "subject": [f"s{i // per_subject}" for i in range(n)],
            "clip_id": [f"c{i}" for i in range(n)],
            "label": y,
        }
    )
    return {"onset": onset, "apex": apex.clip(0, 255).astype(np.uint8)}, meta


def test_loso_run_scores_above_chance_and_repeats_exactly(tmp_path):
    inputs, meta = synthetic_pairs(subjects=3)
    cfg = TrainConfig(
        epochs=10, batch_size=9, lr=2e-3, optimizer="adamw", weight_decay=0.01, loss="ce", device="cpu",
        rotation_angles=(-3.0, 0.0, 3.0), crop_padding=1, lr_groups={"theta": 1e-2}, lr_decay=0.97,
    )
    opts = TINY | {"au": False}
    runs = [
        run_experiment(inputs, meta, "loso", "facesleuth", opts, cfg, tmp_path / name, ["a", "b", "c"])
        for name in ("one", "two")
    ]
    m = runs[0].metrics
    assert m["n"] == len(meta) and len(m["per_fold"]) == 3
    assert m["uar"] > 0.6, m  # chance is 1/3
    assert runs[1].metrics["uf1"] == m["uf1"]
    np.testing.assert_array_equal(
        runs[0].predictions.filter(like="score_").to_numpy(), runs[1].predictions.filter(like="score_").to_numpy()
    )
    hist = runs[0].history
    assert {"theta_1", "theta_4", "lr"} <= set(hist.columns)
    assert hist["lr"].iloc[1] == pytest.approx(2e-3 * 0.97)
    assert runs[0].config["standardized"] is False and set(runs[0].config["input_shape"]) == {"onset", "apex"}


def test_multi_input_model_rejects_missing_inputs():
    inputs, meta = synthetic_pairs(2, 3)
    with pytest.raises(ValueError, match="takes inputs"):
        run_experiment(inputs, meta, "loso", "facesleuth", TINY, TrainConfig(epochs=1, device="cpu"), None, None)
    model = tiny(au=False)
    with pytest.raises(ValueError, match="takes inputs"):
        predict(model, {"onset": torch.zeros(2, 3, 32, 32)})


def test_crop_shift_equals_padding_then_cropping():
    from mer.train.augment import translate

    x = torch.rand(3, 2, 7, 9)
    shift = torch.tensor([[2, -1], [0, 0], [-3, 3]])  # (dx, dy)
    out = translate(x, shift)
    p = 3
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i, (dx, dy) in enumerate(shift.tolist()):
        expected = padded[i, :, p - dy : p - dy + 7, p - dx : p - dx + 9]
        assert torch.equal(out[i], expected)
