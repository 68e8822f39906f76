"""A Delta table (one pinned version) -> MDS shards, kept in sync incrementally.

    info = delta_to_shards("s3://lake/events", "s3://ml/events-shards", columns=["x", "y"])
    # later, after more appends to the table: only the new rows are written
    info = delta_to_shards("s3://lake/events", "s3://ml/events-shards", columns=["x", "y"])

With ``spark=`` the conversion is distributed (:func:`sparkshard.dataframe_to_shards`),
otherwise it runs in this process with ``deltalake`` and :class:`ShardWriter`. The dataset
records its lineage under our ``sparkshard`` index key: the table URI, the Delta version
and its commit time, the columns and the filter.

Converting the same table into the same dataset again (``mode="sync"``, the default)
compares the Delta version last converted with the requested one. If the newer versions
only appended data files, exactly those files' rows are appended as a new dataset
version; if they deleted, updated, merged, overwrote or compacted, the dataset is rebuilt
as a new version (or, with ``on_rewrite="error"``, the call is refused). Every row lands
exactly once: no row ids, dense or otherwise, are involved. The planned-against dataset
version is pinned, so of two concurrent syncs exactly one commits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from sparkshard.delta_snapshot import DeltaFile, DeltaSnapshot, compare, load_snapshot, operations
from sparkshard.errors import DatasetExistsError, SchemaError, SourceRewrittenError
from sparkshard.format.index import DatasetIndex
from sparkshard.rowfilter import RowFilter
from sparkshard.storage import Store, open_store
from sparkshard.versions import DatasetInfo, dataset_info, has_dataset, read_index
from sparkshard.writer import ShardWriter

__all__ = ["delta_to_shards"]

log = logging.getLogger(__name__)
SyncMode = Literal["sync", "overwrite", "error"]
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class _Settings:
    """What defines the converted dataset besides the table version (validated once)."""

    columns: tuple[str, ...] | None
    row_filter: RowFilter | None
    encodings: Mapping[str, str] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns) if self.columns is not None else None,
            "filter": self.row_filter.to_json() if self.row_filter else None,
            "encodings": dict(sorted(self.encodings.items())) if self.encodings else None,
        }

    def check(self, snapshot: DeltaSnapshot) -> None:
        names = snapshot.arrow_schema.names
        wanted = list(self.columns or ()) + [c for g in self._filter_terms() for c, _, _ in g]
        missing = sorted({c for c in wanted if c not in names})
        if missing:
            raise SchemaError(
                f"columns {missing} are not in version {snapshot.version} of Delta table "
                f"{snapshot.uri}; its columns are {names}"
            )

    def _filter_terms(self) -> Iterable[Sequence[tuple[str, str, Any]]]:
        return self.row_filter.clauses if self.row_filter else ()

    def read_columns(self, snapshot: DeltaSnapshot) -> list[str]:
        """Columns to read: the selected ones plus those the filter needs, in table order."""
        wanted = set(self.columns or snapshot.arrow_schema.names)
        wanted |= {c for g in self._filter_terms() for c, _, _ in g}
        return [n for n in snapshot.arrow_schema.names if n in wanted]

    def output_columns(self, snapshot: DeltaSnapshot) -> list[str]:
        return list(self.columns) if self.columns is not None else snapshot.arrow_schema.names


@dataclass(frozen=True)
class _Plan:
    """What this call writes: ``files`` None = the whole snapshot; ``mode`` for the writer."""

    mode: str  # "error" | "overwrite" | "append" | "current"
    base_version: int
    files: tuple[DeltaFile, ...] | None
    previous_delta_version: int | None = None
    reason: str = ""


def delta_to_shards(
    table_uri: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    filter: str | Sequence[Any] | None = None,
    spark: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    out_storage_options: Mapping[str, Any] | None = None,
    mode: SyncMode = "sync",
    on_rewrite: Literal["rebuild", "error"] = "rebuild",
    encodings: Mapping[str, str] | None = None,
    compression: str | None = "zstd",
    hashes: Iterable[str] | None = ("xxh64",),
    size_limit: int | str = "64MB",
) -> DatasetInfo:
    """Convert version ``version`` (default: latest) of a Delta table into shards at ``out``.

    Args:
        columns: the table columns to keep (default: all), in this order.
        filter: rows to keep: DNF tuples such as ``[("split", "=", "train")]`` (both paths),
            or a Spark SQL string (only with ``spark=``).
        spark: a SparkSession: read and encode on the cluster. Without the delta-spark
            jar, the pinned snapshot's Parquet files are read directly (tables with
            deletion vectors or column mapping are refused with an explanation).
        storage_options: for the table (deltalake/object_store names); also used for ``out``
            unless ``out_storage_options`` is given.
        mode: ``"sync"`` creates the dataset or brings it up to ``version`` (appending only
            new rows when the table only grew); ``"overwrite"`` always rebuilds as a new
            version; ``"error"`` refuses an existing dataset.
        on_rewrite: in ``"sync"`` mode, what to do when rows were changed or removed since
            the last conversion: ``"rebuild"`` (a new version with every row) or ``"error"``
            (:class:`SourceRewrittenError`, nothing written).
        encodings, compression, hashes, size_limit: as for :func:`dataframe_to_shards`.

    Returns the :class:`DatasetInfo` of the committed version (of the current one when the
    dataset already holds ``version``: ``new_samples`` is then 0).
    """
    started = time.perf_counter()
    if mode not in ("sync", "overwrite", "error") or on_rewrite not in ("rebuild", "error"):
        raise ValueError(
            f"mode must be 'sync', 'overwrite' or 'error' (got {mode!r}) and on_rewrite "
            f"'rebuild' or 'error' (got {on_rewrite!r})"
        )
    uri = _table_uri(table_uri)
    settings = _Settings(
        tuple(columns) if columns is not None else None,
        RowFilter.parse(filter),
        dict(encodings) if encodings else None,
    )
    if settings.row_filter is not None and settings.row_filter.sql is not None and spark is None:
        settings.row_filter.to_arrow()  # raises the explanation
    snapshot = load_snapshot(uri, version, storage_options)
    settings.check(snapshot)
    out_options = out_storage_options if out_storage_options is not None else storage_options
    store = open_store(out, out_options)
    plan = _plan(store, snapshot, settings, mode, on_rewrite, storage_options)
    if plan.mode == "current":
        log.info("%s already holds Delta version %d of %s", store.url, snapshot.version, uri)
        return dataset_info(store, read_index(store), started=started)
    lineage = _lineage(snapshot, settings, plan)
    log.info(
        "converting Delta %s version %d into %s (%s%s)", uri, snapshot.version, store.url,
        plan.mode, f": {plan.reason}" if plan.reason else "",
    )  # fmt: skip
    writer = {"compression": compression, "hashes": hashes, "size_limit": size_limit}
    if spark is not None:
        return _convert_with_spark(
            spark, snapshot, plan, settings, str(out), out_options, lineage, writer
        )
    return _convert_here(
        snapshot, plan, settings, str(out), out_options, lineage, writer, storage_options
    )


def _table_uri(table_uri: str | os.PathLike[str]) -> str:
    text = os.fspath(table_uri)
    if "://" not in text:
        return os.path.abspath(os.path.expanduser(text))
    return text.rstrip("/")


# ---- planning ---------------------------------------------------------------------------


def _plan(
    store: Store,
    snapshot: DeltaSnapshot,
    settings: _Settings,
    mode: str,
    on_rewrite: str,
    storage_options: Mapping[str, Any] | None,
) -> _Plan:
    if not has_dataset(store):
        return _Plan("error", 0, None, reason="a new dataset")
    previous = read_index(store)
    base = previous.dataset_version or 0
    if mode == "error":
        raise DatasetExistsError(
            f"{store.url} already holds a dataset (version {base}); use mode='sync' to bring "
            "it up to date or mode='overwrite' to rebuild it"
        )
    if mode == "overwrite":
        return _Plan("overwrite", base, None, reason="mode='overwrite'")
    lineage = previous.meta.get("lineage") or {}
    _check_same_table(store, previous, snapshot, lineage)
    converted = int(lineage["delta_version"])
    if lineage.get("settings") != settings.to_json():
        return _rewrite(
            snapshot, base, converted, "the columns, filter or encodings changed", on_rewrite
        )
    if converted == snapshot.version:
        return _Plan("current", base, (), converted)
    try:
        change = compare(load_snapshot(snapshot.uri, converted, storage_options), snapshot)
    except (FileNotFoundError, ValueError) as exc:  # e.g. the old log was cleaned up
        change_reason = f"version {converted} can no longer be read ({exc})"
        return _rewrite(snapshot, base, converted, change_reason, on_rewrite)
    if change.appended is None:
        ops = operations(snapshot.uri, converted, snapshot.version, storage_options)
        reason = change.reason + (f"; commits: {', '.join(ops)}" if ops else "")
        return _rewrite(snapshot, base, converted, reason, on_rewrite)
    if not change.appended:
        return _Plan("current", base, (), converted)
    return _Plan("append", base, change.appended, converted, f"{len(change.appended)} new file(s)")


def _check_same_table(
    store: Store, previous: DatasetIndex, snapshot: DeltaSnapshot, lineage: Mapping[str, Any]
) -> None:
    if lineage.get("source") == "delta" and lineage.get("table_uri") == snapshot.uri:
        return
    origin = (
        f"Delta table {lineage.get('table_uri')}"
        if lineage.get("source") == "delta"
        else f"source {lineage.get('source', 'unknown')!r}"
    )
    raise DatasetExistsError(
        f"{store.url} holds a dataset converted from {origin} (version "
        f"{previous.dataset_version}), not from Delta table {snapshot.uri}: write to another "
        "folder, or pass mode='overwrite' to replace it"
    )


def _rewrite(
    snapshot: DeltaSnapshot, base: int, converted: int, reason: str, on_rewrite: str
) -> _Plan:
    if on_rewrite == "error":
        raise SourceRewrittenError(
            f"cannot append Delta version {snapshot.version} of {snapshot.uri} to the dataset "
            f"converted from version {converted}: {reason}. Pass on_rewrite='rebuild' to "
            "rebuild the dataset as a new version"
        )
    return _Plan("overwrite", base, None, converted, reason)


def _lineage(snapshot: DeltaSnapshot, settings: _Settings, plan: _Plan) -> dict[str, Any]:
    return {
        "source": "delta",
        "table_uri": snapshot.uri,
        "delta_version": snapshot.version,
        "commit_timestamp": snapshot.timestamp,
        "columns": settings.to_json()["columns"],
        "filter": settings.to_json()["filter"],
        "settings": settings.to_json(),
        "sync": "incremental" if plan.mode == "append" else "full",
        "previous_delta_version": plan.previous_delta_version,
        "delta_files": len(plan.files) if plan.files is not None else len(snapshot.files),
    }


# ---- writing ----------------------------------------------------------------------------


def _convert_with_spark(
    spark: Any,
    snapshot: DeltaSnapshot,
    plan: _Plan,
    settings: _Settings,
    out: str,
    out_options: Mapping[str, Any] | None,
    lineage: dict[str, Any],
    writer: dict[str, Any],
) -> DatasetInfo:
    from sparkshard import spark as spark_writer

    if plan.files is None:
        df = spark_writer.read_delta_version(spark, snapshot.uri, snapshot.version)
        if df is None:  # no delta-spark: read the pinned snapshot's files
            df = _snapshot_frame(spark_writer, spark, snapshot, snapshot.files)
    else:
        df = _snapshot_frame(spark_writer, spark, snapshot, plan.files)
    if settings.row_filter is not None:
        df = df.where(settings.row_filter.to_spark_sql())
    df = df.select(*[f"`{c}`" for c in settings.output_columns(snapshot)])
    return spark_writer.dataframe_to_shards(
        df,
        out,
        columns=settings.encodings,
        mode=plan.mode,  # type: ignore[arg-type]
        storage_options=out_options,
        lineage=lineage,
        base_version=plan.base_version,
        **writer,
    )


def _snapshot_frame(
    module: Any, spark: Any, snapshot: DeltaSnapshot, files: Sequence[DeltaFile]
) -> Any:
    return module.read_parquet_files(
        spark,
        [snapshot.file_uri(f) for f in files],
        schema_json=snapshot.schema_json,
        base_path=snapshot.uri if snapshot.partition_columns else None,
    )


def _convert_here(
    snapshot: DeltaSnapshot,
    plan: _Plan,
    settings: _Settings,
    out: str,
    out_options: Mapping[str, Any] | None,
    lineage: dict[str, Any],
    writer: dict[str, Any],
    storage_options: Mapping[str, Any] | None,
) -> DatasetInfo:
    files = snapshot.files if plan.files is None else plan.files
    output = settings.output_columns(snapshot)
    schema = pa.schema([snapshot.arrow_schema.field(c) for c in output])
    with ShardWriter(
        out,
        columns=settings.encodings,
        mode=plan.mode,  # type: ignore[arg-type]
        storage_options=out_options,
        lineage=lineage,
        base_version=plan.base_version,
        **writer,
    ) as shard_writer:
        shard_writer.write_batch(schema.empty_table())  # the Delta schema, even with no rows
        source = open_store(snapshot.uri, storage_options)
        for table in _read_files(snapshot, files, settings, source):
            shard_writer.write_batch(table.select(output))
    return shard_writer.info


def _read_files(
    snapshot: DeltaSnapshot, files: Sequence[DeltaFile], settings: _Settings, source: Store
) -> Iterator[pa.Table]:
    """Every row of ``files``, in file then row order, typed as the Delta schema says."""
    names = settings.read_columns(snapshot)
    schema = pa.schema([snapshot.arrow_schema.field(n) for n in names])
    expression = settings.row_filter.to_arrow() if settings.row_filter else None
    for file in files:
        parquet = pq.ParquetFile(_open_file(snapshot, file, source))
        present = [
            n for n in names if n in parquet.schema_arrow.names and n not in file.partition_values
        ]
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=present):
            table = _typed(pa.Table.from_batches([batch]), schema, file)
            yield table.filter(expression) if expression is not None else table


def _open_file(snapshot: DeltaSnapshot, file: DeltaFile, source: Store) -> Any:
    if "://" not in file.path and not file.path.startswith("/"):
        local = source.local_path(file.path)
        return local if local is not None else pa.BufferReader(source.read(file.path))
    if file.path.startswith("/"):
        return file.path
    parent, _, name = file.path.rpartition("/")
    return pa.BufferReader(open_store(parent).read(name))


def _typed(table: pa.Table, schema: pa.Schema, file: DeltaFile) -> pa.Table:
    """``table`` with partition values added, missing (newer) columns as nulls, cast."""
    columns = []
    for field in schema:
        if field.name in file.partition_values:
            value = file.partition_values[field.name]
            column = pa.array([value] * table.num_rows)
            columns.append(column.cast(field.type) if column.type != field.type else column)
        elif field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
