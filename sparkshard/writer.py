"""``ShardWriter``: write a dataset from one process (rows or Arrow batches).

    with ShardWriter("out/", compression="zstd") as writer:
        writer.write_batch(arrow_table)      # vectorized
        writer.write({"id": 7, ...})         # or sample dicts (needs columns=)
    print(writer.info)

Shards are written as they fill; the dataset becomes visible only when the block
exits cleanly (the version record, then ``index.json``). If the block raises, nothing is
published, the shards written so far are removed, and any previous version stays
intact and readable.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import pyarrow as pa

from sparkshard.errors import DatasetExistsError, SchemaError, VersionConflictError
from sparkshard.format.compression import parse_compression
from sparkshard.format.hashing import validate_hashes
from sparkshard.format.index import DatasetIndex, ShardRecord
from sparkshard.format.schema import Schema, schema_from_arrow
from sparkshard.sink import ShardSink, schema_error_for_rows
from sparkshard.sizes import parse_size
from sparkshard.storage import open_store
from sparkshard.versions import DatasetInfo, has_dataset, list_versions, publish_write, read_index

__all__ = ["Mode", "ShardWriter", "check_append_schema", "check_mode"]

log = logging.getLogger(__name__)
Mode = Literal["error", "overwrite", "append"]
_MODES = ("error", "overwrite", "append")


class ShardWriter:
    """Writes MDS shards and publishes them as a new dataset version on close.

    Args:
        out: dataset folder or URL.
        columns: column name -> MDS encoding. Required for sample dicts; with Arrow
            input it may be omitted (inferred from the schema) or override some columns.
        compression: ``None``, ``"zstd"``, ``"zstd:<level>"`` (also br, bz2, gz, snappy).
        hashes: hash algorithms recorded for every shard file (integrity on by default).
        size_limit: shard size before compression, e.g. ``"64MB"`` or a byte count.
        mode: ``"error"`` refuses an existing dataset, ``"overwrite"`` replaces it with a
            new version, ``"append"`` adds this data as a new version.
        lineage: free-form description of where the data came from, stored in the index.
        base_version: the dataset version this write was planned against (``0``: none, or
            a plain MDS dataset); if the dataset has moved on, :class:`VersionConflictError`.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        columns: Mapping[str, str] | None = None,
        compression: str | None = "zstd",
        hashes: tuple[str, ...] | list[str] | None = ("xxh64",),
        size_limit: int | str = "64MB",
        *,
        mode: Mode = "error",
        storage_options: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        base_version: int | None = None,
    ) -> None:
        self._compression = parse_compression(compression)
        self._hashes = validate_hashes(hashes)
        self._size_limit = parse_size(size_limit, what="size_limit")
        if self._size_limit >= 1 << 32:
            raise ValueError(f"size_limit must be under 4 GiB (an MDS limit), got {size_limit!r}")
        self._columns = dict(columns) if columns is not None else None
        self._store = open_store(out, storage_options)
        self._previous = check_mode(self._store, mode, base_version)
        self._mode = mode
        self._lineage = dict(lineage or {})
        self._token = uuid.uuid4().hex[:12]
        self._sink: ShardSink | None = None
        self._started = time.perf_counter()
        self._info: DatasetInfo | None = None
        # Plain MDS encodings are complete on their own; Arrow input may refine them.
        self._explicit = Schema.from_encodings(self._columns) if self._columns is not None else None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def info(self) -> DatasetInfo:
        if self._info is None:
            raise RuntimeError("the dataset is published when the writer closes; close it first")
        return self._info

    def write(self, sample: Mapping[str, Any]) -> None:
        """Write one sample dict (values as the column encodings accept them)."""
        if self._sink is None:
            if self._explicit is None:
                raise schema_error_for_rows()
            self._open(self._explicit)
        assert self._sink is not None
        self._sink.write(sample)

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Write every row of an Arrow batch or table, vectorized."""
        if not isinstance(batch, (pa.RecordBatch, pa.Table)):
            raise TypeError(
                f"write_batch takes a pyarrow RecordBatch or Table, got {type(batch).__name__}"
            )
        if self._sink is None:
            self._open(schema_from_arrow(batch.schema, self._columns))
        assert self._sink is not None
        self._sink.write_batch(batch)

    def close(self) -> DatasetInfo:
        """Finish the last shard and publish the dataset version (idempotent)."""
        if self._info is not None:
            return self._info
        if self._sink is None:
            self._open(self._empty_schema())
        assert self._sink is not None
        try:
            records = self._sink.close()
            self._info = self._commit(records, self._sink.schema)
        except BaseException:
            self._sink.abort()
            raise
        return self._info

    def abort(self) -> None:
        """Drop everything written so far; nothing is published."""
        if self._sink is not None and self._info is None:
            self._sink.abort()
            log.warning("write to %s aborted; no version was published", self._store.url)

    def _empty_schema(self) -> Schema:
        """The schema of a write that wrote no samples: declared, or the previous version's."""
        if self._explicit is not None:
            return self._explicit
        if self._previous is not None and "columns" in self._previous.meta:
            return Schema.from_meta(self._previous.meta["columns"])
        raise SchemaError(
            "nothing was written and no columns= were given, so the dataset has no schema: "
            "pass columns= or write at least one batch"
        )

    def _open(self, schema: Schema) -> None:
        if self._mode == "append" and self._previous is not None:
            check_append_schema(self._previous, schema, self._store.url)
        self._sink = ShardSink(
            self._store,
            schema,
            prefix=f"data/{self._token}-",
            compression=self._compression,
            hashes=self._hashes,
            size_limit=self._size_limit,
        )

    def _commit(self, records: list[ShardRecord], schema: Schema) -> DatasetInfo:
        return publish_write(
            self._store,
            previous=self._previous,
            mode=self._mode,
            records=records,
            schema=schema,
            lineage=self._lineage,
            writer={
                "compression": self._compression.name if self._compression else None,
                "hashes": self._hashes,
                "size_limit": self._size_limit,
            },
            started=self._started,
        )


def check_mode(store: Any, mode: str, base_version: int | None = None) -> DatasetIndex | None:
    """Validate ``mode`` against what ``store`` holds; return the previous index if any.

    ``base_version``: the dataset version the caller planned this write against; if the
    dataset is at another version now, :class:`VersionConflictError` (nothing was written).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not has_dataset(store):
        _check_base(store, base_version, 0)
        return None
    if mode == "error":
        versions = list_versions(store)
        raise DatasetExistsError(
            f"{store.url} already holds a dataset (version {versions[-1] if versions else 'of Mosaic'}); "
            "pass mode='overwrite' to replace it or mode='append' to add to it"
        )
    previous = read_index(store)
    _check_base(store, base_version, previous.dataset_version or 0)
    return previous


def _check_base(store: Any, expected: int | None, found: int) -> None:
    if expected is not None and expected != found:
        raise VersionConflictError(
            f"this write was planned against version {expected} of {store.url}, but the "
            f"dataset is at version {found} now (0: no versions): another "
            "writer committed in between; plan the write again against the current version"
        )


def check_append_schema(previous: DatasetIndex, schema: Schema, url: str) -> None:
    """Appended data must have the same stored columns as the dataset it extends."""
    if not previous.shards:
        return
    first = previous.shards[0]
    before = list(zip(first.column_names, first.column_encodings))
    after = schema.stored_columns()
    if before != after:
        raise SchemaError(
            f"cannot append to {url}: its columns are {before} but the new data has {after}; "
            "make the schemas match or write with mode='overwrite'"
        )
