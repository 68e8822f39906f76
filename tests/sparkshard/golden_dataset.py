"""The rows and writer settings behind tests/golden/dataset_v1 (regenerate only on purpose).

python tests/sparkshard/golden_dataset.py tests/golden/dataset_v1
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from sparkshard.format.index import DatasetIndex
from sparkshard.format.schema import schema_from_arrow
from sparkshard.storage import LocalStore
from sparkshard.write.settings import WriterSettings
from sparkshard.write.sink import ShardSink

PREFIX = "data/golden-"
META = {"format": 1, "dataset_version": 1, "note": "golden test dataset"}


def golden_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([0, 1, 2, 3], pa.int64()),
            "small": pa.array([-128, 127, None, 0], pa.int8()),
            "flag": pa.array([True, False, None, True]),
            "text": pa.array(["zero", "", None, "three ✓"]),
            "blob": pa.array([b"\x00", b"", b"\xff\xfe", None], pa.binary()),
            "day": pa.array([dt.date(1970, 1, 1), dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)]),
            "at": pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)] * 3 + [None],
                pa.timestamp("us", tz="UTC"),
            ),
            "price": pa.array(
                [Decimal("1.50"), None, Decimal("-0.01"), Decimal("99.99")], pa.decimal128(4, 2)
            ),
            "vec": pa.array([[1.0, 2.0], [], None, [0.5]], pa.list_(pa.float32())),
            "grid": pa.array([[[1, 2], [3, 4]]] * 4, pa.list_(pa.list_(pa.int16(), 2), 2)),
            "meta": pa.array([{"k": 1}, None, {"k": 3}, {"k": 4}], pa.struct([("k", pa.int32())])),
        }
    )


def write_golden(root: Path) -> DatasetIndex:
    """Write the golden rows into ``root`` as two shards; returns the index (also written)."""
    table = golden_table()
    store = LocalStore(root)
    sink = ShardSink(
        store,
        schema_from_arrow(table.schema),
        prefix=PREFIX,
        settings=WriterSettings.of("zstd", ["sha256", "xxh64"], 300),
    )
    sink.write_batch(table)
    index = DatasetIndex(tuple(sink.close()), {**META, "columns": sink.schema.meta()})
    store.write("index.json", index.to_json())
    return index


if __name__ == "__main__":
    write_golden(Path(sys.argv[1]))
