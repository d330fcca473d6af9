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

Every step is per pixel or per pair (no matrix product), so a pair's field does not depend on the batch it was
computed in, nor on the number of CPU threads. The one sum, the stopping test's, is taken per pair in float64 on
the CPU (whose reduction order depends on the pair's size only) and in int64 fixed point elsewhere (terms rounded
to 2^-24 px²): the order of PyTorch's CUDA reductions depends on how many pairs the batch holds, and only an
integer sum is the same in every order. CPU and CUDA results agree to float32 rounding, not bit for bit; the flow
stage keeps the device kind in its key.
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
    """The device name a flow key stores for a ``device`` option.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    str
        ``auto`` → ``cuda`` when CUDA is available, else ``cpu``; the others unchanged (whether CUDA exists is
        checked when the kernel runs, by :func:`resolve_device`).

    Raises
    ------
    ValueError
        If ``device`` is none of these.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise ValueError(f"device={device!r}; choose one of {', '.join(DEVICES)}")


def resolve_device(device: str) -> torch.device:
    """The torch device a ``device`` option runs on.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see :func:`check_device`).

    Returns
    -------
    torch.device
        CUDA for ``auto`` when available, else the CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given.

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names CUDA where none is available.
    """
    name = check_device(device)
    if name != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device is available (use cpu or auto)")
    return torch.device(name)


def default_batch_size(device: torch.device, height: int, width: int) -> int:
    """Pairs per batch of :func:`tvl1_torch_batch` on a device.

    CPU: about 64k pixels a batch (1 pair at 256×256), as larger batches fall out of cache (measured 0.51 s CPU a
    pair one at a time, 0.62 s in batches of 8). CUDA: as many as fit in a quarter of the free memory at ≈ 40
    float32 maps per pair (state, warped images, temporaries), at most 512.

    Parameters
    ----------
    device : torch.device
        Where the batch runs.
    height, width : int
        Frame size in pixels.

    Returns
    -------
    int
        Pairs per batch, ``>= 1``.
    """
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
    """Bilinear resize of maps as ``cv::resize`` INTER_LINEAR does it (horizontal pass, then vertical).

    Parameters
    ----------
    x : torch.Tensor
        float32 ``…×H×W`` maps.
    height, width : int
        Output size in pixels.
    scale_y, scale_x : float
        Source pixels per output pixel along y and x (``H / height``, ``W / width`` for a plain resize).

    Returns
    -------
    torch.Tensor
        float32 ``…×height×width`` on the device of ``x``, values in the unit of ``x``.
    """
    return _resize_axis(_resize_axis(x, -1, width, scale_x), -2, height, scale_y)


def centred_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred spatial gradient of maps, as OpenCV's TV-L1 computes it for the second image.

    Parameters
    ----------
    img : torch.Tensor
        float32 ``B×H×W`` maps.

    Returns
    -------
    tuple of torch.Tensor
        ``(∂x, ∂y)``, each ``B×H×W`` in units of ``img`` per pixel: half the central difference, one-sided
        halves on the border columns/rows.
    """
    px = F.pad(img.unsqueeze(1), (1, 1, 0, 0), mode="replicate").squeeze(1)
    py = F.pad(img.unsqueeze(1), (0, 0, 1, 1), mode="replicate").squeeze(1)
    return 0.5 * (px[..., 2:] - px[..., :-2]), 0.5 * (py[..., 2:, :] - py[..., :-2, :])


def forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-difference gradient of maps.

    Parameters
    ----------
    u : torch.Tensor
        ``…×H×W`` maps.

    Returns
    -------
    tuple of torch.Tensor
        ``(∂x, ∂y)``, each ``…×H×W`` in units of ``u`` per pixel; 0 on the last column (x) and last row (y).
    """
    dx = F.pad(u[..., 1:] - u[..., :-1], (0, 1))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of a vector field (the adjoint of :func:`forward_gradient` up to sign).

    Parameters
    ----------
    px, py : torch.Tensor
        x and y components, ``…×H×W`` each; the values before the first column/row are taken as 0.

    Returns
    -------
    torch.Tensor
        ``…×H×W``, in units of the components per pixel.
    """
    return px - F.pad(px[..., :-1], (1, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))


def warp_bicubic(maps: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp maps by a flow: sample them at ``(x + u, y + v)`` (``cv::remap`` INTER_CUBIC, BORDER_CONSTANT).

    Keys bicubic interpolation (a = −0.75); taps outside the image read 0.

    Parameters
    ----------
    maps : torch.Tensor
        float32 ``B×C×H×W``.
    flow : torch.Tensor
        float32 ``B×2×H×W``, ``(u, v)`` in pixels.

    Returns
    -------
    torch.Tensor
        float32 ``B×C×H×W``, in units of ``maps``.
    """
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


STOP_SCALE = 2**24
"""Fixed-point unit of the stopping test's terms off the CPU: 2^-24 px². Terms are clamped to 2^13 px² (a change
of 90 px in one iteration, far above any threshold), so that an int64 sum holds 2^25 pixels a pair."""
_STOP_CLAMP = float(2**13)


def _one_scale(
    i0: torch.Tensor,
    i1: torch.Tensor,
    u: torch.Tensor,
    p: TVL1Params,
    check_every: int,
    count: torch.Tensor,
    fixed_point: bool = False,
) -> torch.Tensor:
    """TV-L1 warps at one scale for ``B×H×W`` images ``i0``, ``i1`` from the initial flow ``u`` (``B×2×H×W``);
    ``count`` (``B``, int64) gains each pair's inner iterations; ``fixed_point``: the stopping sum in int64."""
    b, h, w = i0.shape
    eps = p.epsilon * p.epsilon * h * w
    if fixed_point:
        eps = int(np.floor(eps * STOP_SCALE))  # an integer, so that the int64 sums are compared exactly
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
                new, err = _iterate(work, consts, *coef, fixed_point=fixed_point)
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


