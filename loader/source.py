"""Where a StreamingDataset's shards come from: a directory read in place, or a remote dataset
read through the shard cache (:mod:`loader.remote`). :func:`open_source` picks one from the
constructor's ``remote=``/``local=``/``split=`` and the cache arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loader.download import DownloadOptions
from loader.remote import RemoteSettings, RemoteSource
from sparkshard.sizes import parse_size
from sparkshard.storage import open_store

__all__ = ["CacheArgs", "Reader", "Source", "is_cloud", "open_source"]

logger = logging.getLogger(__name__)


class Reader(Protocol):
    num_samples: int
    shard_sizes: np.ndarray
    version: int | None
    fingerprint: str

    @property
    def bytes_read(self) -> int: ...

    def get(self, index: int) -> dict[str, Any]: ...
    def get_batch(self, ids: np.ndarray) -> dict[str, Any]: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...


class Source(Protocol):
    """Where shards come from: a local directory, or a remote one through a cache."""

    @property
    def per_process(self) -> bool:  # whether each process (e.g. a forked worker) opens its own
        ...

    def open(self, version: int | None) -> Reader: ...


@dataclass(frozen=True)
class _LocalSource:
    """A dataset directory on a local (or mounted) file system."""

    path: Path
    columns: tuple[str, ...] | None = None
    verify_hashes: bool = False
    allow_unsafe_pickle: bool = False
    per_process = False

    def open(self, version: int | None) -> Reader:
        from loader.reader import DatasetReader

        return DatasetReader(
            self.path,
            version=version,
            columns=self.columns,
            verify_hashes=self.verify_hashes,
            allow_unsafe_pickle=self.allow_unsafe_pickle,
        )


@dataclass(frozen=True)
class CacheArgs:
    """The remote-streaming arguments of the constructor, passed on together."""

    cache_limit: int | str | None
    storage_options: Mapping[str, Any] | None
    download: DownloadOptions
    processes: int  # reading processes of this node that share the cache (ranks per node)


def open_source(
    remote: str | None,
    local: str | None,
    split: str | None,
    columns: tuple[str, ...] | None,
    verify_hashes: bool | None,
    allow_unsafe: bool,
    cache: CacheArgs,
) -> Source:
    """A local directory read in place, or a remote dataset read through a cache in ``local``."""
    if local is None and remote is None:
        raise ValueError("StreamingDataset needs local= (a dataset directory) or remote=")
    if remote is None:
        assert local is not None
        if cache.cache_limit is not None:
            logger.warning(
                "cache_limit is ignored without remote=: %s exists only locally and nothing "
                "is ever deleted from it",
                local,
            )
        path = Path(local) / split if split else Path(local)
        return _LocalSource(path, columns, bool(verify_hashes), allow_unsafe)
    url = f"{remote.rstrip('/')}/{split}" if split else remote
    in_place = None if is_cloud(url) else open_store(url, cache.storage_options).local_path("")
    if in_place is not None and (local is None or _same_dir(local, remote)):
        return _LocalSource(Path(in_place), columns, bool(verify_hashes), allow_unsafe)
    if local is None:
        raise ValueError(
            f"remote={remote!r} needs local=<a directory on local disk> to cache its shards in "
            "(several datasets and processes may share one)"
        )
    limit = None if cache.cache_limit is None else parse_size(cache.cache_limit, what="cache_limit")
    settings = RemoteSettings(
        url.rstrip("/"),
        Path(local).expanduser().absolute(),
        limit,
        dict(cache.storage_options or {}),
        cache.download,
        verify_cached=bool(verify_hashes),
    )
    return RemoteSource(settings, columns, allow_unsafe, cache.processes)


def is_cloud(url: str | None) -> bool:
    """Whether ``url`` names object storage (read by a cloud client), not a local path."""
    return url is not None and "://" in url and not url.startswith("file://")


def _same_dir(a: str, b: str) -> bool:
    def norm(p: str) -> Path:
        return Path(p.removeprefix("file://")).expanduser().absolute()

    return norm(a) == norm(b)
