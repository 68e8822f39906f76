"""``history``: every committed version of a dataset, oldest first (any backend)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sparkshard.dataset.versions import list_versions, read_index
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import Store
from sparkshard.tools.inspect import human_size

__all__ = ["VersionEntry", "history", "render_history"]


@dataclass(frozen=True)
class VersionEntry:
    """One committed version, as ``history`` lists it."""

    version: int | None  # None: a plain MDS dataset without version records
    created_at: str | None
    mode: str | None
    samples: int
    shards: int
    bytes: int
    new_samples: int
    source: str


def history(store: Store) -> list[VersionEntry]:
    """Every committed version, oldest first (a plain MDS dataset: one entry)."""
    versions = list_versions(store)
    if not versions:
        return [_entry(read_index(store), set())]
    entries: list[VersionEntry] = []
    before: set[str] = set()
    for version in versions:
        index = read_index(store, version)  # its columnar form when it has a sound one
        entries.append(_entry(index, before))
        before = set(index.table.stored_names())
    return entries


def _entry(index: DatasetIndex, before: set[str]) -> VersionEntry:
    meta, lineage = index.meta, index.meta.get("lineage") or {}
    source = str(lineage.get("source", "-"))
    if source == "delta":
        source = f"delta {lineage.get('table_uri')} @ v{lineage.get('delta_version')}"
    elif "cache_key" in lineage:
        source = f"cache {lineage['cache_key']}"
    return VersionEntry(
        version=index.dataset_version,
        created_at=meta.get("created_at"),
        mode=(meta.get("writer") or {}).get("mode"),
        samples=index.num_samples,
        shards=len(index.shards),
        bytes=int(index.table.stored_bytes.sum()),
        new_samples=_new_samples(index, before),
        source=source,
    )


def render_history(entries: Sequence[VersionEntry]) -> str:
    lines = [f"{'version':>7}  {'created (UTC)':<25} {'mode':<9} {'samples':>12} {'new':>10} "
             f"{'shards':>6} {'size':>10}  source"]  # fmt: skip
    for e in entries:
        lines.append(
            f"{e.version if e.version is not None else '-':>7}  {e.created_at or '-':<25} "
            f"{e.mode or '-':<9} {e.samples:>12,} {e.new_samples:>10,} {e.shards:>6} "
            f"{human_size(e.bytes):>10}  {e.source}"
        )
    return "\n".join(lines)


def _new_samples(index: DatasetIndex, before: set[str]) -> int:
    table = index.table
    new = [name not in before for name in table.stored_names()]
    return int(table.samples[np.array(new, np.bool_)].sum()) if new else 0