def _iterate(work, consts, l_t: float, theta: float, taut: float, fixed_point: bool = False):
    """One inner iteration of the working set → (new ``[u1, u2, p11, p12, p21, p22]``, per-pair Σ|Δu|²: float64,
    or with ``fixed_point`` int64 in units of 2^-24 px² (:data:`STOP_SCALE`), the same in any summation order).

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
    terms = torch.addcmul(d1 * d1, d2, d2)
    if fixed_point:  # power-of-two scaling is exact in float32; rounding is per element; integer sums associate
        err = torch.round(terms.clamp_max(_STOP_CLAMP) * float(STOP_SCALE)).to(torch.int64).sum(dim=(1, 2))
    else:
        err = torch.sum(terms, dim=(1, 2), dtype=torch.float64)
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
    fixed_point: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Dual TV-L1 flow of a batch of image pairs on their device (the scheme of the module docstring).

    Parameters
    ----------
    i0, i1 : torch.Tensor
        float32 ``B×H×W`` grey levels (0..255), flow from ``i0[k]`` to ``i1[k]``.
    p : TVL1Params
        Parameters; ``gamma`` must be 0 and ``median_filtering`` 1, 3 or 5.
    check_every : int, optional
        Inner iterations between host synchronisations that drop converged pairs from the working set (1 on
        the CPU, 10 on CUDA by default); it changes the speed, never the result.
    return_iterations : bool, default False
        Also return the inner iterations each pair ran.
    fixed_point : bool, optional
        Take the stopping test's per-pair sum in int64 fixed point (2^-24 px²) rather than float64 (default: off
        the CPU only, where the order of a float sum depends on the batch size); see the module docstring.

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        float32 ``B×2×H×W``, ``(u, v)`` in pixels; with ``return_iterations`` also int64 ``B`` (inner
        iterations over all scales and warps).

    Raises
    ------
    ValueError
        If ``p.gamma != 0``, ``p.median_filtering`` is not 1, 3 or 5, or a fixed-point pair has over 2^25 pixels.
    """
    if fixed_point is None:
        fixed_point = i0.device.type != "cpu"
    if fixed_point and i0.shape[-2] * i0.shape[-1] > 2**25:
        raise ValueError(f"frames of {i0.shape[-1]}×{i0.shape[-2]} px: the fixed-point stopping sum holds 2^25 px")
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
        u = _one_scale(i0s[s], i1s[s], u, p, check_every, count, fixed_point)
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
    """Dual TV-L1 flows of pairs of grey frames, the flow of ``cv2.optflow.DualTVL1OpticalFlow`` with the same
    parameters (median difference ≈ 0.01 px).

    On the CPU the call uses ``threads`` PyTorch threads (restored afterwards): the scheme is thousands of small
    elementwise steps, and with more threads than idle cores each step's barrier waits for a descheduled thread
    (measured on the shared 2-core machine: 1 thread 0.58 s CPU a pair, 2 threads 5–20 s). Parallelism comes
    from worker processes, as for OpenCV.

    Parameters
    ----------
    first, second : numpy.ndarray or sequence of numpy.ndarray
        uint8 grey ``B×H×W`` stacks of one shape, ``H, W >= 3``.
    params : TVL1Params, optional
        Parameters (default ``TVL1Params()``).
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    batch_size : int, optional
        Pairs per batch (default :func:`default_batch_size`); the result does not depend on it.
    threads : int, default 1
        PyTorch CPU threads during the call.

    Returns
    -------
    numpy.ndarray
        float32 ``B×H×W×2``, ``(u, v)`` in pixels from ``first`` to ``second``
        (``first(x, y) ≈ second(x + u, y + v)``).

    Raises
    ------
    ValueError
        If the stacks are not uint8 ``B×H×W``, are too small or differ in shape, or the device or parameters
        are invalid.
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
    """Dual TV-L1 flow of one grey pair (:func:`tvl1_torch_batch` of a batch of one).

    Parameters
    ----------
    a, b : numpy.ndarray
        uint8 grey ``H×W`` frames of one size.
    params : TVL1Params, optional
        Parameters (default ``TVL1Params()``).
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    **overrides
        Fields of ``params`` to replace (as :func:`mer.pipeline.flow.optical_flow.tvl1`).

    Returns
    -------
    numpy.ndarray
        float32 ``H×W×2``, ``(u, v)`` in pixels from ``a`` to ``b``.

    Raises
    ------
    ValueError
        If the frames, the device or the parameters are invalid.
    """
    p = replace(params or TVL1Params(), **overrides) if overrides else (params or TVL1Params())
    return tvl1_torch_batch(np.asarray(a)[None], np.asarray(b)[None], p, device)[0]
