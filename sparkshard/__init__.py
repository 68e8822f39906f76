"""sparkshard: Spark DataFrames and Delta tables to verified MDS shards (the writing side).

The training side lives in the ``loader`` package, which imports only the parts both sides
share (``format``, ``storage``, ``dataset``, ``errors``). The writing side (``write``,
``spark``, ``delta``, ``tools``) is imported when one of its names is first used, so
``import loader`` never loads the writer, Spark, Delta or pyarrow.parquet.

    sparkshard/
      errors.py   every error (the tree is drawn there)
      format/     the MDS v2 format as pure code: encodings, schema, shard, index, ...
      storage/    the Store seam: local, S3, GCS, Azure, fsspec; the contract suite
      dataset/    versions (read, commit, write modes) and shard files (fetch, verify)
      write/      writer settings, the shard sink, ShardWriter, the distributed commit
      spark/      dataframe_to_shards, dataframe_to_mds, sessions, fingerprints, cache()
      delta/      delta_to_shards: snapshot, sync plan, Arrow read, row filter
      tools/      inspect, history, verify, gc (what ``python -m sparkshard`` runs)
      cli.py
"""

from __future__ import annotations

import importlib
from typing import Any

from sparkshard.dataset.versions import DatasetInfo
from sparkshard.errors import (
    CacheTimeoutError,
    CommitUnknownError,
    CorruptShardError,
    DatasetExistsError,
    DownloadError,
    EncodingError,
    IndexFormatError,
    JobFinishedError,
    MissingDependencyError,
    ResumeStateError,
    SchemaError,
    SourceRewrittenError,
    SparkshardError,
    StorageError,
    UnsupportedSourceError,
    UnsupportedURLError,
    VersionConflictError,
)
from sparkshard.storage import LocalStore, Store, open_store

__version__ = "0.1.0"

__all__ = [
    "CacheTimeoutError",
    "CachedDataset",
    "CommitUnknownError",
    "CorruptShardError",
    "DatasetExistsError",
    "DatasetInfo",
    "DownloadError",
    "EncodingError",
    "IndexFormatError",
    "JobFinishedError",
    "LocalStore",
    "MDSWriter",
    "MissingDependencyError",
    "ResumeStateError",
    "SchemaError",
    "ShardWriter",
    "SourceRewrittenError",
    "SparkshardError",
    "StorageError",
    "Store",
    "UnsupportedSourceError",
    "UnsupportedURLError",
    "VersionConflictError",
    "__version__",
    "cache",
    "dataframe_to_mds",
    "dataframe_to_shards",
    "delta_to_shards",
    "open_store",
]

# The writing side, loaded on first use (name -> module that defines it).
_LAZY = {
    "CachedDataset": "sparkshard.spark.cached",
    "MDSWriter": "sparkshard.write.mdswriter",
    "ShardWriter": "sparkshard.write.writer",
    "cache": "sparkshard.spark.cached",
    "dataframe_to_mds": "sparkshard.spark.mosaic",
    "dataframe_to_shards": "sparkshard.spark.write",
    "delta_to_shards": "sparkshard.delta.convert",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkshard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
