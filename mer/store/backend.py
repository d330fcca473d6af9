"""Raw key/value access to a store location: a local folder or an fsspec URL.

Zarr handles the arrays; this layer writes the small JSON records (commit markers, failure records)
that must appear atomically, and reads raw chunk bytes for checksums.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

_THREAD_LOCK = threading.Lock()  # flock does not exclude threads sharing one open file


def is_url(location: str) -> bool:
    """True for fsspec URLs such as ``s3://bucket/x`` or ``memory://x`` (not for plain paths)."""
    return "://" in location and not location.startswith("file://")


FLUSH_THREADS = 4  # files synced at once by PendingWrites.flush
_FSYNC_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool): threads kept for the process's life
_FSYNC_POOL_LOCK = threading.Lock()


def _fsync_pool() -> ThreadPoolExecutor:
    """This process's fsync threads (made once: starting threads for every flush costs more than the syncs on a
    busy machine; a forked child makes its own)."""
    global _FSYNC_POOL
    with _FSYNC_POOL_LOCK:
        if _FSYNC_POOL is None or _FSYNC_POOL[0] != os.getpid():
            _FSYNC_POOL = (os.getpid(), ThreadPoolExecutor(FLUSH_THREADS, thread_name_prefix="mer-fsync"))
        return _FSYNC_POOL[1]


class PendingWrites:
    """Files written in full (each at its final name) whose data may not be on the disk yet: ``flush`` waits until
    they all are (fsync of each, on up to :data:`FLUSH_THREADS` threads: the disk serves several at once), then
    releases them; ``close`` releases them without waiting (after a failure). Writes that are durable once written
    (object storage) have nothing to flush."""

    def __init__(self, fds: list[int] | None = None):
        self._fds = list(fds or [])

    def flush(self) -> None:
        try:
            if len(self._fds) > 1:
                list(_fsync_pool().map(os.fsync, self._fds))
            elif self._fds:
                os.fsync(self._fds[0])
        finally:
            self.close()

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)


