"""Whole-file shard compression, named as MDS names it (``zstd``, ``zstd:7``, ``br:11``...).

zstd is built in; br, bz2, gz and snappy are accepted so that existing Mosaic datasets
can be read (brotli and snappy need ``pip install 'sparkshard[compression]'``). A zstd
frame always records its content size: Mosaic's decompressor refuses frames without it.
"""

from __future__ import annotations

import bz2
import gzip
from dataclasses import dataclass
from typing import Any

import zstandard

from sparkshard.errors import require

__all__ = ["Compression", "parse_compression"]

# family -> (default level, allowed levels); levels as Mosaic accepts them.
_FAMILIES: dict[str, tuple[int | None, range | None]] = {
    "zstd": (3, range(1, 23)),
    "br": (11, range(0, 12)),
    "bz2": (9, range(1, 10)),
    "gz": (9, range(0, 10)),
    "snappy": (None, None),
}


@dataclass(frozen=True)
class Compression:
    """One compression algorithm at one level; ``name`` is what index.json records."""

    family: str
    level: int | None

    @property
    def name(self) -> str:
        default = _FAMILIES[self.family][0]
        return self.family if self.level == default else f"{self.family}:{self.level}"

    @property
    def extension(self) -> str:
        """The suffix the compressed shard file gets (``shard.mds`` -> ``shard.mds.zstd``)."""
        return self.family

    def compress(self, data: bytes | memoryview) -> bytes:
        if self.family == "zstd":
            return zstandard.ZstdCompressor(
                level=self.level or 3, write_content_size=True
            ).compress(data)
        if self.family == "gz":
            return gzip.compress(
                bytes(data), compresslevel=self.level if self.level is not None else 9
            )
        if self.family == "bz2":
            return bz2.compress(bytes(data), compresslevel=self.level or 9)
        if self.family == "br":
            return bytes(_module("br").compress(bytes(data), quality=self.level))
        return bytes(_module("snappy").compress(bytes(data)))

    def decompress(self, data: bytes | memoryview) -> bytes:
        if self.family == "zstd":
            return zstandard.ZstdDecompressor().decompress(data)
        if self.family == "gz":
            return gzip.decompress(bytes(data))
        if self.family == "bz2":
            return bz2.decompress(bytes(data))
        if self.family == "br":
            return bytes(_module("br").decompress(bytes(data)))
        return bytes(_module("snappy").decompress(bytes(data)))


def _incompressible(data: bytes | memoryview, probes: int = 4, probe_size: int = 64 << 10) -> bool:
    """Whether evenly spaced samples of ``data`` gain less than 2% from zstd."""
    if len(data) < 4 * probes * probe_size:
        return False
    view = memoryview(data)
    step = len(view) // probes
    # Probe the middle of each quarter: the start of a shard is its (compressible) header.
    starts = [i * step + (step - probe_size) // 2 for i in range(probes)]
    sample = b"".join(view[start : start + probe_size] for start in starts)
    packed = zstandard.ZstdCompressor(level=1).compress(sample)
    return len(packed) > 0.98 * len(sample)


def _module(family: str) -> Any:
    module = {"br": "brotli", "snappy": "snappy"}[family]
    return require(module, "compression", f"{family} shard compression")


def parse_compression(text: str | None) -> Compression | None:
    """``None`` / ``"zstd"`` / ``"zstd:7"`` -> a :class:`Compression` (or ``None`` for raw)."""
    if text is None or text in ("", "none", "None"):
        return None
    family, _, level_text = str(text).partition(":")
    if family not in _FAMILIES:
        raise ValueError(
            f"unknown compression {text!r}: expected one of {sorted(_FAMILIES)} "
            "optionally with a level, e.g. 'zstd' or 'zstd:7'"
        )
    default, levels = _FAMILIES[family]
    if not level_text:
        return Compression(family, default)
    if levels is None or not level_text.lstrip("-").isdigit() or int(level_text) not in levels:
        allowed = "no levels" if levels is None else f"levels {levels.start}..{levels.stop - 1}"
        raise ValueError(f"compression {text!r} is invalid: {family} takes {allowed}")
    return Compression(family, int(level_text))
