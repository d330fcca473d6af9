"""Image kernels shared by the topics: resizing to a square network input and min-max scaling.

The single images (:mod:`mer.pipeline.temporal.single_image`) and the flow images (:mod:`mer.pipeline.flow.image`)
both use these, so one rule holds for every network input:

- **resize** to ``size × size``: ``cv2.INTER_AREA`` when no side grows (``size <= min(H, W)``: a box average, no
  aliasing), ``cv2.INTER_LINEAR`` otherwise; a non-square image is stretched. Values keep their units (a flow
  field's pixel units are scaled by :func:`mer.pipeline.flow.image.resize_flow`, not here).
- **min-max**: ``(x − min) · (top / (max − min))`` in float64 over the whole array (all channels jointly); a
  constant array maps to all zeros.

Plain functions on NumPy arrays, no I/O; they import no topic, so every topic may import them.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an image to ``size × size`` pixels, by area when no side grows and bilinearly otherwise.

    Parameters
    ----------
    image : numpy.ndarray
        ``H × W`` or ``H × W × C`` array of any real dtype (read as float32), in any unit.
    size : int
        Side of the output in pixels, ``>= 1``.

    Returns
    -------
    numpy.ndarray
        float32 ``size × size`` or ``size × size × C`` (the channel axis is kept, even for ``C = 1``), C-contiguous,
        in the unit of ``image``. ``cv2.INTER_AREA`` when ``size <= min(H, W)``, ``cv2.INTER_LINEAR`` otherwise;
        an image already ``size × size`` is returned as float32 without resampling (the input itself when it is
        already C-contiguous float32).

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or 3-D or ``size < 1``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"an image must be H x W or H x W x C, got shape {image.shape}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image, dtype=np.float32)
    interp = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (size, size), interpolation=interp)
    return out.reshape(size, size, *image.shape[2:])


def minmax_scale(image: np.ndarray, top: float = 1.0) -> np.ndarray:
    """Map the values of an array linearly onto ``0 .. top`` by its own minimum and maximum.

    Parameters
    ----------
    image : numpy.ndarray
        Array of any shape and real dtype (read as float64); minimum and maximum are taken over all of it.
    top : float, default 1.0
        The value the maximum maps to.

    Returns
    -------
    numpy.ndarray
        float64, same shape: ``(image − min) · (top / (max − min))``, so exactly 0 at the minimum; all zeros when
        the array is constant (or its maximum is NaN).

    Raises
    ------
    ValueError
        If ``image`` is empty (NumPy's error for the minimum of an empty array).
    """
    x = np.asarray(image, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.zeros(x.shape, dtype=np.float64)
    return (x - lo) * (top / (hi - lo))


def minmax_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an array to ``0 .. 255`` by its own minimum and maximum (all channels jointly), rounded to uint8.

    Parameters
    ----------
    image : numpy.ndarray
        Array of any shape and real dtype.

    Returns
    -------
    numpy.ndarray
        uint8, same shape: ``round(255 · (image − min) / (max − min))`` (:func:`minmax_scale` with ``top=255``,
        rounded half to even), exactly 0..255 for a non-constant array; all zeros for a constant one.

    Raises
    ------
    ValueError
        If ``image`` is empty.
    """
    return np.rint(minmax_scale(image, 255.0)).clip(0, 255).astype(np.uint8)
