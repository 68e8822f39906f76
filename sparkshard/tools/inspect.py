"""What a dataset holds, for people: ``inspect`` (any backend, via a Store).

:func:`inspect_dataset` reads one version's index and a few samples and returns an
:class:`Inspection`: versions, schema with Spark type names, shards and sizes, lineage,
sample rows. :func:`render_inspection` turns it into
the text the command line prints; :func:`save_image_preview` tiles an image column into
a PNG.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkshard.dataset.shards import fetch_raw
from sparkshard.dataset.versions import list_versions, read_index
from sparkshard.format.index import DatasetIndex, schema_of
from sparkshard.format.schema import ColumnSpec, Schema
from sparkshard.format.shard import check_samples, decode_sample
from sparkshard.format.values import from_stored
from sparkshard.storage import Store
from sparkshard.tools.spark_types import spark_type_name

__all__ = [
    "Inspection",
    "human_size",
    "inspect_dataset",
    "render_inspection",
    "save_image_preview",
]

_IMAGE_ENCODINGS = ("jpeg", "png", "pil", "jpeg_array", "list[jpeg]", "list[png]", "list[pil]")


@dataclass(frozen=True)
class Inspection:
    """One version of a dataset, summarised."""

    url: str
    version: int | None
    versions: list[int]
    num_samples: int
    shard_names: list[str]
    shard_samples: list[int]
    shard_bytes: list[int]
    raw_bytes: int
    columns: list[tuple[str, str, str, bool]]  # name, Spark type, MDS encoding, nullable
    lineage: Mapping[str, Any]
    writer: Mapping[str, Any]
    created_at: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)


def inspect_dataset(store: Store, version: int | None = None, *, rows: int = 3) -> Inspection:
    """Summarise ``version`` (default: latest) and decode its first ``rows`` samples."""
    index = read_index(store, version)
    schema = schema_of(index)
    meta = index.meta
    return Inspection(
        url=store.url,
        version=index.dataset_version,
        versions=list_versions(store),
        num_samples=index.num_samples,
        shard_names=index.table.stored_names(),
        shard_samples=index.table.samples.tolist(),
        shard_bytes=index.table.stored_bytes.tolist(),
        raw_bytes=int(index.table.raw_bytes.sum()),
        columns=[(c.name, spark_type_name(c), c.encoding, c.nullable) for c in schema.columns],
        lineage=dict(meta.get("lineage") or {}),
        writer=dict(meta.get("writer") or {}),
        created_at=meta.get("created_at"),
        rows=[_printable(row) for row in first_rows(store, index, schema, rows)],
    )


def first_rows(
    store: Store, index: DatasetIndex, schema: Schema, count: int
) -> list[dict[str, Any]]:
    """The first ``count`` samples, restored (None for nulls, dates, ...)."""
    out: list[dict[str, Any]] = []
    for i in np.flatnonzero(index.table.samples > 0).tolist():
        if len(out) >= count:
            break
        record = index.shards[i]  # built for the few shards read, not for every shard
        raw = fetch_raw(store, record)
        offsets = check_samples(raw, record, record.stored.basename)
        for j in range(min(record.samples, count - len(out))):
            out.append(_restore(schema, decode_sample(raw, offsets, record, j)))
    return out


def _restore(schema: Schema, stored: Mapping[str, Any]) -> dict[str, Any]:
    row = {}
    for spec in schema.columns:
        if spec.name not in stored:
            continue
        null = spec.nullable and bool(stored.get(spec.null_column))
        value = stored[spec.name]
        row[spec.name] = None if null else _from_stored(spec, value)
    return row


def _from_stored(spec: ColumnSpec, value: Any) -> Any:
    if spec.encoding == "pkl":
        return value  # never unpickled here
    return from_stored(spec, value)


def _printable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _short(value) for name, value in row.items()}


def _short(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        head = ", ".join(str(v) for v in value.reshape(-1)[:4].tolist())
        return (
            f"ndarray{list(value.shape)} {value.dtype} [{head}{', ...' if value.size > 4 else ''}]"
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "save"):
        return f"<image {value.size[0]}x{value.size[1]} {value.mode}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def render_inspection(report: Inspection, *, shards: bool = False) -> str:
    """The report as text; ``shards`` lists every shard (name, samples, stored size)."""
    sizes = report.shard_bytes or [0]
    stored = sum(report.shard_bytes)
    versions = report.versions
    lines = [
        f"dataset   {report.url}",
        f"version   {report.version if report.version is not None else '- (plain MDS index)'}"
        + (f" of {versions[0]}..{versions[-1]} ({len(versions)} kept)" if versions else "")
        + (f", created {report.created_at}" if report.created_at else ""),
        f"samples   {report.num_samples:,} in {len(report.shard_bytes)} shards",
        f"size      {human_size(stored)} stored, {human_size(report.raw_bytes)} raw; shard "
        f"min/median/max {human_size(min(sizes))} / {human_size(int(statistics.median(sizes)))} / "
        f"{human_size(max(sizes))}",
        "writer    " + (json.dumps(dict(report.writer), sort_keys=True) if report.writer else "-"),
        "lineage   " + (json.dumps(dict(report.lineage), sort_keys=True, default=str) if report.lineage else "-"),
        "schema",
    ]  # fmt: skip
    width = max((len(c[0]) for c in report.columns), default=4)
    for name, spark_type, encoding, nullable in report.columns:
        null = "" if nullable else " not null"
        lines.append(f"  {name:<{width}}  {spark_type}{null}  (mds: {encoding})")
    if shards:
        lines.append("shards")
        for name, count, size in zip(report.shard_names, report.shard_samples, report.shard_bytes):
            lines.append(f"  {name}  {count:,} samples  {human_size(size)}")
    lines.append(f"first {len(report.rows)} samples")
    for i, row in enumerate(report.rows):
        lines.append(f"  [{i}] " + ", ".join(f"{k}={v}" for k, v in row.items()))
    return "\n".join(lines)


def human_size(n: int) -> str:
    """A byte count for people: ``512 B``, ``3.2 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def image_columns(schema: Schema) -> list[str]:
    return [c.name for c in schema.columns if c.encoding in _IMAGE_ENCODINGS]


