"""Every batch and every append keeps the logical types the dataset was written with.

A later batch is cast only when nothing is lost; an append of another logical type (a unit,
a time zone, a date that became an int) is refused: old rows would read back wrongly.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader import DatasetReader
from sparkshard import EncodingError, SchemaError, ShardWriter


def _read(path: Path, column: str = "x") -> list[object]:
    reader = DatasetReader(path)
    return [reader.get(i)[column] for i in range(reader.num_samples)]


def _write(path: Path, *batches: pa.Table, mode: str = "error") -> None:
    with ShardWriter(path, mode=mode) as writer:  # type: ignore[arg-type]
        for batch in batches:
            writer.write_batch(batch)


def test_a_float_batch_after_an_int_batch_is_cast_only_when_lossless(tmp_path: Path) -> None:
    ints = pa.table({"x": pa.array([1, 2], pa.int64())})
    _write(tmp_path / "ok", ints, pa.table({"x": pa.array([3.0, -4.0])}))
    assert _read(tmp_path / "ok") == [1, 2, 3, -4]
    for bad, why in (([2.9], "truncated"), ([float("nan")], "")):
        with pytest.raises(SchemaError, match=r"column 'x' is int64 in this write's first batch"):
            _write(tmp_path / f"bad-{why or 'nan'}", ints, pa.table({"x": pa.array(bad)}))
        assert not (tmp_path / f"bad-{why or 'nan'}" / "index.json").exists()  # nothing published


def test_a_timestamp_unit_change_is_cast_or_refused(tmp_path: Path) -> None:
    seconds = pa.table({"x": pa.array([0, 60], pa.timestamp("s"))})
    whole = pa.table({"x": pa.array([120_000], pa.timestamp("ms"))})
    _write(tmp_path / "ok", seconds, whole)
    assert _read(tmp_path / "ok")[-1] == dt.datetime(1970, 1, 1, 0, 2)
    with pytest.raises(SchemaError, match="would lose data"):
        _write(tmp_path / "bad", seconds, pa.table({"x": pa.array([1500], pa.timestamp("ms"))}))


@pytest.mark.parametrize(
    ("first", "later", "why"),
    [
        (pa.array([1], pa.date32()), pa.array([1], pa.int32()), "a date column cannot hold"),
        (
            pa.array([1], pa.timestamp("us", tz="UTC")),
            pa.array([1], pa.timestamp("us")),
            "time zone None is not the column's UTC",
        ),
        (pa.array(["a"]), pa.array([1]), "a text column cannot hold number values"),
    ],
)
def test_a_later_batch_of_another_logical_type_is_refused(
    tmp_path: Path, first: pa.Array, later: pa.Array, why: str
) -> None:
    with pytest.raises(SchemaError, match=why):
        _write(tmp_path, pa.table({"x": first}), pa.table({"x": later}))


def _fits_int64(value: float) -> bool:
    return math.isfinite(value) and value.is_integer() and -(2**63) <= value < 2**63


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=True)), max_size=8))
def test_whatever_a_later_batch_holds_it_reads_back_exactly_or_is_refused(
    values: list[float | int],
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ds"
        later = pa.table({"x": pa.array([float(v) for v in values], pa.float64())})
        try:
            _write(path, pa.table({"x": pa.array([7], pa.int64())}), later)
        except SchemaError:
            assert not all(_fits_int64(float(v)) for v in values)
            return
        assert _read(path) == [7, *[int(v) for v in values]]


@pytest.mark.parametrize(
    ("first", "appended", "message"),
    [
        (pa.timestamp("ms"), pa.timestamp("s"), r"timestamp\[ms\].*there but timestamp\[s\]"),
        (pa.date32(), pa.int32(), r"date32\[day\] there but int32"),
        (
            pa.timestamp("us", tz="UTC"),
            pa.timestamp("us"),
            r"timestamp\[us, tz=UTC\] in time zone UTC there but timestamp\[us\] without a time zone",
        ),
    ],
)
def test_an_append_of_another_logical_type_is_refused(
    tmp_path: Path, first: pa.DataType, appended: pa.DataType, message: str
) -> None:
    def column(t: pa.DataType) -> pa.Table:
        raw = pa.array([1, 2], pa.int32() if t in (pa.date32(), pa.int32()) else pa.int64())
        return pa.table({"x": raw.cast(t)})

    _write(tmp_path, column(first))
    before = _read(tmp_path)
    with pytest.raises(SchemaError, match=f"column 'x' is {message}.*mode='overwrite'"):
        _write(tmp_path, column(appended), mode="append")
    assert _read(tmp_path) == before  # the dataset is as it was
    _write(tmp_path, column(first), mode="append")  # the same type appends fine
    assert len(_read(tmp_path)) == 4


def test_invalid_utf8_is_refused_or_kept_as_bytes_when_asked(tmp_path: Path) -> None:
    text = pa.array([b"ok", b"\xff\xfe", b"x"], pa.binary()).view(pa.string())
    with pytest.raises(EncodingError, match=r"column 's'.*not valid UTF-8 \(row 1.*'bytes'"):
        _write(tmp_path / "refused", pa.table({"s": text}))
    assert not (tmp_path / "refused" / "index.json").exists()
    with ShardWriter(tmp_path / "bytes", columns={"s": "bytes"}) as writer:
        writer.write_batch(pa.table({"s": text}))
    assert _read(tmp_path / "bytes", "s") == [b"ok", b"\xff\xfe", b"x"]


def test_values_that_fit_no_encoding_name_their_column(tmp_path: Path) -> None:
    with (
        pytest.raises(EncodingError, match=r"column 's' cannot store '\\ud800' as 'str'"),
        ShardWriter(tmp_path / "surrogate", columns={"s": "str"}) as writer,
    ):
        writer.write({"s": "\ud800"})
    far = pa.table({"t": pa.array([2**62], pa.int64()).cast(pa.timestamp("s"))})
    _write(tmp_path / "far", far)
    reader = DatasetReader(tmp_path / "far")
    with pytest.raises(
        EncodingError, match=r"column 't' holds 4611686018427387904 \(s\).*datetime64"
    ):
        reader.get(0)
    assert reader.get_batch([0])["t"][0] == np.datetime64(2**62, "s")  # numpy holds it


def test_a_table_with_rows_but_no_columns_is_refused(tmp_path: Path) -> None:
    empty = pa.table({"x": [1, 2, 3]}).select([])
    assert empty.num_rows == 3
    with pytest.raises(SchemaError, match="3 rows has no columns"):
        _write(tmp_path, empty)


def test_hashes_as_one_string_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"hashes must be a list.*\['xxh64'\]"):
        ShardWriter(tmp_path, hashes="xxh64")  # type: ignore[arg-type]
