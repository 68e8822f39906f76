"""``DatasetReader``: random access to a local MDS dataset (ours or Mosaic's).

Opens ``index.json`` (or a pinned version record), maps raw shard files in place or
decompresses compressed ones into memory (a few, least recently used beyond
``memory_limit``; nothing is ever written into the dataset, which may be read-only),
verifies each raw shard file against its index hash once per reader, sharing the checks
with the reader's DataLoader workers (:mod:`loader.read.ledger`; ``verify_hashes=False``
opts out), and decodes samples one at a time (:meth:`get`) or a batch at a time with numpy
(:meth:`get_batch`). Columns with a logical type come back restored: None for nulls,
bool, ``datetime.date`` / ``datetime.datetime`` per sample, or numpy ``bool`` /
``datetime64`` / ``timedelta64`` arrays per batch; nullable fixed-size columns come back
from :meth:`get_batch` as ``numpy.ma.MaskedArray``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loader.read.ledger import HashLedger
from loader.read.mapped import MappedShard
from loader.read.restore import restore_column
from loader.read.spans import FileSpans
from sparkshard.dataset.shards import check_local_file, raw_shard
from sparkshard.dataset.versions import read_index
from sparkshard.errors import SchemaError
from sparkshard.format.encodings import get_encoding
from sparkshard.format.index import DatasetIndex, schema_of
from sparkshard.format.schema import Schema
from sparkshard.format.values import from_stored
from sparkshard.sizes import parse_size
from sparkshard.storage import LocalStore

__all__ = ["DatasetReader"]

log = logging.getLogger(__name__)
_MEMORY_LIMIT = 1 << 30  # decompressed shards kept in memory per reader, at most (bytes)


class DatasetReader:
    """Random access to the samples of one version of a local dataset."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
        verify_hashes: bool = True,
        allow_unsafe_pickle: bool = False,
        index: DatasetIndex | None = None,
        memory_limit: int | str = _MEMORY_LIMIT,
        ledger: HashLedger | None = None,
    ) -> None:
        """``ledger``: where the raw files' hash checks are recorded (shared with other
        readers of this version, e.g. in DataLoader workers); default: this reader's own."""
        self.root = Path(os.fspath(path)).expanduser().absolute()
        self.index = index if index is not None else read_index(LocalStore(self.root), version)
        self.verify_hashes = verify_hashes
        table = self.index.table  # columns: no per-shard objects until a shard is opened
        self.shard_sizes = np.array(table.samples, np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        self.num_samples = int(self._starts[-1])
        self.version = self.index.dataset_version
        self.fingerprint = self.index.fingerprint()
        self.schema = schema_of(self.index)
        self.column_names = _select(self.schema, columns)
        self._specs = [c for c in self.schema.columns if c.name in self.column_names]
        self._stored = sorted(
            {c.name for c in self._specs} | {c.null_column for c in self._specs if c.nullable}
        )
        if not allow_unsafe_pickle:
            _refuse_pickle(self.index, self.root)
        # Mosaic's merged indexes may give each shard its own columns.
        layouts = {(s.column_names, s.column_encodings) for s in table.used_layouts()}
        self._per_shard_columns = len(layouts) > 1 and columns is None
        self._shards: dict[int, MappedShard] = {}
        # Raw shard files in place checked, by this process or a worker sharing the ledger.
        self._ledger = ledger if ledger is not None else HashLedger(len(table))
        if self._ledger.shards != len(table):
            raise ValueError(f"a ledger of {self._ledger.shards} shards for {len(table)} shards")
        self._verified: set[int] = set()  # cached copies checked in this process (subclass)
        self._in_memory: OrderedDict[int, int] = OrderedDict()  # decompressed: shard -> bytes
        largest = int(table.raw_bytes.max()) if len(table) else 0
        self.memory_limit = max(parse_size(memory_limit, what="memory_limit"), 2 * largest)
        self._memory_warned = False
        self.bytes_read = 0  # shard bytes decoded by this process (cumulative)

    def __len__(self) -> int:
        return self.num_samples

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"] = {}  # memory maps are per process; reopened lazily after a pickle
        state["_in_memory"] = OrderedDict()
        state["_verified"] = set()
        return state

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()
        self._in_memory.clear()

    def abandon(self) -> None:
        """Drop what a forked child inherited; the next read maps shards again."""
        self.close()

    @property
    def fetches_ahead(self) -> bool:
        return False  # local shards need no fetching

    def prefetch(self, batches: Iterable[np.ndarray], processes: int) -> None:
        """Local shards are read in place: nothing to fetch ahead."""

    def io_counters(self) -> dict[str, int]:
        """Cumulative shard bytes this process decoded (and downloaded: none)."""
        return {"bytes_read": self.bytes_read, "bytes_downloaded": 0}

    def locate(self, index: int) -> tuple[int, int]:
        """(shard, sample within shard) of a global sample index."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} is out of range: the dataset has {self.num_samples}")
        shard = int(np.searchsorted(self._starts, index, side="right")) - 1
        return shard, index - int(self._starts[shard])

    def get(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as a dict of restored values."""
        shard, j = self.locate(int(index))
        opened = self.shard(shard)
        self.bytes_read += opened.span_bytes(j)
        if self._per_shard_columns:
            table = self.index.table
            return opened.sample(j, list(table.layouts[int(table.layout[shard])].column_names))
        stored = opened.sample(j, self._stored)
        out = {}
        for spec in self._specs:
            null = spec.nullable and bool(stored[spec.null_column])
            out[spec.name] = None if null else from_stored(spec, stored[spec.name])
        return out

    def get_batch(
        self, ids: Sequence[int] | np.ndarray, by_reference: bool = False, plain: bool = False
    ) -> dict[str, Any]:
        """The samples ``ids`` (any order, repeats allowed), column by column.
        ``by_reference``: a bytes column whose values lie in raw shard files of the dataset
        comes back as :class:`~loader.read.spans.FileSpans` (for a DataLoader worker to
        hand over without copying); ``plain``: a nullable column without nulls in this
        batch comes back as a plain array (see :func:`~loader.read.restore.restore_column`)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_samples):
            raise IndexError(f"sample ids must be in 0..{self.num_samples - 1}")
        if self._per_shard_columns:
            samples = [self.get(i) for i in ids.tolist()]
            names = sorted({name for sample in samples for name in sample})
            return {name: [sample.get(name) for sample in samples] for name in names}
        shards = np.searchsorted(self._starts, ids, side="right") - 1
        self._verify_batch(shards)
        columns: dict[str, Any] = {}
        if len(ids) and shards.min() == shards.max():  # one shard: no need to scatter
            shard = int(shards[0])
            local, opened = ids - self._starts[shard], self.shard(shard)
            self.bytes_read += opened.span_bytes(local)
            part = opened.batch(local, self._stored, by_reference)
            return {spec.name: restore_column(spec, part, plain) for spec in self._specs}
        for shard in np.unique(shards).tolist():
            where = np.flatnonzero(shards == shard)
            local, opened = ids[where] - self._starts[shard], self.shard(shard)
            self.bytes_read += opened.span_bytes(local)
            part = opened.batch(local, self._stored, by_reference)
            _scatter(columns, part, where, len(ids))
        return {spec.name: restore_column(spec, columns, plain) for spec in self._specs}

    def shard(self, i: int) -> MappedShard:
        """Shard ``i`` opened: its raw file mapped in place, or its stored file verified and
        decompressed into memory (never written anywhere: the dataset may be read-only)."""
        opened = self._shards.get(i)
        if opened is None:
            opened = self.open_in_place(i)
            if opened is None:
                opened = self._decompressed(i)
            self._shards[i] = opened
        elif i in self._in_memory:
            self._in_memory.move_to_end(i)
        return opened

    def open_in_place(self, i: int, root: Path | None = None) -> MappedShard | None:
        """Shard ``i``'s raw file mapped where it lies under ``root`` (default: the dataset's
        folder; checked once per process), or None when only its compressed form is there."""
        record = self.index.shards[i]
        raw_path = (root or self.root) / record.raw_data.basename
        if not raw_path.exists():
            if record.zip_data is None:
                raise FileNotFoundError(f"shard file {raw_path} is missing")
            return None
        if self.verify_hashes:
            self._ledger.verify([i], lambda i: self._check_in_place(i, root))
        return MappedShard(str(raw_path), record)

    def _verify_batch(self, shards: np.ndarray) -> None:
        """Check a batch's shards together before reading them, so that DataLoader workers
        that need the same shards share the hashing (:class:`HashLedger`)."""
        if self.verify_hashes:
            self._ledger.verify(np.unique(shards).tolist(), self._check_in_place)

    def _check_in_place(self, i: int, root: Path | None = None) -> None:
        """Shard ``i``'s raw file under ``root`` against its index hash (when it is there:
        a compressed shard's copy is checked as it is decompressed or fetched)."""
        record = self.index.shards[i]
        raw_path = (root or self.root) / record.raw_data.basename
        if raw_path.exists():
            check_local_file(raw_path, record.raw_data)

    def _decompressed(self, i: int) -> MappedShard:
        record = self.index.shards[i]
        assert record.zip_data is not None
        zip_path = self.root / record.zip_data.basename
        try:
            data = zip_path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"shard file {zip_path} is missing (nor is its raw form "
                f"{record.raw_data.basename} there)"
            ) from None
        raw = bytes(raw_shard(record, data, str(zip_path), verify=self.verify_hashes))
        self._make_memory_room(len(raw))
        self._in_memory[i] = len(raw)
        return MappedShard.of_bytes(raw, record, str(zip_path))

    def _make_memory_room(self, size: int) -> None:
        """Drop least recently used decompressed shards until ``size`` more bytes fit."""
        while self._in_memory and sum(self._in_memory.values()) + size > self.memory_limit:
            oldest, _ = self._in_memory.popitem(last=False)
            self._shards.pop(oldest).close()
            if not self._memory_warned:
                self._memory_warned = True
                log.warning(
                    "decompressed shards of %s exceed memory_limit=%d bytes, so some are "
                    "decompressed again; raise it, or read the dataset through a disk cache "
                    "(StreamingDataset(local=DIR) does that)",
                    self.root,
                    self.memory_limit,
                )


