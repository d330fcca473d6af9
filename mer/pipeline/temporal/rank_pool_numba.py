"""The Numba kernels of :func:`mer.pipeline.temporal.rank_pool.rank_pool` (imported on the first pooling, so that
importing the pipeline does not load Numba).

The kernel splits the flattened values of a frame into tiles and runs the tiles in parallel (``prange``). A
tile's float32 accumulator (a slice of the output) stays in cache while the frames stream through it eight at a
time, so every frame byte is read once, as uint8, with no float copy of the clip. The result of each output value
does not depend on the tiling or the thread count (same bytes).
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
def pool_kernel(frames, w, out, tile):  # pragma: no cover - compiled
    """Write ``out[i] = sum_t w[t] * frames[t, i]`` tile by tile, in parallel over tiles.

    Parameters
    ----------
    frames : numpy.ndarray
        uint8 or float32 ``T x N`` (a clip's frames flattened), C-contiguous.
    w : numpy.ndarray
        float32 ``T`` weights.
    out : numpy.ndarray
        float32 ``N``, overwritten.
    tile : int
        Values per tile (see :func:`tile_size`).

    Returns
    -------
    None
        The result is written into ``out``.
    """
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


def tile_size(n_values: int) -> int:
    """Tile size of :func:`pool_kernel` for a frame of ``n_values`` values.

    Parameters
    ----------
    n_values : int
        Values per frame (``H·W·C``).

    Returns
    -------
    int
        About four tiles per Numba thread (load balance), a multiple of 256 clamped to ``MIN_TILE .. MAX_TILE``.
    """
    per = -(-n_values // (4 * numba.get_num_threads()))
    per = -(-per // 256) * 256
    return int(min(MAX_TILE, max(MIN_TILE, per)))
