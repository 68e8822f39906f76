"""One shard entry of ``index.json`` as Python objects: :class:`ShardRecord` and its files.

An index holds its entries as columns (:class:`~sparkshard.format.shard_table.ShardTable`);
a record is built from them only when one shard is opened or inspected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkshard.errors import IndexFormatError

__all__ = ["SHARD_KEYS", "FileInfo", "ShardRecord"]

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
        hashes = obj.get("hashes") or {}
        if not isinstance(hashes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()
        ):
            raise IndexFormatError(
                f"{where}: hashes must map algorithm names to hex digests, got {hashes!r:.200}"
            )
        return cls(basename, int(obj["bytes"]), dict(hashes))


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
