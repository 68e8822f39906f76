"""One version of a Delta table, replayed from its log: the files, their deletion vectors,
the schema, partition columns, column mapping and the protocol's reader features.

The log is read here, not through delta-rs, because a reader needs what delta-rs does not
hand out (each add action's ``deletionVector`` descriptor, the physical column names) and
must refuse what it cannot read, naming the feature. The latest checkpoint at or below the
version is read (classic single- or multi-part Parquet), then the JSON commits after it; an
add and a remove match on ``(path, deletion vector id)``, as the protocol says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from loader.tables.snapshot import TableFile, TableSnapshot, table_fingerprint
from sparkshard.errors import UnsupportedSourceError
from sparkshard.storage import Store

__all__ = ["READER_FEATURES", "load_delta"]

# Reader features this reader honours; anything else is refused, by name.
READER_FEATURES = frozenset(
    {"columnMapping", "deletionVectors", "timestampNtz", "vacuumProtocolCheck"}
)
_LOG = "_delta_log"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")


def load_delta(store: Store, uri: str, version: int | None) -> TableSnapshot:
    """The snapshot of ``version`` (None: the latest) of the Delta table in ``store``."""
    commits, checkpoints = _listing(store, uri)
    last = max(commits) if commits else max(checkpoints, default=-1)
    if last < 0:
        raise FileNotFoundError(f"{uri} is not a Delta table: {uri}/{_LOG}/ holds no commits")
    pinned = last if version is None else version
    if not 0 <= pinned <= last:
        raise ValueError(
            f"Delta table {uri} has versions up to {last}; version={version} is not one"
        )
    base = max((v for v in checkpoints if v <= pinned), default=None)
    replay = range(0 if base is None else base + 1, pinned + 1)
    missing = [v for v in replay if v not in commits]
    if missing:
        raise FileNotFoundError(
            f"version {pinned} of Delta table {uri} cannot be rebuilt: commit {missing[0]} is "
            "gone from its log (log retention removed it) and no checkpoint covers it; read a "
            "newer version, or raise delta.logRetentionDuration"
        )
    state = _State()
    if base is not None:
        state.apply(_checkpoint_actions(store, checkpoints[base]))
    for v in replay:
        state.apply(_json_actions(store.read(f"{_LOG}/{v:020d}.json"), f"{uri} commit {v}"))
    return state.snapshot(uri, pinned)


def _listing(store: Store, uri: str) -> tuple[set[int], dict[int, list[str]]]:
    commits: set[int] = set()
    checkpoints: dict[int, list[str]] = {}
    try:
        names = store.list(f"{_LOG}/")
    except FileNotFoundError:
        names = []
    for key in names:
        name = key.rsplit("/", 1)[-1]
        if m := _COMMIT.match(name):
            commits.add(int(m.group(1)))
        elif m := _CHECKPOINT.match(name):
            checkpoints.setdefault(int(m.group(1)), []).append(f"{_LOG}/{name}")
    complete = {}
    for v, parts in checkpoints.items():  # a multi-part checkpoint counts only when whole
        found = _CHECKPOINT.match(parts[0].rsplit("/", 1)[-1])
        total = int(found.group(3)) if found and found.group(3) else 1
        if len(parts) == total:
            complete[v] = sorted(parts)
    return commits, complete


def _json_actions(data: bytes, where: str) -> Iterable[dict[str, Any]]:
    for n, line in enumerate(data.decode("utf-8").splitlines()):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}, line {n + 1} is not JSON: {exc}") from None


def _checkpoint_actions(store: Store, parts: list[str]) -> Iterable[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for part in parts:
        local = store.local_path(part)
        source = local if local is not None else pa.BufferReader(store.read(part))
        table = pq.read_table(source)
        for name in ("protocol", "metaData", "add"):
            if name not in table.column_names:
                continue
            for value in table.column(name).to_pylist():
                if value is not None:
                    yield {name: _checkpoint_value(name, value)}


def _checkpoint_value(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint row as the JSON action it stands for (maps arrive as key/value pairs)."""
    out = dict(value)
    for key in ("partitionValues", "configuration", "tags"):
        if isinstance(out.get(key), list):
            out[key] = dict(out[key])
    if name == "metaData" and isinstance(out.get("format"), dict):
        options = out["format"].get("options")
        if isinstance(options, list):
            out["format"]["options"] = dict(options)
    return out


