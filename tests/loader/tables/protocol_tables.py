"""Delta tables no tool here writes, built by the Delta protocol: deletion vectors (a
RoaringBitmap file and the ``deletionVector`` descriptor of the add action) and column
mapping (physical names in Parquet, logical names in the schema's metadata).

Independent of the code under test: the bitmap writer follows the portable RoaringBitmap
spec, and deltalake's own reader is the judge of what the tables hold.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85_encode(data: bytes) -> str:
    assert len(data) % 4 == 0
    out = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i : i + 4], "big")
        chars = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            chars.append(Z85[digit])
        out.append("".join(reversed(chars)))
    return "".join(out)


def _runs(low: np.ndarray) -> bytes:
    breaks = np.flatnonzero(np.diff(low.astype(np.int64)) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(low)]])
    pairs = [(int(low[a]), int(b - a - 1)) for a, b in zip(starts, ends)]
    return struct.pack("<H", len(pairs)) + b"".join(struct.pack("<HH", *p) for p in pairs)


def roaring32(values: np.ndarray, runs: bool = False) -> bytes:
    """Portable 32-bit RoaringBitmap serialization; ``runs``: every container as runs (as
    ``runOptimize`` leaves long stretches), else array and bitmap containers."""
    values = np.unique(values.astype(np.uint32))
    keys = np.unique(values >> 16)
    containers = []
    for key in keys.tolist():
        low = (values[(values >> 16) == key] & 0xFFFF).astype(np.uint16)
        if runs:
            containers.append((key, len(low), _runs(low)))
        elif len(low) > 4096:
            bits = np.zeros(65536, np.uint8)
            bits[low] = 1
            containers.append((key, len(low), np.packbits(bits, bitorder="little").tobytes()))
        else:
            containers.append((key, len(low), low.astype("<u2").tobytes()))
    n = len(containers)
    if runs:
        head = struct.pack("<I", 12347 | ((n - 1) << 16)) + b"\xff" * ((n + 7) // 8)
    else:
        head = struct.pack("<II", 12346, n)
    head += b"".join(struct.pack("<HH", k, c - 1) for k, c, _ in containers)
    if runs and n < 4:  # run bitmaps with fewer than 4 containers carry no offsets
        return head + b"".join(b for _, _, b in containers)
    start = len(head) + 4 * n
    offsets, pos = [], start
    for _, _, body in containers:
        offsets.append(pos)
        pos += len(body)
    return head + struct.pack(f"<{n}I", *offsets) + b"".join(b for _, _, b in containers)


def serialized_dv(rows: Sequence[int], runs: bool = False) -> bytes:
    """Magic + 64-bit Roaring (one 32-bit bitmap per high key)."""
    array = np.asarray(rows, np.int64)
    highs = np.unique(array >> 32)
    out = struct.pack("<iq", 1681511377, len(highs))
    for high in highs.tolist():
        low = array[(array >> 32) == high] & 0xFFFFFFFF
        out += struct.pack("<I", high) + roaring32(low, runs)
    return out


def write_dv_file(table: Path, rows: Sequence[int], prefix: str = "dv") -> dict[str, Any]:
    """A deletion-vector file beside the table; returns the add action's descriptor."""
    data = serialized_dv(rows)
    ident = uuid.uuid4()
    folder = table / prefix if prefix else table
    folder.mkdir(exist_ok=True)
    framed = b"\x01" + struct.pack(">I", len(data)) + data + struct.pack(">I", zlib.crc32(data))
    (folder / f"deletion_vector_{ident}.bin").write_bytes(framed)
    return {
        "storageType": "u",
        "pathOrInlineDv": prefix + z85_encode(ident.bytes),
        "offset": 1,
        "sizeInBytes": len(data),
        "cardinality": len(set(rows)),
    }


def inline_dv(rows: Sequence[int]) -> dict[str, Any]:
    data = serialized_dv(rows)
    padded = data + b"\0" * (-len(data) % 4)
    return {
        "storageType": "i",
        "pathOrInlineDv": z85_encode(padded),
        "sizeInBytes": len(data),
        "cardinality": len(set(rows)),
    }


