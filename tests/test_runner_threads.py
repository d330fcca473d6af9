"""An in-process run (``--workers 1``) computes as a worker does: one OpenCV and one Numba thread, restored after."""

from __future__ import annotations

import cv2
import numba
import pytest

import mer.pipeline.executors as executors
from mer.pipeline.outcomes import ClipOutcome


@pytest.fixture
def several_threads():
    """This process set to two OpenCV and two Numba threads (what an interactive session may have)."""
    cv_before, numba_before = cv2.getNumThreads(), numba.get_num_threads()
    cv2.setNumThreads(2)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield cv2.getNumThreads(), numba.get_num_threads()
    cv2.setNumThreads(cv_before)
    numba.set_num_threads(numba_before)


def _recording(seen: list[tuple[int, int]]):
    def fake_clip(store, dataset, plan, index, row) -> ClipOutcome:
        seen.append((cv2.getNumThreads(), numba.get_num_threads()))
        return ClipOutcome(index, f"s1/c{index}")

    def fake_group(store, dataset, plan, indices, rows) -> list[ClipOutcome]:
        return [fake_clip(store, dataset, plan, i, r) for i, r in zip(indices, rows, strict=True)]

    return fake_clip, fake_group


def test_one_worker_in_this_process_runs_its_clips_on_one_thread_and_restores_the_counts(monkeypatch, several_threads):
    seen: list[tuple[int, int]] = []
    fake_clip, fake_group = _recording(seen)
    monkeypatch.setattr(executors, "process_clip", fake_clip)  # where the in-process executors look them up
    monkeypatch.setattr(executors, "process_group", fake_group)
    rows = [{"clip_id": f"s1/c{i}"} for i in range(3)]
    outcomes = list(executors.execute_clips(None, "d", [], [0, 1, 2], rows, workers=1, scheduler=None))
    grouped = list(executors.execute_groups(None, "d", [], [[0, 1], [2]], rows, workers=1, scheduler=None))
    assert [o.index for o in outcomes] == [0, 1, 2] and [o.index for o in grouped] == [0, 1, 2]
    assert seen == [(1, 1)] * 6
    assert (cv2.getNumThreads(), numba.get_num_threads()) == several_threads
