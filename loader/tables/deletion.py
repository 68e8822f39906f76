"""Delta deletion vectors: which rows of a data file a version deleted without rewriting it.

A deletion vector (Delta protocol, reader feature ``deletionVectors``) is a 64-bit
RoaringBitmap of row indexes, named by the add action's ``deletionVector`` descriptor:

- ``storageType`` ``"i"``: inline, ``pathOrInlineDv`` is the Z85 text of the bitmap;
- ``"u"``: a file beside the table, ``pathOrInlineDv`` = random prefix + Z85 of its UUID,
  named ``<prefix>/deletion_vector_<uuid>.bin``; ``"p"``: an absolute path;
- in a file, at ``offset``: a big-endian ``uint32`` size, the bitmap (``sizeInBytes``
  bytes), a big-endian CRC-32 of the bitmap.

The bitmap is the magic ``1681511377`` (little-endian ``int32``), an ``int64`` count of
32-bit bitmaps, then per bitmap its ``uint32`` high key and the portable 32-bit Roaring
serialization (array, bitmap and run containers). Pure code: bytes in, numpy rows out.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparkshard.errors import CorruptShardError

__all__ = ["DV_MAGIC", "Z85", "deleted_rows", "dv_file_name", "parse_bitmap", "z85_decode"]

DV_MAGIC = 1681511377
Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE = {c: i for i, c in enumerate(Z85)}
_COOKIE_RUNS, _COOKIE_NO_RUNS = 12347, 12346
_NO_OFFSET_THRESHOLD = 4  # run-container bitmaps with fewer containers carry no offsets
_ARRAY_MAX = 4096  # containers with more values are bitmaps


def z85_decode(text: str) -> bytes:
    """ZeroMQ's Z85 (what Delta writes): 5 characters per 4 bytes, big-endian."""
    if len(text) % 5:
        raise ValueError(f"Z85 text must have a multiple of 5 characters, got {len(text)}")
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for c in text[i : i + 5]:
            if c not in _Z85_VALUE:
                raise ValueError(f"{c!r} is not a Z85 character")
            value = value * 85 + _Z85_VALUE[c]
        out += value.to_bytes(4, "big")
    return bytes(out)


def dv_file_name(path_or_inline: str) -> str:
    """The table-relative file of a ``"u"`` deletion vector."""
    prefix, encoded = path_or_inline[:-20], path_or_inline[-20:]
    name = f"deletion_vector_{uuid.UUID(bytes=z85_decode(encoded))}.bin"
    return f"{prefix}/{name}" if prefix else name


def deleted_rows(descriptor: Mapping[str, Any], read_file: Any, where: str) -> np.ndarray:
    """Sorted deleted row indexes (``int64``) of one descriptor. ``read_file(path, offset,
    length)`` reads a table-relative (``"u"``) or absolute (``"p"``) file's bytes."""
    kind = descriptor.get("storageType")
    size = int(descriptor["sizeInBytes"])
    if kind == "i":
        data = z85_decode(str(descriptor["pathOrInlineDv"]))[:size]
    elif kind in ("u", "p"):
        path = str(descriptor["pathOrInlineDv"])
        path = dv_file_name(path) if kind == "u" else path
        offset = int(descriptor.get("offset") or 1)
        framed = read_file(path, offset, size + 8)
        data = _unframe(framed, size, f"{where} (deletion vector {path} at {offset})")
    else:
        raise CorruptShardError(f"{where}: unknown deletion vector storageType {kind!r}")
    rows = parse_bitmap(data, where)
    expected = descriptor.get("cardinality")
    if expected is not None and int(expected) != len(rows):
        raise CorruptShardError(
            f"{where}: deletion vector holds {len(rows)} rows, its descriptor says {expected}"
        )
    return rows


def _unframe(framed: bytes, size: int, where: str) -> bytes:
    if len(framed) < size + 8:
        raise CorruptShardError(f"{where}: file ends after {len(framed)} of {size + 8} bytes")
    (stored,) = struct.unpack(">I", framed[:4])
    if stored != size:
        raise CorruptShardError(f"{where}: size field {stored}, descriptor says {size}")
    data = framed[4 : 4 + size]
    (crc,) = struct.unpack(">I", framed[4 + size : 8 + size])
    if zlib.crc32(data) != crc:
        raise CorruptShardError(f"{where}: CRC-32 mismatch (the file is damaged)")
    return data


def parse_bitmap(data: bytes, where: str = "deletion vector") -> np.ndarray:
    """The rows of a serialized Delta deletion vector (magic + 64-bit Roaring bitmap)."""
    try:
        magic, count = struct.unpack_from("<iq", data, 0)
        if magic != DV_MAGIC:
            raise CorruptShardError(f"{where}: magic {magic}, expected {DV_MAGIC}")
        pos, parts = 12, []
        for _ in range(count):
            (high,) = struct.unpack_from("<I", data, pos)
            low, pos = _roaring32(data, pos + 4)
            parts.append((np.int64(high) << 32) | low.astype(np.int64))
    except struct.error as exc:
        raise CorruptShardError(f"{where}: truncated bitmap ({exc})") from None
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _roaring32(data: bytes, pos: int) -> tuple[np.ndarray, int]:
    """(values, position after) of one portable 32-bit RoaringBitmap at ``pos``."""
    (cookie,) = struct.unpack_from("<I", data, pos)
    pos += 4
    runs: np.ndarray
    if cookie & 0xFFFF == _COOKIE_RUNS:
        size = (cookie >> 16) + 1
        flags = np.frombuffer(data, np.uint8, (size + 7) // 8, pos)
        runs = np.unpackbits(flags, bitorder="little")[:size].astype(bool)
        pos += (size + 7) // 8
    elif cookie == _COOKIE_NO_RUNS:
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        runs = np.zeros(size, bool)
    else:
        raise CorruptShardError(f"unknown RoaringBitmap cookie {cookie}")
    # (containers, 2): key, cardinality - 1
    header = np.frombuffer(data, "<u2", 2 * size, pos).reshape(size, 2).astype(np.int64)
    pos += 4 * size
    if not runs.any() or size >= _NO_OFFSET_THRESHOLD:
        pos += 4 * size  # offsets: the containers follow in order anyway
    values = []
    for (key, card_minus_one), run in zip(header.tolist(), runs.tolist()):
        low, pos = _container(data, pos, card_minus_one + 1, run)
        values.append((key << 16) | low)
    merged = np.concatenate(values) if values else np.zeros(0, np.int64)
    return merged.astype(np.uint32), pos


def _container(data: bytes, pos: int, cardinality: int, run: bool) -> tuple[np.ndarray, int]:
    if run:
        (n,) = struct.unpack_from("<H", data, pos)
        pairs = np.frombuffer(data, "<u2", 2 * n, pos + 2).reshape(n, 2).astype(np.int64)
        values = [np.arange(s, s + length + 1) for s, length in pairs.tolist()]
        out = np.concatenate(values) if values else np.zeros(0, np.int64)
        return out, pos + 2 + 4 * n
    if cardinality > _ARRAY_MAX:
        words = np.frombuffer(data, "<u8", 1024, pos)
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")
        return np.flatnonzero(bits).astype(np.int64), pos + 8192
    out = np.frombuffer(data, "<u2", cardinality, pos).astype(np.int64)
    return out, pos + 2 * cardinality
