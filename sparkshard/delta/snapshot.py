"""One pinned version of a Delta table, and what changed between two of them.

A :class:`DeltaSnapshot` is a plain value read from the Delta log with the ``deltalake``
package: the version, its commit time, the schema, the partition columns and the data
files (add actions) that make up the version. :func:`compare` decides whether a newer
snapshot only appended files to an older one (then exactly the new files hold the new
rows) or changed what was there (delete, update, merge, overwrite, compaction, schema
change), from the add/remove actions themselves, not from operation names.

Tables are opened where they are used, never kept open: delta-rs misbehaves in forked
children, so nothing here holds a table across a fork.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from sparkshard.errors import UnsupportedSourceError, require
from sparkshard.storage import Store, open_store, remote_options

__all__ = [
    "Change",
    "DeltaFile",
    "DeltaSnapshot",
    "commit_info",
    "compare",
    "load_snapshot",
    "operations",
]

_PARTITION = "partition."
_DELETION_VECTOR = "deletionVector"
_MAX_LISTED = 12  # commits named in a message


@dataclass(frozen=True)
class DeltaFile:
    """One data file of a snapshot: its path (relative to the table, decoded) and size."""

    path: str
    size: int
    partition_values: Mapping[str, Any]
    num_records: int | None = None
    deletion_vector: str | None = None  # the descriptor, when rows of this file are deleted


@dataclass(frozen=True)
class DeltaSnapshot:
    """A pinned Delta version: everything a conversion needs, read once."""

    uri: str
    version: int
    timestamp: str | None  # commit time, ISO 8601 UTC
    schema_json: str  # Delta's schema string (Spark's StructType JSON)
    arrow_schema: pa.Schema
    partition_columns: tuple[str, ...]
    files: tuple[DeltaFile, ...]
    unreadable: str | None = None  # why reading the data files directly would be wrong

    def check_files_readable(self) -> None:
        """Raise :class:`UnsupportedSourceError` if only a Delta reader reads this correctly."""
        if self.unreadable is not None:
            raise UnsupportedSourceError(self.unreadable)

    @property
    def num_records(self) -> int | None:
        counts = [f.num_records for f in self.files]
        return None if None in counts else sum(c or 0 for c in counts)

    def file_uri(self, file: DeltaFile) -> str:
        """Where ``file`` lives: absolute paths stay as they are, others join the table URI."""
        if "://" in file.path or file.path.startswith("/"):
            return file.path
        return f"{self.uri.rstrip('/')}/{file.path}"


@dataclass(frozen=True)
class Change:
    """How ``new`` relates to ``old``: the appended files, or why it is not an append."""

    appended: tuple[DeltaFile, ...] | None  # None: rows were changed or removed
    reason: str = ""


def _open(uri: str, version: int | None, storage_options: Mapping[str, Any] | None) -> Any:
    deltalake: Any = require("deltalake", "delta", "reading Delta tables")
    options = dict(storage_options) if storage_options else None
    try:
        return deltalake.DeltaTable(uri, version=version, storage_options=options)
    except Exception as exc:
        what = f"version {version} of " if version is not None else ""
        raise FileNotFoundError(
            f"cannot open {what}Delta table {uri}: {str(exc).strip().splitlines()[0]}"
        ) from exc


def load_snapshot(
    uri: str, version: int | None = None, storage_options: Mapping[str, Any] | None = None
) -> DeltaSnapshot:
    """Read version ``version`` (default: the latest) of the Delta table at ``uri``."""
    latest = _open(uri, None, storage_options)
    last = int(latest.version())
    pinned = last if version is None else int(version)
    if not 0 <= pinned <= last:
        raise ValueError(f"Delta table {uri} has versions 0..{last}; version={version} is not one")
    table = latest if pinned == last else _open(uri, pinned, storage_options)
    actions = pa.table(table.get_add_actions(flatten=True))
    partitions = tuple(table.metadata().partition_columns)
    files = tuple(_files(actions, partitions))
    info = commit_info(open_store(uri, remote_options(uri, storage_options)), pinned)
    return DeltaSnapshot(
        uri=uri,
        version=pinned,
        timestamp=_iso(info),
        schema_json=table.schema().to_json(),
        arrow_schema=pa.schema(table.schema().to_arrow()),
        partition_columns=partitions,
        files=files,
        unreadable=_unreadable(table, uri, pinned, files),
    )


def commit_info(table: Store, version: int) -> dict[str, Any] | None:
    """The ``commitInfo`` action of a commit, read from its log file (None if gone)."""
    try:
        text = table.read(f"_delta_log/{version:020d}.json").decode("utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if '"commitInfo"' in line:
            info = json.loads(line).get("commitInfo")
            return info if isinstance(info, dict) else None
    return None


def operations(
    uri: str, since: int, until: int, storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """``"5 DELETE"``-style names of the commits ``since < version <= until`` (for messages)."""
    table = open_store(uri, remote_options(uri, storage_options))
    out = []
    for version in range(since + 1, min(until, since + _MAX_LISTED) + 1):
        info = commit_info(table, version) or {}
        mode = (info.get("operationParameters") or {}).get("mode")
        out.append(f"{version} {info.get('operation', '?')}" + (f" ({mode})" if mode else ""))
    if until > since + _MAX_LISTED:
        out.append("...")
    return out


def compare(old: DeltaSnapshot, new: DeltaSnapshot) -> Change:
    """Whether ``new`` only appended files to ``old`` (every old file still there, unchanged)."""
    if new.version < old.version:
        return Change(None, f"version {new.version} is older than converted version {old.version}")
    if new.schema_json != old.schema_json or new.partition_columns != old.partition_columns:
        return Change(
            None, f"the table schema changed between versions {old.version} and {new.version}"
        )
    current = {f.path: f for f in new.files}
    gone = [f.path for f in old.files if current.get(f.path) != f]
    if gone:
        return Change(
            None,
            f"{len(gone)} data file(s) of version {old.version} were removed, rewritten or lost rows in "
            f"version {new.version} (e.g. {gone[0]})",
        )
    before = {f.path for f in old.files}
    return Change(tuple(f for f in new.files if f.path not in before))


def _unreadable(table: Any, uri: str, version: int, files: tuple[DeltaFile, ...]) -> str | None:
    """Why reading the data files directly would get this version wrong, if it would."""
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if mapping not in ("none", None):
        return (
            f"Delta table {uri} uses column mapping ('{mapping}'), so its Parquet files hold "
            "physical column names that only a Delta reader maps back; convert it with a "
            "Spark session that has delta-spark (spark=...), or rewrite the table without "
            "column mapping"
        )
    features = table.protocol().reader_features or []
    if "deletionVectors" in features and _has_deletion_vectors(table, files):
        return (
            f"version {version} of Delta table {uri} has deletion vectors (rows deleted "
            "without rewriting their files); reading its files directly would bring deleted "
            "rows back. Purge them first (REORG TABLE ... APPLY (PURGE), or OPTIMIZE), or "
            "convert with a Spark session that has delta-spark"
        )
    return None


def _has_deletion_vectors(table: Any, files: tuple[DeltaFile, ...]) -> bool:
    if any(f.deletion_vector for f in files):
        return True
    reader = getattr(table, "deletion_vectors", None)
    if reader is None:
        return True  # cannot tell: assume the worst
    return any(batch.num_rows for batch in pa.RecordBatchReader.from_stream(reader()))


def _iso(info: Mapping[str, Any] | None) -> str | None:
    """The commit time (in-commit timestamp if the table has them), ISO 8601 UTC."""
    if not info:
        return None
    millis = info.get("inCommitTimestamp", info.get("timestamp"))
    if not isinstance(millis, (int, float)):
        return None
    stamp = dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds")


def _files(actions: pa.Table, partitions: tuple[str, ...]) -> list[DeltaFile]:
    columns = {name: actions.column(name).to_pylist() for name in actions.column_names}
    records = columns.get("num_records") or [None] * actions.num_rows
    files = []
    vectors = sorted(name for name in columns if name.startswith(_DELETION_VECTOR))
    for i, path in enumerate(columns["path"]):
        values = {p: columns[_PARTITION + p][i] for p in partitions if _PARTITION + p in columns}
        local = path if "://" in path else unquote(path)
        vector = {name: columns[name][i] for name in vectors if columns[name][i] is not None}
        files.append(
            DeltaFile(
                local, int(columns["size_bytes"][i]), values, records[i],
                json.dumps(vector, sort_keys=True, default=str) if vector else None,
            )
        )  # fmt: skip
    return files
