"""Rows and Arrow batches -> sealed shards in a store -> shard records. No index, no commit.

A :class:`ShardSink` is what runs wherever data is encoded (a single process, or a Spark
executor task): it fills a shard up to ``size_limit``, seals it (lay out, compress,
hash) and writes it to the store in a background thread while the next shard fills, so
memory holds at most a few shards whatever the input size. Publishing an index over the
records it returns is the committer's job (:mod:`sparkshard.dataset.versions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from sparkshard.errors import EncodingError, SchemaError
from sparkshard.format.arrow_encode import encode_column, fixed_payloads
from sparkshard.format.encodings import get_encoding
from sparkshard.format.hashing import hexdigest
from sparkshard.format.index import FileInfo, ShardRecord
from sparkshard.format.schema import Schema, check_columns
from sparkshard.format.shard import build_shard, payload_lengths, shard_config, shard_overhead
from sparkshard.format.values import placeholder, to_stored
from sparkshard.storage import Store
from sparkshard.write.conform import conform_batch
from sparkshard.write.settings import WriterSettings

__all__ = ["ShardSink"]

log = logging.getLogger(__name__)
# Sealed shards being laid out, compressed and uploaded (each in its own thread: numpy copies,
# compression and hashing release the GIL) while the next one fills.
_IN_FLIGHT = 2


class ShardSink:
    """Encodes samples of one :class:`Schema` into shards named ``{prefix}{seq:05d}.mds``."""

    def __init__(
        self,
        store: Store,
        schema: Schema,
        *,
        prefix: str,
        settings: WriterSettings,
        on_shard: Callable[[ShardRecord], None] | None = None,
    ) -> None:
        self._store, self._schema, self._prefix = store, schema, prefix
        self._compression, self._hashes = settings.compression, list(settings.hashes)
        self._size_limit = settings.size_limit
        self._on_shard = on_shard
        stored = schema.stored_columns()
        self._names = [n for n, _ in stored]
        self._encodings = [e for _, e in stored]
        self._sizes = [get_encoding(e).size for e in self._encodings]
        self._specs = {c.name: c for c in schema.columns}
        self._config = shard_config(
            self._names,
            self._encodings,
            self._sizes,
            settings.compression_name,
            self._hashes,
            self._size_limit,
        )
        self._pending: list[list[pa.Array]] = [[] for _ in stored]
        self._pending_samples = 0
        self._pending_bytes = shard_overhead(self._config)
        self._rows: list[list[Any]] = []
        self._arrow: pa.Schema | None = None  # the first batch's: every later one must match
        self._records: list[ShardRecord] = []
        self._futures: list[Future[ShardRecord]] = []
        self._pool = ThreadPoolExecutor(
            max_workers=_IN_FLIGHT, thread_name_prefix="sparkshard-seal"
        )

    @property
    def schema(self) -> Schema:
        return self._schema

    def write(self, sample: Mapping[str, Any]) -> None:
        """Buffer one sample dict (encoded per value; batched into the vectorized path)."""
        check_columns(self._schema, sample.keys())
        self._rows.append([self._encode_value(name, sample) for name in self._names])
        if len(self._rows) >= 4096:
            self._flush_rows()

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Encode a whole Arrow batch column by column with numpy/Arrow kernels."""
        self._flush_rows()
        if not batch.num_columns and batch.num_rows:
            raise SchemaError(
                f"a batch of {batch.num_rows} rows has no columns, and MDS stores samples as "
                "columns: select at least one column to write"
            )
        check_columns(self._schema, batch.schema.names)
        if self._arrow is None:
            self._arrow = batch.schema
        else:
            batch = conform_batch(batch, self._arrow)
        columns: dict[str, pa.Array] = {}
        for spec in self._schema.columns:
            payloads, mask = encode_column(spec, batch.column(spec.name))
            columns[spec.name] = payloads
            if mask is not None:
                columns[spec.null_column] = fixed_payloads(mask.reshape(-1, 1))
        self._add([columns[name] for name in self._names])

    def close(self) -> list[ShardRecord]:
        """Seal the last shard, wait for every upload, and return all records in order.

        If an upload failed this raises its error, and :meth:`abort` still finds every
        shard that did land (futures leave the list only once their record is kept)."""
        self._flush_rows()
        if self._pending_samples:
            self._seal()
        self._pool.shutdown(wait=True)
        while self._futures:
            self._records.append(self._futures[0].result())
            self._futures.pop(0)
        return list(self._records)

    def abort(self) -> None:
        """Stop, and delete every shard this sink wrote (they were never published)."""
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
        for future in self._futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._records.append(future.result())
        for record in self._records:
            self._store.delete(record.stored.basename)
        self._records.clear()
        self._futures.clear()

    def _encode_value(self, name: str, sample: Mapping[str, Any]) -> Any:
        base = name[: -len("__null")] if name not in self._specs else name
        spec = self._specs[base]
        value = sample[base]
        if name != base:  # the null mask column of `base`
            return bytes([value is None])
        if value is None and spec.encoding not in ("json", "pkl"):  # there None is a value
            if not spec.nullable:
                raise EncodingError(
                    f"column '{name}' got None but is not nullable; write Arrow data with a "
                    "nullable field to store nulls, or fill the value"
                )
            value = placeholder(spec)
        if type(value) is bytes:  # pre-encoded, as in MDS (a bytearray is a value to encode)
            return value
        try:
            return get_encoding(spec.encoding).encode(to_stored(spec, value))
        except EncodingError as exc:
            raise EncodingError(f"column '{name}': {exc}") from None
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
            raise EncodingError(
                f"column '{name}' cannot store {value!r:.80} as '{spec.encoding}' "
                f"({type(exc).__name__}: {exc}): fix or drop the value"
            ) from None

    def _flush_rows(self) -> None:
        if not self._rows:
            return
        columns = list(zip(*self._rows))
        self._rows = []
        payloads = []
        for values, size, name in zip(columns, self._sizes, self._names):
            array = pa.array(values, pa.large_binary())
            if size is not None and (payload_lengths(array) != size).any():
                raise EncodingError(
                    f"column '{name}' has a fixed size of {size} bytes but a value encoded to "
                    "another size: the value does not match the column's encoding"
                )
            payloads.append(array)
        self._add(payloads)

    def _add(self, payloads: list[pa.Array]) -> None:
        """Append samples, sealing a shard each time the next sample would pass the limit."""
        n = len(payloads[0]) if payloads else 0
        sample_bytes = np.full(n, 4 + 4 * self._sizes.count(None), np.int64)
        for array, size in zip(payloads, self._sizes):
            sample_bytes += size if size is not None else payload_lengths(array)
        start = 0
        while start < n:
            room = self._size_limit - self._pending_bytes
            cumulative = np.cumsum(sample_bytes[start:])
            take = int(np.searchsorted(cumulative, room, side="right"))
            if take == 0 and self._pending_samples == 0:
                take = 1  # a sample larger than the limit gets a shard of its own
            if take:
                for column, array in zip(self._pending, payloads):
                    column.append(array.slice(start, take))
                self._pending_samples += take
                self._pending_bytes += int(cumulative[take - 1])
                start += take
            if start < n:
                self._seal()

    def _seal(self) -> None:
        columns = [pa.concat_arrays(chunks) for chunks in self._pending]
        self._pending = [[] for _ in self._names]
        self._pending_samples, self._pending_bytes = 0, shard_overhead(self._config)
        seq = len(self._records) + len(self._futures)
        while len(self._futures) >= _IN_FLIGHT:
            self._records.append(self._futures[0].result())
            self._futures.pop(0)
        self._futures.append(self._pool.submit(self._finish_shard, columns, seq))

    def _finish_shard(self, columns: list[pa.Array], seq: int) -> ShardRecord:
        raw = build_shard(columns, self._sizes, self._config)
        raw_name = f"{self._prefix}{seq:05d}.mds"
        raw_info = FileInfo(raw_name, len(raw), {a: hexdigest(a, raw) for a in self._hashes})
        zip_info = None
        data = raw.tobytes() if self._compression is None else b""  # stores take bytes
        if self._compression is not None:
            data = self._compression.compress(raw)
            zip_name = f"{raw_name}.{self._compression.extension}"
            zip_info = FileInfo(zip_name, len(data), {a: hexdigest(a, data) for a in self._hashes})
        record = ShardRecord(
            column_names=tuple(self._names),
            column_encodings=tuple(self._encodings),
            column_sizes=tuple(self._sizes),
            compression=self._compression.name if self._compression else None,
            hashes=tuple(self._hashes),
            raw_data=raw_info,
            samples=len(columns[0]),
            size_limit=self._size_limit,
            zip_data=zip_info,
        )
        self._store.write(record.stored.basename, data)
        log.debug(
            "wrote shard %s (%d samples, %d bytes)",
            record.stored.basename,
            record.samples,
            len(data),
        )
        if self._on_shard is not None:
            self._on_shard(record)
        return record


def schema_error_for_rows() -> SchemaError:
    return SchemaError(
        "writing sample dicts needs columns=, a mapping of column name to MDS encoding "
        "(e.g. {'id': 'int64', 'image': 'jpeg'}); or write Arrow batches, whose schema "
        "defines the columns"
    )