def _select(schema: Schema, columns: Sequence[str] | None) -> tuple[str, ...]:
    if columns is None:
        return schema.names
    unknown = sorted(set(columns) - set(schema.names))
    if unknown:
        raise SchemaError(
            f"columns {unknown} are not in the dataset; its columns are {list(schema.names)}"
        )
    return tuple(c for c in schema.names if c in set(columns))


def _refuse_pickle(index: DatasetIndex, root: Path) -> None:
    for shard in index.table.used_layouts():
        for name, encoding in zip(shard.column_names, shard.column_encodings):
            if get_encoding(encoding).unsafe:
                raise SchemaError(
                    f"column '{name}' of {root} is stored as '{encoding}', and unpickling can "
                    "run arbitrary code: pass allow_unsafe_pickle=True only for data you trust"
                )


def _scatter(columns: dict[str, Any], part: dict[str, Any], where: np.ndarray, n: int) -> None:
    """Place one shard's slice of a batch at its positions ``where`` of the whole batch."""
    for name, values in part.items():
        if isinstance(values, np.ndarray):
            if name not in columns:
                columns[name] = np.empty((n, *values.shape[1:]), values.dtype)
            columns[name][where] = values
            continue
        if isinstance(values, FileSpans):
            if name not in columns:
                columns[name] = FileSpans.empty(n)
            if isinstance(columns[name], FileSpans):
                columns[name].put(where, values)
                continue
        elif isinstance(columns.get(name), FileSpans):  # a shard in memory: values after all
            columns[name] = columns[name].views()
        out = columns.setdefault(name, [None] * n)
        items = values.views() if isinstance(values, FileSpans) else values
        for position, value in zip(where.tolist(), items):
            out[position] = value
