"""Dual TV-L1 optical flow in PyTorch for a batch of frame pairs, reproducing OpenCV's ``DualTVL1OpticalFlow``.

The scheme is Zach, Pock & Bischof's duality-based TV-L1 as OpenCV's ``optflow`` module runs it (Sánchez Pérez's
formulation): a pyramid built by repeated bilinear ``cv::resize`` by ``scale_step`` (down to 16 px), flow set
to zero at the coarsest scale and bilinearly upsampled (and multiplied by ``1 / scale_step``) between scales,
dual variables reset to zero at each scale. Per scale and warp: the second image and its centred gradient (with
one-sided halves at the border) are warped by the current flow with bicubic interpolation (Keys, a = −0.75; taps
outside the image read 0), then up to ``outer_iterations`` × ``inner_iterations`` iterations of thresholding
(data term), primal update ``u = v + θ·div p`` (backward differences) and dual update
``p = (p + τ/θ·∇u) / (1 + τ/θ·|∇u|)`` (forward differences), with a 5×5 median filter (replicated border) on ``u``
at the start of each outer iteration. A pair stops when ``Σ|u_k − u_{k−1}|² ≤ ε²·H·W`` after an iteration, as in
OpenCV, and stays frozen for the rest of that warp while the other pairs of the batch iterate.

Every step is per pixel or per pair (no matrix product, per-pair sums in float64), so a pair's field does not
depend on the batch it was computed in, nor on the number of CPU threads. CPU and CUDA results agree to float32
rounding, not bit for bit; the flow stage keeps the device kind in its key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from mer.pipeline.flow.median_net import median_filter
from mer.pipeline.flow.tvl1_params import TVL1Params

__all__ = ["DEVICES", "check_device", "default_batch_size", "resolve_device", "tvl1_torch", "tvl1_torch_batch"]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
MIN_SIZE = 16
"""OpenCV stops the pyramid before a level narrower or lower than this."""


def check_device(device: str) -> str:
    """A device name as stored in a flow key: ``auto`` → ``cuda`` when available, else ``cpu``; ``cpu``,
    ``cuda`` and ``cuda:N`` are kept (whether CUDA exists is checked when the kernel runs)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise ValueError(f"device={device!r}; choose one of {', '.join(DEVICES)}")


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given (CUDA must exist)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: no CUDA device is available (use cpu or auto)")
        return torch.device(device)
    raise ValueError(f"device={device!r}; choose one of {', '.join(DEVICES)}")


