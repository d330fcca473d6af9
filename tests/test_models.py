"""Models: MEGANet ablation shapes, SAGAN identity at init and its formula, gradient attention by hand."""

import math

import pytest
import torch

import mer.models as M
from mer.models.attention import GradientAttention, SelfAttention2d, gradient_magnitude
from mer.models.baselines import PretrainedWeightsUnavailableError
from mer.models.meganet import MEGANet

torch.set_num_threads(1)
TINY = dict(widths=(8, 16, 16, 32), stem_channels=8)


@pytest.mark.parametrize(
    "options",
    [
        {"blocks": 2},
        {"blocks": 3},
        {"blocks": 4},
        {"gradient_attention": False},
        {"self_attention": False},
        {"gradient_attention": False, "self_attention": False},
        {"attention": "se"},
        {"attention": "cbam"},
        {"input_attention": "se"},
        {"input_attention": "cbam"},
    ],
)
def test_meganet_forward_shapes(options):
    torch.manual_seed(0)
    model = M.create("meganet", num_classes=5, image_size=32, **TINY, **options)
    out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()


def test_meganet_ablation_switches_change_the_structure():
    full = MEGANet(3, **TINY)
    assert isinstance(full.input_attention, GradientAttention)
    assert all(isinstance(b.attention, SelfAttention2d) for b in full.blocks)
    no_ga = MEGANet(3, gradient_attention=False, **TINY)
    assert isinstance(no_ga.input_attention, torch.nn.Identity)
    no_sa = MEGANet(3, self_attention=False, **TINY)
    assert all(isinstance(b.attention, torch.nn.Identity) for b in no_sa.blocks)
    assert len(MEGANet(3, blocks=4, **TINY).blocks) == 4


def test_meganet_default_attention_resolution_at_224():
    """Every block halves the size: self-attention runs at 28x28, then 14x14 and 7x7."""
    model = MEGANet(3)
    sizes = []
    hooks = [b.attention.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-3:]))) for b in model.blocks]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert sizes == [(64, 28, 28), (128, 14, 14), (256, 7, 7)]


def test_self_attention_is_identity_at_init_and_matches_sagan_formula():
    torch.manual_seed(1)
    sa = SelfAttention2d(16)
    x = torch.randn(2, 16, 5, 4)
    assert sa.gamma.item() == 0.0
    assert torch.equal(sa(x), x)
    with torch.no_grad():
        sa.gamma.fill_(0.7)
        q = sa.query(x).flatten(2)  # N x C' x P
        k = sa.key(x).flatten(2)
        v = sa.value(x).flatten(2)  # N x C x P
        energy = torch.einsum("ncp,ncq->npq", q, k)  # query position p, key position q
        attn = torch.softmax(energy, dim=-1)
        ref = torch.einsum("ncq,npq->ncp", v, attn).reshape_as(x) * 0.7 + x
        torch.testing.assert_close(sa(x), ref, atol=1e-5, rtol=1e-5)


def test_whole_meganet_is_insensitive_to_attention_before_training():
    """With gamma = 0 the SAGAN branch contributes nothing: zeroing its value conv changes no output."""
    torch.manual_seed(2)
    model = MEGANet(3, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        for b in model.blocks:
            b.attention.value.weight.normal_()
        assert torch.equal(model(x), before)


def test_gradient_attention_matches_hand_computation():
    img = torch.tensor([[1.0, 2.0, 4.0], [0.0, 3.0, 3.0], [5.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    # Gx = |I(x+1,y) - I(x,y)| (last column 0); Gy = |I(x,y+1) - I(x,y)| (last row 0)
    gx = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [4.0, 1.0, 0.0]])
    gy = torch.tensor([[1.0, 1.0, 1.0], [5.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    g = (gx + gy).view(1, 1, 3, 3)
    assert torch.equal(gradient_magnitude(img), g)

    ga = GradientAttention(1)
    with torch.no_grad():
        ga.conv.weight.zero_()
        ga.conv.weight[0, 0, 1, 1] = 1.0  # identity kernel
        ga.conv.bias.zero_()
    torch.testing.assert_close(ga(img), img * torch.sigmoid(g))

    with torch.no_grad():
        ga.conv.weight.fill_(1.0)  # 3x3 box sum, zero padded
        ga.conv.bias.fill_(-20.0)
    a = ga.attention_map(img)[0, 0]
    # centre: sum of all of G = 2+3+1+8+2+3+4+1+0 = 24; corner (0,0): 2+3+8+2 = 15
    assert math.isclose(a[1, 1].item(), 1 / (1 + math.exp(-(24 - 20))), rel_tol=1e-6)
    assert math.isclose(a[0, 0].item(), 1 / (1 + math.exp(-(15 - 20))), rel_tol=1e-6)


def test_gradient_attention_on_rgb_shares_one_map():
    ga = GradientAttention(3)
    x = torch.rand(2, 3, 8, 8)
    a = ga.attention_map(x)
    assert a.shape == (2, 1, 8, 8)
    torch.testing.assert_close(ga(x), x * a)


def test_registry_lists_models_and_rejects_unknown():
    names = M.available()
    for n in ("meganet", "vgg19", "resnet50", "efficientnet_b0", "ststnet", "off_apexnet"):
        assert n in names
    with pytest.raises(KeyError, match="unknown model"):
        M.create("nope", 3)


def test_flow_nets_at_published_sizes():
    torch.manual_seed(0)
    st = M.create("ststnet", 3, in_channels=3, image_size=28)
    assert st.fc.in_features == 5 * 5 * 16  # as published for 28x28 input
    assert st(torch.randn(4, 3, 28, 28)).shape == (4, 3)
    off = M.create("off_apexnet", 3, in_channels=2, image_size=28)
    assert off.head[0].in_features == 2 * 16 * 7 * 7
    assert off(torch.randn(4, 2, 28, 28)).shape == (4, 3)


def test_off_apexnet_streams_are_per_channel():
    """Changing the v channel only changes the v stream's features, not the u stream's."""
    torch.manual_seed(0)
    off = M.create("off_apexnet", 3, in_channels=2, image_size=28).eval()
    x = torch.randn(1, 2, 28, 28)
    x2 = x.clone()
    x2[:, 1] += 1.0
    assert torch.equal(off.streams[0](x[:, :1]), off.streams[0](x2[:, :1]))


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0"])
def test_timm_baselines_shapes(name):
    model = M.create(name, 4, in_channels=3, image_size=32).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_pretrained_without_weights_fails_clearly(tmp_path):
    with pytest.raises(PretrainedWeightsUnavailableError, match="resnet50.*not available"):
        M.create("resnet50", 3, pretrained=True, weights=str(tmp_path / "missing.safetensors"))


def test_pretrained_without_cache_fails_fast_naming_the_model(monkeypatch):
    import mer.models.baselines as baselines

    monkeypatch.setattr(baselines, "_cached_weights", lambda name: None)
    with pytest.raises(PretrainedWeightsUnavailableError, match="efficientnet_b0.*no network"):
        M.create("efficientnet_b0", 3, pretrained=True)
