"""One shard file of a dataset: fetched, verified, decompressed. The one path for all three.

The tools read shards straight from a :class:`Store` (:func:`fetch_raw`); the loader's
reader decompresses a local shard and the cache downloads a remote one, and both check and
decompress through the same functions here:

- :func:`file_problem` / :func:`check_file`: the size and the hash(es) the index records;
- :func:`decompress` / :func:`decompress_into`: the raw bytes, checked against the raw size.

Every failure names the file and what was expected: ``FileNotFoundError`` for a missing
file, :class:`CorruptShardError` for everything else.
"""

from __future__ import annotations

import mmap
import os
from typing import Any, BinaryIO

import zstandard

from sparkshard.errors import CorruptShardError
from sparkshard.format.compression import Compression, parse_compression
from sparkshard.format.hashing import file_hexdigest, hasher, hexdigest
from sparkshard.format.index import FileInfo, ShardRecord
from sparkshard.storage import Store

__all__ = [
    "PREFERRED_HASHES",
    "check_file",
    "check_local_file",
    "decompress",
    "decompress_into",
    "fetch_raw",
    "file_problem",
    "raw_shard",
]

# Cheapest first: the hash a file is checked against when the index records several.
PREFERRED_HASHES = ("xxh3_64", "xxh64", "xxh128", "xxh3_128", "xxh32")
_CHUNK = 1 << 20  # bytes per write when streaming decompressed data into a file


def file_problem(
    data: bytes | memoryview | mmap.mmap,
    info: FileInfo,
    *,
    verify: bool = True,
    every_hash: bool = False,
) -> str | None:
    """What is wrong with ``data`` as the file ``info`` describes, or None.

    The size always; with ``verify`` the cheapest recorded hash (``every_hash``: all of them).
    """
    problem = _size_problem(len(data), info)
    if problem is not None or not verify or not info.hashes:
        return problem
    algos = sorted(info.hashes) if every_hash else [_cheapest(info)]
    for algo in algos:
        actual = hexdigest(algo, data)
        if actual != info.hashes[algo]:
            return (
                f"fails its {algo} check (index {info.hashes[algo]}, file {actual}): it is corrupt"
            )
    return None


def _cheapest(info: FileInfo) -> str:
    return next((a for a in PREFERRED_HASHES if a in info.hashes), sorted(info.hashes)[0])


def _size_problem(size: int, info: FileInfo) -> str | None:
    if size != info.bytes:
        return f"has {size} bytes where the index says {info.bytes} (truncated or replaced)"
    return None


def check_file(
    data: bytes | memoryview,
    info: FileInfo,
    where: str,
    *,
    verify: bool = True,
    every_hash: bool = False,
) -> None:
    """Raise :class:`CorruptShardError` naming ``where`` if ``data`` is not the file ``info``
    (its size always; its hash with ``verify``)."""
    problem = file_problem(data, info, verify=verify, every_hash=every_hash)
    if problem is not None:
        raise CorruptShardError(f"{where} {problem}")


def _compression(record: ShardRecord, where: str) -> Compression:
    compression = parse_compression(record.compression)
    if compression is None:
        raise CorruptShardError(f"{where}: the index records compressed data but no compression")
    return compression


def decompress(record: ShardRecord, data: bytes | memoryview, where: str) -> bytes:
    """The raw shard from its stored (compressed) bytes, checked against the raw size."""
    compression = _compression(record, where)
    try:
        raw = compression.decompress(data)
    except Exception as exc:
        raise CorruptShardError(
            f"{where} does not decompress as {record.compression} ({exc}): the file is damaged"
        ) from None
    if len(raw) != record.raw_data.bytes:
        raise CorruptShardError(
            f"{where} decompresses to {len(raw)} bytes where the index says "
            f"{record.raw_data.bytes}: the file is damaged"
        )
    return raw


class _HashingWriter:
    """A binary file wrapper that hashes what goes through it (the decompressed shard,
    checked as it is written instead of read back from disk)."""

    def __init__(self, out: BinaryIO, algo: str) -> None:
        self.out, self.algo, self.state = out, algo, hasher(algo)

    def write(self, data: Any) -> int:
        self.state.update(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.out.tell()

    def flush(self) -> None:
        self.out.flush()


def decompress_into(
    record: ShardRecord,
    data: bytes | memoryview,
    out: BinaryIO,
    where: str,
    *,
    verify: bool = False,
) -> None:
    """Write the raw shard to ``out`` (zstd streamed through a small buffer, no shard-sized
    copy); raise :class:`CorruptShardError` if it does not decompress to the raw size or,
    with ``verify``, to the raw hash (computed on the way out: no second pass)."""
    compression = _compression(record, where)
    start = out.tell()
    info = record.raw_data
    sink_to: Any = _HashingWriter(out, _cheapest(info)) if verify and info.hashes else out
    try:
        if compression.family == "zstd":
            decompressor = zstandard.ZstdDecompressor()
            with decompressor.stream_writer(sink_to, write_size=_CHUNK, closefd=False) as sink:
                sink.write(data)
        else:
            sink_to.write(compression.decompress(data))
    except OSError:
        raise  # the file being written failed (a full disk): not a damaged shard
    except Exception as exc:
        raise CorruptShardError(
            f"{where} does not decompress as {record.compression} ({exc}): the file is damaged"
        ) from None
    size = out.tell() - start
    if size != record.raw_data.bytes:
        raise CorruptShardError(
            f"{where} decompresses to {size} bytes where the index says "
            f"{record.raw_data.bytes}: the file is damaged"
        )
    if isinstance(sink_to, _HashingWriter):
        actual, expected = sink_to.state.hexdigest(), info.hashes[sink_to.algo]
        if actual != expected:
            raise CorruptShardError(
                f"{where} decompresses to data that fails its {sink_to.algo} check (index "
                f"{expected}, data {actual}): the file is damaged"
            )


def raw_shard(
    record: ShardRecord,
    stored: bytes | memoryview,
    where: str,
    *,
    verify: bool = True,
    every_hash: bool = False,
) -> bytes | memoryview:
    """The raw shard from the bytes of its stored file: the file checked (its size; its hash
    with ``verify``), decompressed if compressed, and the result checked the same way."""
    check_file(stored, record.stored, f"shard file {where}", verify=verify, every_hash=every_hash)
    if record.zip_data is None:
        return stored
    raw = decompress(record, stored, f"shard file {where}")
    check_file(
        raw, record.raw_data, f"decompressed shard {where}", verify=verify, every_hash=every_hash
    )
    return raw


def fetch_raw(store: Store, record: ShardRecord, *, verify: bool = True) -> bytes:
    """The shard's raw bytes read from ``store``, every recorded hash checked if ``verify``."""
    data = store.read(record.stored.basename)
    return bytes(raw_shard(record, data, record.stored.basename, verify=verify, every_hash=True))


def check_local_file(path: str | os.PathLike[str], info: FileInfo, *, verify: bool = True) -> None:
    """Check a shard file on local disk like :func:`check_file` (read in chunks, no copy)."""
    problem = _size_problem(os.stat(path).st_size, info)
    if problem is None and verify and info.hashes:
        algo = _cheapest(info)
        actual = file_hexdigest(algo, path)
        if actual != info.hashes[algo]:
            problem = (
                f"fails its {algo} check (index {info.hashes[algo]}, file {actual}): it is corrupt"
            )
    if problem is not None:
        raise CorruptShardError(
            f"shard file {os.fspath(path)} {problem}; delete it so it is fetched or written again"
        )
