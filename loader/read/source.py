"""Where a StreamingDataset's shards come from: a directory read in place, or a remote dataset
read through the shard cache (:mod:`loader.cache.reader`). :func:`open_source` picks one from
the constructor's ``remote=``/``local=``/``split=`` and the :class:`ReadOptions` every source
of the dataset shares.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from loader.options import CacheOptions, DownloadOptions
from loader.read.ledger import HashLedger
from loader.read.protocol import Reader, Source
from sparkshard.dataset.versions import read_index
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import LocalStore, open_store

__all__ = ["ReadOptions", "is_cloud", "open_source"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadOptions:
    """How every source of one dataset reads: validated once, by the dataset's constructor.

    ``verify_hashes``: every shard file is checked against its index hash before it is read
    (raw files in place once per reader, shared with its DataLoader workers; downloads as
    they arrive; cached and decompressed copies once per process); False opts out. ``processes`` is how many reading processes of this node share a cache
    (ranks per node).
    """

    columns: tuple[str, ...] | None = None
    verify_hashes: bool = True
    allow_unsafe_types: bool = False
    cache: CacheOptions = field(default_factory=CacheOptions)
    download: DownloadOptions = field(default_factory=DownloadOptions)
    storage_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    processes: int = 1

    def with_verify(self, verify_hashes: bool | None) -> ReadOptions:
        return self if verify_hashes is None else replace(self, verify_hashes=verify_hashes)


@dataclass(frozen=True)
class _LocalSource:
    """An uncompressed dataset directory on a local (or mounted) file system, read in place.
    ``ledger`` records the pinned version's hash checks for every reader this source opens,
    in any process (DataLoader workers receive it with the source)."""

    path: Path
    options: ReadOptions
    index: DatasetIndex
    ledger: HashLedger
    per_process = False

    def open(self, version: int | None) -> Reader:
        from loader.read.reader import DatasetReader

        pinned = version is None or version == self.index.dataset_version
        return DatasetReader(
            self.path,
            version=version,
            columns=self.options.columns,
            verify_hashes=self.options.verify_hashes,
            allow_unsafe_pickle=self.options.allow_unsafe_types,
            index=self.index if pinned else None,
            ledger=self.ledger if pinned else None,
        )


def open_source(
    remote: str | None,
    local: str | None,
    split: str | None,
    options: ReadOptions,
    version: int | None = None,
    *,
    delta: str | None = None,
    parquet: str | Sequence[str] | None = None,
    row_filter: Any = None,
) -> Source:
    """Where a dataset's shards come from (its ``version`` is pinned on the way):

    - a local directory: read in place when its shards are uncompressed; compressed shards are
      decompressed into a local cache (:func:`loader.cache.directory.default_cache_dir`,
      bounded by ``cache_limit``), never beside the shards: the directory may be read-only;
    - ``remote=`` with ``local=``: through the shard cache in ``local``;
    - ``delta=`` or ``parquet=``: a table read in place (:mod:`loader.tables`), row groups
      as shards, rows kept by ``row_filter`` (DNF tuples); ``local=`` is the cache of a
      remote table.
    """
    from loader.cache.reader import RemoteSource

    if delta is not None or parquet is not None:
        from loader.tables import open_table

        return open_table(delta, parquet, local, remote, split, options, row_filter)
    if row_filter is not None:
        raise ValueError("filter= applies to tables read in place (delta= or parquet=)")

    if local is None and remote is None:
        raise ValueError("StreamingDataset needs local= (a dataset directory) or remote=")
    if remote is None:
        assert local is not None
        return _local_source(Path(local) / split if split else Path(local), options, version)
    url = f"{remote.rstrip('/')}/{split}" if split else remote
    in_place = None if is_cloud(url) else open_store(url).local_path("")
    if in_place is not None and (local is None or _same_dir(local, remote)):
        return _local_source(Path(in_place), options, version)
    if local is None:
        raise ValueError(
            f"remote={remote!r} needs local=<a directory on local disk> to cache its shards in "
            "(several datasets and processes may share one)"
        )
    return RemoteSource(url.rstrip("/"), Path(local).expanduser().absolute(), options)


def _local_source(path: Path, options: ReadOptions, version: int | None) -> Source:
    from loader.cache.directory import default_cache_dir, index_dir
    from loader.cache.reader import RemoteSource

    index = read_index(LocalStore(path), version, derived=index_dir(default_cache_dir(), path))
    if (index.table.zip_bytes >= 0).any():
        cache = default_cache_dir()
        logger.info(
            "%s is compressed: its shards are decompressed into the local cache %s (bounded by "
            "cache_limit=%s; pass remote=%s, local=<dir> to choose the directory)",
            path, cache, options.cache.limit, path,
        )  # fmt: skip
        return RemoteSource(str(path), cache, options, index)
    if options.cache.limit is not None:
        raise ValueError(
            f"cache_limit={options.cache.limit} bounds the local cache of downloaded or "
            f"decompressed shards, but {path} is uncompressed and read in place, so nothing "
            "is cached: drop cache_limit"
        )
    return _LocalSource(path, options, index, HashLedger(len(index.table)))


def is_cloud(url: str | None) -> bool:
    """Whether ``url`` names object storage (read by a cloud client), not a local path."""
    return url is not None and "://" in url and not url.startswith("file://")


def _same_dir(a: str, b: str) -> bool:
    def norm(p: str) -> Path:
        return Path(p.removeprefix("file://")).expanduser().absolute()

    return norm(a) == norm(b)
