"""Raw key/value access to a store location: a local folder or an fsspec URL.

Zarr handles the arrays; this layer writes the small JSON records (commit markers, failure records)
that must appear atomically, and reads raw chunk bytes for checksums.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

_THREAD_LOCK = threading.Lock()  # flock does not exclude threads sharing one open file


def is_url(location: str) -> bool:
    """True for fsspec URLs such as ``s3://bucket/x`` or ``memory://x`` (not for plain paths)."""
    return "://" in location and not location.startswith("file://")


@runtime_checkable
class Backend(Protocol):
    """What the store needs of a location. ``write_bytes`` replaces a key atomically (a reader sees the old or the
    new bytes, never a mix); ``create_exclusive`` creates a key only when absent, with the same durability."""

    location: str

    def read_bytes(self, key: str) -> bytes | None: ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...

    def create_exclusive(self, key: str, data: bytes) -> bool: ...

    def lock(self, folder: str) -> contextlib.AbstractContextManager[None]: ...

    def list_dir(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def writable(self) -> bool: ...

    def remove_tree(self, prefix: str) -> None: ...

    def zarr_store(self, read_only: bool) -> Any: ...


class LocalBackend:
    """A store in a local or mounted folder; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: str | Path):
        self.root = Path(str(root).removeprefix("file://")).resolve()
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` only if it does not exist; False when another writer has it.

        The content is written to a temporary file that is then hard-linked into place, so that nobody ever
        reads the key empty or half-written (an empty claim would look like one cut short by a kill).
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    @contextlib.contextmanager
    def lock(self, folder: str) -> Iterator[None]:
        """Hold an exclusive lock on ``folder``; the kernel drops it if this process dies.

        The folder itself is locked, so that nothing is left behind; where a folder cannot be locked (NFS emulates
        ``flock`` with byte-range locks, which need a file open for writing) a hidden ``.lock`` file in it is.
        """
        path = self._path(folder)
        path.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCK:
            fd = os.open(path, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:
                    os.close(fd)
                    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def list_dir(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (files and folders), sorted; temporary files skipped."""
        path = self._path(prefix)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def remove_tree(self, prefix: str) -> None:
        """Delete a folder and everything under it (no error when missing)."""
        import shutil

        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def writable(self) -> bool:
        """Whether this process may create files in the store folder (or, before it exists, its parent)."""
        target = self.root
        while not target.exists() and target != target.parent:
            target = target.parent
        return os.access(target, os.W_OK | os.X_OK)

    def zarr_store(self, read_only: bool) -> Any:
        from zarr.storage import LocalStore

        if not read_only:
            self.root.mkdir(parents=True, exist_ok=True)
        return LocalStore(self.root, read_only=read_only)


class FsspecBackend:
    """A store behind an fsspec URL (object storage, ``memory://``); single-object writes are atomic there."""

    def __init__(self, url: str):
        import fsspec

        self.location = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Object stores offer no portable exclusive create: always grant (writers write identical bytes)."""
        self.write_bytes(key, data)
        return True

    @contextlib.contextmanager
    def lock(self, folder: str) -> Iterator[None]:
        """No cross-process lock on object storage (claims are always granted there)."""
        yield

    def list_dir(self, prefix: str) -> list[str]:
        try:
            names = self.fs.ls(self._path(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted({n.rstrip("/").rsplit("/", 1)[-1] for n in names} - {""})

    def delete(self, key: str) -> None:
        if self.fs.exists(self._path(key)):
            self.fs.rm_file(self._path(key))

    def remove_tree(self, prefix: str) -> None:
        """Delete every object under a prefix (no error when missing)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(prefix), recursive=True)

    def writable(self) -> bool:
        """Object stores tell write permission only on a write: assume yes, and let the write say otherwise."""
        return True

    def zarr_store(self, read_only: bool) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.location, read_only=read_only)


def make_backend(location: str | Path) -> Backend:
    """Pick the backend for a local path or an fsspec URL."""
    location = str(location)
    if is_url(location):
        return FsspecBackend(location)
    return LocalBackend(location)
