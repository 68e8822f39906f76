"""Deletion vectors by the Delta protocol: any row set round-trips through the portable
RoaringBitmap (array, bitmap and run containers, several 2^32 keys), inline and in a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_tables import inline_dv, serialized_dv, write_dv_file

from loader.tables.deletion import deleted_rows, dv_file_name, parse_bitmap, z85_decode
from sparkshard.errors import CorruptShardError

rows = st.one_of(
    st.lists(st.integers(0, 70_000), max_size=300),
    st.lists(st.integers(0, 2**40), max_size=50),
    st.builds(lambda a, n: list(range(a, a + n)), st.integers(0, 1 << 20), st.integers(4097, 9000)),
)


@settings(max_examples=60, deadline=None)
@given(rows, st.booleans())
def test_any_row_set_round_trips(values: list[int], runs: bool) -> None:
    expected = sorted(set(values))
    assert parse_bitmap(serialized_dv(values, runs)).tolist() == expected
    inline = inline_dv(values)
    assert deleted_rows(inline, None, "t").tolist() == expected


def test_file_backed_vector_and_its_checks(tmp_path: Path) -> None:
    descriptor = write_dv_file(tmp_path, [5, 1, 70_000, 2**33])
    name = dv_file_name(descriptor["pathOrInlineDv"])
    assert name.startswith("dv/deletion_vector_") and (tmp_path / name).exists()

    def read(path: str, offset: int, length: int) -> bytes:
        with open(tmp_path / path, "rb") as f:
            f.seek(offset)
            return f.read(length)

    assert deleted_rows(descriptor, read, "t").tolist() == [1, 5, 70_000, 2**33]
    with pytest.raises(CorruptShardError, match="says 3"):
        deleted_rows({**descriptor, "cardinality": 3}, read, "t")
    with pytest.raises(CorruptShardError, match="size field"):
        deleted_rows({**descriptor, "sizeInBytes": descriptor["sizeInBytes"] - 1}, read, "t")
    with pytest.raises(ValueError, match="Z85"):
        z85_decode("abc")
