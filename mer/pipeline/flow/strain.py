"""Optical strain of a flow field (the third channel of STSTNet-style flow images)."""

from __future__ import annotations

import numpy as np

from mer.pipeline.flow.fields import as_flow


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude of a flow field, ``sqrt(u_x² + v_y² + ½(u_y + v_x)²)``.

    Derivatives are central differences in the interior and one-sided (forward/backward) differences at
    the borders (``numpy.gradient`` with unit spacing), so a linear field gets its exact strain everywhere; a
    field one pixel high or wide has zero derivatives.

    Parameters
    ----------
    flow : numpy.ndarray
        ``H×W×2`` field ``(u, v)`` in pixels, any real dtype (computed in float32).

    Returns
    -------
    numpy.ndarray
        float32 ``H×W``, dimensionless (pixels of displacement per pixel of distance), ``>= 0``.

    Raises
    ------
    ValueError
        If ``flow`` is not ``H×W×2``.
    """
    flow = as_flow(flow)
    u, v = flow[..., 0], flow[..., 1]
    u_y, u_x = np.gradient(u) if min(u.shape) > 1 else (np.zeros_like(u), np.zeros_like(u))
    v_y, v_x = np.gradient(v) if min(v.shape) > 1 else (np.zeros_like(v), np.zeros_like(v))
    e_xy = 0.5 * (u_y + v_x)
    return np.sqrt(u_x * u_x + v_y * v_y + 2.0 * e_xy * e_xy).astype(np.float32)
