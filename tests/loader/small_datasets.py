"""Small real datasets for the loader tests, written with ShardWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from sparkshard import ShardWriter


def write_dataset(path: Path, num_samples: int, *, size_limit: int = 1500) -> Path:
    """``num_samples`` rows ``{id, label}`` (labels sorted), cut into shards of ~60 samples."""
    schema = pa.schema([pa.field("id", pa.int64(), False), pa.field("label", pa.int64(), False)])
    ids = np.arange(num_samples, dtype=np.int64)
    table = pa.table({"id": ids, "label": ids * 10 // max(num_samples, 1)}, schema=schema)
    with ShardWriter(path, size_limit=size_limit, compression="zstd") as writer:
        writer.write_batch(table)
    return path
