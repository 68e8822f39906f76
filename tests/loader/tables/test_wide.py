"""Batches gathered from table-wide columns (:mod:`loader.tables.wide`) and from row groups
decoded in pieces equal those gathered row group by row group from whole row groups, for
every column kind, with row groups evicted and read again, and when the table's row groups
(or pieces of one) hold a column in different forms (the reader then gives the table-wide
form up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_data import small_groups
from test_values import assert_same_column, assert_same_sample

from loader import StreamingDataset
from loader.read.rows import Rows
from loader.tables.files import LocalFiles
from loader.tables.reader import TableReader

ROWS, GROUP = 200, 16
PIECE = 5  # rows per record batch the readers under test decode a row group in


def mixed() -> pa.Table:
    """Every stored kind; the float column has nulls only from row 100 on, so its null
    mask first appears in a later row group. The bytes values are large beside the rest, so
    a memory limit can hold the table-wide columns and only some row groups' bytes."""
    ids = np.arange(ROWS)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "f": pa.array([None if i >= 100 and i % 3 == 0 else i / 2 for i in ids], pa.float32()),
            "text": pa.array([None if i % 11 == 0 else f"row {i}" for i in ids]),
            "blob": pa.array(
                [None if i % 7 == 0 else bytes([i % 256]) * (200 * (i % 5)) for i in ids]
            ),
            "emb": pa.array([[i, -i, 0.5] for i in ids], pa.list_(pa.float32())),
            "day": pa.array(ids.astype("datetime64[D]")),
        }
    )


def ragged() -> pa.Table:
    """A list column whose first row group's rows all have one length (a matrix there) and
    whose later ones are ragged (per-row arrays), but for the second group's first piece."""
    ids = np.arange(ROWS)
    values = [[i, i] if i < GROUP + PIECE else list(range(i % 4)) for i in ids]
    return pa.table({"id": pa.array(ids, pa.int64()), "v": pa.array(values, pa.list_(pa.int64()))})


@pytest.fixture(scope="module", params=["mixed", "ragged"])
def table(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    uri = tmp_path_factory.mktemp("wide") / request.param
    data = mixed() if request.param == "mixed" else ragged()
    write_deltalake(uri, data, writer_properties=small_groups(GROUP))
    return uri


def reader(uri: Path, memory_limit: int, decode_rows: int = PIECE) -> TableReader:
    opened = StreamingDataset(delta=str(uri))._reader
    assert isinstance(opened, TableReader)
    files = LocalFiles(opened.snapshot, uri, decode_rows=decode_rows)
    return TableReader(
        opened.snapshot, opened.layout, files, opened._schema, memory_limit=memory_limit
    )


def as_list(values: Any) -> Any:
    """A batch's list of rows as a plain list: whether it still carries their matrix
    (:class:`Rows`) depends on which row groups were read together before, not on values."""
    return list(values) if isinstance(values, Rows) else values


batches = st.lists(st.lists(st.integers(0, ROWS - 1), max_size=48), min_size=1, max_size=6)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches)
def test_wide_batches_equal_batches_gathered_by_row_group(
    table: Path, batches: list[list[int]]
) -> None:
    # The reference: whole row groups, gathered group by group (nothing fits: always re-read).
    by_group = reader(table, memory_limit=0, decode_rows=GROUP)
    pieces = reader(table, memory_limit=0)  # the same from pieces joined into row groups
    wide = reader(table, memory_limit=1 << 30)
    group_bytes = max(int(by_group._logical(k).nbytes) for k in range(len(by_group.shard_sizes)))
    evicting = reader(table, memory_limit=4 * group_bytes)  # table-wide, groups come and go
    everything = list(range(ROWS))  # more row groups than the evicting reader holds
    for ids in [*batches, everything, everything[::-1]]:
        expected = by_group.get_batch(ids)
        for subject in (pieces, wide, evicting):
            got = subject.get_batch(ids)
            assert got.keys() == expected.keys()
            for name in expected:
                assert_same_column(name, as_list(got[name]), as_list(expected[name]))
    for i in {0, ROWS - 1, *batches[0]}:
        assert_same_sample(wide.get(i), by_group.get(i))
    # The table-wide form is in use where every row group holds each column alike.
    assert wide._wide.usable is evicting._wide.usable is (table.name == "mixed")
    assert len(evicting._groups) < len(evicting.shard_sizes) == len(wide._groups)
    assert not by_group._wide.usable


def test_a_sample_of_the_table_wide_columns_is_read_only(table: Path) -> None:
    wide = reader(table, memory_limit=1 << 30)
    wide.get_batch(np.arange(ROWS))
    row = wide.group(0)["id"]
    assert isinstance(row, np.ndarray) and not row.flags.writeable
