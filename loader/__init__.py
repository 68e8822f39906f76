"""loader: stream sparkshard (and Mosaic MDS) datasets into PyTorch training.

Never imports pyspark; torch only in the dataset and dataloader glue.
"""

from __future__ import annotations

from loader.reader import DatasetReader

__all__ = [
    "DatasetReader",
]
