"""STAG network: shapes and masks, ROI-set checks, adjacency/gate validity, ablation switches, registry."""

from __future__ import annotations

import pytest
import torch

from mer.models import create
from mer.models.stag import STAG, StagInputError, smooth_adjacency

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
    dropout=0.0,
)


def _batch(b=3, t=10, r=14, seed=0, au=True):
    g = torch.Generator().manual_seed(seed)
    out = {"roi_flow": torch.randn(b, t, r, 2, generator=g)}
    if au:
        out["au"] = (torch.rand(b, 21, generator=g) < 0.2).float()
    return out


def test_adjacency_rows_sum_to_one_and_gate_in_unit_interval():
    torch.manual_seed(0)
    model = STAG(3, "stag14", **SMALL)
    with torch.no_grad():
        for layer in model.egat:  # push the gates towards both ends: they must stay in [0, 1]
            layer.gate_logit.fill_(40.0 if layer is model.egat[0] else -40.0)
    info = model.explain(_batch())
    adj = info["adjacency"]
    assert adj.shape == (3, 2, 10, 14, 14)
    assert torch.all(adj >= 0)
    torch.testing.assert_close(adj.sum(-1), torch.ones(3, 2, 10, 14))
    torch.testing.assert_close(info["initial_adjacency"].sum(-1), torch.ones(3, 14))
    assert torch.all((info["gates"] >= 0) & (info["gates"] <= 1))
    # gate 1 (first layer): the adjacency never leaves the cosine-similarity start A_0
    torch.testing.assert_close(adj[:, 0], info["initial_adjacency"][:, None].expand(-1, 10, -1, -1))
    torch.testing.assert_close(info["roi_importance"].sum(1), torch.ones(3))
    torch.testing.assert_close(info["frame_weights"].sum(1), torch.ones(3))


def test_smoothed_adjacency_follows_the_recursion_and_padding_keeps_the_previous_graph():
    g = torch.Generator().manual_seed(1)
    b, t, r = 2, 6, 4
    att = torch.softmax(torch.randn(b, t, r, r, generator=g), -1)
    a0 = torch.softmax(torch.randn(b, r, r, generator=g), -1)
    gate = torch.tensor(0.3)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 4:] = False
    out = smooth_adjacency(att, a0, gate, mask)
    for i in range(b):
        prev = a0[i]
        for s in range(t):
            if mask[i, s]:
                cur = gate * prev + (1 - gate) * att[i, s]
                prev = cur / cur.sum(-1, keepdim=True)
            torch.testing.assert_close(out[i, s], prev)
    # a tiny gate must not under/overflow (log-space weights)
    tiny = smooth_adjacency(att, a0, torch.tensor(1e-30))
    torch.testing.assert_close(tiny, att, atol=1e-5, rtol=0)


def test_padded_frames_do_not_change_the_prediction():
    torch.manual_seed(0)
    model = STAG(3, "stag6", **SMALL).eval()
    x = _batch(b=2, t=8, r=6)
    padded = {"roi_flow": torch.cat([x["roi_flow"], 100 * torch.randn(2, 4, 6, 2)], dim=1), "au": x["au"]}
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, :8] = True
    padded["roi_flow_mask"] = mask
    with torch.no_grad():
        ref = model(**x)
        out = model(**padded)
        other = model(**{**padded, "roi_flow_mask": torch.ones(2, 12, dtype=torch.bool)})
    # learned positions cover frames 0..7 identically, so masking the tail gives the unpadded logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(other, ref, atol=1e-3)


def test_a_model_for_stag14_rejects_an_stag6_input_and_entry():
    model = STAG(3, "stag14", **SMALL)
    with pytest.raises(StagInputError, match=r"roi_set=stag14 \(14 ROIs\).*6 ROIs \(the stag6 set\)"):
        model(**_batch(r=6))
    with pytest.raises(StagInputError, match="roi-flow entry has roi_set=stag6"):
        model.check_entry({"roi_set": "stag6", "length": 32})
    model.check_entry({"roi_set": "stag14"})
    with pytest.raises(StagInputError, match="needs input 'au'"):
        model(**_batch(au=False))
    with pytest.raises(StagInputError, match=r"B×T×R×2"):
        model(roi_flow=torch.zeros(2, 10, 14), au=torch.zeros(2, 21))


