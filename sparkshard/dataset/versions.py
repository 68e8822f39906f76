"""Dataset versions: immutable version records, the commit point, and index.json.

Every write that changes a dataset commits a new version N by creating
``_sparkshard/versions/{N}.json`` with create-if-absent semantics (local: exclusive
create; object stores: conditional put). Creating that record is the commit: exactly
one of two concurrent writers wins. Afterwards ``index.json`` is replaced atomically
with the same content, for Mosaic readers. Shards are never rewritten, so a reader that
pinned an older version keeps reading it while new versions are committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from sparkshard.errors import VersionConflictError
from sparkshard.format.index import INDEX_KEY, DatasetIndex, ShardRecord
from sparkshard.format.schema import Schema
from sparkshard.storage import Store

__all__ = [
    "VERSIONS_PREFIX",
    "DatasetInfo",
    "commit_version",
    "dataset_info",
    "list_versions",
    "publish_write",
    "read_index",
]

log = logging.getLogger(__name__)
VERSIONS_PREFIX = "_sparkshard/versions/"


@dataclass(frozen=True)
class DatasetInfo:
    """What a write produced: the committed version and its size."""

    url: str
    version: int
    num_samples: int
    num_shards: int
    bytes: int  # stored (compressed) bytes of this version's shards
    raw_bytes: int
    new_samples: int  # samples this write added
    seconds: float

    @property
    def index_url(self) -> str:
        return f"{self.url.rstrip('/')}/{INDEX_KEY}"


def version_key(version: int) -> str:
    return f"{VERSIONS_PREFIX}{version:010d}.json"


def list_versions(store: Store) -> list[int]:
    """Committed version numbers, ascending."""
    versions = []
    for key in store.list(VERSIONS_PREFIX):
        stem = key[len(VERSIONS_PREFIX) :].removesuffix(".json")
        if stem.isdigit() and key.endswith(".json"):
            versions.append(int(stem))
    return sorted(versions)


def has_dataset(store: Store) -> bool:
    return bool(list_versions(store)) or store.exists(INDEX_KEY)


def read_index(store: Store, version: int | None = None) -> DatasetIndex:
    """The index of ``version`` (default: the latest committed one, else index.json)."""
    versions = list_versions(store)
    if version is not None:
        if version not in versions:
            raise FileNotFoundError(
                f"dataset {store.url} has no version {version}; its versions are "
                f"{versions or 'none (a plain MDS dataset: omit version=)'}"
            )
        return DatasetIndex.from_json(
            store.read(version_key(version)), f"{store.url} version {version}"
        )
    if versions:
        key = version_key(versions[-1])
        return DatasetIndex.from_json(store.read(key), f"{store.url}/{key}")
    try:
        data = store.read(INDEX_KEY)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no dataset at {store.url}: {INDEX_KEY} is missing (was the write finished, "
            "and is this the dataset's root folder?)"
        ) from None
    return DatasetIndex.from_json(data, f"{store.url}/{INDEX_KEY}")


def commit_version(
    store: Store, index: DatasetIndex, *, base_version: int | None, meta: dict[str, Any]
) -> DatasetIndex:
    """Commit ``index`` as version ``base_version + 1``; raise if someone else got there first."""
    version = (base_version or 0) + 1
    committed = index.with_meta(
        **meta,
        dataset_version=version,
        parent_version=base_version,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    data = committed.to_json()
    try:
        store.write_new(version_key(version), data)
    except FileExistsError:
        raise VersionConflictError(
            f"another writer committed version {version} of {store.url} while this write "
            "ran; this write was not published and its shards were removed: run it again "
            "against the new version"
        ) from None
    if list_versions(store)[-1] == version:  # do not move index.json back past a newer commit
        store.write(INDEX_KEY, data)
    log.info("committed version %d of %s (%d shards)", version, store.url, len(committed.shards))
    return committed


def publish_write(
    store: Store,
    *,
    previous: DatasetIndex | None,
    mode: str,
    records: list[ShardRecord],
    schema: Schema,
    lineage: dict[str, Any],
    writer: dict[str, Any],
    started: float,
) -> DatasetInfo:
    """Commit one write's shards as the next version; ``append`` keeps the previous shards."""
    keep = previous.shards if (mode == "append" and previous is not None) else ()
    base = previous.dataset_version if previous is not None else None
    if previous is not None and base is None:
        base = 0  # a plain MDS dataset becomes version 1
    meta = {
        "format": 1,
        "columns": schema.meta(),
        "lineage": lineage,
        "writer": {**writer, "mode": mode},
    }
    committed = commit_version(
        store, DatasetIndex(tuple(keep) + tuple(records)), base_version=base, meta=meta
    )
    return dataset_info(
        store, committed, new_samples=sum(r.samples for r in records), started=started
    )


def dataset_info(
    store: Store, index: DatasetIndex, *, new_samples: int = 0, started: float | None = None
) -> DatasetInfo:
    """Describe ``index`` (a committed version of ``store``) as a :class:`DatasetInfo`."""
    return DatasetInfo(
        url=store.url,
        version=index.dataset_version or 0,
        num_samples=index.num_samples,
        num_shards=len(index.shards),
        bytes=sum(s.stored.bytes for s in index.shards),
        raw_bytes=sum(s.raw_data.bytes for s in index.shards),
        new_samples=new_samples,
        seconds=0.0 if started is None else time.perf_counter() - started,
    )
