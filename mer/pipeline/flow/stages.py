"""Flow stages over equalised, aligned faces: ``flow`` (per clip), ``flow-image`` and ``roi-flow`` (dataset arrays).

``flow`` stores each clip's fields as int16 fixed point (1/256 px steps, at most 1/512 px error, ±128 px range; see
:mod:`mer.pipeline.flow.codec`) with the frame pairs they join. ``flow-image`` turns one pair into the
(u, v, strain) network input N×3×S×S; ``roi-flow`` aggregates STAG's ROIs into N×T×R×2 sequences and keeps the K
frames of largest motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mer.config import plain_value
from mer.pipeline.context import ClipContext
from mer.pipeline.flow.codec import FLOW_SCALE, decode_flow, encode_flow
from mer.pipeline.flow.image import NORMALISE_MODES, flow_image, flow_image_channels
from mer.pipeline.flow.optical_flow import (
    FLOW_METHODS,
    PAIR_MODES,
    TORCH_METHODS,
    FarnebackParams,
    compute_flow_batch,
    frame_pairs,
    to_grey,
)
from mer.pipeline.flow.roi import load_roi_set, roi_sequence, top_k_frames
from mer.pipeline.flow.tvl1_params import TVL1Params
from mer.pipeline.stage import BatchCompute, Output, Stage, register

_NEEDS_APEX = {"onset-apex", "apex-offset"}


@dataclass(frozen=True)
class FlowParams:
    """Method (``farneback`` | ``tvl1`` | ``tvl1-torch``), comma-separated pair modes, kernel overrides.

The apex of ``onset-apex`` / ``apex-offset`` is the ``apex`` stage's (an input of this stage), as for MESTI.

    ``tvl1-torch`` takes TV-L1's overrides plus ``device`` (``auto`` | ``cpu`` | ``cuda``, default ``auto``) in
    ``method_params``; ``auto`` is resolved here, so the key names the device the fields were computed on. The
    runner computes groups of short clips in one ``tvl1-torch`` call (:func:`compute_flow_many`); the group size is
    a run option (``run_plan(batch_units=…)``, ``--batch-pairs``), not a parameter: it changes no value, so no key.
    """

    method: str = "farneback"
    pairs: str = "onset-apex,apex-offset"
    method_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in FLOW_METHODS:
            raise ValueError(f"method={self.method!r}; choose one of {', '.join(FLOW_METHODS)}")
        unknown = [m for m in self.modes if m not in PAIR_MODES]
        if unknown or not self.modes:
            raise ValueError(f"pairs={self.pairs!r}; use a comma-separated list of {', '.join(PAIR_MODES)}")
        if self.method in TORCH_METHODS:
            object.__setattr__(self, "method_params", {**self.method_params, "device": _device(self.method_params)})
        self.kernel_params()  # unknown kernel options fail here, before any clip is computed

    @property
    def modes(self) -> list[str]:
        return [m.strip() for m in self.pairs.split(",") if m.strip()]

    @property
    def device(self) -> str:
        return str(self.method_params.get("device", "cpu"))

    def kernel_params(self) -> FarnebackParams | TVL1Params:
        cls = FarnebackParams if self.method == "farneback" else TVL1Params
        values = {k: v for k, v in self.method_params.items() if not (k == "device" and self.method in TORCH_METHODS)}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"method_params for {self.method}: {exc}") from None


def _device(method_params: dict[str, Any]) -> str:
    """``auto`` → ``cuda`` or ``cpu`` (what this machine has); other names are checked, not resolved, so that an
    entry computed on a GPU machine can be named (read, reused upstream) on a CPU-only one."""
    from mer.pipeline.flow.tvl1_torch import check_device

    return check_device(str(method_params.get("device", "auto")))


def _flow_inputs(ctx: ClipContext, p: FlowParams) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """A clip's frame pairs and their grey first and second frames (``P×H×W`` uint8), each frame converted once."""
    frames = ctx.input("equalize", "frames")
    apex = int(ctx.input("apex", "apex")[0]) if _NEEDS_APEX & set(p.modes) else None  # the apex stage's position
    pairs = [pair for mode in p.modes for pair in frame_pairs(mode, len(frames), apex)]
    if not pairs:
        raise ValueError(f"clip {ctx.clip_id}: {len(frames)} frame(s) give no frame pair for {p.pairs}")
    grey = {i: to_grey(frames[i]) for i in sorted({i for pair in pairs for i in pair})}
    return pairs, np.stack([grey[a] for a, _ in pairs]), np.stack([grey[b] for _, b in pairs])


