"""How a process is set up to run clips: one OpenCV and one Numba thread per worker, one open store per location."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from mer.store.store import FeatureStore, open_store

_WORKER_STORES: dict[str, FeatureStore] = {}
_WORKER_THREAD = threading.local()


def _set_kernel_threads(opencv: int, numba_threads: int | None) -> tuple[int, int | None]:
    """Set OpenCV's thread count and, where Numba is installed, this thread's Numba count (None: leave it);
    return the counts they had."""
    import cv2

    before = cv2.getNumThreads(), None
    cv2.setNumThreads(opencv)
    try:
        import numba
    except ImportError:
        return before
    before = before[0], numba.get_num_threads()
    if numba_threads is not None:
        with contextlib.suppress(ValueError):  # more than the pool was started with
            numba.set_num_threads(numba_threads)
    return before


def init_worker() -> None:
    """One OpenCV and one Numba thread per worker, so that workers do not oversubscribe the cores.

    Numba's thread count is a per-thread setting, so it is set in every thread that runs clips (a Dask worker
    may run tasks on several threads); OpenCV's is per process.
    """
    if getattr(_WORKER_THREAD, "ready", False):
        return
    _set_kernel_threads(1, 1)
    _WORKER_THREAD.ready = True


@contextlib.contextmanager
def as_one_worker() -> Iterator[None]:
    """Run this process's clips as a worker runs them: one OpenCV and one Numba thread (``--workers 1`` is one core).

    Without it an in-process run spreads some kernels (OpenCV's warps, Numba's pooling) over every core, so one
    worker is not one core and the figures of 1 and N workers do not compare. The process's counts come back after.
    """
    opencv_before, numba_before = _set_kernel_threads(1, 1)
    try:
        yield
    finally:
        _set_kernel_threads(opencv_before, numba_before)


def worker_store(location: str) -> FeatureStore:
    """This process's store at ``location``, opened for appending on first use and kept for the next clips."""
    if location not in _WORKER_STORES:
        _WORKER_STORES[location] = open_store(location, mode="a")
    return _WORKER_STORES[location]