@pytest.mark.parametrize(
    "options, inputs",
    [
        (dict(au=False), ("roi_flow",)),
        (dict(graph=False), ("roi_flow", "au")),
        (dict(temporal=False), ("roi_flow", "au")),
        (dict(cross_attention=False), ("roi_flow", "au")),
    ],
)
def test_ablations_build_train_a_step_and_declare_their_inputs(options, inputs):
    torch.manual_seed(0)
    model = create("stag", num_classes=4, roi_set="stag18", **SMALL, **options)
    assert model.input_names == inputs
    batch = _batch(r=18, au="au" in inputs)
    logits = model(**batch)
    assert logits.shape == (3, 4)
    logits.sum().backward()
    named = dict(model.named_parameters())
    assert ("egat.0.q.weight" in named) == options.get("graph", True)
    assert ("transformer.layers.0.linear1.weight" in named) == options.get("temporal", True)
    assert ("graph_attends.in_proj_weight" in named) == (
        options.get("cross_attention", True) and options.get("graph", True) and options.get("temporal", True)
    )
    assert ("au_mlp.0.weight" in named) == options.get("au", True)
    # the classifier is the last linear layer (the trainer reads the class count from it)
    assert [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].out_features == 4


def test_au_vector_changes_the_adjacency_only_with_au_guidance():
    torch.manual_seed(0)
    model = STAG(3, "stag6", **SMALL).eval()
    with torch.no_grad():
        model.au_to_bias.weight.normal_()
    x = _batch(b=1, t=6, r=6)
    a = model.explain(x)["adjacency"]
    b = model.explain({**x, "au": 1 - x["au"]})["adjacency"]
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="at least one branch"):
        STAG(3, graph=False, temporal=False)


def test_input_scale_is_the_rms_of_the_training_batches_and_frozen_in_eval():
    torch.manual_seed(0)
    model = STAG(3, "stag6", au=False, **SMALL)
    g = torch.Generator().manual_seed(3)
    a, b = 0.1 * torch.randn(4, 5, 6, 2, generator=g), 0.3 * torch.randn(2, 5, 6, 2, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[:, 3:] = False
    model.train()
    model(roi_flow=a)
    model(roi_flow=b, roi_flow_mask=mask)  # padded frames do not count
    expected = torch.cat([a.flatten(), b[:, :3].flatten()]).double().pow(2).mean().sqrt()
    assert float(model.flow_scale) == pytest.approx(float(expected), rel=1e-6)
    model.eval()
    with torch.no_grad():
        model(roi_flow=10 * a)
    assert float(model.flow_scale) == pytest.approx(float(expected), rel=1e-6)
    # the scale makes the model invariant to the unit of the flow
    twin = STAG(3, "stag6", au=False, **SMALL).eval()
    twin.load_state_dict(model.state_dict())
    twin.set_flow_scale(7 * a)
    model.set_flow_scale(a)
    with torch.no_grad():
        torch.testing.assert_close(twin(roi_flow=7 * b), model(roi_flow=b), rtol=1e-4, atol=1e-5)
    state = model.state_dict()
    assert "flow_sq_sum" in state and "flow_sq_count" in state  # saved in checkpoints


def test_roi_set_comes_from_the_stored_entries_and_a_given_one_must_match():
    from mer.models.stag import roi_set_option

    entries = {
        "casme2": {"roi_flow": {"params": {"roi_set": "stag14"}}, "au": {}},
        "samm": {"roi_flow": {"params": {"roi_set": "stag14"}}},
    }
    assert roi_set_option({"au": False}, entries) == {"au": False, "roi_set": "stag14"}
    assert roi_set_option({"roi_set": "stag14"}, entries)["roi_set"] == "stag14"
    with pytest.raises(StagInputError, match="roi_set=stag6 but the roi-flow entry was built with roi_set=stag14"):
        roi_set_option({"roi_set": "stag6"}, entries)
    mixed = {**entries, "smic": {"roi_flow": {"params": {"roi_set": "stag18"}}}}
    with pytest.raises(StagInputError, match="different ROI sets: stag14, stag18"):
        roi_set_option({}, mixed)
    assert roi_set_option({"x": 1}, {"ds": {"entry": "ds/mesti/k", "params": {}}}) == {"x": 1}
