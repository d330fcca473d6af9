"""Per-frame luminance equalisation (MESTI preprocessing), colour kept.

Each frame is converted to YCrCb; only the luma Y is changed, then the frame is converted back to RGB:

* ``hist`` (default, as the MESTI paper): global histogram equalisation of Y (``cv2.equalizeHist``),
  which makes Y's cumulative histogram close to a straight line;
* ``clahe``: contrast-limited adaptive equalisation of Y (``clip_limit``, ``tile_grid`` exposed);
* ``none``: the frames unchanged.

Grey frames (R = G = B) stay grey.
"""

from __future__ import annotations

import numpy as np

EQUALIZERS: tuple[str, ...] = ("hist", "clahe", "none")
DEFAULT_METHOD = "hist"
DEFAULT_CLIP_LIMIT = 2.0
DEFAULT_TILES = 8
"""The one home of the equalisation's defaults (read by :func:`equalize_frames` and the equalize stage)."""


def equalize_frames(
    frames: np.ndarray,
    method: str = DEFAULT_METHOD,
    *,
    clip_limit: float = DEFAULT_CLIP_LIMIT,
    tile_grid: tuple[int, int] = (DEFAULT_TILES, DEFAULT_TILES),
) -> np.ndarray:
    """Equalise the luminance (Y of YCrCb) of each frame, keeping its colour.

    Parameters
    ----------
    frames : ndarray, T×H×W×3 or H×W×3 uint8
        RGB frames (or one frame).
    method : {"hist", "clahe", "none"}
        Global histogram equalisation (MESTI), CLAHE, or a copy.
    clip_limit : float
        CLAHE clip limit (contrast limit per tile, in multiples of the mean bin).
    tile_grid : (int, int)
        CLAHE tiles (columns, rows).

    Returns
    -------
    ndarray, same shape as ``frames``, uint8
        The equalised RGB frames.

    Raises
    ------
    ValueError
        Naming the value of an unknown ``method``, or the dtype and shape of frames that are not uint8 …×H×W×3.
    """
    import cv2

    if method not in EQUALIZERS:
        raise ValueError(f"unknown equalisation {method!r}; choose one of {EQUALIZERS}")
    a = np.asarray(frames)
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"equalisation needs uint8 RGB frames (…×H×W×3), got {a.dtype} {a.shape}")
    if method == "none":
        return a.copy()
    single = a.ndim == 3
    clip = np.ascontiguousarray(a[None] if single else a)
    t, h, w, _ = clip.shape
    # one colour conversion for the whole clip: frames stacked vertically are one tall image
    ycc = cv2.cvtColor(clip.reshape(t * h, w, 3), cv2.COLOR_RGB2YCrCb).reshape(t, h, w, 3)
    y = np.ascontiguousarray(ycc[..., 0])
    if method == "hist":
        for i in range(t):
            ycc[i, :, :, 0] = cv2.equalizeHist(y[i])
    else:
        clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tuple(int(v) for v in tile_grid))
        for i in range(t):
            ycc[i, :, :, 0] = clahe.apply(y[i])
    out = cv2.cvtColor(ycc.reshape(t * h, w, 3), cv2.COLOR_YCrCb2RGB).reshape(t, h, w, 3)
    return out[0] if single else out
