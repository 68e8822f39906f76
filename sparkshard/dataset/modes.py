"""Write modes: what a new write may do with the dataset a store already holds.

``mode="error"`` refuses an existing dataset, ``"overwrite"`` replaces it with a new
version, ``"append"`` adds to it (with the same stored columns). ``base_version`` pins the
version a write was planned against, so a write planned before another writer committed
fails instead of building on data it never saw. Checked before anything is written.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from sparkshard.dataset.versions import has_dataset, list_versions, read_index, repair_index
from sparkshard.errors import DatasetExistsError, SchemaError, VersionConflictError
from sparkshard.format.index import DatasetIndex, schema_of
from sparkshard.format.schema import ColumnSpec, Schema

__all__ = ["MODES", "Mode", "check_append_schema", "check_mode"]

Mode = Literal["error", "overwrite", "append"]
MODES = ("error", "overwrite", "append")


def check_mode(store: Any, mode: str, base_version: int | None = None) -> DatasetIndex | None:
    """Validate ``mode`` against what ``store`` holds; return the previous index if any.

    ``base_version``: the dataset version the caller planned this write against; if the
    dataset is at another version now, :class:`VersionConflictError` (nothing was written).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    root = store.local_path("")
    if root is not None and os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(
            f"the output {store.url} is an existing file, not a dataset folder: write to a "
            "folder (it is created if missing), or move the file away"
        )
    if not has_dataset(store):
        _check_base(store, base_version, 0)
        return None
    if mode == "error":
        versions = list_versions(store)
        raise DatasetExistsError(
            f"{store.url} already holds a dataset (version {versions[-1] if versions else 'of Mosaic'}); "
            "pass mode='overwrite' to replace it or mode='append' to add to it"
        )
    previous = read_index(store)
    _check_base(store, base_version, previous.dataset_version or 0)
    repair_index(store)  # a failed update of the Mosaic copy is mended by the next writer
    return previous


def _check_base(store: Any, expected: int | None, found: int) -> None:
    if expected is not None and expected != found:
        raise VersionConflictError(
            f"this write was planned against version {expected} of {store.url}, but the "
            f"dataset is at version {found} now (0: no versions): another "
            "writer committed in between; plan the write again against the current version"
        )


def check_append_schema(previous: DatasetIndex, schema: Schema, url: str) -> None:
    """Appended data must have the columns of the dataset it extends: the same stored
    columns and encodings, and the same logical types (unit, time zone), since every row of
    the new version is read back with one schema."""
    if previous.shards:
        first = previous.shards[0]
        before = list(zip(first.column_names, first.column_encodings))
        after = schema.stored_columns()
        if before != after:
            raise SchemaError(
                f"cannot append to {url}: its columns are {before} but the new data has "
                f"{after}; make the schemas match or write with mode='overwrite'"
            )
    if not previous.shards and not previous.meta.get("columns"):
        return
    old = {c.name: c for c in schema_of(previous).columns}
    for new in schema.columns:
        was = old.get(new.name)
        if was is not None and _logical(was) != _logical(new):
            raise SchemaError(
                f"cannot append to {url}: column '{new.name}' is {_describe(was)} there but "
                f"{_describe(new)} in the new data, so its existing rows would read back "
                f"wrongly; cast the new column to {was.arrow_type or was.encoding} first, or "
                "write with mode='overwrite'"
            )


def _logical(spec: ColumnSpec) -> tuple[str | None, str | None, str | None]:
    return spec.logical, spec.unit, spec.tz


def _describe(spec: ColumnSpec) -> str:
    kind = spec.arrow_type or spec.encoding
    if spec.logical and spec.logical not in kind:
        kind += f" ({spec.logical})"
    if spec.logical == "timestamp":
        kind += f" in time zone {spec.tz}" if spec.tz else " without a time zone"
    return kind
