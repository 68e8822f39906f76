"""The local shard cache of one remote dataset: placement, leases, accounting, LRU eviction.

Several processes on a node (ranks, DataLoader workers, other jobs) share a cache directory
through the file system only, with advisory ``flock`` locks on files inside it: no shared
memory, no lock files elsewhere, and a lock dies with its process, so a crash (even
``kill -9``) leaves nothing that blocks the next run. Layout of one dataset's namespace::

    <local>/<name>-<digest of the remote URL>/
        .cache.lock        exclusive while one process does the accounting and evicts
        remote.txt         the remote URL (names the namespace for humans)
        index.id           the fingerprint and version of the index this cache last served
        index/X.columnar   columnar forms of remote index files that lack one (derived on
                           first open, checked against the remote JSON's digest before use)
        shards/<key>       placed (decompressed, verified) shards, read through mmap
        fetch/<key>        exclusive while one process fetches <key>; holds its reserved bytes
        fetch/<key>.tmp    the data being written, renamed into shards/ when complete

A shard's key carries a digest of its index record, so a shard of a changed remote dataset
never matches a stale cached file of the same name. Readers hold a shared lock on each shard
file they read (a :class:`Lease`); the evictor deletes only files it can lock exclusively at
that moment, least recently used first (a read touches the file's mtime).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loader.cache.eviction import CacheEntry, eviction_victims
from sparkshard.errors import CacheTimeoutError
from sparkshard.format.index import DatasetIndex, ShardRecord
from sparkshard.storage import write_atomically

__all__ = ["Lease", "ShardCache", "default_cache_dir", "index_dir", "namespace_name", "shard_key"]

log = logging.getLogger(__name__)
_POLL = 0.02  # seconds between attempts to get a lock or room


def default_cache_dir() -> Path:
    """Where a local compressed dataset's shards are decompressed when no cache directory was
    named: ``sparkshard-cache`` in the system's temporary directory (node-local, shared by
    the node's processes, safe to delete when no run is reading)."""
    return Path(tempfile.gettempdir()) / "sparkshard-cache"


def namespace_name(remote_url: str) -> str:
    """The folder name of a remote dataset's namespace inside a shared cache directory."""
    digest = hashlib.sha256(remote_url.encode("utf-8")).hexdigest()[:16]
    tail = remote_url.rstrip("/").rsplit("/", 1)[-1] or "dataset"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tail)[:40]
    return f"{safe}-{digest}"


def index_dir(local: str | os.PathLike[str], remote_url: str | os.PathLike[str]) -> Path:
    """Where the cache in ``local`` keeps the columnar indexes it derived for a dataset."""
    root = Path(os.fspath(local)).expanduser().absolute()
    return root / namespace_name(os.fspath(remote_url)) / "index"


def shard_key(record: ShardRecord) -> str:
    """The cache file name of a shard: its basename plus a digest of its index record."""
    described = [record.raw_data.to_json(), record.zip_data.to_json() if record.zip_data else None]
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]
    return f"{digest}-{record.raw_data.basename.replace('/', '~')}"


class Lease:
    """A shared lock on one placed shard file: it cannot be evicted while the lease is open."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def abandon(self) -> None:
        """Forget an fd inherited through fork without unlocking the parent's lock."""
        self.close()  # closing one duplicate leaves the lock to the other holders


