"""sparkshard: Spark DataFrames and Delta tables to verified MDS shards (the writing side).

The training side lives in the ``loader`` package.
"""

from __future__ import annotations

from typing import Any

from sparkshard.cached import CachedDataset, cache
from sparkshard.delta import delta_to_shards
from sparkshard.errors import (
    CorruptShardError,
    DatasetExistsError,
    EncodingError,
    IndexFormatError,
    MissingDependencyError,
    ResumeStateError,
    SchemaError,
    SourceRewrittenError,
    SparkshardError,
    StorageError,
    UnsupportedSourceError,
    VersionConflictError,
)
from sparkshard.storage import LocalStore, Store, open_store
from sparkshard.versions import DatasetInfo
from sparkshard.writer import ShardWriter

__version__ = "0.1.0"

__all__ = [
    "CachedDataset",
    "CorruptShardError",
    "DatasetExistsError",
    "DatasetInfo",
    "EncodingError",
    "IndexFormatError",
    "LocalStore",
    "MissingDependencyError",
    "ResumeStateError",
    "SchemaError",
    "ShardWriter",
    "SourceRewrittenError",
    "SparkshardError",
    "StorageError",
    "Store",
    "UnsupportedSourceError",
    "VersionConflictError",
    "__version__",
    "cache",
    "dataframe_to_mds",
    "dataframe_to_shards",
    "delta_to_shards",
    "open_store",
]

_SPARK_NAMES = ("dataframe_to_mds", "dataframe_to_shards")


def __getattr__(name: str) -> Any:
    # The Spark entry points import pyspark; load them only when asked for.
    if name in _SPARK_NAMES:
        from sparkshard import spark

        return getattr(spark, name)
    raise AttributeError(f"module 'sparkshard' has no attribute {name!r}")
