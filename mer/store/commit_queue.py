"""One clip's commits made durable on a background thread while the clip's next stage computes.

A commit has two halves (:meth:`~mer.store.commit.Committer.write_clip`): writing the files, done on the caller's
thread, and waiting for the disk to hold them before the commit marker is written
(:meth:`~mer.store.commit.PendingCommit.finish`), done here on one background thread, in the order the commits were
queued (so that a stage's marker never appears before the marker of a stage it was computed from). The clip's claim
is released only after its marker (or its failure record) exists: another process never sees the clip's files
half-written without a claim or a marker, and a marker exists only over durable files.
"""

from __future__ import annotations

import os
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from mer.store.commit import PendingCommit
from mer.store.entries import Entry
from mer.store.store import FeatureStore

_BACKGROUND: tuple[int, ThreadPoolExecutor] | None = None  # (process id, thread): one for the process's life
_BACKGROUND_LOCK = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """This process's commit thread, shared by every queue (made once: a thread started for every clip costs a
    scheduling round on a busy machine; a forked child makes its own). Queues keep their own order on it."""
    global _BACKGROUND
    with _BACKGROUND_LOCK:
        if _BACKGROUND is None or _BACKGROUND[0] != os.getpid():
            _BACKGROUND = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="mer-commit"))
        return _BACKGROUND[1]


@dataclass(frozen=True)
class CommitFailure:
    """A queued commit that failed: its stage, the error as one line, and a short traceback."""

    stage: str
    error: str
    trace: str


class CommitQueue:
    """The durability steps of a clip's commits (or of several clips'), run in order on a background thread.

    ``submit`` takes a :class:`PendingCommit` whose clip this process has claimed; the queue then owns the claim
    and releases it once the marker (or, on failure, the failure record) is written. After a failure the commits
    of the same clip queued behind it are abandoned (their files stay without a marker, as after a kill) and their
    claims released; other clips' commits go on. ``wait`` blocks until the queue is empty and returns the first
    failure, if any (:attr:`failures` has them by clip). Use it as a context manager so that nothing is left
    running when the clip's work ends, whatever way it ends.
    """

    def __init__(self, store: FeatureStore):
        self._store = store
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self._failures: dict[int, CommitFailure] = {}  # by clip index, in the order they happened

    @property
    def failure(self) -> CommitFailure | None:
        """The first failed commit so far (more may come until :meth:`wait` returns)."""
        with self._lock:
            return next(iter(self._failures.values()), None)

    @property
    def failures(self) -> dict[int, CommitFailure]:
        """The failed commit of each clip that had one so far, by clip index."""
        with self._lock:
            return dict(self._failures)

    @property
    def pending(self) -> bool:
        """Whether some queued commit has not finished yet."""
        return any(not future.done() for future in self._futures)

    def submit(self, stage: str, entry: Entry, index: int, commit: PendingCommit) -> None:
        """Queue ``commit`` (of clip ``index`` of ``entry``, computed by ``stage``): from here on the queue owns the
        clip's claim."""
        try:
            self._futures.append(_background().submit(self._finish, stage, entry, index, commit))
        except BaseException:
            commit.abandon()
            self._store.release_claim(entry, index)
            raise

    def _finish(self, stage: str, entry: Entry, index: int, commit: PendingCommit) -> None:
        try:
            if index in self.failures:  # an earlier commit of this clip failed: stop here, as without the queue
                commit.abandon()
                return
            try:
                commit.finish()
            except Exception as exc:
                failure = CommitFailure(stage, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=6))
                with self._lock:
                    self._failures[index] = failure
                self._store.record_failure(entry, index, stage, failure.error + "\n" + failure.trace)
        finally:
            self._store.release_claim(entry, index)

    def wait(self) -> CommitFailure | None:
        """Block until every queued commit has finished; the first failure, or None."""
        for future in self._futures:
            future.result()  # _finish catches the commit's errors; what comes here is a failure to record one
        self._futures.clear()
        return self.failure

    def close(self) -> None:
        """Wait for every queued commit (also when one raised)."""
        try:
            self.wait()
        finally:
            for future in self._futures:
                future.exception()  # blocks until it has run
            self._futures.clear()

    def __enter__(self) -> CommitQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