@runtime_checkable
class Backend(Protocol):
    """What the store needs of a location. ``write_bytes`` replaces a key atomically (a reader sees the old or the
    new bytes, never a mix) and durably; ``write_many`` does so for several keys, all durable when it returns;
    ``write_many_deferred`` writes them the same way but leaves the wait for the disk to the returned
    :class:`PendingWrites` (its ``flush``); ``sync`` makes keys written by others (zarr, another process) durable,
    with the folder entries that lead to them; ``create_exclusive`` creates a key only when absent, whole when seen
    (it serves claims, that only live processes need: it need not survive a power cut)."""

    location: str

    def read_bytes(self, key: str) -> bytes | None: ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def write_many(self, items: dict[str, bytes]) -> None: ...

    def write_many_deferred(self, items: dict[str, bytes]) -> PendingWrites: ...

    def sync(self, keys: Iterable[str]) -> None: ...

    def list_tree(self, prefix: str) -> list[str]: ...

    def exists(self, key: str) -> bool: ...

    def create_exclusive(self, key: str, data: bytes) -> bool: ...

    def replace_if_unchanged(self, key: str, expected: bytes, data: bytes) -> bool: ...

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
        self._made: set[Path] = set()  # folders this process has made or found (a mkdir each write otherwise)

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

    def write_many(self, items: dict[str, bytes]) -> None:
        """Write every key atomically (temporary file, then rename), then wait once for all of them to reach the
        disk: each file is flushed after the last is written, so that the writes are not serialised behind one
        flush each (about a third less time than :meth:`write_bytes` per key on ext4)."""
        self.write_many_deferred(items).flush()

    def write_many_deferred(self, items: dict[str, bytes]) -> PendingWrites:
        """Write every key atomically (temporary file, then rename) and return without waiting for the disk: the
        returned :class:`PendingWrites` holds the open files, and its ``flush`` makes them durable."""
        pending: list[int] = []
        try:
            for key, data in items.items():
                path = self._path(key)
                parent = path.parent
                if parent not in self._made:
                    parent.mkdir(parents=True, exist_ok=True)
                    self._made.add(parent)
                try:
                    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
                except FileNotFoundError:  # the folder was removed since (repair, a cleared entry): make it again
                    parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
                pending.append(fd)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.replace(tmp, path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        except BaseException:
            PendingWrites(pending).close()
            raise
        return PendingWrites(pending)

    def sync(self, keys: Iterable[str]) -> None:
        """Wait until the files at ``keys`` (written by anyone: zarr, another process) are on the disk, and the
        entries of every folder from the store root down to them, so that none can vanish in a power cut after a
        commit marker that relies on it has been written (a new file's data is durable by its own fsync, its name
        only by its folder's). A key that does not exist is passed over (a concurrent creator's, not written yet:
        that process syncs it)."""
        folders: set[Path] = set()
        fds: list[int] = []
        try:
            for key in keys:
                path = self._path(key)
                try:
                    fds.append(os.open(path, os.O_RDONLY))
                except FileNotFoundError:
                    continue
                folder = path.parent
                while folder not in folders and folder.is_relative_to(self.root):
                    folders.add(folder)
                    folder = folder.parent
        except BaseException:
            PendingWrites(fds).close()
            raise
        PendingWrites(fds).flush()
        for folder in sorted(folders):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            except OSError as exc:  # some file systems (FUSE mounts, CIFS) cannot sync a folder: nothing more to do
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                    raise
            finally:
                os.close(fd)

    def list_tree(self, prefix: str) -> list[str]:
        """Every file below ``prefix`` (at any depth) as a key relative to it; temporary files skipped."""
        top = self._path(prefix)
        out = []
        for folder, _, files in os.walk(top):
            rel = os.path.relpath(folder, top)
            out.extend(name if rel == "." else f"{rel}/{name}" for name in files if not name.startswith("."))
        return sorted(out)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` only if it does not exist; False when another writer has it.

        The content is written to a temporary file that is then hard-linked into place, so that nobody ever
        reads the key empty or half-written (an empty claim would look like one cut short by a kill). It is not
        waited for to reach the disk: the key serves claims, which matter only while their process lives (a kill
        leaves the file whole in the page cache; a power cut that loses it also ends every process that wrote it,
        and a claim lost or left empty by one reads as stale). Commit markers, which must survive, never come here.
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def replace_if_unchanged(self, key: str, expected: bytes, data: bytes) -> bool:
        """Replace ``key`` with ``data`` if it still holds ``expected`` (the caller holds :meth:`lock` on it)."""
        if self.read_bytes(key) != expected:
            return False
        self.write_bytes(key, data)
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

        top = self._path(prefix)
        self._made = {folder for folder in self._made if not folder.is_relative_to(top)}
        shutil.rmtree(top, ignore_errors=True)

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


STORAGE_OPTIONS_ENV = "MER_STORAGE_OPTIONS"


def storage_options_from_env() -> dict[str, Any]:
    """Options for the fsspec filesystem from ``$MER_STORAGE_OPTIONS`` (a JSON object; the CLI's
    ``--storage-option`` sets it, so that worker processes inherit it)."""
    import json

    raw = os.environ.get(STORAGE_OPTIONS_ENV, "")
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"${STORAGE_OPTIONS_ENV} is not a JSON object: {raw[:80]!r}") from None
    if not isinstance(options, dict):
        raise ValueError(f"${STORAGE_OPTIONS_ENV} is not a JSON object: {raw[:80]!r}")
    return options


def parse_storage_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` strings (``--storage-option``) as fsspec options; ``true``/``false``/numbers are converted,
    and ``endpoint_url=`` goes where s3fs expects it (``client_kwargs``)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--storage-option {pair!r}: expected key=value")
        key = key.strip()
        parsed: Any = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    parsed = kind(value)
                    break
                except ValueError:
                    continue
        if key in ("endpoint_url", "region_name"):
            options.setdefault("client_kwargs", {})[key] = value
        else:
            options[key] = parsed
    return options


class FsspecBackend:
    """A store behind an fsspec URL (object storage, ``memory://``); single-object writes are atomic there.

    Credentials and the endpoint come from the usual places of the filesystem (for S3: ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``~/.aws``), or from ``storage_options`` (default
    ``$MER_STORAGE_OPTIONS``). Directory listings are never cached: other processes add commit markers.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        import fsspec

        self.location = url
        self.storage_options = dict(storage_options_from_env() if storage_options is None else storage_options)
        self.protocol = url.split("://", 1)[0]
        if self.protocol != "memory":
            self.storage_options.setdefault("use_listings_cache", False)
        self.fs, self.root = fsspec.core.url_to_fs(url, **self.storage_options)
        self.root = self.root.rstrip("/")
        if not self.root:  # s3:// alone: every key would be a bucket name (the S3 client refused an empty key)
            raise ValueError(f"store URL {url!r} names no bucket or folder; e.g. {self.protocol}://bucket/store")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def read_bytes(self, key: str) -> bytes | None:
        """An object's bytes (on S3 one GET: s3fs would first ask for the size with a HEAD, to split reads larger
        than its block size, which no store object is)."""
        kwargs = {"max_concurrency": 1} if self.protocol in ("s3", "s3a") else {}
        try:
            return self.fs.cat_file(self._path(key), **kwargs)
        except FileNotFoundError:
            return None

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(key), data)
        except PermissionError:
            raise self._denied(key) from None

    def write_many(self, items: dict[str, bytes]) -> None:
        """Write every key (concurrently where the filesystem can: one ``pipe`` call); each object is whole and
        durable once its put is acknowledged."""
        if not items:
            return
        try:
            self.fs.pipe({self._path(key): data for key, data in items.items()})
        except PermissionError:
            raise self._denied(next(iter(items))) from None

    def write_many_deferred(self, items: dict[str, bytes]) -> PendingWrites:
        """:meth:`write_many`: an object is durable once its put is acknowledged, so there is nothing to flush."""
        self.write_many(items)
        return PendingWrites()

    def sync(self, keys: Iterable[str]) -> None:
        """Nothing to wait for: an object is durable once its put is acknowledged."""

    def list_tree(self, prefix: str) -> list[str]:
        """Every object below ``prefix`` as a key relative to it (one listing request on S3)."""
        top = self._path(prefix).rstrip("/")
        try:
            names = self.fs.find(top)
        except FileNotFoundError:
            return []
        return sorted(n[len(top) + 1 :] for n in names if n.startswith(top + "/"))

    def _denied(self, key: str) -> Exception:
        from mer.store.errors import StoreError

        return StoreError(
            f"cannot write {self.location}/{key}: access denied (read-only credentials?); "
            "reading commands (store ls/info/verify/export, train) need read access only"
        )

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key`` (on S3 one HEAD request: keys here are never folders)."""
        if self.protocol in ("s3", "s3a"):
            bucket, name, _ = self.fs.split_path(self._path(key))
            try:
                self.fs.call_s3("head_object", Bucket=bucket, Key=name)
            except FileNotFoundError:
                return False
            return True
        return self.fs.exists(self._path(key))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` only when absent (False when another writer has it).

        S3 gets a conditional put, ``If-None-Match: *`` (AWS S3 since 2024, MinIO, moto; a server that ignores the
        header makes this always succeed, see README "Sharing a store"). Other object stores have no portable
        exclusive create: there the key is written and the claim granted (concurrent writers then may compute a
        clip twice; they write identical bytes, so the store stays consistent)."""
        path = self._path(key)
        if self.protocol in ("s3", "s3a"):
            try:
                self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return False
            except PermissionError:
                raise self._denied(key) from None
            return True
        if self.protocol == "memory":
            if self.fs.exists(path):
                return False
            self.fs.pipe_file(path, data)
            return True
        self.write_bytes(key, data)
        return True

    def replace_if_unchanged(self, key: str, expected: bytes, data: bytes) -> bool:
        """Replace ``key`` with ``data`` only if it still holds ``expected`` (S3: a put with ``If-Match`` on the
        object's ETag), so that of several writers taking over one stale claim only one succeeds."""
        path = self._path(key)
        if self.protocol in ("s3", "s3a"):
            try:
                info = self.fs.info(path)
            except FileNotFoundError:
                return False
            etag = info.get("ETag")
            if self.read_bytes(key) != expected or not etag:
                return False
            try:
                self.fs.pipe_file(path, data, IfMatch=etag)
            except (FileExistsError, FileNotFoundError, OSError):
                return False
            return True
        if self.read_bytes(key) != expected:
            return False
        self.write_bytes(key, data)
        return True

    @contextlib.contextmanager
    def lock(self, folder: str) -> Iterator[None]:
        """No cross-process lock on object storage (stale claims are taken over by ``replace_if_unchanged``)."""
        yield

    def list_dir(self, prefix: str) -> list[str]:
        try:
            names = self.fs.ls(self._path(prefix), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted({n.rstrip("/").rsplit("/", 1)[-1] for n in names} - {""})

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
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

        if self.protocol == "memory":
            return FsspecStore.from_url(self.location, read_only=read_only)
        return FsspecStore.from_url(self.location, read_only=read_only, storage_options=self.storage_options)


def make_backend(location: str | Path, storage_options: dict[str, Any] | None = None) -> Backend:
    """Pick the backend for a local path or an fsspec URL (``storage_options`` for the latter)."""
    location = str(location)
    if is_url(location):
        return FsspecBackend(location, storage_options)
    return LocalBackend(location)
