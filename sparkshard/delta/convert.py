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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pyarrow as pa

from sparkshard.dataset.versions import DatasetInfo, dataset_info, read_index
from sparkshard.delta.arrow import read_files
from sparkshard.delta.plan import SyncPlan, plan_sync
from sparkshard.delta.rowfilter import RowFilter
from sparkshard.delta.snapshot import DeltaFile, DeltaSnapshot, load_snapshot
from sparkshard.errors import SchemaError
from sparkshard.storage import open_store, remote_options
from sparkshard.write.writer import ShardWriter

__all__ = ["delta_to_shards"]

log = logging.getLogger(__name__)
SyncMode = Literal["sync", "overwrite", "error"]


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
    out_options = (
        out_storage_options
        if out_storage_options is not None
        else remote_options(out, storage_options)
    )
    store = open_store(out, out_options)
    plan = plan_sync(store, snapshot, settings.to_json(), mode, on_rewrite, storage_options)
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


def _lineage(snapshot: DeltaSnapshot, settings: _Settings, plan: SyncPlan) -> dict[str, Any]:
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
    plan: SyncPlan,
    settings: _Settings,
    out: str,
    out_options: Mapping[str, Any] | None,
    lineage: dict[str, Any],
    writer: dict[str, Any],
) -> DatasetInfo:
    from sparkshard.spark import session
    from sparkshard.spark.write import dataframe_to_shards

    df = None
    if plan.files is None or snapshot.unreadable:  # a Delta reader, when Spark has one
        df = session.read_delta_version(spark, snapshot.uri, snapshot.version)
        if df is not None and plan.files is not None:
            log.info("rebuilding instead of appending: %s", snapshot.unreadable)
            plan = replace(plan, mode="overwrite", files=None)
            lineage = {**lineage, "sync": "full", "delta_files": len(snapshot.files)}
    if df is None:  # read exactly the snapshot's (or the new) data files
        snapshot.check_files_readable()
        files = snapshot.files if plan.files is None else plan.files
        df = _snapshot_frame(session, spark, snapshot, files)
    if settings.row_filter is not None:
        df = df.where(settings.row_filter.to_spark_sql())
    df = df.select(*[f"`{c}`" for c in settings.output_columns(snapshot)])
    return dataframe_to_shards(
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
    plan: SyncPlan,
    settings: _Settings,
    out: str,
    out_options: Mapping[str, Any] | None,
    lineage: dict[str, Any],
    writer: dict[str, Any],
    storage_options: Mapping[str, Any] | None,
) -> DatasetInfo:
    snapshot.check_files_readable()
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
        expression = settings.row_filter.to_arrow() if settings.row_filter else None
        for table in read_files(
            snapshot, files, settings.read_columns(snapshot), expression=expression,
            storage_options=storage_options,
        ):  # fmt: skip
            shard_writer.write_batch(table.select(output))
    return shard_writer.info
