"""The local shard cache of remote datasets: directory, eviction, fetching, read-ahead.

- :mod:`~loader.cache.directory`: one remote dataset's namespace, placement, leases, LRU;
- :mod:`~loader.cache.eviction`: which shards to evict (pure);
- :mod:`~loader.cache.fetcher`: one shard downloaded, verified and decompressed into place;
- :mod:`~loader.cache.readahead`: the shards of upcoming batches fetched before they are read;
- :mod:`~loader.cache.reader`: the remote source and its cached reader.
"""

from __future__ import annotations

from loader.cache.directory import Lease, ShardCache, namespace_name, shard_key
from loader.cache.reader import CachedReader, RemoteSource

__all__ = ["CachedReader", "Lease", "RemoteSource", "ShardCache", "namespace_name", "shard_key"]
