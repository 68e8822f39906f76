"""``TableReader``: random access to a pinned table's rows, row groups playing shards.

Implements :class:`loader.read.protocol.Reader` over a :class:`~loader.tables.layout.Layout`:
sample ``i`` is the ``i``-th surviving row in file, row-group and row order, so the order,
partition and resume math runs unchanged with ``shard_sizes`` = surviving rows per row
group. A row group is read once, turned into stored columns (:mod:`loader.tables.columns`)
and kept in memory (least recently used beyond ``memory_limit``); batches are gathered from
those with the MDS reader's own restore code, so values equal the MDS path's. While the
table's stored columns fit ``memory_limit`` they are laid out table-wide
(:mod:`loader.tables.wide`), so a batch costs one gather per column however many row groups
it spans; otherwise it is gathered row group by row group.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from loader.cache.readahead import first_uses
from loader.read.restore import restore_column
from loader.read.rows import Rows
from loader.read.spans import cut
from loader.tables.columns import ByteValues, Stored, logical_table, merged, stored_pieces
from loader.tables.layout import Layout
from loader.tables.snapshot import TableSnapshot
from loader.tables.wide import WideColumns
from sparkshard.errors import SchemaError
from sparkshard.format.encodings import get_encoding
from sparkshard.format.schema import schema_from_arrow
from sparkshard.format.values import from_stored

__all__ = ["RowGroupFiles", "TableReader"]

log = logging.getLogger(__name__)
_MEMORY_LIMIT = 2 << 30  # decoded row groups kept per reader (bytes)


class RowGroupFiles(Protocol):
    """Where a reader's row groups come from (local files, or a remote table's cache)."""

    bytes_read: int
    bytes_downloaded: int
    fetches_ahead: bool

    def read(self, i: int, group: int, columns: list[str]) -> Any: ...
    def prefetch(self, shards: Iterator[int], processes: int) -> None: ...
    def close(self) -> None: ...


class TableReader:
    """Random access to the surviving rows of one table snapshot (see the module docstring)."""

    def __init__(
        self,
        snapshot: TableSnapshot,
        layout: Layout,
        files: RowGroupFiles,
        arrow_schema: Any,
        columns: Sequence[str] | None = None,
        memory_limit: int = _MEMORY_LIMIT,
        fingerprint: str | None = None,
    ) -> None:
        self.snapshot, self.layout, self.files = snapshot, layout, files
        names = list(arrow_schema.names)
        if columns is not None:
            unknown = sorted(set(columns) - set(names))
            if unknown:
                raise SchemaError(
                    f"columns {unknown} are not in {snapshot.name}; its columns are {names}"
                )
            names = [n for n in names if n in set(columns)]
        self._schema = pa.schema([arrow_schema.field(n) for n in names])
        self._specs = list(schema_from_arrow(self._schema).columns)
        self.column_names = tuple(spec.name for spec in self._specs)
        self._listed = [  # variable-size columns: a batch holds them as a list of values
            spec.name for spec in self._specs if get_encoding(spec.encoding).size is None
        ]
        self._stored_names = [spec.name for spec in self._specs] + [
            spec.null_column for spec in self._specs if spec.nullable
        ]
        self.shard_sizes = layout.shard_sizes
        self._starts = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        self.num_samples = int(self._starts[-1])
        self.version = snapshot.version
        self.fingerprint = fingerprint or snapshot.fingerprint
        self.memory_limit = memory_limit
        self._groups: OrderedDict[int, tuple[Stored, int]] = OrderedDict()
        self._held = 0
        self._warned = False
        self._wide = self._new_wide()

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_groups": OrderedDict(), "_held": 0, "_wide": self._new_wide()}

    def _new_wide(self) -> WideColumns:
        masks = {spec.null_column for spec in self._specs if spec.nullable}
        return WideColumns(self._starts, self.memory_limit, masks)

    @property
    def fetches_ahead(self) -> bool:
        return self.files.fetches_ahead

    def prefetch(self, batches: Iterable[np.ndarray], processes: int) -> None:
        """Hand the row groups of this process's upcoming batches (in order of first use)
        to the files, which fetch remote ones ahead; local ones are read when needed."""
        if self.files.fetches_ahead:
            self.files.prefetch(first_uses(batches, self._starts), processes)

    def io_counters(self) -> dict[str, int]:
        files = self.files
        return {"bytes_read": files.bytes_read, "bytes_downloaded": files.bytes_downloaded}

    def abandon(self) -> None:
        """Drop what a forked child inherited (decoded row groups; remote files' threads
        are not touched: the child opens its own)."""
        self._groups.clear()
        self._held = 0
        self._wide = self._new_wide()

    def close(self) -> None:
        self.abandon()
        self.files.close()

    # --- samples ------------------------------------------------------------------------
    def get(self, index: int) -> dict[str, Any]:
        """Row ``index`` as a dict of values (None for nulls), as ``DatasetReader.get``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} is out of range: the table has {self.num_samples}")
        shard = int(np.searchsorted(self._starts, index, side="right")) - 1
        j = index - int(self._starts[shard])
        stored = self.group(shard)
        out: dict[str, Any] = {}
        for spec in self._specs:
            if spec.null_column in stored and stored[spec.null_column][j]:
                out[spec.name] = None
                continue
            value = stored[spec.name][j]
            out[spec.name] = from_stored(
                spec, bytes(value) if isinstance(value, memoryview) else value
            )
        return out

    def get_batch(
        self, ids: Sequence[int] | np.ndarray, by_reference: bool = False, plain: bool = False
    ) -> dict[str, Any]:
        """The rows ``ids`` (any order, repeats allowed), column by column. Decoded row
        groups live in this process's memory, so values never come back by reference;
        ``plain`` as for :meth:`loader.read.reader.DatasetReader.get_batch`."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_samples):
            raise IndexError(f"sample ids must be in 0..{self.num_samples - 1}")
        if not len(ids):  # an empty batch: columns as the MDS reader makes them
            return {spec.name: restore_column(spec, {}) for spec in self._specs}
        shards = np.searchsorted(self._starts, ids, side="right") - 1
        columns = self._wide_batch(ids, shards)
        if columns is None:
            columns = self._batch_by_group(ids, shards)
        for name in self._listed:
            columns[name] = _per_row(columns[name])
        return {spec.name: restore_column(spec, columns, plain) for spec in self._specs}

    def _wide_batch(self, ids: np.ndarray, shards: np.ndarray) -> dict[str, Any] | None:
        """The batch's stored columns by one gather each from the table-wide columns, or None
        when they do not hold the table (or lost a row group this batch needs while the
        others were read)."""
        wide = self._wide
        if not wide.usable:
            return None
        if not wide.resident[shards].all():
            for shard in np.unique(shards[~wide.resident[shards]]).tolist():
                self.group(shard)
            if not (wide.usable and wide.resident[shards].all()):
                return None
        return wide.gather(self._stored_names, ids)

    def _batch_by_group(self, ids: np.ndarray, shards: np.ndarray) -> dict[str, Any]:
        """The batch's stored columns gathered row group by row group."""
        by_shard = np.argsort(shards, kind="stable")  # positions, grouped by row group
        groups, firsts = np.unique(shards[by_shard], return_index=True)
        stored = [self.group(shard) for shard in groups.tolist()]
        bounds = [*firsts.tolist(), len(ids)]
        wheres = [by_shard[bounds[k] : bounds[k + 1]] for k in range(len(stored))]
        locals_ = [ids[where] - self._starts[shard] for where, shard in zip(wheres, groups)]
        for name in self._listed:
            _same_form(name, stored)
        return _gather(self._stored_names, stored, wheres, locals_, len(ids))

    # --- row groups ---------------------------------------------------------------------
    def group(self, shard: int) -> Stored:
        """Shard ``shard`` (a row group) as stored columns of its surviving rows."""
        held = self._groups.get(shard)
        if held is not None:
            self._groups.move_to_end(shard)
            return held[0]
        table = self._logical(shard)
        pieces = stored_pieces(self._specs, table)
        size = int(table.nbytes)
        self._make_room(size)
        stored = self._wide.place(shard, pieces) or merged(pieces)
        self._groups[shard] = (stored, size)
        self._held += size
        return stored

    def _logical(self, shard: int) -> Any:
        f = int(self.layout.shard_file[shard])
        group = int(self.layout.shard_group[shard])
        file = self.snapshot.files[f]
        present = self.layout.files[f].columns
        physical = self.snapshot.physical
        wanted = [
            physical.get(n, (n, {}))[0]
            for n in self._schema.names
            if n not in self.snapshot.partition_columns and physical.get(n, (n, {}))[0] in present
        ]
        raw = self.files.read(f, group, wanted)
        values = _partition_values(self.snapshot, file.partition_values)
        where = f"{self.snapshot.name}, file {file.path}, row group {group}"
        table = logical_table(raw, self._schema, physical, values, where)
        kept = self.layout.kept(shard)
        return table.take(kept) if kept is not None else table

    def _make_room(self, size: int) -> None:
        while self._groups and self._held + size > self.memory_limit:
            shard, (_, old) = self._groups.popitem(last=False)
            self._wide.drop(shard)
            self._held -= old
            if not self._warned:
                self._warned = True
                log.warning(
                    "decoded row groups of %s exceed memory_limit=%d bytes, so some are read "
                    "again; lower shuffle_block_size (fewer row groups in flight) or convert "
                    "the table with delta_to_shards for heavy training",
                    self.snapshot.name,
                    self.memory_limit,
                )


