"""loader: stream sparkshard (and Mosaic MDS) datasets into PyTorch training.

Never imports pyspark; torch only in the dataset, dataloader and device glue.
"""

from __future__ import annotations

from typing import Any

from loader.order import EpochOrder, OrderSettings
from loader.partition import EpochPartition
from loader.reader import DatasetReader
from loader.state import Fingerprint, ResumeState
from loader.stats import LoaderStats
from loader.stream import Stream
from loader.topology import Topology
from loader.transforms import FieldSpec

__all__ = [
    "DatasetReader",
    "EpochOrder",
    "EpochPartition",
    "FieldSpec",
    "Fingerprint",
    "LoaderStats",
    "OrderSettings",
    "ResumeState",
    "Stream",
    "StreamingDataLoader",
    "StreamingDataset",
    "Topology",
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
