"""Tables for the in-place tests and the judge of their contents, deltalake's own reader."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, WriterProperties

UTC = dt.timezone.utc
N = 1000


def small_groups(rows: int) -> WriterProperties:
    return WriterProperties(max_row_group_size=rows)


def deltalake_rows(
    uri: Path | str, version: int | None = None, **options: Any
) -> list[dict[str, Any]]:
    """Every row of a version by deltalake's own engine (it applies deletion vectors and
    column mapping; DeltaTable.to_pyarrow_table refuses the first and nulls the second)."""
    table = DeltaTable(str(uri), version=version, storage_options=options or None)
    reader = QueryBuilder().register("t", table).execute("select * from t")
    return pa.table(reader.read_all()).to_pylist()


def ids_table(ids: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": pa.array(ids % 7, pa.int32()),
            "text": pa.array([f"row {i}" for i in ids.tolist()]),
        }
    )


def every_type() -> pa.Table:
    ts = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    rows = 30

    def cycle(values: list[Any]) -> list[Any]:
        return [values[i % len(values)] for i in range(rows)]

    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "i8": pa.array(cycle([-128, None, 127]), pa.int8()),
            "i16": pa.array(cycle([-3, 4, None]), pa.int16()),
            "i32": pa.array(cycle([None, 1, -(2**31)]), pa.int32()),
            "f32": pa.array(cycle([0.5, None, -2.0]), pa.float32()),
            "f64": pa.array(cycle([1e300, float("nan"), None]), pa.float64()),
            "flag": pa.array(cycle([True, False, None]), pa.bool_()),
            "s": pa.array(cycle(["héllo", None, ""])),
            "bin": pa.array(cycle([b"\x00\xff", b"", None])),
            "ts": pa.array(cycle([ts, None, ts]), pa.timestamp("us", tz="UTC")),
            "ntz": pa.array(cycle([None, dt.datetime(1900, 1, 1, 1)]), pa.timestamp("us")),
            "day": pa.array(
                cycle([dt.date(1969, 12, 31), dt.date(2038, 1, 19), None]), pa.date32()
            ),
            "dec": pa.array(cycle([Decimal("1.50"), None, Decimal("-0.01")]), pa.decimal128(5, 2)),
            "vec": pa.array(cycle([[1.0, 2.0], [], None]), pa.list_(pa.float64())),
            "st": pa.array(cycle([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}])),
            "m": pa.array(cycle([[("k", 1)], None]), pa.map_(pa.string(), pa.int32())),
            "k": pa.array(cycle([7, 9]), pa.int32()),
            "p": pa.array(cycle(["a b", "c%d", None])),
            "pday": pa.array(cycle([dt.date(2024, 1, 1), dt.date(1999, 12, 31)]), pa.date32()),
        }
    )
