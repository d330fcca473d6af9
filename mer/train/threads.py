"""PyTorch's CPU thread count for training: the ``OMP_NUM_THREADS`` request when set, applied explicitly.

PyTorch reads its intra-op thread count from the OpenMP runtime. Once Numba's OpenMP pool has run in the process
(MESTI's rank pooling), that runtime reports Numba's thread count instead of ``OMP_NUM_THREADS``, so a process that
preprocesses and then trains would train on another thread count than a process that only trains — and a CPU's
float reductions, hence the predictions, depend on that count. Training therefore sets the count it was asked for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def requested_threads() -> int | None:
    """The thread count ``OMP_NUM_THREADS`` asks for, or None when it is unset or not a positive integer."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def training_threads() -> int:
    """The count training uses on a CPU: the ``OMP_NUM_THREADS`` request when set, else PyTorch's current count."""
    return requested_threads() or torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run the block on ``count`` intra-op threads (None: :func:`training_threads`), restoring the count after."""
    before = torch.get_num_threads()
    count = training_threads() if count is None else int(count)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)
