"""``sparkshard.cache(df, cache_dir)``: convert a DataFrame once, reuse it while it is current.

    cached = sparkshard.cache(df, "/Volumes/main/ml/cache")
    loader = cached.dataloader(batch_size=256, num_workers=4, shuffle=True)
    ...
    cached.delete()

What Petastorm's ``make_spark_converter`` was for, without its stale cache: the dataset
lives under ``{cache_dir}/{key}``, where the key covers the DataFrame's canonical plan,
its schema, every input file with its size and modification time, the versions of the
Delta tables it reads (:mod:`sparkshard.spark.fingerprint`), and the writer settings. The same
DataFrame over the same data finds its shards again, in this process or another; once a
source is rewritten, the same code gets a new key and a fresh conversion. Old entries are
never served for new data; remove them with :meth:`CachedDataset.delete` or by deleting
their folders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sparkshard.dataset.modes import Mode
from sparkshard.dataset.versions import DatasetInfo, dataset_info, has_dataset, read_index
from sparkshard.errors import DatasetExistsError, VersionConflictError
from sparkshard.spark.fingerprint import dataframe_fingerprint
from sparkshard.storage import open_store

__all__ = ["CachedDataset", "cache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedDataset:
    """A converted DataFrame in the cache: open it as a dataset or a loader, or delete it."""

    url: str
    key: str
    info: DatasetInfo
    reused: bool  # True when the shards were already there
    storage_options: Mapping[str, Any] | None = None

    def dataset(self, **kwargs: Any) -> Any:
        """A :class:`loader.StreamingDataset` over the cached shards (``kwargs`` passed on)."""
        from loader import StreamingDataset

        where = "local" if _is_local(self.url) else "remote"
        kwargs.setdefault(where, self.url.removeprefix("file://"))
        return StreamingDataset(**kwargs)

    def dataloader(
        self, batch_size: int, *, num_workers: int = 0, shuffle: bool = False, **kwargs: Any
    ) -> Any:
        """A :class:`loader.StreamingDataLoader` (``kwargs`` go to the dataset)."""
        from loader import StreamingDataLoader

        dataset = self.dataset(batch_size=batch_size, shuffle=shuffle, **kwargs)
        return StreamingDataLoader(dataset, batch_size=batch_size, num_workers=num_workers)

    def delete(self) -> None:
        """Remove this entry's files (its shards and version records)."""
        store = open_store(self.url, self.storage_options)
        keys = store.list()
        for key in sorted(keys, key=lambda k: k == "index.json"):  # index.json first
            store.delete(key)
        local = store.local_path("")
        if local is not None and os.path.isdir(local):
            store.delete("")  # the empty folders too
        log.info("deleted cached dataset %s (%d files)", self.url, len(keys))


def cache(
    df: Any,
    cache_dir: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    compression: str | None = "zstd",
    hashes: Iterable[str] | None = ("xxh64",),
    size_limit: int | str = "64MB",
    storage_options: Mapping[str, Any] | None = None,
) -> CachedDataset:
    """The shards of ``df`` under ``cache_dir``: reused when current, converted otherwise.

    ``columns``, ``compression``, ``hashes`` and ``size_limit`` are as for
    :func:`sparkshard.dataframe_to_shards` and are part of the key. Two processes caching
    the same DataFrame at once write it once: the second finds the first one's version.
    """
    from sparkshard.spark import dataframe_to_shards

    hash_list = list(hashes) if hashes is not None else None
    source = dataframe_fingerprint(df)
    writer = {"columns": dict(columns or {}), "compression": compression, "hashes": hash_list,
              "size_limit": size_limit}  # fmt: skip
    key = _key(source["key"], writer)
    url = f"{os.fspath(cache_dir).rstrip('/')}/{key}"
    store = open_store(url, storage_options)
    mode: Mode = "error"
    if has_dataset(store):
        index = read_index(store)
        missing = _missing_files(store, index)
        if not missing:
            log.info("cache hit: %s", store.url)
            return CachedDataset(store.url, key, dataset_info(store, index), True, storage_options)
        log.warning(
            "cached dataset %s lacks %d shard file(s) (e.g. %s): converting again",
            store.url, len(missing), missing[0],
        )  # fmt: skip
        mode = "overwrite"
    lineage = {"cache_key": key, "source_fingerprint": source}
    try:
        info = dataframe_to_shards(
            df, url, columns=columns, compression=compression, hashes=hash_list,
            size_limit=size_limit, mode=mode, storage_options=storage_options, lineage=lineage,
        )  # fmt: skip
    except (DatasetExistsError, VersionConflictError):  # another process converted it first
        log.info("another writer cached %s first; reusing it", store.url)
        return CachedDataset(
            store.url, key, dataset_info(store, read_index(store)), True, storage_options
        )
    log.info("cached %d samples at %s", info.num_samples, store.url)
    return CachedDataset(store.url, key, info, False, storage_options)


def _missing_files(store: Any, index: Any) -> list[str]:
    """Shard files ``index`` references that ``store`` does not hold (one listing)."""
    present = set(store.list())
    return sorted(set(index.table.stored_names()) - present)


def _key(source_key: str, writer: Mapping[str, Any]) -> str:
    text = json.dumps({"source": source_key, "writer": writer}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")