def compute_flow_stage(ctx: ClipContext, p: FlowParams) -> dict[str, np.ndarray]:
    """Flow fields of every requested pair on the clip's equalised faces, each frame converted to grey once."""
    pairs, first, second = _flow_inputs(ctx, p)
    flows = encode_flow(compute_flow_batch(first, second, p.method, p.kernel_params(), p.device))
    return {"flow": flows, "pairs": np.asarray(pairs, dtype=np.int32)}


def compute_flow_many(ctxs: list[ClipContext], p: FlowParams) -> list[dict[str, np.ndarray] | Exception]:
    """:func:`compute_flow_stage` for a group of clips, the pairs of all clips of one frame size in one kernel call.

    A clip whose inputs fail (no pair, apex outside the clip, unreadable entry) gets its exception, the others
    their arrays. Pairs are grouped by frame size, never padded, so each pair's field is the one it has alone:
    ``tvl1-torch`` computes every pair on its own (per-pair convergence, per-pair sums) whatever its batch.
    """
    results: list[dict[str, np.ndarray] | Exception | None] = [None] * len(ctxs)
    prepared: dict[tuple[int, int], list[tuple[int, list[tuple[int, int]], np.ndarray, np.ndarray]]] = {}
    for k, ctx in enumerate(ctxs):
        try:
            pairs, first, second = _flow_inputs(ctx, p)
        except Exception as exc:
            results[k] = exc
            continue
        prepared.setdefault(first.shape[1:], []).append((k, pairs, first, second))
    for members in prepared.values():
        first = np.concatenate([m[2] for m in members])
        second = np.concatenate([m[3] for m in members])
        flows = encode_flow(compute_flow_batch(first, second, p.method, p.kernel_params(), p.device))
        start = 0
        for k, pairs, _, _ in members:
            results[k] = {"flow": flows[start : start + len(pairs)], "pairs": np.asarray(pairs, dtype=np.int32)}
            start += len(pairs)
    return results  # type: ignore[return-value]


def flow_pair_count(row: dict[str, Any], p: FlowParams) -> int:
    """Frame pairs a clip gives (from its clips-table row): 1 per onset/apex mode, T − 1 per sequence mode."""
    n = plain_value(row.get("n_frames"))
    n = int(n) if n is not None else len(row.get("frame_paths", []))
    return sum(1 if mode in _NEEDS_APEX else max(0, n - 1) for mode in p.modes)


BATCH_PAIRS = {"cuda": 64, "cpu": 8}
"""Frame pairs per ``tvl1-torch`` call by device kind when the runner groups clips (``--batch-pairs``): a batch of
64 pairs at 256×256 is ≈ 0.6 GB on a GPU; on the CPU the kernel runs about 64k pixels at a time anyway (one pair
at 256×256, more for small faces), so a few clips a group."""


def flow_batch_target(p: FlowParams) -> int:
    """Pairs per call for the runner's groups: :data:`BATCH_PAIRS` by device for ``tvl1-torch``, else 1 (off)."""
    if p.method not in TORCH_METHODS:
        return 1
    return BATCH_PAIRS["cuda" if p.device.startswith("cuda") else "cpu"]


@dataclass(frozen=True)
class FlowImageParams:
    """Which stored pair (0 = the first, e.g. onset→apex), output size, and ``normalise``: ``maxabs`` (signed,
    u and v over their largest vector length), ``minmax`` (0..1 per channel) or ``none`` (pixels)."""

    pair: int = 0
    size: int = 28
    normalise: str = "maxabs"

    def __post_init__(self) -> None:
        if self.pair < 0:
            raise ValueError(f"pair={self.pair}; a stored pair index is >= 0")
        if self.size < 1:
            raise ValueError(f"size={self.size}; must be >= 1")
        if self.normalise not in NORMALISE_MODES:
            raise ValueError(f"normalise={self.normalise!r}; choose {', '.join(NORMALISE_MODES)}")