def _locked(path: Path, flags: int) -> int | None:
    """An fd of ``path`` (created if needed) holding ``flags``, or None if it cannot now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


class ShardCache:
    """One remote dataset's namespace in a local cache directory, bounded by ``limit`` bytes."""

    def __init__(self, local: str | os.PathLike[str], remote_url: str, limit: int | None) -> None:
        self.remote_url = remote_url
        self.root = Path(os.fspath(local)).expanduser().absolute() / namespace_name(remote_url)
        self.limit = limit
        self.shards, self._fetch = self.root / "shards", self.root / "fetch"
        self.index_dir = self.root / "index"
        self.shards.mkdir(parents=True, exist_ok=True)
        self._fetch.mkdir(exist_ok=True)
        marker = self.root / "remote.txt"
        if not marker.exists():
            write_atomically(marker, remote_url.encode("utf-8"))
        self._reserved()  # a killed fetcher may have placed its shard but left its lock behind

    def __repr__(self) -> str:
        return f"ShardCache({str(self.root)!r}, limit={self.limit})"

    def path(self, record: ShardRecord) -> Path:
        return self.shards / shard_key(record)

    # --- the index -----------------------------------------------------------------------
    def sync_index(self, index: DatasetIndex) -> bool:
        """Record which remote index this cache serves; True when it differs from the last one.

        Cached shards never depend on it (their keys digest their records), so a changed
        remote only makes stale files unreachable; eviction removes them later.
        """
        path = self.root / "index.id"
        data = f"{index.fingerprint()} {index.dataset_version}\n".encode()
        try:
            same = path.read_bytes() == data
        except FileNotFoundError:
            same = None
        if not same:
            write_atomically(path, data)
        if same is False:
            log.info("the remote index of %s changed since it was cached: refreshed", self.root)
        return same is False

    # --- reading -------------------------------------------------------------------------
    def has(self, record: ShardRecord) -> bool:
        return self.path(record).exists()

    def touch(self, record: ShardRecord) -> bool:
        """Mark the shard as about to be used (so eviction spares it); False if absent."""
        try:
            if self.limit is not None:
                os.utime(self.path(record))
                return True
            return self.has(record)
        except FileNotFoundError:
            return False

    def lease(self, record: ShardRecord) -> Lease | None:
        """A shared lock on the placed shard (touched as just used), or None if it is absent."""
        path = self.path(record)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not _same_file(fd, path):  # evicted (or replaced) between open and lock
            os.close(fd)
            return None
        if self.limit is not None:
            os.utime(fd)  # the LRU clock
        return Lease(path, fd)

    # --- fetching ------------------------------------------------------------------------
    @contextmanager
    def fetching(self, record: ShardRecord, wait: float) -> Iterator[Path | None]:
        """The right to fetch ``record``: yields the temp path to write, or None if present.

        Waits up to ``wait`` seconds while another process fetches the same shard.
        """
        key = shard_key(record)
        lock_path, tmp = self._fetch / key, self._fetch / f"{key}.tmp"
        deadline = time.monotonic() + wait
        while True:
            fd = _locked(lock_path, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if fd is not None and _same_file(fd, lock_path):
                break
            if fd is not None:
                os.close(fd)  # a file the previous owner already removed: lock the new one
                continue
            if time.monotonic() > deadline:
                raise CacheTimeoutError(
                    f"another process has been fetching shard {record.raw_data.basename} into "
                    f"{self.root} for over {wait:.0f}s; raise download_timeout if the network "
                    "is that slow"
                )
            time.sleep(_POLL)
        try:
            tmp.unlink(missing_ok=True)  # a crashed fetcher's leftover
            yield None if self.has(record) else tmp
        finally:
            tmp.unlink(missing_ok=True)
            lock_path.unlink(missing_ok=True)
            os.close(fd)

    def reserve(self, record: ShardRecord, wait: float) -> None:
        """Make room for ``record``'s raw file under the limit (evicting LRU shards nobody
        reads) and record the reservation; call inside :meth:`fetching`."""
        if self.limit is None:
            return
        size = record.raw_data.bytes
        deadline = time.monotonic() + wait
        while True:
            with self._accounting():
                short = self.usage() + size - self.limit
                if short > 0:
                    short -= self._evict(short)
                if short <= 0:
                    (self._fetch / shard_key(record)).write_text(str(size))
                    return
            if time.monotonic() > deadline:
                raise CacheTimeoutError(
                    f"no room for shard {record.raw_data.basename} ({size} bytes) in {self.root} "
                    f"within cache_limit={self.limit} after {wait:.0f}s: every cached shard is "
                    "being read or downloaded; raise cache_limit"
                )
            time.sleep(_POLL)

    def discard(self, record: ShardRecord) -> None:
        """Remove a placed shard found damaged (processes that mapped it keep their view)."""
        self.path(record).unlink(missing_ok=True)

    def place(self, record: ShardRecord, tmp: Path) -> Path:
        """Move the fully written ``tmp`` into place (atomic rename)."""
        path = self.path(record)
        os.replace(tmp, path)
        return path

    # --- accounting ----------------------------------------------------------------------
    @contextmanager
    def _accounting(self) -> Iterator[None]:
        fd = _locked(self.root / ".cache.lock", fcntl.LOCK_EX)
        assert fd is not None  # a blocking lock either succeeds or raises
        try:
            yield
        finally:
            os.close(fd)

    def entries(self) -> list[CacheEntry]:
        """Placed shards with their sizes and last use."""
        out = []
        with os.scandir(self.shards) as it:
            for item in it:
                try:
                    st = item.stat()
                except FileNotFoundError:
                    continue
                out.append(CacheEntry(item.name, st.st_size, st.st_mtime_ns))
        return out

    def usage(self) -> int:
        """Bytes of placed shards plus bytes reserved by fetches in progress (any process)."""
        return self._reserved() + sum(e.size for e in self.entries())

    def _reserved(self) -> int:
        """Bytes reserved by fetches in progress; fetch locks whose owner died are removed on
        the way, with their partial data."""
        reserved = 0
        with os.scandir(self._fetch) as it:
            names = [item.name for item in it if not item.name.endswith(".tmp")]
        for name in names:
            path = self._fetch / name
            try:
                fd = _locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except FileNotFoundError:
                continue
            if fd is None:  # a live fetch: count what it reserved
                try:
                    reserved += int(path.read_text() or 0)
                except (FileNotFoundError, ValueError):
                    pass
                continue
            try:
                if _same_file(fd, path):  # nobody fetches it: a dead process's leftover
                    path.unlink(missing_ok=True)
                    (self._fetch / f"{name}.tmp").unlink(missing_ok=True)
            finally:
                os.close(fd)
        return reserved

    def _evict(self, to_free: int) -> int:
        """Delete LRU shards that nobody reads until ``to_free`` bytes are freed; bytes freed."""
        freed, held = 0, set[str]()
        while freed < to_free:
            victims = eviction_victims(self.entries(), to_free - freed, held)
            if not victims:
                break
            for entry in victims:
                if self._try_delete(entry.key):
                    freed += entry.size
                    log.debug("evicted %s (%d bytes) from %s", entry.key, entry.size, self.root)
                else:
                    held.add(entry.key)
        return freed

    def _try_delete(self, key: str) -> bool:
        path = self.shards / key
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # someone reads it
            raise
        try:
            if not _same_file(fd, path):
                return False
            path.unlink()
            return True
        finally:
            os.close(fd)
