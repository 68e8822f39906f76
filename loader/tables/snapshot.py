"""A table read in place, pinned: its data files and what a reader needs to read them right.

A :class:`TableSnapshot` is a plain value: a Delta version replayed from its log
(:mod:`loader.tables.delta_log`) or a set of plain Parquet files
(:func:`parquet_snapshot`). Its ``fingerprint`` names the table and the exact files (paths,
sizes, deletion vectors), so a resume state saved on one snapshot is recognised on another.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sparkshard.storage import Store

__all__ = [
    "TableFile",
    "TableSnapshot",
    "filtered_fingerprint",
    "parquet_snapshot",
    "table_fingerprint",
]

_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class TableFile:
    """One data file: its path (relative to the table unless absolute), size in bytes,
    partition values (as the log or the path spells them), deletion vector descriptor."""

    path: str
    size: int
    partition_values: Mapping[str, str | None] = field(default_factory=dict)
    deletion_vector: Mapping[str, Any] | None = None
    num_records: int | None = None


@dataclass(frozen=True)
class TableSnapshot:
    """A pinned table: ``kind`` ``"delta"`` (``version`` its Delta version) or ``"parquet"``."""

    kind: str
    uri: str
    version: int | None
    schema_json: str | None  # Delta's schema string; None for plain Parquet
    physical: Mapping[str, Any]  # column mapping: logical -> (physical, nested); {} if none
    partition_columns: tuple[str, ...]
    files: tuple[TableFile, ...]
    fingerprint: str

    @property
    def name(self) -> str:
        at = f" at version {self.version}" if self.version is not None else ""
        return f"{'Delta table' if self.kind == 'delta' else 'Parquet'} {self.uri}{at}"


def table_fingerprint(kind: str, uri: str, version: int | None, files: Sequence[TableFile]) -> str:
    """``<kind>:<table digest>:<content digest>``: the table, then the exact files of it."""
    table = hashlib.sha256(f"{kind}:{uri.rstrip('/')}".encode()).hexdigest()[:16]
    listed = [(f.path, f.size, f.deletion_vector) for f in files]
    content = hashlib.sha256(json.dumps([version, listed], sort_keys=True).encode()).hexdigest()
    return f"{kind}:{table}:{content[:16]}"


def filtered_fingerprint(fingerprint: str, row_filter: object) -> str:
    """A snapshot's fingerprint with a row filter folded into its table part: a state saved
    with another filter is another dataset's, refused even at an epoch boundary."""
    kind, table, content = fingerprint.split(":")
    text = json.dumps([table, row_filter], sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:16]}:{content}"


def parquet_snapshot(
    store: Store, uri: str, given: str | Sequence[str], sizes: Mapping[str, int]
) -> TableSnapshot:
    """Plain Parquet files: ``given`` is a directory (every ``*.parquet`` below it, skipping
    ``_``/``.`` names as Spark's readers do), a glob, or a list of files (relative to
    ``uri``). Hive-style ``key=value`` folders become string partition columns."""
    keys = _select(store, given, sizes)
    if not keys:
        raise FileNotFoundError(
            f"no Parquet files at {uri} matching {given!r}: pass a folder of .parquet files, "
            "a glob such as 'part-*.parquet', or a list of files"
        )
    files = tuple(TableFile(k, sizes.get(k, -1), _hive(k)) for k in keys)
    columns = tuple(dict.fromkeys(c for f in files for c in f.partition_values))
    return TableSnapshot(
        kind="parquet",
        uri=uri,
        version=None,
        schema_json=None,
        physical={},
        partition_columns=columns,
        files=files,
        fingerprint=table_fingerprint("parquet", uri, None, files),
    )


def _select(store: Store, given: str | Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    if not isinstance(given, str):
        return [str(p).lstrip("/") for p in given]
    listed = sorted(sizes)
    if any(c in given for c in "*?["):
        return [k for k in listed if fnmatch.fnmatch(k, given.lstrip("/"))]
    prefix = given.strip("/")
    chosen = [k for k in listed if not prefix or k == prefix or k.startswith(prefix + "/")]
    return [k for k in chosen if k.endswith(".parquet") and not _hidden(k)]


def _hidden(key: str) -> bool:
    return any(part[:1] in ("_", ".") for part in key.split("/"))


def _hive(key: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for part in key.split("/")[:-1]:
        name, eq, value = part.partition("=")
        if eq and name:
            decoded = unquote(value)
            values[unquote(name)] = None if decoded == _HIVE_NULL else decoded
    return values
