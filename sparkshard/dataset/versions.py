"""Dataset versions: immutable version records, the commit point, and index.json.

Every write that changes a dataset commits a new version N by creating
``_sparkshard/versions/{N}.json`` with create-if-absent semantics (local: exclusive
create; object stores: conditional put). Creating that record is the commit: exactly
one of two concurrent writers wins, and once the record exists nothing deletes the files
it references. Afterwards ``index.json`` is replaced atomically with the same content, for
Mosaic readers; it is a convenience copy (sparkshard reads the records), so failing to
update it never undoes a commit, and the next writer repairs it. Right after the record,
``_sparkshard/versions/{N}.columnar`` is written: the same index as arrays, which readers
load in milliseconds (:mod:`sparkshard.dataset.index_files`; best effort as well). Shards
are never rewritten, so a reader that pinned an older version keeps reading it while new
versions are committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparkshard.dataset.index_files import load_index, write_columnar
from sparkshard.errors import CommitUnknownError, VersionConflictError
from sparkshard.format.index import INDEX_KEY, DatasetIndex, ShardRecord, ShardTable
from sparkshard.format.schema import Schema
from sparkshard.storage import Store

__all__ = [
    "VERSIONS_PREFIX",
    "DatasetInfo",
    "commit_version",
    "dataset_info",
    "list_versions",
    "publish_index",
    "publish_write",
    "read_index",
    "repair_index",
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


def read_index(
    store: Store, version: int | None = None, *, derived: str | os.PathLike[str] | None = None
) -> DatasetIndex:
    """The index of ``version`` (default: the latest committed one, else index.json).

    Read from its columnar form when that is known to match the JSON, else parsed from the
    JSON; ``derived`` is a directory of the caller's where a parsed index's columnar form is
    kept for the next open (see :mod:`sparkshard.dataset.index_files`)."""
    versions = list_versions(store)
    if version is not None:
        if version not in versions:
            raise FileNotFoundError(
                f"dataset {store.url} has no version {version}; its versions are "
                f"{versions or 'none (a plain MDS dataset: omit version=)'}"
            )
        where = f"{store.url} version {version}"
        return load_index(store, version_key(version), where, immutable=True, derived=derived)
    if versions:
        key = version_key(versions[-1])
        return load_index(store, key, f"{store.url}/{key}", immutable=True, derived=derived)
    try:
        return load_index(
            store, INDEX_KEY, f"{store.url}/{INDEX_KEY}", immutable=False, derived=derived
        )
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no dataset at {store.url}: {INDEX_KEY} is missing (was the write finished, "
            "and is this the dataset's root folder?)"
        ) from None


def commit_version(
    store: Store,
    index: DatasetIndex,
    *,
    base_version: int | None,
    meta: dict[str, Any],
    discard: Callable[[], None] | None = None,
) -> DatasetIndex:
    """Commit ``index`` as version ``base_version + 1`` and return it as committed.

    Creating the version record is the commit point. If creating it fails, ``discard`` (which
    deletes the write's shards) runs only when the record is known not to hold this commit:
    a request that failed after the record landed is a commit, and nothing it references is
    ever deleted. Raises :class:`VersionConflictError` when another writer took the version,
    :class:`CommitUnknownError` when neither outcome can be told (nothing is deleted then).
    ``index.json`` is updated afterwards, best effort: it is a copy for Mosaic readers.
    """
    version = (base_version or 0) + 1
    committed = index.with_meta(
        **meta,
        dataset_version=version,
        parent_version=base_version,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    data, key = committed.to_json(), version_key(version)
    try:
        _create(store, key, data, version)
    except VersionConflictError:
        if discard is not None:
            discard()  # the record is another writer's: nothing references these shards
        raise
    except BaseException as exc:
        landed = _holds(store, key, data)
        if landed is None:
            raise CommitUnknownError(
                f"the commit of version {version} of {store.url} failed ({exc}) and the version "
                f"record could not be read back, so it is unknown whether it was committed; "
                f"nothing was deleted. Check with: python -m sparkshard history {store.url} "
                f"(if version {version} is missing, run the write again; gc removes its files)"
            ) from exc
        if not landed or not isinstance(exc, Exception):
            if not landed and discard is not None:
                discard()
            raise
        log.warning("the commit request for version %d failed (%s) but it landed", version, exc)
    write_columnar(store, key, data, committed)
    publish_index(store, version, data)
    log.info("committed version %d of %s (%d shards)", version, store.url, len(committed.shards))
    return committed


def _create(store: Store, key: str, data: bytes, version: int) -> None:
    try:
        store.write_new(key, data)
    except FileExistsError:
        raise VersionConflictError(
            f"another writer committed version {version} of {store.url} while this write "
            "ran; this write was not published and its shards were removed: run it again "
            "against the new version"
        ) from None


def _holds(store: Store, key: str, data: bytes) -> bool | None:
    """Whether ``key`` holds exactly ``data`` (False if absent or other bytes; None: unknown)."""
    try:
        return store.read(key) == data
    except FileNotFoundError:
        return False
    except Exception as exc:
        log.warning("could not read back %s/%s: %s", store.url, key, exc)
        return None


def publish_index(store: Store, version: int, data: bytes) -> bool:
    """Copy committed version ``version`` (``data``) to ``index.json`` unless a newer version
    exists. Best effort: a failure is logged, never raised (the commit has happened, and the
    next write, or ``python -m sparkshard verify --repair``, brings index.json up to date)."""
    try:
        if list_versions(store)[-1] != version:  # do not move index.json back past a newer one
            return False
        store.write(INDEX_KEY, data)
    except Exception as exc:
        log.warning(
            "version %d of %s is committed, but index.json (the copy Mosaic readers open) could "
            "not be updated (%s); sparkshard readers read the version record. The next write "
            "repairs it, or run: python -m sparkshard verify --repair %s",
            version, store.url, exc, store.url,
        )  # fmt: skip
        return False
    return True


def repair_index(store: Store) -> bool:
    """Make ``index.json`` the latest version record if it is not; True if it was rewritten."""
    versions = list_versions(store)
    if not versions:
        return False
    data = store.read(version_key(versions[-1]))
    try:
        current = store.read(INDEX_KEY)
    except FileNotFoundError:
        current = None
    if current == data:
        return False
    rewritten = publish_index(store, versions[-1], data)
    if rewritten:
        log.info("repaired index.json of %s: it now holds version %d", store.url, versions[-1])
    return rewritten


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
    discard: Callable[[], None] | None = None,
) -> DatasetInfo:
    """Commit one write's shards as the next version; ``append`` keeps the previous shards.

    ``discard`` deletes the write's shards; it runs only if the version is known not to be
    committed (see :func:`commit_version`)."""
    appending = mode == "append" and previous is not None
    keep: Sequence[ShardRecord] = previous.table if previous is not None and appending else ()
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
        store,
        DatasetIndex(ShardTable.concat([keep, records])),
        base_version=base,
        meta=meta,
        discard=discard,
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
        bytes=int(index.table.stored_bytes.sum()),
        raw_bytes=int(index.table.raw_bytes.sum()),
        new_samples=new_samples,
        seconds=0.0 if started is None else time.perf_counter() - started,
    )
