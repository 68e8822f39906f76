"""Tables read in place: ``StreamingDataset(delta=URI, version=N)`` and ``parquet=...``.

No copy and no conversion: a Delta version (replayed from its log, deletion vectors and
column mapping honoured) or a set of Parquet files is read where it lies, row groups playing
the role of shards, so order, partition, canonical nodes and elastic resume are the MDS
path's pure code::

    tables/
      snapshot.py   the pinned table: files, partition columns, column mapping, fingerprint
      delta_log.py  a Delta version replayed from _delta_log (checkpoints, commits, features)
      deletion.py   deletion vectors: Z85, the DV file frame, RoaringBitmap (pure)
      layout.py     row groups as shards, from footers and deletion vectors only
      columns.py    a row group's Arrow columns as the MDS path stores and restores them
      files.py      local data files (size-checked, read in place)
      remote.py     remote data files: ranged GETs into the shard cache, ETag-pinned
      reader.py     TableReader (the Reader protocol)
      wide.py       decoded row groups as table-wide columns: a batch is one gather each
      source.py     TableSource: pins the snapshot and layout once, opens readers

Nothing here is imported by ``import loader``; pyarrow.parquet and deltalake load when a
table is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loader.read.source import ReadOptions
    from loader.tables.source import TableSource

__all__ = ["open_table"]


def open_table(
    delta: str | None,
    parquet: str | Sequence[str] | None,
    local: str | None,
    remote: str | None,
    split: str | None,
    options: ReadOptions,
    row_filter: object = None,
) -> TableSource:
    """The source of ``delta=`` or ``parquet=`` (exactly one), refusing options that do not
    apply to a table read in place. ``row_filter``: DNF tuples, as for ``delta_to_shards``."""
    from loader.tables.source import TableSource, split_parquet
    from sparkshard.delta.rowfilter import RowFilter

    parsed = RowFilter.parse(row_filter)  # type: ignore[arg-type]
    if parsed is not None:
        parsed.to_arrow()  # a Spark SQL string is refused here, before anything is read

    if delta is not None and parquet is not None:
        raise ValueError("give delta= (a Delta table) or parquet= (Parquet files), not both")
    if remote is not None:
        raise ValueError(
            "remote= names an MDS dataset; a table is named by delta= or parquet= alone "
            "(local= is then the cache directory of a remote table)"
        )
    if split is not None:
        raise ValueError(f"split={split!r} applies to MDS datasets, not to delta=/parquet=")
    if delta is not None:
        if not isinstance(delta, str) or not delta:
            raise ValueError(f"delta= must be a table URI or path, got {delta!r}")
        return TableSource("delta", delta.rstrip("/"), "", options, local, parsed)
    assert parquet is not None
    root, selection = split_parquet(parquet)
    return TableSource("parquet", root, selection, options, local, parsed)
