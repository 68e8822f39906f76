"""Where a StreamingDataset's shards come from: a directory read in place, or a remote dataset
read through the shard cache (:mod:`loader.cache.reader`). :func:`open_source` picks one from
the constructor's ``remote=``/``local=``/``split=`` and the :class:`ReadOptions` every source
of the dataset shares.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from loader.options import CacheOptions, DownloadOptions
from loader.read.protocol import Reader, Source
from sparkshard.storage import open_store

__all__ = ["ReadOptions", "is_cloud", "open_source"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadOptions:
    """How every source of one dataset reads: validated once, by the dataset's constructor.

    ``verify_hashes`` None: downloads are checked against the index hash, files already on
    disk are not; True checks those too; False checks nothing. ``processes`` is how many
    reading processes of this node share a cache (ranks per node).
    """

    columns: tuple[str, ...] | None = None
    verify_hashes: bool | None = None
    allow_unsafe_types: bool = False
    cache: CacheOptions = field(default_factory=CacheOptions)
    download: DownloadOptions = field(default_factory=DownloadOptions)
    storage_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    processes: int = 1

    def with_verify(self, verify_hashes: bool | None) -> ReadOptions:
        return self if verify_hashes is None else replace(self, verify_hashes=verify_hashes)


@dataclass(frozen=True)
class _LocalSource:
    """A dataset directory on a local (or mounted) file system."""

    path: Path
    options: ReadOptions
    per_process = False

    def open(self, version: int | None) -> Reader:
        from loader.read.reader import DatasetReader

        return DatasetReader(
            self.path,
            version=version,
            columns=self.options.columns,
            verify_hashes=bool(self.options.verify_hashes),
            allow_unsafe_pickle=self.options.allow_unsafe_types,
        )


def open_source(
    remote: str | None, local: str | None, split: str | None, options: ReadOptions
) -> Source:
    """A local directory read in place, or a remote dataset read through a cache in ``local``."""
    from loader.cache.reader import RemoteSource

    if local is None and remote is None:
        raise ValueError("StreamingDataset needs local= (a dataset directory) or remote=")
    if remote is None:
        assert local is not None
        if options.cache.limit is not None:
            logger.warning(
                "cache_limit is ignored without remote=: %s exists only locally and nothing "
                "is ever deleted from it",
                local,
            )
        path = Path(local) / split if split else Path(local)
        return _LocalSource(path, options)
    url = f"{remote.rstrip('/')}/{split}" if split else remote
    in_place = None if is_cloud(url) else open_store(url, options.storage_options).local_path("")
    if in_place is not None and (local is None or _same_dir(local, remote)):
        return _LocalSource(Path(in_place), options)
    if local is None:
        raise ValueError(
            f"remote={remote!r} needs local=<a directory on local disk> to cache its shards in "
            "(several datasets and processes may share one)"
        )
    return RemoteSource(url.rstrip("/"), Path(local).expanduser().absolute(), options)


def is_cloud(url: str | None) -> bool:
    """Whether ``url`` names object storage (read by a cloud client), not a local path."""
    return url is not None and "://" in url and not url.startswith("file://")


def _same_dir(a: str, b: str) -> bool:
    def norm(p: str) -> Path:
        return Path(p.removeprefix("file://")).expanduser().absolute()

    return norm(a) == norm(b)
