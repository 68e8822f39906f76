"""loader: stream sparkshard (and Mosaic MDS) datasets into PyTorch training.

Never imports pyspark, nor the writing side of sparkshard (only its ``format``, ``storage``,
``dataset`` and ``errors``); torch only in the dataset, dataloader and device glue, which
load when first used::

    loader/
      options.py   ShuffleOptions, CacheOptions, DownloadOptions, Stream (validated once)
      mosaic_keywords.py  the fate of every keyword of Mosaic's constructors
      topology.py  where this process sits (the only reader of env / torch.distributed)
      state.py     the resume state and its fingerprint
      order/       pure: seeds, epoch order, partition, mix/ (weights, virtual shards, strata)
      read/        the Reader protocol, sources, DatasetReader, mapped shards, mixtures
      cache/       remote shards: cache directory, eviction, fetcher, read-ahead, reader
      samples.py   the per-sample path: Mosaic-style overrides, indexing, collate_samples
      shards.py    Mosaic's per-shard attributes (samples_per_shard, spanner, ...)
      tables/      Delta tables and Parquet read in place (loaded only when a table is opened)
      dataset.py  dataloader.py  device.py  transforms.py  stats.py   (the torch glue)
"""

from __future__ import annotations

from typing import Any

from loader.options import CacheOptions, DownloadOptions, ShuffleOptions, Stream
from loader.order import EpochOrder, EpochPartition, OrderSettings
from loader.read import DatasetReader
from loader.samples import collate_samples
from loader.state import Fingerprint, ResumeState
from loader.stats import LoaderStats
from loader.topology import Topology
from loader.transforms import FieldSpec

__all__ = [
    "CacheOptions",
    "DatasetReader",
    "DownloadOptions",
    "EpochOrder",
    "EpochPartition",
    "FieldSpec",
    "Fingerprint",
    "LoaderStats",
    "OrderSettings",
    "ResumeState",
    "ShuffleOptions",
    "Stream",
    "StreamingDataLoader",
    "StreamingDataset",
    "Topology",
    "collate_samples",
]


def __getattr__(name: str) -> Any:
    # The torch glue is imported only when asked for, so the pure parts work without torch.
    if name == "StreamingDataset":
        from loader.dataset import StreamingDataset

        return StreamingDataset
    if name == "StreamingDataLoader":
        from loader.dataloader import StreamingDataLoader

        return StreamingDataLoader
    raise AttributeError(f"module 'loader' has no attribute {name!r}")