def _gather(
    names: list[str],
    stored: list[Stored],
    wheres: list[np.ndarray],
    locals_: list[np.ndarray],
    n: int,
) -> dict[str, Any]:
    """Each stored column of a batch of ``n``: rows ``locals_[k]`` of row group ``stored[k]``
    land at positions ``wheres[k]`` (one scatter per row group and column). A null mask a
    row group lacks (it has no nulls there) reads as zeros; a bytes column comes out as
    its values' views."""
    columns: dict[str, Any] = {}
    for name in names:
        like = next((group[name] for group in stored if name in group), None)
        if like is None:
            columns[name] = np.zeros(n, np.uint8)
            continue
        if isinstance(like, ByteValues):
            columns[name] = _cut_bytes([group[name] for group in stored], wheres, locals_, n)
            continue
        holders = [name in group for group in stored]
        # Every position is one row group's; a mask's positions in groups without it are 0.
        out = (np.empty if all(holders) else np.zeros)((n, *like.shape[1:]), like.dtype)
        for group, where, local, holds in zip(stored, wheres, locals_, holders):
            if holds:
                values = group[name]
                assert isinstance(values, np.ndarray)  # one column holds one kind of value
                out[where] = values[local]
        columns[name] = out
    return columns


def _cut_bytes(
    parts: list[Any], wheres: list[np.ndarray], locals_: list[np.ndarray], n: int
) -> list[Any]:
    """A batch's bytes values: views of the row groups' buffers, cut once per value."""
    buffer = np.empty(n, np.int32)  # index into all the groups' buffers, one after another
    bounds = np.empty((n, 2), np.int64)
    first = 0
    for part, where, local in zip(parts, wheres, locals_):
        buffer[where] = part.part[local] + first
        bounds[where] = part.bounds[local]
        first += len(part.buffers)
    buffers = [b for part in parts for b in part.buffers]
    return cut(buffers, buffer, bounds[:, 0], bounds[:, 1])


