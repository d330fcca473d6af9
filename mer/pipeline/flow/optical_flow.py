"""Dense optical flow kernels: Farneback and TV-L1, optical strain, frame-pair modes.

Conventions (project-wide): frames are ``uint8`` RGB ``H×W×3`` (or grey ``H×W``); a flow field is float32
``H×W×2`` holding ``(u, v)`` in pixels from frame ``a`` to frame ``b``: ``u`` along x (columns, positive to
the right), ``v`` along y (rows, positive downwards), so that ``a(x, y) ≈ b(x + u, y + v)``.

Kernels are pure functions with no I/O and no global state. OpenCV's thread count is process-wide state:
the runner gives each worker process one OpenCV thread (the workers fill the cores); ``recommended_cv_threads``
says what a lone process would gain from more, as measured by ``benchmarks/bench_flow.py``.

Optical strain lives in :mod:`mer.pipeline.flow.strain`, flow images for networks in
:mod:`mer.pipeline.flow.image`, the compact int16 codec in :mod:`mer.pipeline.flow.codec`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from mer.pipeline.flow.tvl1_params import TVL1Params

FlowMethod = Literal["farneback", "tvl1", "tvl1-torch"]
PairMode = Literal["onset-apex", "apex-offset", "sequence", "from-onset"]
PAIR_MODES: tuple[str, ...] = ("onset-apex", "apex-offset", "sequence", "from-onset")
FLOW_METHODS: tuple[str, ...] = ("farneback", "tvl1", "tvl1-torch")
TORCH_METHODS: tuple[str, ...] = ("tvl1-torch",)
"""Methods run by PyTorch on a chosen device, a batch of pairs per call (:mod:`mer.pipeline.flow.tvl1_torch`)."""


# --------------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FarnebackParams:
    """Parameters of ``cv2.calcOpticalFlowFarneback``, tuned for 256-px aligned faces with sub-pixel motion.

    Defaults differ from OpenCV's sample values (box window, poly_sigma 1.2) in two places chosen by measured
    end-point error on a real face (256 px) warped by smooth and by localised known fields of 0.3–3 px with
    sensor noise: a Gaussian window and poly_sigma 1.1 (the value OpenCV documents for poly_n 5) cut the
    median error by 10–40 % on motions ≥ 1 px at no cost in speed (≈15 ms per pair).

    Attributes
    ----------
    pyr_scale : float, default 0.5
        Image scale (<1) between pyramid levels.
    levels : int, default 3
        Number of pyramid levels (including the full-resolution one).
    winsize : int, default 15
        Averaging window size; larger is smoother and more robust to noise.
    iterations : int, default 3
        Iterations per pyramid level.
    poly_n : int, default 5
        Pixel neighbourhood of the polynomial expansion (5 or 7).
    poly_sigma : float, default 1.1
        Gaussian sigma of the polynomial expansion (1.1 for poly_n 5, 1.5 for poly_n 7).
    gaussian : bool, default True
        Use a Gaussian window instead of a box filter (``OPTFLOW_FARNEBACK_GAUSSIAN``).
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.1
    gaussian: bool = True


