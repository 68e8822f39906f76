"""Session-wide Delta tables for the in-place tests (see ``table_data``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deltalake import write_deltalake
from table_data import N, every_type, ids_table, small_groups


@pytest.fixture(scope="session")
def id_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 rows ``{id, label, text}`` in 4 appends of row groups of 40 rows."""
    uri = tmp_path_factory.mktemp("tables") / "ids"
    for part in np.array_split(np.arange(N), 4):
        write_deltalake(uri, ids_table(part), mode="append", writer_properties=small_groups(40))
    return uri


@pytest.fixture(scope="session")
def typed_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every Delta type with nulls, partitioned by an int, a string (with nulls) and a date."""
    uri = tmp_path_factory.mktemp("tables") / "typed"
    write_deltalake(
        uri, every_type(), partition_by=["k", "p", "pday"], writer_properties=small_groups(4)
    )
    return uri
