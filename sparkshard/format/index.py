"""The dataset index (``index.json``), MDS v2.

``{"version": 2, "shards": [...]}`` where each shard entry has exactly the keys Mosaic's
reader accepts. Our own metadata (logical column types, dataset version, lineage) lives
under one extra top-level key, ``"sparkshard"``, which Mosaic ignores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sparkshard.errors import IndexFormatError
from sparkshard.format.schema import Schema

__all__ = ["INDEX_KEY", "META_KEY", "DatasetIndex", "FileInfo", "ShardRecord", "schema_of"]

INDEX_KEY = "index.json"
META_KEY = "sparkshard"
SHARD_KEYS = frozenset(
    {
        "column_encodings", "column_names", "column_sizes", "compression", "format", "hashes",
        "raw_data", "samples", "size_limit", "version", "zip_data",
    }
)  # fmt: skip


@dataclass(frozen=True)
class FileInfo:
    """One file of a shard: its path relative to the index, size and hex digests."""

    basename: str
    bytes: int
    hashes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"basename": self.basename, "bytes": self.bytes, "hashes": dict(self.hashes)}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> FileInfo:
        if not isinstance(obj, dict) or not {"basename", "bytes"} <= obj.keys():
            raise IndexFormatError(
                f"{where}: expected {{basename, bytes, hashes}}, got {obj!r:.200}"
            )
        basename = obj["basename"]
        if not isinstance(basename, str) or basename.startswith("/") or ".." in basename.split("/"):
            raise IndexFormatError(f"{where}: basename {basename!r} must be a relative path")
        return cls(basename, int(obj["bytes"]), dict(obj.get("hashes") or {}))


@dataclass(frozen=True)
class ShardRecord:
    """One shard entry of index.json."""

    column_names: tuple[str, ...]
    column_encodings: tuple[str, ...]
    column_sizes: tuple[int | None, ...]
    compression: str | None
    hashes: tuple[str, ...]
    raw_data: FileInfo
    samples: int
    size_limit: int | None
    zip_data: FileInfo | None

    @property
    def stored(self) -> FileInfo:
        """The file as it sits in storage (compressed if compression is on)."""
        return self.zip_data or self.raw_data

    def to_json(self) -> dict[str, Any]:
        return {
            "column_encodings": list(self.column_encodings),
            "column_names": list(self.column_names),
            "column_sizes": list(self.column_sizes),
            "compression": self.compression,
            "format": "mds",
            "hashes": list(self.hashes),
            "raw_data": self.raw_data.to_json(),
            "samples": self.samples,
            "size_limit": self.size_limit,
            "version": 2,
            "zip_data": self.zip_data.to_json() if self.zip_data else None,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ShardRecord:
        if not isinstance(obj, dict):
            raise IndexFormatError(f"{where}: expected a shard object, got {type(obj).__name__}")
        missing = SHARD_KEYS - obj.keys()
        if missing:
            raise IndexFormatError(f"{where}: shard entry lacks keys {sorted(missing)}")
        if obj["format"] != "mds" or obj["version"] != 2:
            raise IndexFormatError(
                f"{where}: only MDS version 2 shards are readable, got format "
                f"{obj['format']!r} version {obj['version']!r}"
            )
        names, encodings, sizes = obj["column_names"], obj["column_encodings"], obj["column_sizes"]
        if not (isinstance(names, list) and len(names) == len(encodings) == len(sizes)):
            raise IndexFormatError(f"{where}: column_names/encodings/sizes differ in length")
        return cls(
            column_names=tuple(names),
            column_encodings=tuple(encodings),
            column_sizes=tuple(None if s is None else int(s) for s in sizes),
            compression=obj["compression"],
            hashes=tuple(obj["hashes"] or ()),
            raw_data=FileInfo.from_json(obj["raw_data"], f"{where} raw_data"),
            samples=int(obj["samples"]),
            size_limit=obj["size_limit"],
            zip_data=FileInfo.from_json(obj["zip_data"], f"{where} zip_data")
            if obj["zip_data"]
            else None,
        )


@dataclass(frozen=True)
class DatasetIndex:
    """A parsed index: the shards in sample order plus our metadata block (may be empty)."""

    shards: tuple[ShardRecord, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def dataset_version(self) -> int | None:
        version = self.meta.get("dataset_version")
        return None if version is None else int(version)

    def with_meta(self, **updates: Any) -> DatasetIndex:
        return replace(self, meta={**self.meta, **updates})

    def fingerprint(self) -> str:
        """A digest of what the samples are: shard files, their sizes and hashes, in order."""
        content = [(s.raw_data.to_json(), s.samples, list(s.column_names)) for s in self.shards]
        text = json.dumps(content, sort_keys=True).encode("utf-8")
        return hashlib.sha256(text).hexdigest()[:32]

    def to_json(self) -> bytes:
        obj: dict[str, Any] = {"shards": [s.to_json() for s in self.shards], "version": 2}
        if self.meta:
            obj[META_KEY] = dict(self.meta)
        return json.dumps(obj, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, source: str) -> DatasetIndex:
        """Parse and validate; ``source`` names the file in every error."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IndexFormatError(
                f"{source} is not valid JSON ({exc}); the dataset index is damaged: "
                "rewrite the dataset or restore index.json"
            ) from None
        if (
            not isinstance(obj, dict)
            or obj.get("version") != 2
            or not isinstance(obj.get("shards"), list)
        ):
            raise IndexFormatError(
                f"{source}: expected an MDS v2 index {{'version': 2, 'shards': [...]}}, got "
                f"{str(obj)[:120]}"
            )
        shards = tuple(
            ShardRecord.from_json(entry, f"{source} shard {i}")
            for i, entry in enumerate(obj["shards"])
        )
        meta = obj.get(META_KEY) or {}
        if not isinstance(meta, dict):
            raise IndexFormatError(f"{source}: the '{META_KEY}' block must be an object")
        return cls(shards, meta)


def schema_of(index: DatasetIndex) -> Schema:
    """The logical schema our index block records, or plain MDS columns (Mosaic datasets)."""
    if index.meta.get("columns"):
        return Schema.from_meta(index.meta["columns"])
    if not index.shards:
        return Schema(())
    first = index.shards[0]
    return Schema.from_encodings(dict(zip(first.column_names, first.column_encodings)))
