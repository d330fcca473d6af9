"""How a process is set up to run clips: one OpenCV and one Numba thread per worker, one open store per location."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from mer.store.store import FeatureStore, open_store

_WORKER_STORES: dict[str, FeatureStore] = {}
_WORKER_THREAD = threading.local()


def init_worker() -> None:
    """One OpenCV and one Numba thread per worker, so that workers do not oversubscribe the cores.

    Numba's thread count is a per-thread setting, so it is set in every thread that runs clips (a Dask worker
    may run tasks on several threads); OpenCV's is per process.
    """
    if getattr(_WORKER_THREAD, "ready", False):
        return
    import cv2

    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    _WORKER_THREAD.ready = True


@contextlib.contextmanager
def as_one_worker() -> Iterator[None]:
    """Run this process's clips as a worker runs them: one OpenCV and one Numba thread (``--workers 1`` is one core).

    Without it an in-process run spreads some kernels (OpenCV's warps, Numba's pooling) over every core, so one
    worker is not one core and the figures of 1 and N workers do not compare. The process's counts come back after.
    """
    import cv2

    opencv_before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        import numba
    except ImportError:
        numba = None
    numba_before = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(opencv_before)
        if numba is not None and numba_before is not None:
            numba.set_num_threads(numba_before)


def worker_store(location: str) -> FeatureStore:
    """This process's store at ``location``, opened for appending on first use and kept for the next clips."""
    if location not in _WORKER_STORES:
        _WORKER_STORES[location] = open_store(location, mode="a")
    return _WORKER_STORES[location]
