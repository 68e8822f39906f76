"""Reading a remote dataset through the local shard cache (``remote=`` with ``local=``).

:class:`RemoteSource` reads the remote index once (the version the dataset pins) and opens a
:class:`CachedReader` per process: the ordinary batch reader, whose shards come from the
cache. A shard the reader needs is taken from the cache under a shared lock (so nobody
evicts it while it is mapped), waited for if the read-ahead is fetching it, or fetched on
the spot. With a ``cache_limit`` each process keeps at most its share of the limit open, so
the processes of a node can always make progress together.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from loader.cache.directory import Lease, ShardCache
from loader.cache.fetcher import ShardFetcher
from loader.cache.readahead import Readahead, first_uses
from loader.read.mapped import MappedShard
from loader.read.reader import DatasetReader
from loader.read.source import ReadOptions
from sparkshard.dataset.shards import check_local_file
from sparkshard.dataset.versions import read_index
from sparkshard.errors import CacheTimeoutError, CorruptShardError
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import open_store, remote_options

__all__ = ["CachedReader", "RemoteSource", "minimum_cache_limit"]

log = logging.getLogger(__name__)


def minimum_cache_limit(raw_sizes: np.ndarray, processes: int) -> int:
    """The smallest limit with which ``processes`` readers always progress: each needs room to
    read one shard while the next one is downloaded."""
    largest = int(np.max(raw_sizes)) if len(raw_sizes) else 0
    return 2 * largest * processes


class RemoteSource:
    """A remote dataset (pinned at the version first opened), read through a local cache."""

    per_process = True  # readers hold locks and threads: each process opens its own

    def __init__(
        self, url: str, local: Path, options: ReadOptions, index: DatasetIndex | None = None
    ) -> None:
        self.url, self.local, self.options = url, local, options
        self.index = index  # pinned by the first open (or by whoever read it already)

    def open(self, version: int | None) -> CachedReader:
        options = self.options
        store = open_store(self.url, remote_options(self.url, options.storage_options))
        cache = ShardCache(self.local, self.url, options.cache.limit_bytes)
        if self.index is None or (version is not None and version != self.index.dataset_version):
            self.index = read_index(store, version, derived=cache.index_dir)
        cache.sync_index(self.index)
        fetcher = ShardFetcher(store, cache, options.download, verify=options.verify_hashes)
        return CachedReader(
            self.index,
            cache,
            fetcher,
            processes=options.processes,
            columns=options.columns,
            verify_cached=options.verify_hashes,
            allow_unsafe_pickle=options.allow_unsafe_types,
            source_root=store.local_path(""),
        )


class CachedReader(DatasetReader):
    """A :class:`DatasetReader` whose shards are fetched into, and leased from, a cache."""

    def __init__(
        self,
        index: DatasetIndex,
        cache: ShardCache,
        fetcher: ShardFetcher,
        *,
        processes: int,
        columns: tuple[str, ...] | None,
        verify_cached: bool,
        allow_unsafe_pickle: bool,
        source_root: str | None = None,
    ) -> None:
        """``source_root``: the dataset's folder when it is local; shards whose raw file lies
        there are read in place, only compressed ones go through the cache."""
        super().__init__(
            cache.root,
            index=index,
            columns=columns,
            verify_hashes=verify_cached,
            allow_unsafe_pickle=allow_unsafe_pickle,
        )
        self.cache, self.fetcher = cache, fetcher
        self._source_root = Path(source_root) if source_root is not None else None
        self._raw_sizes = np.array(index.table.raw_bytes, np.int64)
        self._largest = int(self._raw_sizes.max()) if len(self._raw_sizes) else 0
        self._shards: OrderedDict[int, MappedShard] = OrderedDict()
        self._leases: dict[int, Lease] = {}
        self._open_bytes = 0
        self._opened: set[int] = set()  # shards this reader has opened (to notice refetches)
        self._warned = False
        self._readahead: Readahead | None = None
        self._share: int | None = None
        self.set_processes(processes)

    @property
    def fetches_ahead(self) -> bool:
        return True

    def _verify_batch(self, shards: np.ndarray) -> None:
        """Each shard is checked as it is opened (a cached copy once per process, one in
        place through the ledger)."""

    def io_counters(self) -> dict[str, int]:
        return {"bytes_read": self.bytes_read, "bytes_downloaded": self.fetcher.bytes_downloaded}

    def set_processes(self, processes: int) -> None:
        """Share the cache limit among the ``processes`` reading on this node."""
        limit = self.cache.limit
        if limit is None:
            return
        needed = minimum_cache_limit(self._raw_sizes, processes)
        if limit < needed:
            raise ValueError(
                f"cache_limit={limit} bytes is too small to make progress: {processes} "
                f"process(es) on this node each need room to read one shard while the next "
                f"downloads, and the largest shard has {self._largest} bytes; use "
                f"cache_limit >= {needed} (several times more avoids refetching)"
            )
        self._share = limit // processes

    # --- read-ahead ------------------------------------------------------------------------
    def prefetch(self, batches: Iterable[np.ndarray], processes: int) -> None:
        """Fetch the shards of ``batches`` (this process's upcoming batches of sample ids)."""
        self.set_processes(processes)
        self._opened.clear()  # a new epoch reads its shards again: not a refetch
        if self._readahead is None:
            records = self.index.shards
            self._readahead = Readahead(
                fetch=lambda i: self.fetcher.fetch(records[i]),
                cached=lambda i: self.cache.touch(records[i]),
                is_open=lambda i: i in self._shards,
                cost=lambda i: int(self._raw_sizes[i]),
                budget=self._budget,
                threads=self.fetcher.options.threads,
            )
        self._readahead.plan(first_uses(batches, self._starts))

    def _budget(self) -> int:
        budget = self.fetcher.options.ahead_bytes
        if self._share is not None:
            budget = min(budget, self._share - self._open_bytes - self._largest)
        return max(budget, 0)

    # --- shards ----------------------------------------------------------------------------
    def shard(self, i: int) -> MappedShard:
        opened = self._shards.get(i)
        if opened is None:
            return self._open(i)
        if self._share is not None:
            self._shards.move_to_end(i)
        return opened

    def _open(self, i: int) -> MappedShard:
        if self._source_root is not None:  # a local dataset: its raw files are read in place
            in_place = self.open_in_place(i, self._source_root)
            if in_place is not None:
                self._shards[i] = in_place
                return in_place
        record = self.index.shards[i]
        self._make_room(record.raw_data.bytes)
        lease = self.cache.lease(record)
        if lease is None and i in self._opened:
            self._refetching(i)
        for _ in range(3):  # evicted again before we could open it: only under heavy pressure
            if lease is not None:
                break
            self._fetch(i)
            lease = self.cache.lease(record)
        if lease is None:
            raise CacheTimeoutError(
                f"shard {record.raw_data.basename} was evicted from {self.cache.root} each time "
                "right after it was fetched: cache_limit is too small for the processes sharing "
                "it; raise cache_limit"
            )
        if not self._cached_ok(i, lease):
            lease.close()
            self.fetcher.fetch(record)  # checked as it arrives
            lease = self.cache.lease(record)
            if lease is None:
                raise CacheTimeoutError(
                    f"shard {record.raw_data.basename} was evicted from {self.cache.root} right "
                    "after it was fetched again: raise cache_limit"
                )
        try:
            opened = MappedShard(str(lease.path), record, fd=lease.fd)
        except BaseException:
            lease.close()
            raise
        self._shards[i], self._leases[i] = opened, lease
        self._opened.add(i)
        self._open_bytes += record.raw_data.bytes
        if self._readahead is not None:
            self._readahead.consumed(i)
        return opened

    def _cached_ok(self, i: int, lease: Lease) -> bool:
        """Verify a cached shard once per process (what this process downloaded was checked
        as it arrived); a damaged cached file is dropped from the cache (False)."""
        record = self.index.shards[i]
        if not self.verify_hashes or i in self._verified or self.fetcher.checked(record):
            return True
        try:
            check_local_file(lease.path, record.raw_data)
        except CorruptShardError as exc:
            log.warning("cached shard %s is damaged (%s); fetching it again", lease.path, exc)
            self.cache.discard(record)
            return False
        self._verified.add(i)
        return True

    def _refetching(self, i: int) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "shard %s was evicted from %s before this process was done with it and is "
                "downloaded again; cache_limit=%s holds too few shards for the batches (or the "
                "shuffle block) being read: raise it or lower shuffle_block_size",
                self.index.shards[i].raw_data.basename,
                self.cache.root,
                self.cache.limit,
            )

    def _fetch(self, i: int) -> None:
        """Shard ``i`` placed in the cache: the read-ahead's fetch, or one made right now."""
        future = self._readahead.claim(i) if self._readahead is not None else None
        if future is not None:
            future.result()  # re-raises the fetch's own (already retried) error
            if self.cache.has(self.index.shards[i]):
                return
        self.fetcher.fetch(self.index.shards[i])

    def _make_room(self, size: int) -> None:
        """Close least recently used shards until this one fits in this process's share."""
        if self._share is None:
            return
        while self._shards and self._open_bytes + size + self._largest > self._share:
            oldest = next(iter(self._shards))
            self._close_shard(oldest)

    def _close_shard(self, i: int) -> None:
        self._shards.pop(i).close()
        lease = self._leases.pop(i, None)
        if lease is not None:  # shards read in place hold no lease and no cache room
            lease.close()
            self._open_bytes -= int(self._raw_sizes[i])

    def close(self) -> None:
        if self._readahead is not None:
            self._readahead.close()
            self._readahead = None
        for i in list(self._shards):
            self._close_shard(i)

    def abandon(self) -> None:
        """Drop what a forked child inherited (maps, lease fds, threads) without touching the
        parent's locks; the child then opens its own reader."""
        for shard in self._shards.values():
            shard.close()
        for lease in self._leases.values():
            lease.abandon()
        self._shards.clear()
        self._leases.clear()
        self._readahead = None

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a CachedReader holds locks and threads: open one per process instead")
