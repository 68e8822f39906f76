"""Where a table read in place comes from: a Delta table or plain Parquet files, local or
remote. :class:`TableSource` pins the snapshot and reads its layout (footers, deletion
vectors) once, on the first open; DataLoader workers get the pinned layout with the source,
so they never read the log or footers again.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loader.read.source import ReadOptions, is_cloud
from loader.tables.delta_log import load_delta
from loader.tables.files import LocalFiles
from loader.tables.layout import Layout, filtered, read_layout
from loader.tables.reader import TableReader
from loader.tables.snapshot import TableSnapshot, filtered_fingerprint, parquet_snapshot
from sparkshard.errors import SchemaError
from sparkshard.storage import open_store

__all__ = ["TableSource", "split_parquet"]

log = logging.getLogger(__name__)


def split_parquet(parquet: str | os.PathLike[str] | Sequence[str]) -> tuple[str, str | list[str]]:
    """(root, selection) of ``parquet=``: a folder, one file, a glob, or a list of files."""
    if isinstance(parquet, (str, os.PathLike)):
        text = os.fspath(parquet)
        if not text:
            raise ValueError("parquet= must name a folder, a file, a glob or a list of files")
        parts = text.rstrip("/").split("/")
        glob = next((k for k, p in enumerate(parts) if any(c in p for c in "*?[")), None)
        if glob is not None:
            return "/".join(parts[:glob]) or "/", "/".join(parts[glob:])
        if not is_cloud(text) and Path(text).is_file():
            return str(Path(text).parent), [Path(text).name]
        if is_cloud(text) and text.endswith(".parquet"):
            return "/".join(parts[:-1]), [parts[-1]]
        return text.rstrip("/"), ""
    paths = [os.fspath(p) for p in parquet]
    if not paths:
        raise ValueError("parquet= got an empty list of files")
    parents = [p.rsplit("/", 1)[0] for p in paths]
    root = os.path.commonpath(parents) if not any(is_cloud(p) for p in paths) else parents[0]
    if any(not p.startswith(root + "/") for p in paths):
        raise ValueError(f"parquet= files must share one folder or bucket; got {paths[:3]}...")
    return root, [p[len(root) + 1 :] for p in paths]


class TableSource:
    """A table read in place at a pinned version (``kind`` is ``"delta"`` or ``"parquet"``)."""

    def __init__(
        self,
        kind: str,
        uri: str,
        selection: str | list[str],
        options: ReadOptions,
        cache_dir: str | None,
        row_filter: Any = None,
    ) -> None:
        """``row_filter``: a :class:`sparkshard.delta.rowfilter.RowFilter` (DNF terms) or None."""
        self.kind, self.uri, self.selection, self.options = kind, uri, selection, options
        self.row_filter = row_filter
        self.remote = is_cloud(uri)
        self.per_process = self.remote  # cache locks and fetch threads belong to a process
        if self.remote and cache_dir is None:
            raise ValueError(
                f"{uri} is remote: pass local=<a directory on local disk> for the row groups' "
                "cache (several datasets and processes may share one)"
            )
        if not self.remote and cache_dir is not None:
            raise ValueError(
                f"local={cache_dir!r} is the cache of a remote table, but {uri} is local and "
                "read in place: drop local="
            )
        if not self.remote and options.cache.limit is not None:
            raise ValueError(
                f"cache_limit={options.cache.limit} bounds the cache of a remote table, but "
                f"{uri} is local and read in place, so nothing is cached: drop cache_limit"
            )
        self.cache_dir = cache_dir
        self._pinned: tuple[TableSnapshot, Layout, Any, str] | None = None

    @property
    def root(self) -> Path:
        return Path(self.uri.removeprefix("file://")).expanduser().absolute()

    def open(self, version: int | None) -> TableReader:
        pinned = self._pinned
        if pinned is None or (version is not None and version != pinned[0].version):
            pinned = self._pinned = self._load(version)
        snapshot, layout, schema, fingerprint = pinned
        files = self._files(snapshot, layout)
        columns = self.options.columns
        return TableReader(snapshot, layout, files, schema, columns, fingerprint=fingerprint)

    def _files(self, snapshot: TableSnapshot, layout: Layout | None = None) -> Any:
        if not self.remote:
            return LocalFiles(snapshot, self.root)
        from loader.tables.remote import CachedFiles

        assert self.cache_dir is not None
        return CachedFiles(snapshot, self.uri, Path(self.cache_dir), self.options, layout)

    def _load(self, version: int | None) -> tuple[TableSnapshot, Layout, Any, str]:
        if self.kind == "parquet" and version is not None:
            raise ValueError("parquet= has no versions: version= applies to delta= tables")
        store = open_store(self.uri, self.options.storage_options if self.remote else None)
        if self.kind == "delta":
            snapshot = load_delta(store, self.uri, version)
        else:
            snapshot = parquet_snapshot(store, self.uri, self.selection, self._sizes(store))
        files = self._files(snapshot)
        layout = read_layout(snapshot, files.footer, files.deletions)
        files.close()
        schema = _arrow_schema(snapshot, layout)
        fingerprint = snapshot.fingerprint
        if self.row_filter is not None:
            layout = self._filtered(snapshot, layout, schema)
            fingerprint = filtered_fingerprint(fingerprint, self.row_filter.to_json())
        log.info(
            "%s: %d files, %d row groups, %d rows", snapshot.name, len(snapshot.files),
            len(layout.shard_sizes), int(layout.shard_sizes.sum()),
        )  # fmt: skip
        return snapshot, layout, schema, fingerprint

    def _filtered(self, snapshot: TableSnapshot, layout: Layout, schema: Any) -> Layout:
        """The layout of the rows ``row_filter`` keeps: the filter's columns of every row
        group are read once, here (start-up then grows with those columns' rows)."""
        import numpy as np
        import pyarrow as pa

        expression = self.row_filter.to_arrow()
        names = sorted({c for group in self.row_filter.clauses for c, _, _ in group})
        missing = [n for n in names if n not in schema.names]
        if missing:
            raise SchemaError(
                f"filter= names columns {missing}, which {snapshot.name} lacks; its columns "
                f"are {schema.names}"
            )
        local = threading.local()

        def select(shard: int) -> np.ndarray:
            if not hasattr(local, "reader"):
                files = self._files(snapshot, layout)
                local.reader = TableReader(snapshot, layout, files, schema, names)
            table = local.reader._logical(shard)
            rows = pa.array(np.arange(table.num_rows))
            chosen = table.append_column("__row", rows).filter(expression).column("__row")
            picked = np.asarray(chosen.to_numpy(), np.int64)
            kept = layout.kept(shard)
            return kept[picked] if kept is not None else picked

        return filtered(layout, select)

    def _sizes(self, store: Any) -> Mapping[str, int]:
        if self.remote:
            from loader.tables.remote import listed_sizes

            return listed_sizes(store, self.selection)
        root, out = self.root, {}
        if isinstance(self.selection, list):
            for key in self.selection:
                try:
                    out[key] = os.stat(root / key).st_size
                except FileNotFoundError:
                    raise FileNotFoundError(f"parquet= file {root / key} does not exist") from None
            return out
        if not root.is_dir():
            raise FileNotFoundError(f"parquet= folder {root} does not exist")
        for folder, _, names in os.walk(root):
            for name in names:
                key = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                if (
                    isinstance(self.selection, str)
                    and self.selection
                    and not fnmatch.fnmatch(key, self.selection)
                    and not key.startswith(self.selection.rstrip("/") + "/")
                ):
                    continue
                out[key] = os.stat(os.path.join(folder, name)).st_size
        return out

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _arrow_schema(snapshot: TableSnapshot, layout: Layout) -> Any:
    """The table's logical Arrow schema: Delta's schema, or the Parquet files' own."""
    import pyarrow as pa

    if snapshot.schema_json is not None:
        from deltalake import Schema

        return pa.schema(Schema.from_json(snapshot.schema_json).to_arrow())
    schema = layout.arrow_schema
    if schema is None:
        raise ValueError(f"{snapshot.name} has no rows")
    extra = [pa.field(c, pa.string()) for c in snapshot.partition_columns if c not in schema.names]
    return pa.schema([*schema, *extra])
