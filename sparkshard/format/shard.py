"""The MDS shard file: ``uint32 N | uint32 offsets[N+1] | config JSON | samples``.

Offsets are absolute byte positions (``offsets[N]`` is the file length), so a shard is
under 4 GiB. A sample is one ``uint32`` length per variable-size column, in column
order, then every column's payload in column order.

Both directions live here: :func:`build_shard` lays a shard out from per-column payloads;
:func:`read_offsets`, :func:`check_samples` and :func:`decode_sample` take one apart (the
loader's memory-mapped batch decoding is in :mod:`loader.read.mapped`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkshard.errors import CorruptShardError
from sparkshard.format.arrow_encode import fixed_payloads
from sparkshard.format.encodings import get_encoding
from sparkshard.format.index import ShardRecord

__all__ = [
    "build_shard",
    "check_samples",
    "decode_sample",
    "payload_lengths",
    "read_offsets",
    "shard_config",
    "shard_overhead",
]

_MAX_SHARD = (1 << 32) - 1
_EMPTY = pa.scalar(b"", pa.large_binary())


def shard_config(
    names: Sequence[str],
    encodings: Sequence[str],
    sizes: Sequence[int | None],
    compression: str | None,
    hashes: Sequence[str],
    size_limit: int | None,
) -> bytes:
    """The JSON that every shard file carries after its offsets (what MDSWriter writes)."""
    config: dict[str, Any] = {
        "column_encodings": list(encodings),
        "column_names": list(names),
        "column_sizes": list(sizes),
        "compression": compression,
        "format": "mds",
        "hashes": list(hashes),
        "size_limit": size_limit,
        "version": 2,
    }
    return json.dumps(config, sort_keys=True).encode("utf-8")


def shard_overhead(config: bytes) -> int:
    """Bytes a shard spends besides its samples' own bytes (+4 per sample for its offset)."""
    return 8 + len(config)


def payload_lengths(payloads: pa.Array) -> np.ndarray:
    """Byte length of every payload of a ``large_binary`` array, as int64."""
    offsets = np.frombuffer(
        payloads.buffers()[1], np.int64, count=len(payloads) + 1, offset=payloads.offset * 8
    )
    return np.diff(offsets)


def build_shard(
    columns: Sequence[pa.Array], sizes: Sequence[int | None], config: bytes
) -> memoryview:
    """Lay out one shard from per-column payload arrays (one payload per sample each); the
    bytes of the shard file, laid out once (no copy on the way out)."""
    n = len(columns[0]) if columns else 0
    variable = [payload_lengths(c) for c, size in zip(columns, sizes) if size is None]
    if n and all((lengths == lengths[0]).all() for lengths in variable):
        return _build_regular(columns, [int(v[0]) for v in variable], config)
    parts = list(columns)
    if variable:
        # (samples, variable columns) little-endian uint32 lengths, as each sample's prefix.
        prefix = np.stack(variable, axis=1).astype("<u4")
        parts.insert(0, fixed_payloads(prefix.view(np.uint8)))
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, _EMPTY)
    if n == 0:
        ends = np.zeros(1, np.int64)
        body = memoryview(b"")
    else:
        ends = np.frombuffer(joined.buffers()[1], np.int64, count=n + 1, offset=joined.offset * 8)
        body = memoryview(joined.buffers()[2])[int(ends[0]) : int(ends[-1])]
    head = 4 + 4 * (n + 1) + len(config)
    if head + len(body) > _MAX_SHARD:
        raise ValueError(
            f"a shard of {n} samples would be {head + len(body)} bytes, over the 4 GiB MDS "
            "limit: lower size_limit"
        )
    offsets = (ends - ends[0] + head).astype("<u4")
    return memoryview(b"".join([np.array([n], "<u4").tobytes(), offsets.tobytes(), config, body]))


