"""One shard read straight from a :class:`Store`: fetch, check, decompress, split, decode.

What the command-line tools use on any backend (the loader has its own memory-mapped
reader for training). Every failure names the file and what was expected:
``FileNotFoundError`` for a missing file, :class:`CorruptShardError` for everything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkshard.errors import CorruptShardError
from sparkshard.format.compression import parse_compression
from sparkshard.format.encodings import get_encoding
from sparkshard.format.hashing import hexdigest
from sparkshard.format.index import DatasetIndex, FileInfo, ShardRecord
from sparkshard.format.schema import Schema
from sparkshard.format.shard import read_offsets
from sparkshard.storage import Store

__all__ = ["check_file", "check_samples", "decode_sample", "fetch_raw", "schema_of"]


def schema_of(index: DatasetIndex) -> Schema:
    """The logical schema our index block records, or plain MDS columns (Mosaic datasets)."""
    if index.meta.get("columns"):
        return Schema.from_meta(index.meta["columns"])
    if not index.shards:
        return Schema(())
    first = index.shards[0]
    return Schema.from_encodings(dict(zip(first.column_names, first.column_encodings)))


def check_file(data: bytes, info: FileInfo, where: str) -> None:
    """``data`` has the size and every hash the index records for it."""
    if len(data) != info.bytes:
        raise CorruptShardError(
            f"{where} has {len(data)} bytes where the index says {info.bytes}: it is "
            "truncated or was replaced"
        )
    for algo, expected in sorted(info.hashes.items()):
        actual = hexdigest(algo, data)
        if actual != expected:
            raise CorruptShardError(
                f"{where} fails its {algo} check (index {expected}, file {actual}): it is corrupt"
            )


def fetch_raw(store: Store, record: ShardRecord, *, verify: bool = True) -> bytes:
    """The shard's raw bytes: the stored file checked (if ``verify``) and decompressed."""
    stored = record.stored
    data = store.read(stored.basename)
    if verify:
        check_file(data, stored, f"shard file {stored.basename}")
    if record.zip_data is None:
        return data
    compression = parse_compression(record.compression)
    if compression is None:
        raise CorruptShardError(
            f"shard {stored.basename}: the index records compressed data but no compression"
        )
    try:
        raw = compression.decompress(data)
    except Exception as exc:
        raise CorruptShardError(
            f"shard file {stored.basename} does not decompress as {record.compression} ({exc})"
        ) from None
    if verify:
        check_file(raw, record.raw_data, f"decompressed shard {stored.basename}")
    return raw


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