def _commit(table: Path, actions: list[dict[str, Any]]) -> int:
    log = table / "_delta_log"
    version = max(int(p.stem) for p in log.glob("*.json")) + 1
    info = {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "DELETE"}}
    lines = [json.dumps(a) for a in [info, *actions]]
    (log / f"{version:020d}.json").write_text("\n".join(lines) + "\n")
    return version


def _last_adds(table: Path) -> dict[str, dict[str, Any]]:
    adds: dict[str, dict[str, Any]] = {}
    for path in sorted((table / "_delta_log").glob("*.json")):
        for line in path.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                adds[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                adds.pop(action["remove"]["path"], None)
    return adds


DV_PROTOCOL = {
    "protocol": {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["deletionVectors"],
        "writerFeatures": ["deletionVectors"],
    }
}


def delete_rows(table: Path, deleted: dict[str, Sequence[int]], inline: bool = False) -> int:
    """Commit deletion vectors: ``deleted`` maps a data file's log path to row indexes.
    Returns the new version. Files keep their bytes; only the log changes."""
    adds = _last_adds(table)
    now = int(time.time() * 1000)
    actions: list[dict[str, Any]] = [DV_PROTOCOL]
    for path, rows in deleted.items():
        add = dict(adds[path])
        actions.append({"remove": {"path": path, "deletionTimestamp": now, "dataChange": True}})
        add["deletionVector"] = inline_dv(rows) if inline else write_dv_file(table, rows)
        add["dataChange"] = True
        actions.append({"add": add})
    return _commit(table, actions)


def column_mapped_table(table: Path, data: pa.Table, files: int = 2) -> None:
    """A Delta table in column mapping mode ``name``: Parquet columns named ``col-<uuid>``,
    the schema's fields carry ``delta.columnMapping.physicalName`` and ``.id``."""
    table.mkdir(parents=True)
    (table / "_delta_log").mkdir()
    physical = {name: f"col-{uuid.uuid4()}" for name in data.column_names}
    fields = []
    for i, field in enumerate(data.schema):
        fields.append(
            {
                "name": field.name,
                "type": {"int64": "long", "string": "string", "double": "double"}[str(field.type)],
                "nullable": True,
                "metadata": {
                    "delta.columnMapping.id": i + 1,
                    "delta.columnMapping.physicalName": physical[field.name],
                },
            }
        )
    schema = {"type": "struct", "fields": fields}
    actions: list[dict[str, Any]] = [
        {
            "protocol": {
                "minReaderVersion": 2,
                "minWriterVersion": 5,
            }
        },
        {
            "metaData": {
                "id": str(uuid.uuid4()),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema),
                "partitionColumns": [],
                "configuration": {
                    "delta.columnMapping.mode": "name",
                    "delta.columnMapping.maxColumnId": str(len(fields)),
                },
                "createdTime": int(time.time() * 1000),
            }
        },
    ]
    renamed = data.rename_columns([physical[n] for n in data.column_names])
    bounds = np.linspace(0, data.num_rows, files + 1).astype(int)
    for k in range(files):
        name = f"part-{k:05d}-{uuid.uuid4()}.snappy.parquet"
        part = renamed.slice(bounds[k], bounds[k + 1] - bounds[k])
        pq.write_table(part, table / name, row_group_size=max(1, part.num_rows // 2))
        actions.append(
            {
                "add": {
                    "path": name,
                    "partitionValues": {},
                    "size": (table / name).stat().st_size,
                    "modificationTime": int(time.time() * 1000),
                    "dataChange": True,
                    "stats": json.dumps({"numRecords": part.num_rows}),
                }
            }
        )
    info = {"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "CREATE TABLE"}}
    lines = [json.dumps(a) for a in [info, *actions]]
    (table / "_delta_log" / f"{0:020d}.json").write_text("\n".join(lines) + "\n")
