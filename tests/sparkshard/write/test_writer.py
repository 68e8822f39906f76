"""ShardWriter + DatasetReader round trips: random Arrow tables, rows, modes and failures."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader import DatasetReader
from sparkshard import (
    DatasetExistsError,
    EncodingError,
    SchemaError,
    ShardWriter,
    VersionConflictError,
)
from sparkshard.dataset.versions import commit_version, read_index
from sparkshard.storage import LocalStore

INT_TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
]


def _values(arrow_type: pa.DataType) -> st.SearchStrategy[Any]:
    if pa.types.is_integer(arrow_type):
        bits, signed = arrow_type.bit_width, pa.types.is_signed_integer(arrow_type)
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        return st.integers(low, high)
    if pa.types.is_floating(arrow_type):
        return st.floats(width=arrow_type.bit_width, allow_nan=True, allow_infinity=True)
    if pa.types.is_boolean(arrow_type):
        return st.booleans()
    if pa.types.is_string(arrow_type):
        return st.text(max_size=12)
    if pa.types.is_binary(arrow_type):
        return st.binary(max_size=40)
    if pa.types.is_date32(arrow_type):
        return st.dates()
    if pa.types.is_timestamp(arrow_type):
        moments = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
        if arrow_type.tz:
            return moments.map(lambda d: d.replace(tzinfo=dt.timezone.utc))
        return moments
    if pa.types.is_decimal(arrow_type):
        return st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False)
    if pa.types.is_fixed_size_list(arrow_type):
        return st.lists(st.integers(-(2**15), 2**15 - 1), min_size=3, max_size=3)
    if pa.types.is_list(arrow_type):
        return st.lists(st.floats(width=32, allow_nan=True), max_size=6)
    return st.fixed_dictionaries({"a": st.integers(-5, 5), "b": st.text(max_size=4)})


COLUMN_TYPES = [
    *INT_TYPES, pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.string(), pa.binary(),
    pa.date32(), pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.decimal128(12, 3),
    pa.list_(pa.float32()), pa.list_(pa.int16(), 3), pa.struct([("a", pa.int64()), ("b", pa.string())]),
]  # fmt: skip


@st.composite
def arrow_tables(draw: st.DrawFn) -> pa.Table:
    types = draw(st.lists(st.sampled_from(COLUMN_TYPES), min_size=1, max_size=5))
    rows = draw(st.integers(0, 40))
    columns = {}
    for i, arrow_type in enumerate(types):
        nullable = draw(st.booleans())
        values = draw(
            st.lists(
                _values(arrow_type) | st.none() if nullable else _values(arrow_type),
                min_size=rows,
                max_size=rows,
            )
        )
        if pa.types.is_float16(arrow_type):  # Arrow builds float16 from numpy only
            missing = np.array([v is None for v in values], np.bool_)
            filled = np.array([0.0 if v is None else v for v in values], np.float16)
            columns[f"c{i}"] = pa.array(filled, pa.float16(), mask=missing)
        else:
            columns[f"c{i}"] = pa.array(values, arrow_type)
    fields = [
        pa.field(n, a.type, nullable=a.null_count > 0 or draw(st.booleans()))
        for n, a in columns.items()
    ]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def _equal(expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, float):
        return (math.isnan(expected) and math.isnan(float(got))) or expected == got
    if isinstance(expected, list):
        array = np.asarray(expected, dtype=got.dtype)
        return array.shape == got.shape and np.array_equal(
            array, got, equal_nan=got.dtype.kind == "f"
        )
    return bool(expected == got)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=arrow_tables(),
    size_limit=st.sampled_from([64, 300, 1 << 20]),
    compression=st.sampled_from([None, "zstd", "gz"]),
)
def test_arrow_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    table: pa.Table,
    size_limit: int,
    compression: str | None,
) -> None:
    out = tmp_path_factory.mktemp("ds")
    with ShardWriter(out, compression=compression, size_limit=size_limit) as writer:
        for batch in table.to_batches(max_chunksize=7) or [table]:
            writer.write_batch(batch)
    reader = DatasetReader(out, verify_hashes=True)
    assert len(reader) == table.num_rows == writer.info.num_samples
    expected = table.to_pylist()
    for i, row in enumerate(expected):
        got = reader.get(i)
        assert all(_equal(row[k], got[k]) for k in row), (i, row, got)
    if table.num_rows:
        ids = np.random.default_rng(0).permutation(table.num_rows)
        batch = reader.get_batch(ids)
        for name, values in batch.items():
            for position, i in enumerate(ids.tolist()):
                value = values[position]
                if isinstance(values, np.ma.MaskedArray):
                    value = (
                        None
                        if np.ma.getmaskarray(values)[position].any()
                        else values.data[position]
                    )
                want = expected[i][name]
                if isinstance(value, (np.datetime64, np.bool_)):
                    value = value.item()
                    want = want.replace(tzinfo=None) if isinstance(want, dt.datetime) else want
                assert _equal(want, value), (name, i, want, value)


def test_rows_and_arrow_write_the_same_bytes(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": pa.array(["a", "bb", ""])})
    table = table.cast(
        pa.schema([pa.field("id", pa.int64(), False), pa.field("name", pa.string(), False)])
    )
    with ShardWriter(tmp_path / "arrow") as w:
        w.write_batch(table)
    with ShardWriter(tmp_path / "rows", columns={"id": "int64", "name": "str"}) as w:
        for row in table.to_pylist():
            w.write(row)
    a, b = DatasetReader(tmp_path / "arrow"), DatasetReader(tmp_path / "rows")
    shard_a = tmp_path / "arrow" / a.index.shards[0].raw_data.basename
    assert a.index.shards[0].raw_data.hashes == b.index.shards[0].raw_data.hashes
    assert shard_a.exists() or a.index.shards[0].zip_data is not None


def test_size_limit_splits_shards_like_mds(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, columns={"x": "bytes"}, size_limit=1000, compression=None) as w:
        for i in range(50):
            w.write({"x": bytes(100 + i)})
    index = read_index(LocalStore(tmp_path))
    assert sum(s.samples for s in index.shards) == 50 and len(index.shards) > 5
    for shard in index.shards:
        assert shard.raw_data.bytes <= 1000 or shard.samples == 1
    reader = DatasetReader(tmp_path)
    assert [len(reader.get(i)["x"]) for i in range(50)] == [100 + i for i in range(50)]


def test_rows_need_columns(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="needs columns="), ShardWriter(tmp_path) as w:
        w.write({"x": 1})
    assert not (tmp_path / "index.json").exists()


def test_bad_value_aborts_without_publishing(tmp_path: Path) -> None:
    with (
        pytest.raises(EncodingError, match="does not fit"),
        ShardWriter(tmp_path, columns={"x": "int8"}, size_limit=64) as w,
    ):
        for i in range(200):
            w.write({"x": i})
    assert not (tmp_path / "index.json").exists()
    assert not list((tmp_path / "data").glob("*")) if (tmp_path / "data").exists() else True


def test_modes_error_overwrite_append(tmp_path: Path) -> None:
    def write(mode: str, values: list[int]) -> None:
        with ShardWriter(tmp_path, columns={"x": "int32"}, mode=mode) as w:  # type: ignore[arg-type]
            for v in values:
                w.write({"x": v})

    write("error", [1, 2])
    with pytest.raises(DatasetExistsError, match="mode='overwrite'"):
        write("error", [3])
    write("append", [3])
    write("overwrite", [9])
    write("append", [10, 11])
    assert [int(DatasetReader(tmp_path).get(i)["x"]) for i in range(3)] == [9, 10, 11]
    # Every version stays readable (time travel), and index.json holds the latest.
    assert [len(DatasetReader(tmp_path, version=v)) for v in (1, 2, 3, 4)] == [2, 3, 1, 3]
    assert json.loads((tmp_path / "index.json").read_text())["sparkshard"]["dataset_version"] == 4


def test_append_with_other_columns_is_refused(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, columns={"x": "int32"}) as w:
        w.write({"x": 1})
    with (
        pytest.raises(SchemaError, match="cannot append"),
        ShardWriter(tmp_path, columns={"x": "int64"}, mode="append") as w,
    ):
        w.write({"x": 2})
    assert len(DatasetReader(tmp_path)) == 1


def test_failed_overwrite_leaves_previous_version_intact(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, columns={"x": "str"}) as w:
        w.write({"x": "kept"})
    before = (tmp_path / "index.json").read_bytes()
    with (
        pytest.raises(RuntimeError, match="boom"),
        ShardWriter(tmp_path, columns={"x": "str"}, mode="overwrite", size_limit=64) as w,
    ):
        for i in range(100):
            w.write({"x": f"new {i}"})
        raise RuntimeError("boom")
    assert (tmp_path / "index.json").read_bytes() == before
    assert DatasetReader(tmp_path).get(0) == {"x": "kept"}
    kept = DatasetReader(tmp_path).index.shards[0].raw_data.basename
    leftovers = [
        p.name for p in (tmp_path / "data").iterdir() if not f"data/{p.name}".startswith(kept)
    ]
    assert leftovers == []  # the aborted write's shards were removed


def test_concurrent_commit_has_one_winner(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, columns={"x": "int64"}) as w:
        w.write({"x": 1})
    store = LocalStore(tmp_path)
    base = read_index(store)
    commit_version(store, base, base_version=1, meta={})
    with pytest.raises(VersionConflictError, match="version 2"):
        commit_version(store, base, base_version=1, meta={})


def test_values_decode_to_python_types(tmp_path: Path) -> None:
    table = pa.table(
        {
            "when": pa.array(
                [dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)],
                pa.timestamp("us", tz="America/New_York"),
            ),
            "price": pa.array([Decimal("12.340")], pa.decimal128(8, 3)),
            "flag": pa.array([None], pa.bool_()),
        }
    )
    with ShardWriter(tmp_path) as w:
        w.write_batch(table)
    row = DatasetReader(tmp_path).get(0)
    assert row["when"] == dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
    assert str(row["when"].tzinfo) == "America/New_York"
    assert row["price"] == Decimal("12.340") and row["flag"] is None