def compute_flow_image(ctx: ClipContext, p: FlowImageParams) -> dict[str, np.ndarray]:
    """(u, v, optical strain) of one pair, resized for a network."""
    flows = ctx.input("flow", "flow")
    if not 0 <= p.pair < len(flows):
        raise ValueError(f"clip {ctx.clip_id}: pair {p.pair} asked for, the flow entry has {len(flows)}")
    return {"image": flow_image(decode_flow(flows[p.pair]), size=p.size, normalise=p.normalise)}


def flow_image_attributes(p: FlowImageParams) -> dict[str, Any]:
    """The entry's channel declaration (read by the trainer to flip and rotate the channels correctly)."""
    scaling = {
        "maxabs": "u, v divided by the image's largest |(u, v)|; strain by its maximum",
        "minmax": "each channel mapped to 0..1 by its own min and max",
        "none": "u, v in pixels of the size×size grid; strain unscaled",
    }[p.normalise]
    return {"channels": flow_image_channels(p.normalise), "scaling": {"normalise": p.normalise, "rule": scaling}}


@dataclass(frozen=True)
class RoiFlowParams:
    """ROI set (``stag6``, ``stag14``, ``stag18`` or a TOML file), top-p % magnitude pixels, length T, K frames."""

    roi_set: str = "stag14"
    top_percent: float = 20.0
    length: int = 32
    top_k: int = 8

    def __post_init__(self) -> None:
        try:
            load_roi_set(self.roi_set)  # an unknown set fails here, before any clip is computed
        except OSError as exc:
            raise ValueError(f"roi_set={self.roi_set!r}: {exc}") from None
        if not 0 < self.top_percent <= 100:
            raise ValueError(f"top_percent={self.top_percent}; must be in (0, 100]")
        if self.length < 1 or self.top_k < 1:
            raise ValueError(f"length={self.length}, top_k={self.top_k}; both must be >= 1")


def _n_rois(p: RoiFlowParams) -> int:
    return len(load_roi_set(p.roi_set).names)


def compute_roi_flow(ctx: ClipContext, p: RoiFlowParams) -> dict[str, np.ndarray]:
    """Per ROI and flow, the mean (u, v) of its strongest pixels, resampled to a fixed length; top-K frames."""
    flows = decode_flow(ctx.input("flow", "flow"))
    pairs = ctx.input("flow", "pairs")
    landmarks = ctx.input("align", "landmarks")[pairs[:, 0]]
    sequence = roi_sequence(flows, landmarks, p.roi_set, length=p.length, top_percent=p.top_percent)
    top = np.full(p.top_k, -1, dtype=np.int32)
    chosen = top_k_frames(flows, min(p.top_k, len(flows)), remove_global=True)  # head drift does not count
    top[: len(chosen)] = pairs[chosen, 1]
    return {"sequence": sequence.astype(np.float32), "top_frames": top}


FLOW = register(
    Stage(
        "flow",
        "2",  # 2: the apex is the apex stage's (an input), no longer chosen by this stage's parameters
        FlowParams,
        ("equalize", "apex"),
        (Output("flow", "int16"), Output("pairs", "int32")),
        compute_flow_stage,
        f"flow fields P×H×W×2 as int16 (value × {FLOW_SCALE:g}) and their frame pairs P×2",
        batch=BatchCompute(compute_flow_many, flow_pair_count, flow_batch_target),
    )
)
FLOW_IMAGE = register(
    Stage(
        "flow-image",
        "3",  # 3: min-max in float64 and INTER_AREA whenever no side grows (mer.pipeline.image_ops), as single images
        FlowImageParams,
        ("flow",),
        (Output("image", "float32", lambda p: (3, p.size, p.size), ("channel", "y", "x")),),
        compute_flow_image,
        "(u, v, strain) flow image N×3×S×S",
        attributes=flow_image_attributes,
    )
)
ROI_FLOW = register(
    Stage(
        "roi-flow",
        "2",
        RoiFlowParams,
        ("flow", "align"),
        (
            Output("sequence", "float32", lambda p: (p.length, _n_rois(p), 2), ("step", "roi", "component")),
            Output("top_frames", "int32", lambda p: (p.top_k,), ("rank",)),
        ),
        compute_roi_flow,
        "STAG ROI flow sequences N×T×R×2 and the K frames of largest motion (clip positions)",
    )
)

FLOW_STAGES = ["flow", "flow-image"]
