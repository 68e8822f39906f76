"""Writers that race each other in spawned processes (kept light: no torch, no test deps)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

import sparkshard
from sparkshard import ShardWriter, VersionConflictError


def append_at_once(out: str, k: int, ids: list[int], barrier: Any, results: Any) -> None:
    """Plan an append, wait until every writer has planned, then write; report the outcome."""
    writer = ShardWriter(out, mode="append", size_limit="2KB")  # reads the base version now
    barrier.wait()
    try:
        with writer:
            writer.write_batch(pa.table({"id": pa.array(ids, pa.int64())}))
    except VersionConflictError as exc:
        results.put((k, f"conflict: {exc}"))
        return
    results.put((k, "committed"))


def sync_delta(args: tuple[str, str]) -> str:
    """One ``delta_to_shards`` sync: ``wrote``, ``current`` or ``conflict``."""
    try:
        info = sparkshard.delta_to_shards(args[0], args[1])
    except VersionConflictError:
        return "conflict"
    return "wrote" if info.new_samples else "current"
