"""STAG: ROI-flow graph/transformer network with AU-guided connectivity (Sharma et al., methods.md §4).

Input (a dict of tensors, as the trainer delivers named inputs):

* ``roi_flow``: B×T×R×2 float, the (u, v) dominant motion of each ROI per frame (stage ``roi-flow``, px);
* ``roi_flow_mask`` (optional): B×T bool, True for real frames, False for padding (all True when absent);
* ``au`` (when built with ``au=True``): B×A 0/1 action-unit vector (``mer.datasets.aus.AU_LIST``, A = 21).

Parts (each switchable for the paper's ablations):

1. ROI embedding (eq. 12): a two-layer MLP per ROI maps (u, v) to ``embed_dim``; ROIs share the MLP and
   get a learnable ROI identity embedding (without it a shared MLP could not tell the mouth from a brow).
2. E-GAT (eq. 13–17, ``graph=True``), ``graph_layers`` layers of ``heads`` heads on every frame's graph:
   score ``s_ij = q_i·k_j/√d + LeakyReLU(a_src·Wh_i + a_dst·Wh_j) + b_ij + δ_ij·s_self (+ AU bias_ij)``,
   attention ``softmax_j``, head mean ``Ā_t``; the dynamic adjacency is smoothed over time by a learnable
   gate ``g = sigmoid(γ) ∈ [0, 1]``: ``A_t = rownorm(g·A_{t−1} + (1−g)·Ā_t)`` from ``A_0`` = the
   cosine-similarity adjacency ``softmax_j(cos(h_i, h_j)/τ)`` of the first ``init_frames`` frames (padded
   frames keep ``A_{t−1}``). Nodes update as ``H ← LN(H + drop(A_t H W_v W_o))``. Every ``A_t`` is a
   row-stochastic matrix (rows sum to 1).
3. Temporal attention pooling (eq. 18–21): frame weights ``β = softmax_t(c·tanh(W mean_i H_t))`` over real
   frames; graph tokens ``G = Σ_t β_t H_t`` (R tokens) and the global graph vector from ``Σ_t β_t vec(H_t)``.
4. Temporal transformer (eq. 22–25, ``temporal=True``): frame tokens ``vec(X_t)`` projected to ``d_model``,
   a CLS token and learnable positions, Pre-LN encoder of ``transformer_layers`` layers; padded frames are
   masked out; ``h_T = LN(CLS)``.
5. Bidirectional cross-attention (eq. 26–31, ``cross_attention=True``, needs both branches): graph tokens
   attend to frame tokens and frame tokens to graph tokens (residual), mean-pooled and projected back.
6. AU branch (eq. 32–33, ``au=True``): a two-layer MLP embeds the AU vector; the embedding is concatenated
   to the fused vector and, through a linear map, gives an R×R bias added to every E-GAT score (the
   AU-guided dynamic connectivity: which ROIs attend to which depends on the coded muscle activations).
7. Classifier: dropout + linear layer on the concatenation.

``model(roi_flow=…, au=…)`` (the trainer calls ``model(**batch)`` with the names in ``input_names``) returns
logits B×K; with ``details=True`` also the explanation tensors (adjacency per layer and frame, gate values,
frame weights, ROI importance); :meth:`STAG.explain` takes a batch dict.

Input scale: the model normalises ``roi_flow`` itself by the root mean square of the training sequences,
a buffer accumulated over every training batch (a cumulative average, like BatchNorm with momentum None)
and frozen in eval mode; :meth:`STAG.set_flow_scale` sets it from given rows instead.

The paper's layer sizes were lost in extraction; the defaults here (embedding 32, 3 E-GAT layers × 4 heads,
5 transformer layers of width 64) follow its ablation table's best depths and keep the model small.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mer.pipeline.flow.roi import load_roi_set

ROI_SETS: tuple[str, ...] = ("stag6", "stag14", "stag18")
AU_DIM = 21
"""Length of the AU vector (``mer.datasets.aus.AU_LIST``)."""


class StagInputError(ValueError):
    """An input does not match what the STAG model was built for."""


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim)


def smooth_adjacency(
    attention: torch.Tensor, initial: torch.Tensor, gate: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Temporally smoothed adjacency ``A_t = rownorm(g_t·A_{t−1} + (1−g_t)·Ā_t)`` for every frame, in closed form.

    Parameters
    ----------
    attention : B×T×R×R row-stochastic head-mean attention ``Ā_t``.
    initial : B×R×R row-stochastic ``A_0``.
    gate : scalar in [0, 1] (``g``).
    mask : B×T bool, True for real frames; a padded frame has ``g_t = 1`` (keeps ``A_{t−1}``).

    Returns
    -------
    B×T×R×R row-stochastic adjacency ``A_1 … A_T``.

    The recursion is linear, so ``A_t = P_t A_0 + Σ_{s≤t} (1−g_s)(P_t/P_s) Ā_s`` with ``P_t = Π_{k≤t} g_k``;
    the ratios are computed as exponentials of log-differences (never an overflow for small ``g``).
    """
    b, t = attention.shape[:2]
    g = gate.reshape(1, 1).expand(b, t)
    if mask is not None:
        g = torch.where(mask, g, torch.ones_like(g))
    log_g = torch.log(g.clamp_min(1e-12))
    cum = torch.cumsum(log_g, dim=1)  # log P_t
    diff = cum[:, :, None] - cum[:, None, :]  # log P_t − log P_s, B×T(t)×T(s)
    causal = torch.ones(t, t, dtype=torch.bool, device=attention.device).tril()
    weights = torch.where(causal, torch.exp(diff.clamp_max(0.0)), torch.zeros_like(diff)) * (1 - g)[:, None, :]
    smoothed = torch.einsum("bts,bsij->btij", weights, attention) + torch.exp(cum)[:, :, None, None] * initial[:, None]
    return smoothed / smoothed.sum(dim=-1, keepdim=True).clamp_min(1e-12)


