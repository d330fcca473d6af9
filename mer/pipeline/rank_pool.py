"""Weighted sum of a clip's frames (the rank-pooling kernel): ``out = sum_t w_t * frames[t]``.

The Numba kernel splits the flattened values of a frame into tiles and runs the tiles in parallel
(``prange``). A tile's float32 accumulator (a slice of the output) stays in cache while the frames stream
through it eight at a time, so every frame byte is read once, as uint8, with no float copy of the clip.
The result of each output value does not depend on the tiling or the thread count (same bytes).
"""

from __future__ import annotations

import numba
import numpy as np

MAX_TILE = 16384
"""Largest tile (values): a 64 KiB float32 accumulator in L2 plus 8 x 16 KiB uint8 frame runs."""
MIN_TILE = 1024

_FM = {"contract"}  # allow fused multiply-add (one rounding instead of two); no reassociation


@numba.njit(inline="always", boundscheck=False, fastmath=_FM)
def _acc8(acc, f0, f1, f2, f3, f4, f5, f6, f7, w0, w1, w2, w3, w4, w5, w6, w7):  # pragma: no cover
    for i in range(acc.shape[0]):
        a = acc[i]
        a += w0 * np.float32(f0[i])
        a += w1 * np.float32(f1[i])
        a += w2 * np.float32(f2[i])
        a += w3 * np.float32(f3[i])
        a += w4 * np.float32(f4[i])
        a += w5 * np.float32(f5[i])
        a += w6 * np.float32(f6[i])
        a += w7 * np.float32(f7[i])
        acc[i] = a


@numba.njit(inline="always", boundscheck=False, fastmath=_FM)
def _acc1(acc, f0, w0):  # pragma: no cover
    for i in range(acc.shape[0]):
        acc[i] += w0 * np.float32(f0[i])


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False, fastmath=_FM)
def _pool_kernel(frames, w, out, tile):  # pragma: no cover - compiled
    n_t, n_p = frames.shape
    n_tiles = (n_p + tile - 1) // tile
    for b in numba.prange(n_tiles):
        s = b * tile
        e = min(s + tile, n_p)
        acc = out[s:e]
        acc[:] = 0.0
        t = 0
        while t + 8 <= n_t:
            _acc8(
                acc,
                frames[t, s:e],
                frames[t + 1, s:e],
                frames[t + 2, s:e],
                frames[t + 3, s:e],
                frames[t + 4, s:e],
                frames[t + 5, s:e],
                frames[t + 6, s:e],
                frames[t + 7, s:e],
                w[t],
                w[t + 1],
                w[t + 2],
                w[t + 3],
                w[t + 4],
                w[t + 5],
                w[t + 6],
                w[t + 7],
            )
            t += 8
        while t < n_t:
            _acc1(acc, frames[t, s:e], w[t])
            t += 1


def _tile_size(n_values: int) -> int:
    """About four tiles per thread (load balance), clamped to ``MIN_TILE..MAX_TILE``, a multiple of 256."""
    per = -(-n_values // (4 * numba.get_num_threads()))
    per = -(-per // 256) * 256
    return int(min(MAX_TILE, max(MIN_TILE, per)))


def rank_pool(frames: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool a clip ``T x H x W x C`` (or ``T x H x W``) into ``sum_t weights[t] * frames[t]``, float32.

    uint8 and float32 frames are read in place (C-contiguous ones without any copy); other dtypes are
    converted to float32 first. Accumulation runs in float32 (fused multiply-adds, frames in order) with
    float32-rounded weights. Runs on Numba's current thread count (``numba.set_num_threads``); the first
    call in a fresh process loads or compiles the kernel (cached on disk).
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
    frames2d = np.ascontiguousarray(frames).reshape(frames.shape[0], -1)
    out = np.empty(frames2d.shape[1], dtype=np.float32)  # every value is written by the kernel
    _pool_kernel(frames2d, w.astype(np.float32), out, _tile_size(frames2d.shape[1]))
    return out.reshape(frames.shape[1:])
