"""Weighted sum of a clip's frames (the rank-pooling kernel): ``out = sum_t w_t * frames[t]``.

Computed by a tiled, parallel Numba kernel (:mod:`mer.pipeline.temporal.rank_pool_numba`) whose result does not
depend on the tiling or the thread count (same bytes).
"""

from __future__ import annotations

import numpy as np


def rank_pool(frames: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool a clip into the weighted sum of its frames, ``sum_t weights[t] * frames[t]``.

    uint8 and float32 frames are read in place (C-contiguous ones without any copy); other dtypes are
    converted to float32 first. Accumulation runs in float32 (fused multiply-adds, frames in order) with
    float32-rounded weights. Runs on Numba's current thread count (``numba.set_num_threads``); the first
    call in a fresh process loads or compiles the kernel (cached on disk).

    Parameters
    ----------
    frames : numpy.ndarray
        Clip ``T x H x W x C`` or ``T x H x W`` (any trailing shape), grey levels, any real dtype.
    weights : numpy.ndarray
        ``T`` finite weights, one per frame (e.g. from :func:`mer.pipeline.temporal.arp.arp_weights`).

    Returns
    -------
    numpy.ndarray
        float32 ``frames.shape[1:]``, in grey levels times weight; all zeros for a clip with no pixels.

    Raises
    ------
    ValueError
        If ``frames`` has fewer than 2 axes, ``weights`` is not one value per frame, or a weight is not finite.
    """
    frames = np.asarray(frames)
    w = np.asarray(weights, dtype=np.float64)
    if frames.ndim < 2:
        raise ValueError(f"frames must be T x H x W [x C], got shape {frames.shape}")
    if w.ndim != 1 or w.shape[0] != frames.shape[0]:
        raise ValueError(f"weights must have one value per frame: {w.shape} for {frames.shape[0]} frames")
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    if frames.dtype != np.uint8 and frames.dtype != np.float32:
        frames = frames.astype(np.float32)
    if frames.size == 0:
        return np.zeros(frames.shape[1:], dtype=np.float32)
    from mer.pipeline.temporal.rank_pool_numba import pool_kernel, tile_size  # Numba loads on the first pooling

    frames2d = np.ascontiguousarray(frames).reshape(frames.shape[0], -1)
    out = np.empty(frames2d.shape[1], dtype=np.float32)  # every value is written by the kernel
    pool_kernel(frames2d, w.astype(np.float32), out, tile_size(frames2d.shape[1]))
    return out.reshape(frames.shape[1:])