class EGATLayer(nn.Module):
    """One E-GAT layer on B×T×R×D node features with a temporally smoothed, row-stochastic adjacency."""

    def __init__(self, dim: int, heads: int, num_rois: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim={dim} must be divisible by heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.w = nn.Linear(dim, dim, bias=False)
        self.a_src = nn.Parameter(torch.randn(heads, self.head_dim) * 0.1)
        self.a_dst = nn.Parameter(torch.randn(heads, self.head_dim) * 0.1)
        self.edge_bias = nn.Parameter(torch.zeros(heads, num_rois, num_rois))
        self.self_loop = nn.Parameter(torch.zeros(heads))
        self.gate_logit = nn.Parameter(torch.zeros(()))  # g = 0.5 at start
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    @property
    def gate(self) -> torch.Tensor:
        """The temporal smoothing gate ``g`` in [0, 1]."""
        return torch.sigmoid(self.gate_logit)

    def forward(
        self, h: torch.Tensor, initial: torch.Tensor, mask: torch.Tensor | None, au_bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` B×T×R×D, ``initial`` B×R×R, ``au_bias`` B×R×R or None → (new h, adjacency B×T×R×R)."""
        b, t, r, d = h.shape
        nh, hd = self.heads, self.head_dim
        q = self.q(h).view(b, t, r, nh, hd).transpose(2, 3)  # B×T×H×R×hd
        k = self.k(h).view(b, t, r, nh, hd).transpose(2, 3)
        wh = self.w(h).view(b, t, r, nh, hd).transpose(2, 3)
        dot = q @ k.transpose(-1, -2) / math.sqrt(hd)
        src = (wh * self.a_src[:, None, :]).sum(-1)  # B×T×H×R
        dst = (wh * self.a_dst[:, None, :]).sum(-1)
        additive = F.leaky_relu(src[..., :, None] + dst[..., None, :], 0.2)
        eye = torch.eye(r, device=h.device, dtype=h.dtype)
        scores = dot + additive + self.edge_bias + self.self_loop[:, None, None] * eye
        if au_bias is not None:
            scores = scores + au_bias[:, None, None]
        attention = torch.softmax(scores, dim=-1).mean(dim=2)  # head mean Ā_t: B×T×R×R
        adjacency = smooth_adjacency(attention, initial, self.gate, mask)
        message = self.out(adjacency @ self.v(h))
        return self.norm(h + self.drop(message)), adjacency


class STAG(nn.Module):
    """STAG network (see the module docstring); ``input_names`` lists the named inputs it reads."""

    def __init__(
        self,
        num_classes: int,
        roi_set: str = "stag14",
        au: bool = True,
        graph: bool = True,
        temporal: bool = True,
        cross_attention: bool = True,
        embed_dim: int = 32,
        hidden_dim: int = 32,
        graph_layers: int = 3,
        heads: int = 4,
        graph_dim: int = 64,
        transformer_dim: int = 64,
        transformer_layers: int = 5,
        transformer_heads: int = 4,
        fusion_dim: int = 64,
        au_dim: int = 32,
        au_size: int = AU_DIM,
        max_frames: int = 64,
        init_frames: int = 4,
        temperature: float = 0.5,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not (graph or temporal):
            raise ValueError("STAG needs at least one branch: graph=True or temporal=True")
        if temperature <= 0 or init_frames < 1 or max_frames < 1:
            raise ValueError(f"temperature={temperature}, init_frames={init_frames}, max_frames={max_frames}")
        rs = load_roi_set(roi_set)
        self.roi_set, self.roi_names = rs.name, rs.names
        self.num_rois = r = len(rs)
        self.num_classes = num_classes
        self.use_au, self.use_graph, self.use_temporal = au, graph, temporal
        self.use_cross = cross_attention and graph and temporal
        self.max_frames, self.init_frames, self.temperature = max_frames, init_frames, temperature
        self.au_size = au_size
        self.input_names: tuple[str, ...] = ("roi_flow", "au") if au else ("roi_flow",)
        self.register_buffer("flow_sq_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("flow_sq_count", torch.zeros((), dtype=torch.float64))

        self.embed = nn.Sequential(nn.Linear(2, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, embed_dim))
        self.roi_identity = nn.Parameter(torch.randn(r, embed_dim) * 0.02)
        feat = 0
        if au:
            self.au_mlp = nn.Sequential(nn.Linear(au_size, au_dim), nn.GELU(), nn.Linear(au_dim, au_dim))
            if graph:
                self.au_to_bias = nn.Linear(au_dim, r * r)
                nn.init.zeros_(self.au_to_bias.weight)
                nn.init.zeros_(self.au_to_bias.bias)
            feat += au_dim
        if graph:
            self.egat = nn.ModuleList(EGATLayer(embed_dim, heads, r, dropout) for _ in range(graph_layers))
            self.pool_proj = nn.Linear(embed_dim, embed_dim)
            self.pool_context = nn.Linear(embed_dim, 1, bias=False)
            self.graph_out = nn.Sequential(
                nn.Linear(r * embed_dim, graph_dim), nn.GELU(), nn.Linear(graph_dim, graph_dim)
            )
            feat += graph_dim
        if temporal:
            self.frame_proj = nn.Linear(r * embed_dim, transformer_dim)
            self.cls = nn.Parameter(torch.zeros(1, 1, transformer_dim))
            self.positions = nn.Parameter(torch.randn(1, max_frames + 1, transformer_dim) * 0.02)
            layer = nn.TransformerEncoderLayer(
                transformer_dim, transformer_heads, 2 * transformer_dim, dropout, batch_first=True, norm_first=True
            )
            self.transformer = nn.TransformerEncoder(layer, transformer_layers, enable_nested_tensor=False)
            self.cls_norm = nn.LayerNorm(transformer_dim)
            feat += transformer_dim
        if self.use_cross:
            self.graph_to_fusion = nn.Linear(embed_dim, fusion_dim)
            self.frames_to_fusion = nn.Linear(transformer_dim, fusion_dim)
            self.graph_attends = nn.MultiheadAttention(fusion_dim, transformer_heads, dropout, batch_first=True)
            self.frames_attend = nn.MultiheadAttention(fusion_dim, transformer_heads, dropout, batch_first=True)
            self.graph_back = nn.Linear(fusion_dim, graph_dim)
            self.frames_back = nn.Linear(fusion_dim, transformer_dim)
            feat += graph_dim + transformer_dim
        self.feature_dim = feat
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(feat, num_classes)  # the last nn.Linear: the trainer reads K from it

    # ----------------------------------------------------------------------------------------------------
    @property
    def flow_scale(self) -> torch.Tensor:
        """The RMS the inputs are divided by (1 before any training batch)."""
        rms = (self.flow_sq_sum / self.flow_sq_count.clamp_min(1.0)).sqrt().clamp_min(1e-6)
        return torch.where(self.flow_sq_count > 0, rms, torch.ones_like(rms)).float()  # no host sync on a GPU

    @torch.no_grad()
    def set_flow_scale(self, roi_flow: torch.Tensor) -> None:
        """Set the input scale to the RMS of ``roi_flow`` (e.g. all training rows); training batches add to it."""
        x = roi_flow.detach().double()
        self.flow_sq_sum.copy_(x.pow(2).sum())
        self.flow_sq_count.copy_(torch.tensor(float(x.numel()), dtype=torch.float64))

    @torch.no_grad()
    def _track_scale(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        sq = x.detach().double().pow(2)
        if mask is not None:
            sq = sq * mask[:, :, None, None]
            n = mask.sum() * x.shape[2] * x.shape[3]
        else:
            n = torch.tensor(float(sq.numel()), dtype=torch.float64, device=x.device)
        self.flow_sq_sum += sq.sum()
        self.flow_sq_count += n

    def check_inputs(self, batch: Mapping[str, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate the batch; return ``roi_flow`` (B×T×R×2) and the frame mask (B×T bool or None)."""
        if batch.get("roi_flow") is None:
            raise StagInputError("STAG reads input 'roi_flow' (B×T×R×2)")
        x = batch["roi_flow"]
        if x.ndim != 4 or x.shape[-1] != 2:
            raise StagInputError(f"roi_flow must be B×T×R×2 (u, v), got shape {tuple(x.shape)}")
        if x.shape[2] != self.num_rois:
            others = [n for n in ROI_SETS if len(load_roi_set(n)) == x.shape[2]]
            seen = f" (the {others[0]} set)" if others else ""
            raise StagInputError(
                f"this STAG model was built for roi_set={self.roi_set} ({self.num_rois} ROIs) but the roi_flow "
                f"input has {x.shape[2]} ROIs{seen}; build the model with roi_set matching the stored entry"
            )
        if x.shape[1] > self.max_frames:
            raise StagInputError(
                f"roi_flow has {x.shape[1]} frames, the model takes at most max_frames={self.max_frames}"
            )
        mask = batch.get("roi_flow_mask")
        if mask is not None:
            mask = mask.to(torch.bool)
            if tuple(mask.shape) != tuple(x.shape[:2]):
                raise StagInputError(f"roi_flow_mask must be B×T = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
            if not bool(mask.any(dim=1).all()):
                raise StagInputError("roi_flow_mask: every clip needs at least one real frame")
        if self.use_au:
            au = batch.get("au")
            if au is None:
                raise StagInputError("this STAG model was built with au=True and needs input 'au' (B×21)")
            if au.shape != (x.shape[0], self.au_size):
                raise StagInputError(f"au must be B×{self.au_size}, got shape {tuple(au.shape)}")
        return x, mask

    def check_entry(self, params: Mapping) -> None:
        """Reject a stored ``roi-flow`` entry (its ``params``) made for another ROI set."""
        name = str(params.get("roi_set", ""))
        if name != self.roi_set:
            raise StagInputError(
                f"this STAG model was built for roi_set={self.roi_set}; the roi-flow entry has roi_set={name}"
            )

    # ----------------------------------------------------------------------------------------------------
    def _initial_adjacency(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Cosine-similarity adjacency of the mean node features of the first ``init_frames`` real frames."""
        t = h.shape[1]
        first = torch.zeros(t, dtype=torch.bool, device=h.device)
        first[: self.init_frames] = True
        w = first[None].expand(h.shape[0], t)
        if mask is not None:
            order = torch.cumsum(mask.long(), dim=1)
            w = mask & (order <= self.init_frames)
        w = w.to(h.dtype)[:, :, None, None]
        mean = (h * w).sum(1) / w.sum(1).clamp_min(1.0)
        unit = F.normalize(mean, dim=-1)
        return torch.softmax(unit @ unit.transpose(-1, -2) / self.temperature, dim=-1)

    def forward(
        self,
        roi_flow: torch.Tensor,
        au: torch.Tensor | None = None,
        roi_flow_mask: torch.Tensor | None = None,
        details: bool = False,
    ):
        """Logits B×K (and, with ``details``, a dict of explanation tensors; see :meth:`explain`)."""
        x, mask = self.check_inputs({"roi_flow": roi_flow, "au": au, "roi_flow_mask": roi_flow_mask})
        b, t, r, _ = x.shape
        if self.training:
            self._track_scale(x, mask)
        h0 = self.embed(x.float() / self.flow_scale) + self.roi_identity  # B×T×R×D
        feats: list[torch.Tensor] = []
        info: dict[str, torch.Tensor] = {}
        au_emb = self.au_mlp(au.float()) if self.use_au else None
        if self.use_graph:
            au_bias = self.au_to_bias(au_emb).view(b, r, r) if au_emb is not None else None
            h = h0
            initial = self._initial_adjacency(h0, mask)
            adjacencies = []
            for layer in self.egat:
                h, adj = layer(h, initial, mask, au_bias)
                adjacencies.append(adj)
            score = self.pool_context(torch.tanh(self.pool_proj(h.mean(dim=2)))).squeeze(-1)  # B×T
            beta = _masked_softmax(score, mask, dim=1)
            tokens = torch.einsum("bt,btrd->brd", beta, h)  # graph tokens B×R×D
            g = self.graph_out(tokens.reshape(b, -1))
            feats.append(g)
            info.update(
                adjacency=torch.stack(adjacencies, 1),  # B×L×T×R×R
                initial_adjacency=initial,
                gates=torch.stack([layer.gate for layer in self.egat]),
                frame_weights=beta,
                roi_importance=torch.einsum("bt,btij->bj", beta, adjacencies[-1]) / r,
            )
        if self.use_temporal:
            frames = self.frame_proj(h0.reshape(b, t, -1))
            seq = torch.cat([self.cls.expand(b, -1, -1), frames], dim=1) + self.positions[:, : t + 1]
            pad = None if mask is None else torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
            out = self.transformer(seq, src_key_padding_mask=pad)
            feats.append(self.cls_norm(out[:, 0]))
            frame_tokens = out[:, 1:]
        if self.use_cross:
            gt = self.graph_to_fusion(tokens)
            ft = self.frames_to_fusion(frame_tokens)
            key_pad = None if mask is None else ~mask
            g2, _ = self.graph_attends(gt, ft, ft, key_padding_mask=key_pad, need_weights=False)
            f2, _ = self.frames_attend(ft, gt, gt, need_weights=False)
            gt, ft = gt + g2, ft + f2
            if mask is None:
                f_pool = ft.mean(1)
            else:
                m = mask.to(ft.dtype)[..., None]
                f_pool = (ft * m).sum(1) / m.sum(1)
            feats += [self.graph_back(gt.mean(1)), self.frames_back(f_pool)]
        if au_emb is not None:
            feats.append(au_emb)
        logits = self.classifier(self.drop(torch.cat(feats, dim=-1)))
        return (logits, info) if details else logits

    @torch.no_grad()
    def explain(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Explanations of a batch in eval mode (graph branch only).

        Returns ``probs`` B×K, ``adjacency`` B×L×T×R×R (rows sum to 1), ``initial_adjacency`` B×R×R,
        ``gates`` L (in [0, 1]), ``frame_weights`` B×T (sum to 1 over real frames) and ``roi_importance`` B×R:
        the attention each ROI receives in the last layer, averaged over source ROIs and weighted over frames
        by ``frame_weights`` (sums to 1).
        """
        if not self.use_graph:
            raise ValueError("explanations need the graph branch (graph=True)")
        was_training = self.training
        self.eval()
        try:
            logits, info = self(**batch, details=True)
        finally:
            self.train(was_training)
        return {"probs": torch.softmax(logits.float(), dim=1), **info}


def build_stag(num_classes: int, in_channels: int = 2, image_size: int = 0, **options) -> STAG:
    """Registry builder: ``in_channels``/``image_size`` are ignored (STAG reads ROI sequences)."""
    return STAG(num_classes=num_classes, **options)


def stag_inputs(options: Mapping) -> dict[str, str]:
    """Default store sources of STAG's named inputs: the ``roi-flow`` sequences and the manifest's AU vector."""
    au = options.get("au", True)
    au = au if isinstance(au, bool) else str(au).lower() not in ("false", "0", "no")
    return {"roi_flow": "roi-flow", "au": "manifest:au_vector"} if au else {"roi_flow": "roi-flow"}


def roi_set_of_entries(entries: Mapping) -> str | None:
    """The ROI set of the ``roi_flow`` input in a run's provenance ``entries`` (one per dataset; they must agree)."""
    sets = set()
    for records in entries.values():
        record = records.get("roi_flow", records) if isinstance(records, Mapping) else {}
        roi_set = (record.get("params") or {}).get("roi_set")
        if roi_set is not None:
            sets.add(str(roi_set))
    if len(sets) > 1:
        raise StagInputError(f"the datasets' roi-flow entries use different ROI sets: {', '.join(sorted(sets))}")
    return next(iter(sets), None)


def roi_set_option(options: Mapping, entries: Mapping) -> dict:
    """Model options with ``roi_set`` taken from the stored ``roi_flow`` entries; a given one must match them."""
    stored = roi_set_of_entries(entries)
    out = dict(options)
    if stored is None:
        return out
    given = out.get("roi_set")
    if given is not None and str(given) != stored:
        raise StagInputError(f"--option roi_set={given} but the roi-flow entry was built with roi_set={stored}")
    out["roi_set"] = stored
    return out