# --------------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------------
def to_grey(frame: np.ndarray) -> np.ndarray:
    """Convert a frame to grey levels (ITU-R 601 luma, as OpenCV's ``COLOR_RGB2GRAY``).

    Parameters
    ----------
    frame : numpy.ndarray
        uint8 RGB ``H×W×3``, or grey ``H×W`` / ``H×W×1``.

    Returns
    -------
    numpy.ndarray
        uint8 ``H×W``, C-contiguous, grey levels 0..255 (a grey frame unchanged).

    Raises
    ------
    TypeError
        If ``frame`` is not uint8.
    ValueError
        If ``frame`` is not ``H×W``, ``H×W×1`` or ``H×W×3``.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise TypeError(f"to_grey expects uint8 frames, got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(frame[:, :, 0])
    raise ValueError(f"to_grey expects H×W or H×W×3, got shape {frame.shape}")


def _grey_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ga, gb = to_grey(a), to_grey(b)
    if ga.shape != gb.shape:
        raise ValueError(f"frames differ in size: {ga.shape} vs {gb.shape}")
    return ga, gb


def farneback(a: np.ndarray, b: np.ndarray, params: FarnebackParams | None = None, **overrides) -> np.ndarray:
    """Farneback dense flow from frame ``a`` to frame ``b``.

    Fast (≈14–17 ms CPU at 256×256) but smoother and less accurate than TV-L1.

    Parameters
    ----------
    a, b : numpy.ndarray
        uint8 frames of one size, RGB ``H×W×3`` or grey ``H×W`` (see :func:`to_grey`).
    params : FarnebackParams, optional
        Kernel parameters (default ``FarnebackParams()``).
    **overrides
        Fields of ``params`` to replace (e.g. ``farneback(a, b, winsize=21)``).

    Returns
    -------
    numpy.ndarray
        float32 ``H×W×2``, ``(u, v)`` in pixels with ``a(x, y) ≈ b(x + u, y + v)``.

    Raises
    ------
    ValueError
        If the frames differ in size or are not frames (see :func:`to_grey`).
    TypeError
        If ``params`` is not a ``FarnebackParams`` or a frame is not uint8; an unknown override field.
    """
    p = _params(FarnebackParams, params, overrides)
    ga, gb = _grey_pair(a, b)
    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if p.gaussian else 0
    flow = cv2.calcOpticalFlowFarneback(
        ga, gb, None, p.pyr_scale, p.levels, p.winsize, p.iterations, p.poly_n, p.poly_sigma, flags
    )
    return np.ascontiguousarray(flow, dtype=np.float32)


def _tvl1_engine(p: TVL1Params):
    eng = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p.tau,
        lambda_=p.lambda_,
        theta=p.theta,
        nscales=p.nscales,
        warps=p.warps,
        epsilon=p.epsilon,
        innnerIterations=p.inner_iterations,  # sic: OpenCV's keyword has three n's
        outerIterations=p.outer_iterations,
        scaleStep=p.scale_step,
        gamma=p.gamma,
        medianFiltering=p.median_filtering,
        useInitialFlow=False,
    )
    return eng


def tvl1(a: np.ndarray, b: np.ndarray, params: TVL1Params | None = None, **overrides) -> np.ndarray:
    """Dual TV-L1 dense flow from frame ``a`` to frame ``b`` (OpenCV's ``DualTVL1OpticalFlow``).

    Accurate, edge-preserving flow (the usual choice in MER papers); ≈0.44 s CPU per 256×256 pair with
    the default parameters. A fresh OpenCV object is built per call, so the result never depends on a previous call.

    Parameters
    ----------
    a, b : numpy.ndarray
        uint8 frames of one size, RGB ``H×W×3`` or grey ``H×W`` (see :func:`to_grey`).
    params : TVL1Params, optional
        Kernel parameters (default ``TVL1Params()``).
    **overrides
        Fields of ``params`` to replace (e.g. ``tvl1(a, b, warps=3)``).

    Returns
    -------
    numpy.ndarray
        float32 ``H×W×2``, ``(u, v)`` in pixels with ``a(x, y) ≈ b(x + u, y + v)``.

    Raises
    ------
    ValueError
        If the frames differ in size or are not frames (see :func:`to_grey`).
    TypeError
        If ``params`` is not a ``TVL1Params`` or a frame is not uint8; an unknown override field.
    """
    p = _params(TVL1Params, params, overrides)
    ga, gb = _grey_pair(a, b)
    flow = _tvl1_engine(p).calc(ga, gb, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _params(cls, params, overrides):
    if params is None:
        params = cls()
    elif not isinstance(params, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(params).__name__}")
    if overrides:
        params = replace(params, **overrides)
    return params


def compute_flow(
    a: np.ndarray,
    b: np.ndarray,
    method: FlowMethod = "tvl1",
    params: FarnebackParams | TVL1Params | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Flow from frame ``a`` to frame ``b`` with the named method.

    Parameters
    ----------
    a, b : numpy.ndarray
        uint8 frames of one size, RGB ``H×W×3`` or grey ``H×W``.
    method : {"farneback", "tvl1", "tvl1-torch"}, default "tvl1"
        The kernel: :func:`farneback`, :func:`tvl1` or :func:`mer.pipeline.flow.tvl1_torch.tvl1_torch_batch`.
    params : FarnebackParams or TVL1Params, optional
        The method's parameters (its defaults when None).
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; used by ``tvl1-torch`` only.

    Returns
    -------
    numpy.ndarray
        float32 ``H×W×2``, ``(u, v)`` in pixels.

    Raises
    ------
    ValueError
        If ``method`` is unknown, or the frames or ``device`` are invalid.
    """
    if method == "tvl1-torch":
        return compute_flow_batch(to_grey(a)[None], to_grey(b)[None], method, params, device)[0]
    if method == "farneback":
        return farneback(a, b, params)
    if method == "tvl1":
        return tvl1(a, b, params)
    raise ValueError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")


def compute_flow_batch(
    first: np.ndarray,
    second: np.ndarray,
    method: FlowMethod = "tvl1",
    params: FarnebackParams | TVL1Params | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Flows of the pairs ``(first[k], second[k])`` of two frame stacks.

    ``tvl1-torch`` runs the pairs in batches on ``device`` (importing torch on its first use); the OpenCV
    methods run them one by one.

    Parameters
    ----------
    first, second : numpy.ndarray
        uint8 grey ``B×H×W`` stacks of one shape (flow from ``first[k]`` to ``second[k]``).
    method : {"farneback", "tvl1", "tvl1-torch"}, default "tvl1"
        The kernel (see :func:`compute_flow`).
    params : FarnebackParams or TVL1Params, optional
        The method's parameters (its defaults when None).
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; used by ``tvl1-torch`` only.

    Returns
    -------
    numpy.ndarray
        float32 ``B×H×W×2``, ``(u, v)`` in pixels.

    Raises
    ------
    ValueError
        If ``method`` is unknown, or the frames or ``device`` are invalid.
    """
    if method in TORCH_METHODS:
        from mer.pipeline.flow.tvl1_torch import tvl1_torch_batch  # torch is imported only when asked for

        return tvl1_torch_batch(first, second, _params(TVL1Params, params, {}), device)
    out = np.empty((*np.shape(first), 2), dtype=np.float32)
    for k in range(len(first)):
        out[k] = compute_flow(first[k], second[k], method, params)
    return out


# --------------------------------------------------------------------------------------------------------
# Frame pairs
# --------------------------------------------------------------------------------------------------------
def frame_pairs(mode: PairMode, n_frames: int, apex: int | None = None) -> list[tuple[int, int]]:
    """The frame pairs ``(a, b)`` (flow from frame a to frame b) a pair mode takes from a clip.

    Parameters
    ----------
    mode : {"onset-apex", "apex-offset", "sequence", "from-onset"}
        ``onset-apex`` → ``[(0, apex)]``; ``apex-offset`` → ``[(apex, T-1)]``; ``sequence`` → consecutive
        ``[(0,1), …, (T-2,T-1)]``; ``from-onset`` → ``[(0,1), (0,2), …, (0,T-1)]``.
    n_frames : int
        Clip length ``T >= 1``, onset to offset.
    apex : int, optional
        0-based position of the apex within the clip (onset = 0); needed only by the first two modes.

    Returns
    -------
    list of tuple of int
        0-based positions ``(a, b)`` within the clip; empty for ``sequence``/``from-onset`` on a one-frame clip.

    Raises
    ------
    ValueError
        If ``mode`` is unknown, ``n_frames < 1``, or ``apex`` is missing or outside ``0 .. T-1`` where needed.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    last = n_frames - 1
    if mode in ("onset-apex", "apex-offset"):
        if apex is None:
            raise ValueError(f"mode {mode!r} needs an apex index")
        if not 0 <= apex <= last:
            raise ValueError(f"apex {apex} outside the clip [0, {last}]")
        return [(0, int(apex))] if mode == "onset-apex" else [(int(apex), last)]
    if mode == "sequence":
        return [(t, t + 1) for t in range(last)]
    if mode == "from-onset":
        return [(0, t) for t in range(1, n_frames)]
    raise ValueError(f"unknown pair mode {mode!r}; expected one of {PAIR_MODES}")


def compute_flows(
    frames: np.ndarray | Sequence[np.ndarray],
    mode: PairMode,
    apex: int | None = None,
    method: FlowMethod = "tvl1",
    params: FarnebackParams | TVL1Params | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Flows of all the pairs a pair mode takes from a clip (:func:`frame_pairs`), in pair order.

    Each frame is converted to grey once; ``tvl1-torch`` runs the pairs in batches on ``device``.

    Parameters
    ----------
    frames : numpy.ndarray or sequence of numpy.ndarray
        Clip ``T×H×W×3`` (uint8 RGB) or ``T×H×W`` (grey), onset first.
    mode : {"onset-apex", "apex-offset", "sequence", "from-onset"}
        The pair mode (see :func:`frame_pairs`).
    apex : int, optional
        0-based position of the apex within the clip; needed by ``onset-apex`` and ``apex-offset``.
    method : {"farneback", "tvl1", "tvl1-torch"}, default "tvl1"
        The kernel (see :func:`compute_flow`).
    params : FarnebackParams or TVL1Params, optional
        The method's parameters (its defaults when None).
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; used by ``tvl1-torch`` only.

    Returns
    -------
    numpy.ndarray
        float32 ``P×H×W×2``, ``(u, v)`` in pixels; ``0×H×W×2`` when the mode gives no pair.

    Raises
    ------
    ValueError
        If the clip is empty, or the mode, apex, method or device is invalid.
    """
    n = len(frames)
    if n == 0:
        raise ValueError("empty clip")
    pairs = frame_pairs(mode, n, apex)
    needed = sorted({i for pair in pairs for i in pair})
    grey = {i: to_grey(np.asarray(frames[i])) for i in needed}
    h, w = to_grey(np.asarray(frames[0])).shape if not needed else grey[needed[0]].shape
    if not pairs:
        return np.empty((0, h, w, 2), dtype=np.float32)
    first = np.stack([grey[i] for i, _ in pairs])
    second = np.stack([grey[j] for _, j in pairs])
    return compute_flow_batch(first, second, method, params, device)


# --------------------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------------------
def recommended_cv_threads(method: FlowMethod, workers: int, cores: int | None = None) -> int:
    """OpenCV threads per worker process for ``method`` when ``workers`` processes share ``cores`` cores.

    From ``benchmarks/bench_flow.py`` (2 cores, 256×256; figures in its docstring): Farneback gains nothing
    from a second OpenCV thread (≈14 ms CPU per pair either way), so it always gets 1 thread and
    parallelism comes from processes (2 workers × 1 thread: up to 87 % wall efficiency, 100 % CPU
    efficiency). TV-L1 has parallel loops, so a lone worker may use every core; with several workers each
    gets its share (``cores // workers``, at least 1): 2 workers × 1 thread reached 100 % efficiency, while
    2 workers × 2 threads (oversubscribed) fell to ≈60 %. Results are bit-identical for any thread count.
    ``cores`` defaults to ``os.cpu_count()``. ``tvl1-torch`` uses no OpenCV thread in its loop (it sets its own
    PyTorch threads, see :func:`mer.pipeline.flow.tvl1_torch.tvl1_torch_batch`): 1.

    Parameters
    ----------
    method : {"farneback", "tvl1", "tvl1-torch"}
        The flow method the workers run.
    workers : int
        Worker processes, ``>= 1``.
    cores : int, optional
        CPU cores they share (default ``os.cpu_count()``).

    Returns
    -------
    int
        Threads for ``cv2.setNumThreads`` in each worker, ``>= 1``.

    Raises
    ------
    ValueError
        If ``method`` is unknown or ``workers < 1``.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cores = cores or os.cpu_count() or 1
    if method in ("farneback", "tvl1-torch"):
        return 1
    return max(1, cores // workers)
