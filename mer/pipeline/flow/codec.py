"""Compact fixed-point storage of flow fields (int16, 1/256-pixel steps by default).

Precision with the default ``scale = 256`` (steps of 1/256 px):
- rounding to the nearest step → absolute error ≤ 1/512 px ≈ 0.00195 px for every value inside the range;
- range ±32767/256 ≈ ±127.996 px; values beyond it are **clipped** (saturated) to the range end, so their
  error is ``|x| − 127.996`` — far beyond any face motion at 256 px; the code -32768 is never produced;
- NaN is rejected (``ValueError``); ±inf saturate like any out-of-range value.
Half the bytes of float32, and unlike float16 the error does not grow with magnitude (float16 keeps 11
significant bits: 1/32 px steps at 64 px, and ±65504 range that flow never needs).
"""

from __future__ import annotations

import numpy as np

FLOW_SCALE: float = 256.0
_QMAX = 32767


def flow_codec_max_error(scale: float = FLOW_SCALE) -> float:
    """Worst-case absolute error of a round trip ``decode_flow(encode_flow(x, scale), scale)`` for in-range x.

    Parameters
    ----------
    scale : float, default FLOW_SCALE (256)
        Codes per pixel.

    Returns
    -------
    float
        ``0.5 / scale`` pixels (half a step).
    """
    return 0.5 / scale


def flow_codec_range(scale: float = FLOW_SCALE) -> float:
    """Largest magnitude stored without clipping.

    Parameters
    ----------
    scale : float, default FLOW_SCALE (256)
        Codes per pixel.

    Returns
    -------
    float
        ``32767 / scale`` pixels (≈ 127.996 px at the default scale).
    """
    return _QMAX / scale


def encode_flow(flow: np.ndarray, scale: float = FLOW_SCALE) -> np.ndarray:
    """Encode flow values as int16 fixed point, ``round(flow × scale)`` saturated to ±32767.

    Parameters
    ----------
    flow : numpy.ndarray
        Flow values in pixels, any shape and real dtype (rounded in float64, half to even); ±inf saturate.
    scale : float, default FLOW_SCALE (256)
        Codes per pixel, ``> 0``.

    Returns
    -------
    numpy.ndarray
        int16, same shape, in ``-32767 .. 32767`` (-32768 is never produced).

    Raises
    ------
    ValueError
        If ``scale <= 0`` or ``flow`` contains NaN.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    x = np.asarray(flow, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("flow contains NaN")
    q = np.rint(x * scale)
    np.clip(q, -_QMAX, _QMAX, out=q)
    return q.astype(np.int16)


def decode_flow(code: np.ndarray, scale: float = FLOW_SCALE) -> np.ndarray:
    """Decode int16 fixed point from :func:`encode_flow` back to pixels.

    Parameters
    ----------
    code : numpy.ndarray
        int16 codes, any shape.
    scale : float, default FLOW_SCALE (256)
        Codes per pixel the codes were made with, ``> 0``.

    Returns
    -------
    numpy.ndarray
        float32, same shape: ``code / scale`` in pixels.

    Raises
    ------
    ValueError
        If ``scale <= 0``.
    TypeError
        If ``code`` is not int16.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    code = np.asarray(code)
    if code.dtype != np.int16:
        raise TypeError(f"decode_flow expects int16, got {code.dtype}")
    return (code.astype(np.float32) / np.float32(scale)).astype(np.float32)
