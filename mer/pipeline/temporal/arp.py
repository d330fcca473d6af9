"""Approximate rank pooling (ARP) frame weights: dynamic images and MESTI.

Rank pooling fits a linear scorer whose pairwise constraints say which frame must score higher; one
gradient step from zero (Bilen et al.'s approximate rank pooling) gives pooled = sum_t w_t * frame_t with
``w_t = (#pairs where t must rank higher) - (#pairs where t must rank lower)``.
The schemes below are the forms derived in ``shared/reference/methods.md`` section 1 (0-based frames
``t = 0..T-1``, apex ``a``):

=================  ==================================================================================
``di-linear``      later frame ranks higher: ``w_t = 2t - T + 1``
``di``             Bilen's dynamic image (time-averaged features):
                   ``w_t = sum_{j=t+1..T} (2j - T - 1)/j = 2(T-t) - (T+1)(H_T - H_t)``
``mesti``          onset->apex: later ranks higher; apex->offset: earlier ranks higher; the apex is in
                   both segments: ``w_t = 2t - a`` (t < a), ``w_a = T - 1``, ``w_t = T + a - 2t - 1`` (t > a)
``mesti-distance`` the frame closer to the apex ranks higher, over all pairs:
                   ``w_t = #{j: |j-a| > |t-a|} - #{j: |j-a| < |t-a|}``
=================  ==================================================================================

All weights sum to zero for T >= 2 (a constant clip pools to an all-zero image).
"""

from __future__ import annotations

import numpy as np

from mer.pipeline.temporal.apex import check_apex

SCHEMES: tuple[str, ...] = ("mesti", "mesti-distance", "di", "di-linear")
"""Known weighting schemes; the MESTI ones need an apex."""

APEX_SCHEMES: frozenset[str] = frozenset({"mesti", "mesti-distance"})


def _mesti(n: int, a: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    w = np.where(t < a, 2 * t - a, n + a - 2 * t - 1)
    w[a] = n - 1
    return w


def _mesti_distance(n: int, a: int) -> np.ndarray:
    d = np.abs(np.arange(n) - a)
    farther = (d[None, :] > d[:, None]).sum(axis=1)
    closer = (d[None, :] < d[:, None]).sum(axis=1)
    return (farther - closer).astype(np.float64)


def _di(n: int) -> np.ndarray:
    # w_t = sum_{j=t+1..n} (2j - n - 1)/j, as a reversed cumulative sum of the per-j terms.
    j = np.arange(1, n + 1, dtype=np.float64)
    terms = (2 * j - n - 1) / j
    return np.cumsum(terms[::-1])[::-1].copy()


def arp_weights(n_frames: int, apex: int | None = None, scheme: str = "mesti") -> np.ndarray:
    """Frame weights of approximate rank pooling under ``scheme`` (the formulas of the module docstring).

    Parameters
    ----------
    n_frames : int
        Clip length ``T >= 1`` (onset to offset).
    apex : int, optional
        0-based position of the apex within the clip (onset = 0); required by ``mesti`` and ``mesti-distance``,
        checked when given for the other schemes (which ignore it).
    scheme : {"mesti", "mesti-distance", "di", "di-linear"}, default "mesti"
        The weighting scheme.

    Returns
    -------
    numpy.ndarray
        float64 ``T``: weight ``w_t`` of frame ``t`` (dimensionless; they sum to 0 for ``T >= 2``).

    Raises
    ------
    ValueError
        If ``scheme`` is unknown, ``n_frames`` is not a positive integer, or ``apex`` is missing (MESTI schemes)
        or outside ``0 .. T-1``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown ARP scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    n = int(n_frames)
    if n != n_frames or n < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if scheme in APEX_SCHEMES or apex is not None:
        apex = check_apex(apex, n)
    if scheme == "mesti":
        return _mesti(n, apex)
    if scheme == "mesti-distance":
        return _mesti_distance(n, apex)
    if scheme == "di":
        return _di(n)
    return 2.0 * np.arange(n, dtype=np.float64) - n + 1
