"""The flow-field convention every flow kernel checks its input against.

A flow field is ``H×W×2`` holding ``(u, v)`` in pixels (``u`` along x, ``v`` along y; see
:mod:`mer.pipeline.flow.optical_flow`); a stack of fields is ``P×H×W×2``.
"""

from __future__ import annotations

import numpy as np


def as_flow(flow: np.ndarray) -> np.ndarray:
    """Check one flow field and return it as float32.

    Parameters
    ----------
    flow : numpy.ndarray
        ``H×W×2`` field ``(u, v)`` in pixels, any real dtype.

    Returns
    -------
    numpy.ndarray
        float32 ``H×W×2`` (``flow`` itself when it is already float32).

    Raises
    ------
    ValueError
        If ``flow`` is not ``H×W×2``.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got {flow.shape}")
    return flow


def as_flows(flows: np.ndarray) -> np.ndarray:
    """Check a stack of flow fields and return it as float32.

    Parameters
    ----------
    flows : numpy.ndarray
        ``P×H×W×2`` fields ``(u, v)`` in pixels, any real dtype (``P`` may be 0).

    Returns
    -------
    numpy.ndarray
        float32 ``P×H×W×2`` (``flows`` itself when it is already float32).

    Raises
    ------
    ValueError
        If ``flows`` is not ``P×H×W×2``.
    """
    flows = np.asarray(flows, dtype=np.float32)
    if flows.ndim != 4 or flows.shape[-1] != 2:
        raise ValueError(f"flows must be P×H×W×2, got {flows.shape}")
    return flows
