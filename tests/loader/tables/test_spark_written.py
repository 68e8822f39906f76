"""A Delta table whose data files Spark wrote (``df.write.parquet`` then delta-rs'
``convert_to_deltalake``: no delta-spark jar here) read in place: Spark's Parquet encodings
(INT96 and INT64 timestamps, decimals as INT32, INT64 and fixed-length bytes, bytes and shorts
as annotated INT32, Spark's list, struct and map groups), plain and hive-partitioned, every row
once with deltalake's values, 0 and 2 DataLoader workers, nothing written to the table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deltalake import DeltaTable, Field, Schema, convert_to_deltalake
from table_data import deltalake_rows
from test_values import deltalake_value, plain

from loader import StreamingDataLoader, StreamingDataset

UTC = dt.timezone.utc
SPARK_TS = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
ROWS = 60
BATCH = 10  # divides ROWS: an epoch is every row exactly once, no padding


def spark_schema() -> Any:
    from pyspark.sql import types as T

    def col(name: str, kind: Any) -> Any:
        return T.StructField(name, kind)

    pair = T.StructType([col("a", T.IntegerType()), col("b", T.StringType())])
    fields = [
        ("i8", T.ByteType()), ("i16", T.ShortType()), ("i32", T.IntegerType()),
        ("i64", T.LongType()), ("f32", T.FloatType()), ("f64", T.DoubleType()),
        ("d9", T.DecimalType(5, 2)), ("d18", T.DecimalType(15, 3)), ("d38", T.DecimalType(30, 5)),
        ("s", T.StringType()), ("bin", T.BinaryType()), ("flag", T.BooleanType()),
        ("day", T.DateType()), ("ts", T.TimestampType()), ("ntz", T.TimestampNTZType()),
        ("vec", T.ArrayType(T.DoubleType())), ("tags", T.ArrayType(T.StringType())),
        ("st", pair), ("m", T.MapType(T.StringType(), T.IntegerType())), ("k", T.IntegerType()),
    ]  # fmt: skip
    return T.StructType(
        [T.StructField("id", T.LongType(), nullable=False), *(col(n, t) for n, t in fields)]
    )


def spark_rows() -> list[tuple[Any, ...]]:
    ts = SPARK_TS
    big, negative = Decimal("1234567890123456789012345.00001"), Decimal("-0.00001")
    columns: list[list[Any]] = [
        [-128, None, 127],
        [-3, 4, None, -(2**15)],
        [None, 1, -(2**31)],
        [2**63 - 1, None, -5],
        [0.5, None, -2.0],
        [1e300, float("nan"), None, -0.0],
        [Decimal("1.50"), None, Decimal("-0.01")],
        [Decimal("123456789012.345"), None],
        [None, big, negative],
        ["héllo", None, ""],
        [b"\x00\xff", b"", None],
        [True, False, None],
        [dt.date(1969, 12, 31), dt.date(2038, 1, 19), None],
        [ts, None, ts.replace(year=1960)],
        [None, dt.datetime(1900, 1, 1, 1)],
        [[1.0, 2.0], [], None],
        [["a", None], None, []],
        [{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}],
        [{"k": 1}, None, {}],
        [7, 9],
    ]
    return [(i, *(c[i % len(c)] for c in columns)) for i in range(ROWS)]


def spark_delta(spark: Any, path: Path, *, partitioned: bool, timestamps: str) -> Path:
    """Spark writes Parquet (timestamps as ``timestamps``), delta-rs commits it as version 0."""
    spark.conf.set("spark.sql.parquet.outputTimestampType", timestamps)
    try:
        df = spark.createDataFrame(spark_rows(), spark_schema()).repartition(3)
        if partitioned:
            df.write.partitionBy("k").parquet(str(path))
            schema = Schema([Field("k", "integer")])
            convert_to_deltalake(path, partition_by=schema, partition_strategy="hive")
        else:
            df.write.parquet(str(path))
            convert_to_deltalake(path)
    finally:
        spark.conf.unset("spark.sql.parquet.outputTimestampType")
    return path


def listing(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    )


def batch_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """A DataLoader batch (tensors, masked arrays, lists) as rows of plain Python."""
    columns = {name: column_values(values) for name, values in batch.items()}
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def column_values(values: Any) -> list[Any]:
    if isinstance(values, np.ma.MaskedArray):
        return [plain(v) for v in values.tolist()]  # masked -> None
    if hasattr(values, "tolist"):
        return [plain(v) for v in values.tolist()]  # a tensor
    return [plain(v) for v in values]


def normalized(row: dict[str, Any]) -> dict[str, Any]:
    """deltalake's row as the in-place reader gives it: the map ``m`` (key-value pairs, also
    when empty) as a dict."""
    values = {name: deltalake_value(value) for name, value in row.items()}
    if values["m"] is not None:
        values["m"] = dict(values["m"])
    return values


def as_in_batches(row: dict[str, Any]) -> dict[str, Any]:
    """Batches carry timestamps as datetime64 (UTC, no zone), as the MDS path does."""
    return {
        name: v.astimezone(UTC).replace(tzinfo=None)
        if isinstance(v, dt.datetime) and v.tzinfo
        else v
        for name, v in row.items()
    }


@pytest.mark.parametrize(
    ("partitioned", "timestamps"), [(False, "INT96"), (True, "TIMESTAMP_MICROS")]
)
def test_spark_written_delta_reads_in_place_as_deltalake_does(
    spark: Any, tmp_path: Path, partitioned: bool, timestamps: str
) -> None:
    uri = spark_delta(spark, tmp_path / "t", partitioned=partitioned, timestamps=timestamps)
    assert DeltaTable(str(uri)).version() == 0
    files = [p for p in uri.rglob("*.parquet") if not p.name.startswith(".")]
    assert len(files) >= 3 and all(p.name.startswith("part-") for p in files)
    before = listing(uri)
    theirs = {int(r["id"]): normalized(r) for r in deltalake_rows(uri)}
    assert sorted(theirs) == list(range(ROWS))
    # INT96 converts to timestamp_ntz (UTC wall time), INT64 micros to a UTC timestamp
    stamp = theirs[14]["ts"]
    assert stamp.replace(tzinfo=stamp.tzinfo or UTC) == SPARK_TS.replace(year=1960)
    ds = StreamingDataset(delta=str(uri), batch_size=BATCH, shuffle=True)
    assert ds.version == 0 and ds.num_samples == ROWS
    by_index = [{c: plain(v) for c, v in ds[i].items()} for i in range(ROWS)]
    assert sorted(r["id"] for r in by_index) == list(range(ROWS))
    assert {r["id"]: r for r in by_index} == theirs
    alone = StreamingDataset(delta=str(uri), batch_size=BATCH, shuffle=True)
    epoch = np.concatenate([np.asarray(b["id"]) for b in alone.iter_batches()]).tolist()
    for workers in (0, 2):
        fresh = StreamingDataset(delta=str(uri), batch_size=BATCH, shuffle=True)
        loader = StreamingDataLoader(fresh, batch_size=BATCH, num_workers=workers)
        rows = [row for batch in loader for row in batch_rows(batch)]
        assert [r["id"] for r in rows] == epoch, workers  # the one-process epoch, in order
        assert sorted(epoch) == list(range(ROWS))
        for row in rows:
            assert row == as_in_batches(theirs[row["id"]]), (workers, row["id"])
    assert listing(uri) == before  # nothing written into the table directory
