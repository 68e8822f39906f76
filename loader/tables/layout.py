"""Row groups as shards: the layout of a snapshot's samples, read from footers only.

Start-up reads every data file's Parquet footer and deletion vector (in parallel threads)
and nothing else: :class:`Layout` is O(files + row groups + deleted rows), never O(rows).
A row group's samples are its rows that no deletion vector removed, so the shard sizes the
order and partition math sees are the surviving row counts; empty row groups are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from loader.tables.snapshot import TableSnapshot

__all__ = ["FileLayout", "Layout", "filtered", "read_layout"]

_THREADS = 16


@dataclass(frozen=True)
class FileLayout:
    """One file's footer facts: row groups' row counts and byte spans, its deleted rows."""

    rows: np.ndarray  # (row groups,) rows per row group
    spans: np.ndarray  # (row groups, 2) first byte, end byte of each row group's column chunks
    deleted: np.ndarray  # sorted deleted row indexes of the file (int64)
    footer_bytes: int  # length of the footer block at the end of the file (8 + metadata)
    columns: frozenset[str]  # the file's top-level (physical) column names
    size: int  # the object's size in bytes
    identity: str | None  # what pins the object: its ETag (remote), None (local: size only)


@dataclass(frozen=True)
class Layout:
    """Every surviving row group of a snapshot, in file then row-group order."""

    files: tuple[FileLayout, ...]
    arrow_schema: Any  # the first file's Arrow schema (what plain Parquet is read as)
    shard_file: np.ndarray  # (shards,) file of each shard
    shard_group: np.ndarray  # (shards,) row group within its file
    shard_sizes: np.ndarray  # (shards,) surviving rows
    first_row: np.ndarray  # (shards,) index in its file of the row group's first row
    # With a row filter: each shard's selected rows (indexes within its row group).
    selection: tuple[np.ndarray, ...] | None = None

    def kept(self, shard: int) -> np.ndarray | None:
        """Row indexes (within the row group) of its surviving rows; None when all survive."""
        if self.selection is not None:
            return self.selection[shard]
        file = self.files[int(self.shard_file[shard])]
        if not len(file.deleted):
            return None
        first = int(self.first_row[shard])
        rows = int(file.rows[int(self.shard_group[shard])])
        lo, hi = np.searchsorted(file.deleted, [first, first + rows])
        if lo == hi:
            return None
        keep = np.ones(rows, np.bool_)
        keep[file.deleted[lo:hi] - first] = False
        return np.flatnonzero(keep)


def read_layout(
    snapshot: TableSnapshot,
    footer: Callable[[int], tuple[Any, int, int, str | None]],
    deletions: Callable[[int], np.ndarray],
    threads: int = _THREADS,
) -> Layout:
    """The layout from each file's ``footer(i)`` (pyarrow FileMetaData, footer length, object
    size, ETag) and
    ``deletions(i)`` (deleted rows), read ``threads`` files at a time."""

    def one(i: int) -> tuple[FileLayout, Any]:
        metadata, footer_bytes, size, identity = footer(i)
        deleted = deletions(i)
        rows = np.array(
            [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)], np.int64
        )
        spans = np.array([_span(metadata.row_group(g)) for g in range(len(rows))], np.int64)
        total = int(rows.sum())
        if len(deleted) and (deleted[0] < 0 or deleted[-1] >= total):
            raise ValueError(
                f"{snapshot.name}: the deletion vector of {snapshot.files[i].path} names row "
                f"{int(deleted[-1])}, but the file has {total} rows"
            )
        schema = metadata.schema.to_arrow_schema()
        names = frozenset(schema.names)
        layout = FileLayout(
            rows, spans.reshape(-1, 2), deleted, footer_bytes, names, size, identity
        )
        return layout, schema

    count = len(snapshot.files)
    with ThreadPoolExecutor(max(1, min(threads, count))) as pool:
        read = list(pool.map(one, range(count)))
    return _assemble([f for f, _ in read], read[0][1] if read else None)


def _span(group: Any) -> tuple[int, int]:
    """(first byte, end byte) of a row group's column chunks in the file."""
    starts, ends = [], []
    for c in range(group.num_columns):
        column = group.column(c)
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset:
            start = min(start, column.dictionary_page_offset)
        starts.append(start)
        ends.append(start + column.total_compressed_size)
    return (min(starts), max(ends)) if starts else (0, 0)


def _assemble(files: Sequence[FileLayout], schema: Any) -> Layout:
    shard_file, shard_group, sizes, firsts = [], [], [], []
    for f, file in enumerate(files):
        starts = np.concatenate([[0], np.cumsum(file.rows)])
        for g, rows in enumerate(file.rows.tolist()):
            first = int(starts[g])
            lo, hi = np.searchsorted(file.deleted, [first, first + rows])
            alive = rows - int(hi - lo)
            if alive > 0:
                shard_file.append(f)
                shard_group.append(g)
                sizes.append(alive)
                firsts.append(first)
    return Layout(
        tuple(files),
        schema,
        np.array(shard_file, np.int64),
        np.array(shard_group, np.int64),
        np.array(sizes, np.int64),
        np.array(firsts, np.int64),
    )


def filtered(
    layout: Layout, select: Callable[[int], np.ndarray], threads: int = _THREADS
) -> Layout:
    """``layout`` keeping, of each shard, the rows ``select(shard)`` returns (indexes within
    its row group, computed ``threads`` shards at a time); shards left empty are dropped."""
    count = len(layout.shard_sizes)
    with ThreadPoolExecutor(max(1, min(threads, count))) as pool:
        chosen = list(pool.map(select, range(count)))
    keep = np.array([len(c) > 0 for c in chosen], np.bool_)
    return Layout(
        layout.files,
        layout.arrow_schema,
        layout.shard_file[keep],
        layout.shard_group[keep],
        np.array([len(c) for c in chosen if len(c)], np.int64),
        layout.first_row[keep],
        tuple(np.asarray(c, np.int64) for c in chosen if len(c)),
    )