def save_image_preview(
    store: Store,
    path: str,
    *,
    column: str | None = None,
    version: int | None = None,
    count: int = 16,
) -> int:
    """Tile the first ``count`` images of ``column`` into a PNG at ``path``; return how many."""
    from PIL import Image

    index = read_index(store, version)
    schema = schema_of(index)
    candidates = image_columns(schema)
    if column is None:
        if not candidates:
            raise ValueError(
                f"{store.url} has no image column (encodings {_IMAGE_ENCODINGS}); name a "
                "column holding image bytes or uint8 arrays with --image-column"
            )
        column = candidates[0]
    if column not in schema.names:
        raise ValueError(
            f"no column {column!r} in {store.url}; its columns are {list(schema.names)}"
        )
    images = [_as_image(row[column], column) for row in first_rows(store, index, schema, count)]
    images = [im for im in images if im is not None]
    if not images:
        raise ValueError(f"column {column!r} of {store.url} has no images in its first samples")
    cell = max(max(im.size) for im in images)
    cols = min(len(images), 8)
    grid = Image.new("RGB", (cols * cell, -(-len(images) // cols) * cell), "white")
    for k, im in enumerate(images):
        grid.paste(im.convert("RGB"), ((k % cols) * cell, (k // cols) * cell))
    grid.save(path, format="PNG")
    return len(images)


def _as_image(value: Any, column: str) -> Any:
    from PIL import Image

    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
        return _as_image(value, column)
    if hasattr(value, "convert"):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return Image.open(io.BytesIO(value))
        except Exception:
            raise ValueError(f"column {column!r} holds bytes that are not an image") from None
    array = np.asarray(value)
    side = round(array.size**0.5) if array.ndim == 1 else 0
    if side > 1 and side * side == array.size:  # a flattened square image (e.g. 8x8 digits)
        array = array.reshape(side, side)
    if array.ndim in (2, 3) and array.size:
        if array.dtype != np.uint8:
            span = float(array.max() - array.min()) or 1.0
            array = ((array - array.min()) * (255.0 / span)).astype(np.uint8)
        return Image.fromarray(array)
    raise ValueError(f"column {column!r} holds {type(value).__name__} values, not images")