class _State:
    """The log replayed so far: protocol, metadata and live files."""

    def __init__(self) -> None:
        self.protocol: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.files: dict[tuple[str, str | None], dict[str, Any]] = {}

    def apply(self, actions: Iterable[dict[str, Any]]) -> None:
        for action in actions:
            if "add" in action:
                add = action["add"]
                self.files[(add["path"], _dv_id(add.get("deletionVector")))] = add
            elif "remove" in action:
                remove = action["remove"]
                self.files.pop((remove["path"], _dv_id(remove.get("deletionVector"))), None)
            elif "metaData" in action:
                self.metadata = action["metaData"]
            elif "protocol" in action:
                self.protocol = action["protocol"]

    def snapshot(self, uri: str, version: int) -> TableSnapshot:
        _check_protocol(self.protocol, uri, version)
        if not self.metadata:
            raise ValueError(f"version {version} of Delta table {uri} has no metaData action")
        schema = json.loads(self.metadata["schemaString"])
        config = self.metadata.get("configuration") or {}
        mode = config.get("delta.columnMapping.mode", "none")
        if mode not in ("none", "name", "id"):
            raise UnsupportedSourceError(
                f"Delta table {uri} uses column mapping mode {mode!r}; this reader knows "
                "'none', 'name' and 'id'"
            )
        partitions = tuple(self.metadata.get("partitionColumns") or ())
        files = tuple(
            _file(add, partitions)
            for _, add in sorted(self.files.items(), key=lambda item: item[0][0])
        )
        return TableSnapshot(
            kind="delta",
            uri=uri,
            version=version,
            schema_json=json.dumps(schema, sort_keys=True),
            physical=_physical_names(schema) if mode != "none" else {},
            partition_columns=partitions,
            files=files,
            fingerprint=table_fingerprint("delta", uri, version, files),
        )


def _dv_id(descriptor: Mapping[str, Any] | None) -> str | None:
    if not descriptor:
        return None
    offset = descriptor.get("offset")
    tail = f"@{offset}" if offset is not None else ""
    return f"{descriptor['storageType']}{descriptor['pathOrInlineDv']}{tail}"


def _check_protocol(protocol: Mapping[str, Any], uri: str, version: int) -> None:
    reader = int(protocol.get("minReaderVersion", 1))
    if reader > 3:
        raise UnsupportedSourceError(
            f"version {version} of Delta table {uri} needs reader version {reader}; this "
            "reader implements Delta reader versions 1 to 3"
        )
    features = set(protocol.get("readerFeatures") or ())
    unknown = sorted(features - READER_FEATURES)
    if unknown:
        raise UnsupportedSourceError(
            f"version {version} of Delta table {uri} uses reader feature(s) {unknown}, which "
            f"this reader cannot read (it reads {sorted(READER_FEATURES)}); convert the table "
            "with delta_to_shards(spark=...) on a cluster with delta-spark, or disable the "
            "feature on the table"
        )


def _physical_names(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Logical name -> (physical name, nested map for struct fields) per field."""
    out: dict[str, Any] = {}
    for field in schema.get("fields", []):
        meta = field.get("metadata") or {}
        physical = meta.get("delta.columnMapping.physicalName", field["name"])
        kind = field.get("type")
        nested = (
            _physical_names(kind) if isinstance(kind, dict) and kind.get("type") == "struct" else {}
        )
        out[field["name"]] = (physical, nested)
    return out


def _file(add: Mapping[str, Any], partitions: tuple[str, ...]) -> TableFile:
    path = add["path"]
    stats = add.get("stats")
    records = None
    if isinstance(stats, str) and stats:
        try:
            records = json.loads(stats).get("numRecords")
        except json.JSONDecodeError:
            records = None
    values = add.get("partitionValues") or {}
    return TableFile(
        path=path if "://" in path else unquote(path),
        size=int(add["size"]),
        partition_values={k: values.get(k) for k in values},
        deletion_vector=dict(add["deletionVector"]) if add.get("deletionVector") else None,
        num_records=int(records) if records is not None else None,
    )