def default_batch_size(device: torch.device, height: int, width: int) -> int:
    """Pairs per batch. CPU: about 64k pixels a batch (1 pair at 256×256), as larger batches fall out of cache
    (measured 0.51 s CPU a pair one at a time, 0.62 s in batches of 8). CUDA: as many as fit in a quarter of the
    free memory at ≈ 40 float32 maps per pair (state, warped images, temporaries), at most 512."""
    if device.type != "cuda":
        return max(1, (1 << 16) // (height * width))
    free, _ = torch.cuda.mem_get_info(device)
    per_pair = 40 * 4 * height * width
    return int(max(1, min(512, free // 4 // per_pair)))


# ------------------------------------------------------------------------------------------------ building blocks
@lru_cache(maxsize=64)
def _linear_taps(n_in: int, n_out: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index pairs and weights of ``cv::resize`` INTER_LINEAR along one axis (half-pixel centres,
    coordinate ``(d + 0.5)·scale − 0.5`` in float32, clamped to the first/last sample)."""
    d = np.arange(n_out, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    w = (f - s.astype(np.float32)).astype(np.float32)
    low, high = s < 0, s >= n_in - 1
    s[low], w[low] = 0, 0.0
    s[high], w[high] = n_in - 1, 0.0
    return s, np.minimum(s + 1, n_in - 1), w


def _resize_axis(x: torch.Tensor, dim: int, n_out: int, scale: float) -> torch.Tensor:
    i0, i1, w = _linear_taps(x.shape[dim], n_out, scale)
    shape = [1] * x.ndim
    shape[dim] = n_out
    wt = torch.from_numpy(w).to(x.device).view(shape)
    a = x.index_select(dim, torch.from_numpy(i0).to(x.device))
    b = x.index_select(dim, torch.from_numpy(i1).to(x.device))
    return a * (1 - wt) + b * wt


def resize_linear(x: torch.Tensor, height: int, width: int, scale_y: float, scale_x: float) -> torch.Tensor:
    """Bilinear resize of ``…×H×W`` float32 maps to ``height×width`` as ``cv::resize`` INTER_LINEAR does it
    (horizontal pass, then vertical); ``scale_*`` = source pixels per output pixel."""
    return _resize_axis(_resize_axis(x, -1, width, scale_x), -2, height, scale_y)


def centred_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂x, ∂y)`` of ``B×H×W`` maps: half the central difference, one-sided halves on the border rows/columns."""
    px = F.pad(img.unsqueeze(1), (1, 1, 0, 0), mode="replicate").squeeze(1)
    py = F.pad(img.unsqueeze(1), (0, 0, 1, 1), mode="replicate").squeeze(1)
    return 0.5 * (px[..., 2:] - px[..., :-2]), 0.5 * (py[..., 2:, :] - py[..., :-2, :])


def forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂x, ∂y)`` of ``…×H×W`` maps by forward differences, 0 on the last column (x) and last row (y)."""
    dx = F.pad(u[..., 1:] - u[..., :-1], (0, 1))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of the field ``(px, py)`` (``…×H×W``), the values before the first
    column/row taken as 0 (the adjoint of :func:`forward_gradient` up to sign)."""
    return px - F.pad(px[..., :-1], (1, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))


def warp_bicubic(maps: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``B×C×H×W`` maps at ``(x + u, y + v)`` with Keys bicubic interpolation (a = −0.75), taps outside
    the image reading 0 (``cv::remap`` INTER_CUBIC, BORDER_CONSTANT). ``flow`` is ``B×2×H×W`` in pixels."""
    _, _, h, w = maps.shape
    xs = torch.arange(w, device=maps.device, dtype=maps.dtype)
    ys = torch.arange(h, device=maps.device, dtype=maps.dtype)
    gx = (xs.view(1, 1, w) + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys.view(1, h, 1) + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(maps, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


# ------------------------------------------------------------------------------------------------ the scheme
def _scale_sizes(height: int, width: int, p: TVL1Params) -> list[tuple[int, int]]:
    sizes = [(height, width)]
    for _ in range(1, p.nscales):
        h, w = sizes[-1]
        nh, nw = int(np.rint(h * p.scale_step)), int(np.rint(w * p.scale_step))
        if nh < MIN_SIZE or nw < MIN_SIZE:
            break
        sizes.append((nh, nw))
    return sizes


def _one_scale(
    i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, p: TVL1Params, check_every: int, count: torch.Tensor
) -> torch.Tensor:
    """TV-L1 warps at one scale for ``B×H×W`` images ``i0``, ``i1`` from the initial flow ``u`` (``B×2×H×W``);
    ``count`` (``B``, int64) gains each pair's inner iterations."""
    b, h, w = i0.shape
    eps = p.epsilon * p.epsilon * h * w
    coef = (np.float32(p.lambda_ * p.theta).item(), np.float32(p.theta).item(), np.float32(p.tau / p.theta).item())
    i1x, i1y = centred_gradient(i1)
    source = torch.stack([i1, i1x, i1y], dim=1)
    zeros = torch.zeros_like(i0)
    state = [u[:, 0].clone(), u[:, 1].clone(), zeros, zeros.clone(), zeros.clone(), zeros.clone()]  # u1 u2 p11..p22
    masked = check_every > 1  # with a check after every iteration the working set is all active: no masking
    for _ in range(p.warps):
        warped = warp_bicubic(source, torch.stack(state[:2], dim=1))
        i1w, i1wx, i1wy = warped[:, 0], warped[:, 1], warped[:, 2]
        grad = i1wx * i1wx + i1wy * i1wy
        inv_grad = torch.where(grad > _TINY, 1.0 / grad.clamp_min(_TINY), 0.0)
        rho_c = i1w - i1wx * state[0] - i1wy * state[1] - i0
        idx = torch.arange(b, device=i0.device)
        work, consts = list(state), [i1wx, i1wy, inv_grad, rho_c]
        active = torch.ones(b, dtype=torch.bool, device=i0.device)
        step = 0
        for _ in range(p.outer_iterations):
            if p.median_filtering > 1:
                for c in (0, 1):
                    med = median_filter(work[c], p.median_filtering)
                    work[c] = torch.where(active.view(-1, 1, 1), med, work[c]) if masked else med
            for _ in range(p.inner_iterations):
                new, err = _iterate(work, consts, *coef)
                if masked:
                    keep = active.view(-1, 1, 1)
                    new = [torch.where(keep, n, o) for n, o in zip(new, work, strict=True)]
                work = new
                count.index_add_(0, idx, active.long())
                active = active & (err > eps)
                step += 1
                if step % check_every == 0:
                    work, consts, active, idx = _compact(work, consts, active, idx, state)
                    if idx.numel() == 0:
                        break
            if idx.numel() == 0:
                break
        for full, part in zip(state, work, strict=True):
            full[idx] = part
    return torch.stack(state[:2], dim=1)


_TINY = float(np.finfo(np.float32).eps)


def _compact(work, consts, active, idx, state):
    """Write converged pairs back to the full state and drop them from the working set (one host sync)."""
    if bool(active.all()):
        return work, consts, active, idx
    for full, part in zip(state, work, strict=True):
        full[idx] = part
    keep = active.nonzero().squeeze(1)
    return [x[keep] for x in work], [x[keep] for x in consts], active[keep], idx[keep]


def _iterate(work, consts, l_t: float, theta: float, taut: float):
    """One inner iteration of the working set → (new ``[u1, u2, p11, p12, p21, p22]``, per-pair Σ|Δu|² (float64)).

    Thresholding: ``v = u + clamp(−ρ/|∇I1w|², ±λθ)·∇I1w`` (OpenCV's three cases in one clamp; where
    ``|∇I1w|² ≤ float32 eps`` the step is 0, OpenCV's differs there by at most λθ·|∇I1w| < 2e-5 px).
    """
    u1, u2, p11, p12, p21, p22 = work
    i1wx, i1wy, inv_grad, rho_c = consts
    rho = torch.addcmul(torch.addcmul(rho_c, i1wx, u1), i1wy, u2)
    fi = torch.clamp(-rho * inv_grad, -l_t, l_t)
    n1 = torch.add(torch.addcmul(u1, fi, i1wx), divergence(p11, p12), alpha=theta)
    n2 = torch.add(torch.addcmul(u2, fi, i1wy), divergence(p21, p22), alpha=theta)
    d1, d2 = n1 - u1, n2 - u2
    err = torch.sum(torch.addcmul(d1 * d1, d2, d2), dim=(1, 2), dtype=torch.float64)
    u1x, u1y = forward_gradient(n1)
    u2x, u2y = forward_gradient(n2)
    ng1 = torch.hypot(u1x, u1y).mul_(taut).add_(1.0)
    ng2 = torch.hypot(u2x, u2y).mul_(taut).add_(1.0)
    return [
        n1,
        n2,
        torch.add(p11, u1x, alpha=taut).div_(ng1),
        torch.add(p12, u1y, alpha=taut).div_(ng1),
        torch.add(p21, u2x, alpha=taut).div_(ng2),
        torch.add(p22, u2y, alpha=taut).div_(ng2),
    ], err


def dual_tvl1(
    i0: torch.Tensor,
    i1: torch.Tensor,
    p: TVL1Params,
    check_every: int | None = None,
    return_iterations: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dual TV-L1 flow of a batch: ``i0``, ``i1`` float32 ``B×H×W`` grey levels (0..255) → ``B×2×H×W`` (u, v) px.

    ``check_every``: inner iterations between host synchronisations that drop converged pairs from the working
    set (1 on the CPU, 10 on CUDA by default); it changes the speed, never the result. With
    ``return_iterations`` also returns the inner iterations each pair ran (``B`` int64, all scales and warps).
    """
    if p.gamma != 0:
        raise ValueError(f"gamma={p.gamma}: tvl1-torch implements gamma = 0 only (no gradient-constancy term)")
    if p.median_filtering not in (1, 3, 5) and p.median_filtering > 1:
        raise ValueError(f"median_filtering={p.median_filtering}: OpenCV allows 3 or 5 on float flow (1 = off)")
    if check_every is None:
        check_every = 1 if i0.device.type == "cpu" else 10
    sizes = _scale_sizes(i0.shape[-2], i0.shape[-1], p)
    i0s, i1s = [i0], [i1]
    inv = 1.0 / p.scale_step
    for h, w in sizes[1:]:
        i0s.append(resize_linear(i0s[-1], h, w, inv, inv))
        i1s.append(resize_linear(i1s[-1], h, w, inv, inv))
    h, w = sizes[-1]
    u = torch.zeros(i0.shape[0], 2, h, w, dtype=i0.dtype, device=i0.device)
    count = torch.zeros(i0.shape[0], dtype=torch.int64, device=i0.device)
    for s in range(len(sizes) - 1, -1, -1):
        u = _one_scale(i0s[s], i1s[s], u, p, check_every, count)
        if s == 0:
            break
        (h0, w0), (h1, w1) = sizes[s], sizes[s - 1]
        u = resize_linear(u, h1, w1, h0 / h1, w0 / w1) * np.float32(inv).item()
    return (u, count) if return_iterations else u


# ------------------------------------------------------------------------------------------------ NumPy entry points
def _as_grey_stack(frames: np.ndarray | Sequence[np.ndarray], name: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(f"{name}: expected uint8 grey frames B×H×W, got {arr.dtype} {arr.shape}")
    if min(arr.shape[1:]) < 3:
        raise ValueError(f"{name}: frames of {arr.shape[1]}×{arr.shape[2]} px are too small for TV-L1")
    return arr


def tvl1_torch_batch(
    first: np.ndarray | Sequence[np.ndarray],
    second: np.ndarray | Sequence[np.ndarray],
    params: TVL1Params | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Dual TV-L1 flows of pairs ``(first[k], second[k])``, uint8 grey ``B×H×W`` each → float32 ``B×H×W×2``.

    ``(u, v)`` in pixels from ``first`` to ``second`` (``first(x, y) ≈ second(x + u, y + v)``), the flow of
    ``cv2.optflow.DualTVL1OpticalFlow`` with the same parameters (median difference ≈ 0.01 px). Pairs are run
    ``batch_size`` at a time on ``device`` (``auto``, ``cpu``, ``cuda``); the result does not depend on it.
    On the CPU the call uses ``threads`` PyTorch threads (restored afterwards): the scheme is thousands of small
    elementwise steps, and with more threads than idle cores each step's barrier waits for a descheduled thread
    (measured on the shared 2-core machine: 1 thread 0.58 s CPU a pair, 2 threads 5–20 s). Parallelism comes
    from worker processes, as for OpenCV.
    """
    p = params or TVL1Params()
    a, b = _as_grey_stack(first, "first"), _as_grey_stack(second, "second")
    if a.shape != b.shape:
        raise ValueError(f"frame stacks differ in shape: {a.shape} vs {b.shape}")
    dev = resolve_device(device)
    n, h, w = a.shape
    size = batch_size or default_batch_size(dev, h, w)
    out = np.empty((n, h, w, 2), dtype=np.float32)
    before = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for start in range(0, n, size):
                stop = min(n, start + size)
                i0 = torch.from_numpy(a[start:stop]).to(dev, torch.float32)
                i1 = torch.from_numpy(b[start:stop]).to(dev, torch.float32)
                flow = dual_tvl1(i0, i1, p)
                out[start:stop] = flow.permute(0, 2, 3, 1).cpu().numpy()
    finally:
        torch.set_num_threads(before)
    return out


def tvl1_torch(a: np.ndarray, b: np.ndarray, params: TVL1Params | None = None, device: str = "cpu", **overrides):
    """Dual TV-L1 flow of one uint8 grey pair ``H×W`` → float32 ``H×W×2``; ``overrides`` replace fields of
    ``params`` (as :func:`mer.pipeline.flow.optical_flow.tvl1`)."""
    p = replace(params or TVL1Params(), **overrides) if overrides else (params or TVL1Params())
    return tvl1_torch_batch(np.asarray(a)[None], np.asarray(b)[None], p, device)[0]
