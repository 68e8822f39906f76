"""Which cached shards to evict: least recently used first, never one somebody holds.

Pure: the cache (:mod:`loader.cache.directory`) lists its entries and tries the victims in this order,
skipping any it finds held at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheEntry", "eviction_victims"]


@dataclass(frozen=True)
class CacheEntry:
    """One placed shard file as the accounting sees it."""

    key: str
    size: int
    last_used: int  # mtime in ns


def eviction_victims(
    entries: list[CacheEntry], to_free: int, held: set[str] | frozenset[str] = frozenset()
) -> list[CacheEntry]:
    """Least recently used entries, skipping ``held`` ones, until ``to_free`` bytes are covered.

    The shortest such LRU prefix; every evictable entry when even they do not cover it.
    """
    victims, freed = [], 0
    for entry in sorted(entries, key=lambda e: (e.last_used, e.key)):
        if freed >= to_free:
            break
        if entry.key not in held:
            victims.append(entry)
            freed += entry.size
    return victims
