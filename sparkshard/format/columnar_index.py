"""The columnar index file: an index's shards as arrays, loaded in milliseconds.

``index.json`` stays exactly what Mosaic reads. Beside each index file ``X.json`` we keep
``X.columnar``, the same content in a form that loads without parsing 100,000 JSON objects
and builds no per-shard Python object (see :class:`~sparkshard.format.shard_table.ShardTable`).
Layout (little-endian)::

    MAGIC (8 bytes) | uint64 H | header: H bytes of JSON | body: one zstd frame | digest

- the header holds the format version, the number of shards, the metadata block, the
  distinct shard layouts, the fingerprint, the hash columns, where each array lies in the
  decompressed body (name, dtype, length, offset), and ``source``: the xxh3_128 digest and
  length of the exact ``.json`` bytes it was derived from;
- the body holds the arrays back to back, each at an 8-byte aligned offset;
- the last 16 bytes are the xxh3_128 digest of everything before them.

A file whose digest fails, or that is malformed, raises :class:`IndexFormatError`; one
whose ``source`` is not the ``.json`` at hand is stale. Either way readers rebuild it from
the JSON (:mod:`sparkshard.dataset.index_files`) and never trust it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash
import zstandard

from sparkshard.errors import IndexFormatError
from sparkshard.format.index import DatasetIndex
from sparkshard.format.shard_table import PARTS, HashColumn, Layout, ShardTable, Strings

__all__ = [
    "FORMAT",
    "MAGIC",
    "SUFFIX",
    "Columnar",
    "decode_columnar",
    "encode_columnar",
    "source_digest",
]

MAGIC = b"SSCOLIDX"
FORMAT = 1
SUFFIX = ".columnar"
_LEVEL = 3  # zstd level of the body
_TRAILER = 16  # bytes of the xxh3_128 digest at the end


def source_digest(data: bytes | memoryview) -> str:
    """The digest a columnar file records of the JSON it was derived from."""
    return f"xxh3_128:{xxhash.xxh3_128_hexdigest(data)}"


@dataclass(frozen=True)
class Columnar:
    """A decoded columnar file: the index and what JSON it was derived from."""

    index: DatasetIndex
    source_digest: str
    source_bytes: int

    def derived_from(self, digest: str, size: int) -> bool:
        return (self.source_digest, self.source_bytes) == (digest, size)


def _arrays(table: ShardTable) -> dict[str, np.ndarray]:
    arrays = {
        "samples": table.samples.astype("<i8"),
        "raw_bytes": table.raw_bytes.astype("<i8"),
        "zip_bytes": table.zip_bytes.astype("<i8"),
        "layout": table.layout.astype("<u4"),
    }
    for part in PARTS:
        names = table.raw_names if part == "raw" else table.zip_names
        arrays[f"{part}_names.offsets"] = names.offsets.astype("<i8")
        arrays[f"{part}_names.data"] = names.data.astype(np.uint8)
    for k, h in enumerate(table.hashes):
        arrays[f"hash{k}.present"] = h.present.astype(np.bool_)
        arrays[f"hash{k}.offsets"] = h.values.offsets.astype("<i8")
        arrays[f"hash{k}.data"] = h.values.data.astype(np.uint8)
    return arrays


def encode_columnar(index: DatasetIndex, source: bytes | memoryview) -> bytes:
    """The columnar file of ``index``, which was parsed from (or serialised as) ``source``."""
    table = index.table
    placed, chunks, offset = [], [], 0
    for name, array in _arrays(table).items():
        pad = -offset % 8
        chunks.append(b"\0" * pad)
        offset += pad
        placed.append([name, array.dtype.str, len(array), offset])
        chunks.append(array.tobytes())
        offset += array.nbytes
    header = {
        "format": FORMAT,
        "shards": len(table),
        "source": {"digest": source_digest(source), "bytes": len(source)},
        "fingerprint": table.fingerprint(),
        "meta": dict(index.meta),
        "layouts": [lay.to_json() for lay in table.layouts],
        "hashes": [[h.part, h.algo] for h in table.hashes],
        "arrays": placed,
        "body_bytes": offset,
    }
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    body = zstandard.ZstdCompressor(level=_LEVEL).compress(b"".join(chunks))
    data = b"".join([MAGIC, struct.pack("<Q", len(head)), head, body])
    return data + xxhash.xxh3_128_digest(data)


def decode_columnar(data: bytes | memoryview, where: str) -> Columnar:
    """Check and decode a columnar file; :class:`IndexFormatError` naming ``where`` if it is
    damaged, truncated or of a newer format."""
    view = memoryview(data)
    if len(view) < len(MAGIC) + 8 + _TRAILER or view[: len(MAGIC)] != MAGIC:
        raise IndexFormatError(f"{where} is not a sparkshard columnar index (bad magic or size)")
    if xxhash.xxh3_128_digest(view[:-_TRAILER]) != view[-_TRAILER:]:
        raise IndexFormatError(f"{where} fails its xxh3_128 check: the file is damaged")
    (size,) = struct.unpack_from("<Q", view, len(MAGIC))
    start = len(MAGIC) + 8
    try:
        header = json.loads(bytes(view[start : start + size]))
        if header.get("format") != FORMAT:
            raise IndexFormatError(
                f"{where} has columnar format {header.get('format')!r}; this sparkshard reads "
                f"format {FORMAT} (it is rebuilt from the JSON index)"
            )
        body = zstandard.ZstdDecompressor().decompress(view[start + size : -_TRAILER])
        table = _table(header, body)
        index = DatasetIndex(table, header["meta"])
        source = header["source"]
        return Columnar(index, str(source["digest"]), int(source["bytes"]))
    except IndexFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, zstandard.ZstdError) as exc:
        raise IndexFormatError(f"{where} is malformed ({exc}): the file is damaged") from None


def _table(header: dict[str, Any], body: bytes) -> ShardTable:
    if len(body) != header["body_bytes"]:
        raise ValueError(f"body of {len(body)} bytes, expected {header['body_bytes']}")
    arrays = {
        name: np.frombuffer(body, np.dtype(dtype), count=length, offset=offset)
        for name, dtype, length, offset in header["arrays"]
    }
    n = int(header["shards"])

    def strings(prefix: str) -> Strings:
        offsets, data = arrays[f"{prefix}.offsets"], arrays[f"{prefix}.data"]
        if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(data):
            raise ValueError(f"{prefix} offsets do not cut its {len(data)} bytes in {n}")
        return Strings(offsets, data)

    layouts = [Layout.from_json(lay) for lay in header["layouts"]]
    layout = arrays["layout"]
    if len(layout) and int(layout.max()) >= len(layouts):
        raise ValueError("a shard's layout code is out of range")
    for name in ("samples", "raw_bytes", "zip_bytes", "layout"):
        if len(arrays[name]) != n:
            raise ValueError(f"{name} has {len(arrays[name])} entries, expected {n}")
    hashes = [
        HashColumn(part, algo, arrays[f"hash{k}.present"], strings(f"hash{k}"))
        for k, (part, algo) in enumerate(header["hashes"])
    ]
    return ShardTable(
        samples=arrays["samples"],
        raw_bytes=arrays["raw_bytes"],
        zip_bytes=arrays["zip_bytes"],
        raw_names=strings("raw_names"),
        zip_names=strings("zip_names"),
        layout=layout,
        layouts=layouts,
        hashes=hashes,
        fingerprint=str(header["fingerprint"]),
    )
