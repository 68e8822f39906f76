"""``ShardWriter``: write a dataset from one process (rows or Arrow batches).

    with ShardWriter("out/", compression="zstd") as writer:
        writer.write_batch(arrow_table)      # vectorized
        writer.write({"id": 7, ...})         # or sample dicts (needs columns=)
    print(writer.info)

Shards are written as they fill; the dataset becomes visible only when the block
exits cleanly (the version record, then ``index.json``). If the block raises, nothing is
published, the shards written so far are removed, and any previous version stays
intact and readable. Once the version record exists the version is committed: a later
failure (``index.json``, the process) never deletes what it references.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import pyarrow as pa

from sparkshard.dataset.modes import Mode, check_append_schema, check_mode
from sparkshard.dataset.versions import DatasetInfo, publish_write
from sparkshard.errors import SchemaError
from sparkshard.format.index import ShardRecord
from sparkshard.format.schema import Schema, schema_from_arrow
from sparkshard.storage import open_store
from sparkshard.write.settings import WriterSettings
from sparkshard.write.sink import ShardSink, schema_error_for_rows

__all__ = ["ShardWriter"]

log = logging.getLogger(__name__)


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
        on_shard: called with each shard's record once the shard is written (in the
            writer's background thread).
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
        on_shard: Callable[[ShardRecord], None] | None = None,
    ) -> None:
        self._settings = WriterSettings.of(compression, hashes, size_limit)
        self._columns = dict(columns) if columns is not None else None
        self._store = open_store(out, storage_options)
        self._previous = check_mode(self._store, mode, base_version)
        self._mode = mode
        self._lineage = dict(lineage or {})
        self._token = uuid.uuid4().hex[:12]
        self._sink: ShardSink | None = None
        self._started = time.perf_counter()
        self._info: DatasetInfo | None = None
        self._committing = False
        self._on_shard = on_shard
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
        sink = self._sink
        assert sink is not None
        try:
            records = sink.close()
        except BaseException:
            self.abort()
            raise
        # From here the commit decides: it deletes the shards only if it knows that no
        # version record references them (see commit_version).
        self._committing = True
        self._info = self._commit(records, sink.schema, discard=sink.abort)
        return self._info

    def abort(self) -> None:
        """Drop everything written so far; nothing is published. Once the commit has been
        attempted this does nothing: the commit itself removes the shards if, and only if,
        they were not committed."""
        if self._sink is not None and self._info is None and not self._committing:
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
            settings=self._settings,
            on_shard=self._on_shard,
        )

    def _commit(
        self, records: list[ShardRecord], schema: Schema, discard: Callable[[], None]
    ) -> DatasetInfo:
        return publish_write(
            self._store,
            previous=self._previous,
            mode=self._mode,
            records=records,
            schema=schema,
            lineage=self._lineage,
            writer=self._settings.to_json(),
            started=self._started,
            discard=discard,
        )
