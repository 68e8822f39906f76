"""The dataset index (``index.json``), MDS v2.

``{"version": 2, "shards": [...]}`` where each shard entry has exactly the keys Mosaic's
reader accepts. Our own metadata (logical column types, dataset version, lineage) lives
under one extra top-level key, ``"sparkshard"``, which Mosaic ignores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sparkshard.errors import IndexFormatError
from sparkshard.format.records import SHARD_KEYS, FileInfo, ShardRecord
from sparkshard.format.schema import Schema
from sparkshard.format.shard_table import ShardTable

__all__ = [
    "INDEX_KEY",
    "META_KEY",
    "SHARD_KEYS",
    "DatasetIndex",
    "FileInfo",
    "ShardRecord",
    "ShardTable",
    "schema_of",
]

INDEX_KEY = "index.json"
META_KEY = "sparkshard"


@dataclass(frozen=True)
class DatasetIndex:
    """A parsed index: the shards in sample order plus our metadata block (may be empty).

    ``shards`` is always a :class:`ShardTable` (columns; a record is built per access),
    whatever sequence of records it was given.
    """

    shards: Sequence[ShardRecord]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.shards, ShardTable):
            object.__setattr__(self, "shards", ShardTable.from_records(self.shards))

    @property
    def table(self) -> ShardTable:
        """The shards as columns (what start-up and every O(shards) computation read)."""
        assert isinstance(self.shards, ShardTable)
        return self.shards

    @property
    def num_samples(self) -> int:
        return self.table.num_samples

    @property
    def dataset_version(self) -> int | None:
        version = self.meta.get("dataset_version")
        return None if version is None else int(version)

    def with_meta(self, **updates: Any) -> DatasetIndex:
        return replace(self, meta={**self.meta, **updates})

    def fingerprint(self) -> str:
        """A digest of what the samples are: shard files, their sizes and hashes, in order."""
        return self.table.fingerprint()

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
    if not len(index.shards):
        return Schema(())
    first = index.table.layouts[int(index.table.layout[0])]
    return Schema.from_encodings(dict(zip(first.column_names, first.column_encodings)))
