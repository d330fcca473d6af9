"""Optical strain of a flow field (the third channel of STSTNet-style flow images)."""

from __future__ import annotations

import numpy as np


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude ``sqrt(u_x² + v_y² + ½(u_y + v_x)²)`` → float32 ``H×W`` (dimensionless).

    Derivatives are central differences in the interior and one-sided (forward/backward) differences at
    the borders (``numpy.gradient`` with unit spacing), so a linear field gets its exact strain everywhere.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    u_y, u_x = np.gradient(u) if min(u.shape) > 1 else (np.zeros_like(u), np.zeros_like(u))
    v_y, v_x = np.gradient(v) if min(v.shape) > 1 else (np.zeros_like(v), np.zeros_like(v))
    e_xy = 0.5 * (u_y + v_x)
    return np.sqrt(u_x * u_x + v_y * v_y + 2.0 * e_xy * e_xy).astype(np.float32)
