"""How shards are written: compression, hashes and size limit, validated once.

:class:`WriterSettings` is the one place these options are checked. ``ShardWriter``,
``dataframe_to_shards`` (and through it ``dataframe_to_mds``, ``cache`` and
``delta_to_shards``) all build one with :meth:`WriterSettings.of` before they write
anything, and the index records :meth:`WriterSettings.to_json` under the writer block.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sparkshard.format.compression import Compression, parse_compression
from sparkshard.format.hashing import validate_hashes
from sparkshard.sizes import parse_size

__all__ = ["MAX_SHARD_BYTES", "WriterSettings"]

MAX_SHARD_BYTES = 1 << 32  # MDS offsets are uint32: a shard is under 4 GiB


@dataclass(frozen=True)
class WriterSettings:
    """Validated writer options: ``compression`` (None: raw), sorted ``hashes``, ``size_limit``."""

    compression: Compression | None = None
    hashes: tuple[str, ...] = ("xxh64",)
    size_limit: int = 64 << 20

    def __post_init__(self) -> None:
        if not 0 < self.size_limit < MAX_SHARD_BYTES:
            raise ValueError(
                f"size_limit must be under 4 GiB (an MDS limit), got {self.size_limit} bytes"
            )

    @classmethod
    def of(
        cls,
        compression: str | None = "zstd",
        hashes: Iterable[str] | None = ("xxh64",),
        size_limit: int | str = "64MB",
    ) -> WriterSettings:
        """Parse the options as users give them (``"zstd:7"``, ``["xxh64"]``, ``"64MB"``)."""
        limit = parse_size(size_limit, what="size_limit")
        if limit >= MAX_SHARD_BYTES:
            raise ValueError(f"size_limit must be under 4 GiB (an MDS limit), got {size_limit!r}")
        return cls(parse_compression(compression), tuple(validate_hashes(hashes)), limit)

    @property
    def compression_name(self) -> str | None:
        return self.compression.name if self.compression else None

    def to_json(self) -> dict[str, Any]:
        """What the index's writer block records."""
        return {
            "compression": self.compression_name,
            "hashes": list(self.hashes),
            "size_limit": self.size_limit,
        }
