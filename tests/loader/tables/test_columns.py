"""A row group's stored columns taken straight from Arrow's buffers (numbers, binaries, lists
of numbers) equal those decoded from the writer's payloads, for sliced arrays and nulls."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.tables.columns import ByteValues, _decoded, stored_columns
from sparkshard.format.arrow_encode import encode_column
from sparkshard.format.schema import schema_from_arrow

maybe = st.booleans()


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    """A table of every kind that skips the payloads, sliced so its arrays start mid-buffer."""
    n = draw(st.integers(0, 40))

    def values(element: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(st.one_of(st.none(), element), min_size=n, max_size=n))

    table = pa.table(
        {
            "i8": pa.array(values(st.integers(-128, 127)), pa.int8()),
            "i64": pa.array(values(st.integers(-(2**63), 2**63 - 1)), pa.int64()),
            "f32": pa.array(values(st.floats(width=32, allow_nan=False)), pa.float32()),
            "flag": pa.array(values(st.booleans()), pa.bool_()),
            "day": pa.array(values(st.integers(-(10**5), 10**5)), pa.int32()).cast(pa.date32()),
            "blob": pa.array(values(st.binary(max_size=9)), pa.binary()),
            "big": pa.array(values(st.binary(max_size=9)), pa.large_binary()),
            "vec": pa.array(
                values(st.lists(st.floats(allow_nan=False), max_size=3)), pa.list_(pa.float64())
            ),
            "emb": pa.array([[i, -i] for i in range(n)], pa.list_(pa.float32())),
        }
    )
    start = draw(st.integers(0, n))
    return table.slice(start, draw(st.integers(0, n - start)))


def through_payloads(table: pa.Table) -> dict[str, Any]:
    out = {}
    for spec in schema_from_arrow(table.schema).columns:
        array = table.column(spec.name).combine_chunks()
        payloads, mask = encode_column(spec, array)
        out[spec.name] = (_decoded(spec, payloads, array), mask)
    return out


def rows(values: Any, mask: np.ndarray | None) -> list[Any]:
    """Each row's value as bytes (nulls as None: a null row's stored value is arbitrary)."""
    n = len(values)
    nulls = np.zeros(n, np.bool_) if mask is None else mask.astype(np.bool_)
    out = []
    for j in range(n):
        value = values[j]
        if nulls[j]:
            out.append(None)
        elif isinstance(value, (np.ndarray, np.generic)):
            out.append((np.asarray(value).dtype, np.asarray(value).tobytes()))
        else:
            out.append(bytes(value))
    return out


@settings(max_examples=150, deadline=None)
@given(tables())
def test_stored_columns_from_arrow_buffers_equal_the_payload_path(table: pa.Table) -> None:
    stored = stored_columns(list(schema_from_arrow(table.schema).columns), table)
    for name, (expected, mask) in through_payloads(table).items():
        got = stored[name]
        assert isinstance(got, ByteValues) == isinstance(expected, ByteValues), name
        if isinstance(got, np.ndarray) and got.dtype != object:
            assert got.dtype == np.asarray(expected).dtype, name
            assert got.shape == np.asarray(expected).shape, name
        has_nulls = mask is not None and bool(mask.any())
        assert (f"{name}__null" in stored) == has_nulls, name
        if has_nulls:
            assert np.array_equal(stored[f"{name}__null"], mask), name
        assert rows(got, mask) == rows(expected, mask), name