def _same_form(name: str, stored: list[Stored]) -> None:
    """Make the row groups of one batch hold variable-size column ``name`` alike: where some
    hold it as a matrix (rows of one length) and others differently, the matrices become
    object arrays of row views, once (the row group keeps the new form)."""
    arrays = [v for v in (group[name] for group in stored) if isinstance(v, np.ndarray)]
    if len({(values.dtype, values.shape[1:]) for values in arrays}) > 1:
        for group in stored:
            values = group[name]
            if isinstance(values, np.ndarray) and values.dtype != object:
                group[name] = np.fromiter(values, dtype=object, count=len(values))


def _per_row(values: Any) -> list[Any]:
    """A batch's variable-size column as a list of values, as the MDS reader returns it:
    an object array's values, or a matrix's rows as read-only views (:class:`Rows`, which
    a worker hands over as the one matrix)."""
    if isinstance(values, list):  # bytes, cut already
        return values
    if values.dtype == object:
        return values.tolist()
    values.flags.writeable = False  # as the MDS path's views of a shard
    return Rows(values)


def _partition_values(snapshot: TableSnapshot, values: Any) -> dict[str, str | None]:
    """Partition values by logical name (column-mapped tables key them by physical name)."""
    out = {}
    for name in snapshot.partition_columns:
        physical = snapshot.physical.get(name, (name, {}))[0]
        out[name] = values.get(physical, values.get(name))
    return out
