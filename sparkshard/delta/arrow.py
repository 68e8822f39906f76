"""The rows of a Delta snapshot's data files, as Arrow tables, read in this process.

Each data file is read with pyarrow through the :class:`Store` of the table (so any backend
``open_store`` serves), batch by batch, in file then row order. Partition values come from
the add actions, columns a file predates are nulls, and every column is cast to the type
the Delta schema gives it. This is what ``delta_to_shards`` does without Spark.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sparkshard.delta.snapshot import DeltaFile, DeltaSnapshot
from sparkshard.storage import Store, open_store, remote_options

__all__ = ["read_files"]

_BATCH_ROWS = 65_536


def read_files(
    snapshot: DeltaSnapshot,
    files: Sequence[DeltaFile],
    columns: Sequence[str],
    *,
    expression: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[pa.Table]:
    """Every row of ``files`` (columns ``columns``), filtered by a pyarrow ``expression``."""
    schema = pa.schema([snapshot.arrow_schema.field(n) for n in columns])
    source = open_store(snapshot.uri, remote_options(snapshot.uri, storage_options))
    for file in files:
        parquet = pq.ParquetFile(_open(file, source, storage_options))
        present = [
            n for n in columns if n in parquet.schema_arrow.names and n not in file.partition_values
        ]
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=present):
            table = _typed(pa.Table.from_batches([batch]), schema, file)
            yield table.filter(expression) if expression is not None else table


def _open(file: DeltaFile, source: Store, storage_options: Mapping[str, Any] | None) -> Any:
    """A path (local: pyarrow maps it) or the file's bytes (object stores)."""
    if file.path.startswith("/"):
        return file.path
    if "://" in file.path:  # an absolute URI (e.g. a shallow clone's files)
        parent, _, name = file.path.rpartition("/")
        return pa.BufferReader(
            open_store(parent, remote_options(parent, storage_options)).read(name)
        )
    local = source.local_path(file.path)
    return local if local is not None else pa.BufferReader(source.read(file.path))


def _typed(table: pa.Table, schema: pa.Schema, file: DeltaFile) -> pa.Table:
    """``table`` with partition values added, missing (newer) columns as nulls, cast."""
    columns = []
    for field in schema:
        if field.name in file.partition_values:
            column = pa.array([file.partition_values[field.name]] * table.num_rows)
            columns.append(column.cast(field.type) if column.type != field.type else column)
        elif field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
