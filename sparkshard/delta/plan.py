"""What bringing a dataset up to a Delta version must write (the sync decision).

The dataset's lineage says which table, Delta version and settings it was converted from.
Against the requested snapshot that gives one of: nothing to do (``current``), append the
rows of the files added since (``append``, when every older file is still there
unchanged), or rebuild everything as a new version (``overwrite``) - refused with
:class:`SourceRewrittenError` when the caller asked for that. ``base_version`` pins the
dataset version the decision was made against, so a concurrent writer makes the write fail
instead of duplicating rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkshard.dataset.versions import has_dataset, read_index
from sparkshard.delta.snapshot import DeltaFile, DeltaSnapshot, compare, load_snapshot, operations
from sparkshard.errors import DatasetExistsError, SourceRewrittenError
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import Store

__all__ = ["SyncPlan", "plan_sync"]


@dataclass(frozen=True)
class SyncPlan:
    """What a conversion writes: ``files`` None = the whole snapshot; ``mode`` for the writer."""

    mode: str  # "error" | "overwrite" | "append" | "current"
    base_version: int
    files: tuple[DeltaFile, ...] | None
    previous_delta_version: int | None = None
    reason: str = ""


def plan_sync(
    store: Store,
    snapshot: DeltaSnapshot,
    settings: Mapping[str, Any],
    mode: str,
    on_rewrite: str,
    storage_options: Mapping[str, Any] | None,
) -> SyncPlan:
    """Decide what to write for ``mode`` (``sync``/``overwrite``/``error``).

    ``settings`` is the JSON of the columns, filter and encodings; a change rebuilds.
    Raises :class:`DatasetExistsError` for a dataset of another origin (or ``mode="error"``)
    and :class:`SourceRewrittenError` for a rewrite with ``on_rewrite="error"``.
    """
    if not has_dataset(store):
        return SyncPlan("error", 0, None, reason="a new dataset")
    previous = read_index(store)
    base = previous.dataset_version or 0
    if mode == "error":
        raise DatasetExistsError(
            f"{store.url} already holds a dataset (version {base}); use mode='sync' to bring "
            "it up to date or mode='overwrite' to rebuild it"
        )
    if mode == "overwrite":
        return SyncPlan("overwrite", base, None, reason="mode='overwrite'")
    lineage = previous.meta.get("lineage") or {}
    _check_same_table(store, previous, snapshot, lineage)
    converted = int(lineage["delta_version"])
    if lineage.get("settings") != settings:
        return _rewrite(
            snapshot, base, converted, "the columns, filter or encodings changed", on_rewrite
        )
    if converted == snapshot.version:
        return SyncPlan("current", base, (), converted)
    try:
        change = compare(load_snapshot(snapshot.uri, converted, storage_options), snapshot)
    except (FileNotFoundError, ValueError) as exc:  # e.g. the old log was cleaned up
        change_reason = f"version {converted} can no longer be read ({exc})"
        return _rewrite(snapshot, base, converted, change_reason, on_rewrite)
    if change.appended is None:
        ops = operations(snapshot.uri, converted, snapshot.version, storage_options)
        reason = change.reason + (f"; commits: {', '.join(ops)}" if ops else "")
        return _rewrite(snapshot, base, converted, reason, on_rewrite)
    if not change.appended:
        return SyncPlan("current", base, (), converted)
    return SyncPlan(
        "append", base, change.appended, converted, f"{len(change.appended)} new file(s)"
    )


def _check_same_table(
    store: Store, previous: DatasetIndex, snapshot: DeltaSnapshot, lineage: Mapping[str, Any]
) -> None:
    if lineage.get("source") == "delta" and lineage.get("table_uri") == snapshot.uri:
        return
    origin = (
        f"Delta table {lineage.get('table_uri')}"
        if lineage.get("source") == "delta"
        else f"source {lineage.get('source', 'unknown')!r}"
    )
    raise DatasetExistsError(
        f"{store.url} holds a dataset converted from {origin} (version "
        f"{previous.dataset_version}), not from Delta table {snapshot.uri}: write to another "
        "folder, or pass mode='overwrite' to replace it"
    )


def _rewrite(
    snapshot: DeltaSnapshot, base: int, converted: int, reason: str, on_rewrite: str
) -> SyncPlan:
    if on_rewrite == "error":
        raise SourceRewrittenError(
            f"cannot append Delta version {snapshot.version} of {snapshot.uri} to the dataset "
            f"converted from version {converted}: {reason}. Pass on_rewrite='rebuild' to "
            "rebuild the dataset as a new version"
        )
    return SyncPlan("overwrite", base, None, converted, reason)
