"""Temporal smoothing of landmark tracks that removes jitter without lagging real movements.

* ``one-euro`` (default): Casiez et al.'s 1€ filter, an exponential smoother whose cut-off frequency
  rises with the signal's speed (``fc = min_cutoff + beta·|speed|``), so a still face is smoothed hard
  while a real movement passes almost unfiltered. Frequencies are in cycles per *frame* (the rate is one
  sample per frame), so the defaults do not depend on a dataset's frame rate. Offline, the filter runs
  forwards and backwards and the two passes are averaged (``bidirectional=True``): the forward pass lags
  a ramp, the backward pass leads it by the same amount, so the average has no lag to first order.
* ``savgol``: Savitzky–Golay (centred least-squares polynomial), zero phase; steps are spread over
  about half a window on each side.
* ``none``: the raw track.

Arrays are ``T×...`` with time on axis 0; with ``point_axis=-1`` the speed is the Euclidean norm over
the last axis (x, y of one landmark), so both coordinates of a point share one cut-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SMOOTHERS: tuple[str, ...] = ("one-euro", "savgol", "none")


@dataclass(frozen=True)
class SmoothSettings:
    """The smoothers' settings; :data:`SMOOTH_DEFAULTS` is the one home of their defaults (the keyword defaults of
    :func:`one_euro`, :func:`savgol`, :func:`smooth_track` and the landmarks stage's parameters are read from it).

    Attributes
    ----------
    method : {"one-euro", "savgol", "none"}
        The smoother (one-euro).
    min_cutoff, beta, d_cutoff : float
        One-euro: cut-off of a still signal (0.04 cycles/frame), its increase per unit of speed (0.2 (cycles/frame)
        per (px/frame)) and the cut-off of the speed estimate (0.2 cycles/frame).
    bidirectional : bool
        One-euro: average the forward and the backward pass (True).
    window, polyorder : int
        Savitzky–Golay: window in frames (7) and polynomial order (2).
    """

    method: str = "one-euro"
    min_cutoff: float = 0.04
    beta: float = 0.2
    d_cutoff: float = 0.2
    bidirectional: bool = True
    window: int = 7
    polyorder: int = 2


SMOOTH_DEFAULTS = SmoothSettings()


def _alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau)


def _one_euro_pass(x: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    out = np.empty_like(x)
    a_d = float(_alpha(d_cutoff))
    prev = x[0].copy()
    dx_hat = np.zeros_like(prev)
    out[0] = prev
    for t in range(1, x.shape[0]):
        dx_hat = a_d * (x[t] - prev) + (1.0 - a_d) * dx_hat
        speed = np.sqrt(np.sum(dx_hat * dx_hat, axis=-1, keepdims=True))
        a = _alpha(min_cutoff + beta * speed)
        prev = a * x[t] + (1.0 - a) * prev
        out[t] = prev
    return out


def one_euro(
    x: np.ndarray,
    min_cutoff: float = SMOOTH_DEFAULTS.min_cutoff,
    beta: float = SMOOTH_DEFAULTS.beta,
    d_cutoff: float = SMOOTH_DEFAULTS.d_cutoff,
    bidirectional: bool = SMOOTH_DEFAULTS.bidirectional,
) -> np.ndarray:
    """1€-filter a track along time (Casiez et al.); the speed is the norm over the last axis.

    Parameters
    ----------
    x : ndarray, T×...×D
        The track, time on axis 0 (landmarks: T×68×2, pixels).
    min_cutoff : float
        Cut-off of a still signal, cycles per frame, > 0.
    beta : float
        Cut-off increase per unit of speed, (cycles/frame) per (px/frame), ≥ 0.
    d_cutoff : float
        Cut-off of the speed estimate, cycles per frame, > 0.
    bidirectional : bool
        Average the forward and the backward pass (no lag to first order).

    Returns
    -------
    ndarray, same shape as ``x``, float32
        The smoothed track (a track of under 2 samples unchanged).

    Raises
    ------
    ValueError
        Naming the values, unless ``min_cutoff > 0``, ``d_cutoff > 0`` and ``beta >= 0``.
    """
    if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise ValueError(
            f"one-euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0 (got {min_cutoff}, {d_cutoff}, {beta})"
        )
    a = np.asarray(x, dtype=np.float64)
    if a.shape[0] < 2:
        return a.astype(np.float32)
    fwd = _one_euro_pass(a, min_cutoff, beta, d_cutoff)
    if not bidirectional:
        return fwd.astype(np.float32)
    bwd = _one_euro_pass(a[::-1], min_cutoff, beta, d_cutoff)[::-1]
    return (0.5 * (fwd + bwd)).astype(np.float32)


def savgol(
    x: np.ndarray, window: int = SMOOTH_DEFAULTS.window, polyorder: int = SMOOTH_DEFAULTS.polyorder
) -> np.ndarray:
    """Savitzky–Golay filter a track along time (zero phase).

    Parameters
    ----------
    x : ndarray, T×...
        The track, time on axis 0.
    window : int
        Window in frames (odd; shrunk to the clip length when needed).
    polyorder : int
        Polynomial order; a window not above it leaves the track unchanged.

    Returns
    -------
    ndarray, same shape as ``x``, float32
        The smoothed track.
    """
    from scipy.signal import savgol_filter

    a = np.asarray(x, dtype=np.float64)
    n = a.shape[0]
    w = min(int(window), n if n % 2 else n - 1)
    if w <= polyorder:
        return a.astype(np.float32)
    return savgol_filter(a, w, int(polyorder), axis=0, mode="interp").astype(np.float32)


def smooth_track(
    x: np.ndarray,
    method: str = SMOOTH_DEFAULTS.method,
    *,
    min_cutoff: float = SMOOTH_DEFAULTS.min_cutoff,
    beta: float = SMOOTH_DEFAULTS.beta,
    d_cutoff: float = SMOOTH_DEFAULTS.d_cutoff,
    bidirectional: bool = SMOOTH_DEFAULTS.bidirectional,
    window: int = SMOOTH_DEFAULTS.window,
    polyorder: int = SMOOTH_DEFAULTS.polyorder,
) -> np.ndarray:
    """Smooth a landmark track with one of SMOOTHERS.

    Parameters
    ----------
    x : ndarray, T×...×2
        The track, time on axis 0, (x, y) pixels last.
    method : {"one-euro", "savgol", "none"}
        The smoother.
    min_cutoff : float
        One-euro: cut-off of a still signal, cycles per frame, > 0 (see :func:`one_euro`).
    beta : float
        One-euro: cut-off increase per unit of speed, (cycles/frame) per (px/frame), ≥ 0.
    d_cutoff : float
        One-euro: cut-off of the speed estimate, cycles per frame, > 0.
    bidirectional : bool
        One-euro: average the forward and the backward pass (no lag to first order).
    window : int
        Savitzky–Golay: window in frames (odd; shrunk to the clip length when needed; see :func:`savgol`).
    polyorder : int
        Savitzky–Golay: polynomial order; a window not above it leaves the track unchanged.

    Returns
    -------
    ndarray, same shape as ``x``, float32
        The smoothed track (a copy for ``"none"``).

    Raises
    ------
    ValueError
        Naming the value of an unknown ``method`` (and, from :func:`one_euro`, out-of-range one-euro parameters).
    """
    if method == "one-euro":
        return one_euro(x, min_cutoff, beta, d_cutoff, bidirectional)
    if method == "savgol":
        return savgol(x, window, polyorder)
    if method == "none":
        return np.asarray(x, dtype=np.float32).copy()
    raise ValueError(f"unknown smoothing method {method!r}; choose one of {SMOOTHERS}")