def _build_regular(
    columns: Sequence[pa.Array], var_lengths: list[int], config: bytes
) -> memoryview:
    """Every sample has the same layout: fill a (samples, sample bytes) matrix by slices."""
    n = len(columns[0])
    widths = [len(var_lengths) * 4] + [
        int(payload_lengths(c.slice(0, 1))[0]) for c in columns
    ]  # prefix, then each column
    width = sum(widths)
    head = 4 + 4 * (n + 1) + len(config)
    if head + n * width > _MAX_SHARD:
        raise ValueError(f"a shard of {n} samples would pass the 4 GiB MDS limit: lower size_limit")
    out = np.empty(head + n * width, np.uint8)
    out[:4] = np.frombuffer(np.array([n], "<u4").tobytes(), np.uint8)
    offsets = head + width * np.arange(n + 1, dtype=np.int64)
    out[4 : 4 * (n + 2)] = offsets.astype("<u4").view(np.uint8)
    out[4 * (n + 2) : head] = np.frombuffer(config, np.uint8)
    # (samples, bytes per sample) view of the sample region.
    body = out[head:].reshape(n, width)
    if var_lengths:
        body[:, : widths[0]] = np.asarray(var_lengths, "<u4").view(np.uint8)
    position = widths[0]
    for column, size in zip(columns, widths[1:]):
        start = column.offset
        value_offsets = np.frombuffer(column.buffers()[1], np.int64, count=2, offset=start * 8)
        values = np.frombuffer(column.buffers()[2], np.uint8)
        first = int(value_offsets[0])
        # (samples, column bytes) view of this column's contiguous payloads.
        body[:, position : position + size] = values[first : first + n * size].reshape(n, size)
        position += size
    return out.data


def read_offsets(data: memoryview | bytes, expected_samples: int, name: str) -> np.ndarray:
    """The sample offsets of a shard, checked against its declared size and sample count."""
    size = len(data)
    if size < 8:
        raise CorruptShardError(f"shard {name} is {size} bytes, too short for an MDS header")
    (count,) = np.frombuffer(data, "<u4", count=1)
    if count != expected_samples or size < 4 * (count + 2):
        raise CorruptShardError(
            f"shard {name} says it holds {count} samples where the index says "
            f"{expected_samples}: the file is damaged or belongs to another dataset"
        )
    offsets = np.frombuffer(data, "<u4", count=int(count) + 1, offset=4)
    if int(offsets[-1]) != size:
        raise CorruptShardError(
            f"shard {name} is truncated or malformed: its offsets end at {int(offsets[-1])} "
            f"but the file has {size} bytes; delete it so it is fetched or written again"
        )
    steps = np.diff(offsets.astype(np.int64))
    if count and (int(offsets[0]) < 4 * (count + 2) or (steps < 0).any()):
        bad = int(np.flatnonzero(steps < 0)[0]) if (steps < 0).any() else 0
        raise CorruptShardError(
            f"shard {name} is malformed: the offset of sample {bad} points outside its samples "
            "(the offsets must rise from the end of the header); the file is damaged: delete "
            "it so it is fetched or written again"
        )
    return offsets


def check_samples(raw: bytes, record: ShardRecord, name: str) -> np.ndarray:
    """Check the header and that every sample's column lengths add up; return the offsets."""
    offsets = read_offsets(memoryview(raw), record.samples, name).astype(np.int64)
    sizes = list(record.column_sizes)
    nvar = sum(1 for s in sizes if s is None)
    fixed = sum(s for s in sizes if s is not None)
    lengths = np.diff(offsets)
    if len(lengths) and lengths.min() < 4 * nvar:
        raise CorruptShardError(f"shard {name}: a sample is shorter than its length prefix")
    expected = np.full(len(lengths), 4 * nvar + fixed, np.int64)
    if nvar and len(lengths):
        buf = np.frombuffer(raw, np.uint8)
        # (samples, 4 * variable columns) bytes of every sample's length prefix.
        prefix = buf[offsets[:-1, None] + np.arange(4 * nvar)]
        expected += prefix.view("<u4").reshape(len(lengths), nvar).astype(np.int64).sum(axis=1)
    bad = np.flatnonzero(expected != lengths)
    if len(bad):
        j = int(bad[0])
        raise CorruptShardError(
            f"shard {name}: sample {j} spans {int(lengths[j])} bytes but its columns need "
            f"{int(expected[j])} ({len(bad)} sample(s) malformed)"
        )
    return offsets


def decode_sample(
    raw: bytes, offsets: np.ndarray, record: ShardRecord, j: int, *, unsafe: bool = False
) -> dict[str, Any]:
    """Stored (not yet restored) values of sample ``j``; ``pkl`` stays bytes unless ``unsafe``."""
    data = memoryview(raw)[int(offsets[j]) : int(offsets[j + 1])]
    nvar = sum(1 for s in record.column_sizes if s is None)
    lengths = np.frombuffer(data, "<u4", count=nvar).tolist()
    pos, var, out = 4 * nvar, 0, {}
    for name, encoding, fixed in zip(
        record.column_names, record.column_encodings, record.column_sizes
    ):
        size = fixed
        if size is None:
            size, var = lengths[var], var + 1
        value = data[pos : pos + size]
        pos += size
        if encoding == "pkl" and not unsafe:
            out[name] = bytes(value)
        else:
            out[name] = get_encoding(encoding).decode(value)
    return out
