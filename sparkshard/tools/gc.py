"""``gc``: remove what no kept version needs. Plans first; deletes only when asked.

Keeping the newest ``retain`` versions, :func:`plan_gc` lists

- expired version records (``_sparkshard/versions/`` older than the kept ones),
- shard files no kept version (nor ``index.json``) references: those of expired versions,
  and orphans of failed or abandoned writes, half-written ones included (the hidden
  staging files a local write killed before its rename leaves, see
  :func:`sparkshard.storage.staging_files`),
- stale job markers under ``_sparkshard/jobs/`` (jobs no kept version comes from),
- the columnar forms (``_sparkshard/versions/N.columnar``) of expired versions, and any
  whose version record is gone; those of kept versions are never touched.

A file that nothing references may belong to a write still in progress, so an orphan is
only removed once its job has finished (its marker exists) or it is older than
``min_age`` seconds (its age is known on local and mounted stores; elsewhere pass
``min_age=0`` when no write is running). What a kept version references is never
removed, whatever its age. Only shard files (``*.mds`` and their compressed forms) are
ever candidates: other files in the folder are left alone.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sparkshard.dataset.index_files import columnar_key
from sparkshard.dataset.versions import VERSIONS_PREFIX, list_versions, read_index, version_key
from sparkshard.format.columnar_index import SUFFIX
from sparkshard.format.index import INDEX_KEY, DatasetIndex
from sparkshard.storage import Store, staging_files
from sparkshard.write.commit import JOBS_PREFIX

__all__ = ["GcPlan", "apply_gc", "plan_gc", "render_gc"]

log = logging.getLogger(__name__)
_SHARD = re.compile(r"\.mds(\.[A-Za-z0-9]+)?$")
_TOKEN = re.compile(r"^(?:.*/)?([0-9a-f]{12})-")


@dataclass(frozen=True)
class GcPlan:
    """What a collection would delete (and what it keeps that looks unused)."""

    url: str
    retained: list[int]
    expired: list[str] = field(default_factory=list)  # version record keys
    files: list[str] = field(default_factory=list)  # shard files
    markers: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)  # unreferenced, but maybe in progress
    bytes: int = 0
    columnar: list[str] = field(default_factory=list)  # columnar forms of expired versions

    @property
    def empty(self) -> bool:
        return not (self.expired or self.files or self.markers or self.columnar)


def plan_gc(
    store: Store, retain: int, *, min_age: float = 3600.0, now: float | None = None
) -> GcPlan:
    """Plan a collection that keeps the newest ``retain`` versions (at least 1)."""
    if retain < 1:
        raise ValueError(f"retain must keep at least the latest version (1), got {retain}")
    versions = list_versions(store)
    if not versions and not store.exists(INDEX_KEY):
        raise FileNotFoundError(
            f"no dataset at {store.url}: neither {INDEX_KEY} nor versions exist"
        )
    kept, expired = versions[-retain:], versions[:-retain]
    kept_indexes = [read_index(store, v) for v in kept]
    if store.exists(INDEX_KEY):
        kept_indexes.append(_read(store, INDEX_KEY))
    _refuse_broken(store, kept, kept_indexes)
    referenced = {name for index in kept_indexes for name in _files_of(index)}
    kept_jobs = {_token(name) for name in referenced} | {_job_of(index) for index in kept_indexes}
    expired_sizes = {n: b for v in expired for n, b in _files_of(read_index(store, v)).items()}
    expired_files = set(expired_sizes)
    finished = {key[len(JOBS_PREFIX) :] for key in store.list(JOBS_PREFIX)}
    clock = time.time() if now is None else now
    files, recent, total = [], [], 0
    for key, target in _shard_files(store).items():
        if key in referenced:
            continue
        age = _age(store, key, clock)
        if (
            key in expired_files
            or _token(target) in finished
            or min_age <= 0
            or (age is not None and age >= min_age)
        ):
            files.append(key)
            total += expired_sizes.get(key) or _size(store, key)
        else:
            recent.append(key)
    markers = [
        key
        for key in store.list(JOBS_PREFIX)
        if key[len(JOBS_PREFIX) :] not in kept_jobs
        and _old(store, key, clock, min_age, expired_files)
    ]
    expired_keys = [version_key(v) for v in expired]
    columnar = _stale_columnar(store, kept)
    return GcPlan(store.url, kept, expired_keys, files, markers, recent, total, columnar)


def _stale_columnar(store: Store, kept: list[int]) -> list[str]:
    """Columnar forms of versions older than the newest kept one that are not kept (a newer
    one may belong to a commit that happened after the versions were listed)."""
    newest, keep = max(kept, default=0), {columnar_key(version_key(v)) for v in kept}
    out = []
    for key in store.list(VERSIONS_PREFIX):
        stem = key[len(VERSIONS_PREFIX) :].removesuffix(SUFFIX)
        if key.endswith(SUFFIX) and key not in keep and stem.isdigit() and int(stem) < newest:
            out.append(key)
    return out


def _refuse_broken(store: Store, kept: list[int], indexes: list[DatasetIndex]) -> None:
    """A kept version that misses shards must not be all that remains: refuse to collect."""
    present = set(store.list())
    missing = sorted({n for index in indexes for n in index.table.stored_names()} - present)
    if missing:
        raise FileNotFoundError(
            f"gc of {store.url} refused: the version(s) it would keep ({kept or ['index.json']}) "
            f"reference {len(missing)} missing shard file(s), e.g. {missing[0]}; removing the "
            "older versions could leave no readable version. Run python -m sparkshard verify "
            f"{store.url} --all-versions, restore the files or rewrite the dataset, or keep "
            "more versions with a larger --retain; nothing was deleted"
        )


def apply_gc(store: Store, plan: GcPlan) -> None:
    """Delete what ``plan`` lists: version records first, so no reader opens them meanwhile."""
    for key in [*plan.expired, *plan.columnar, *plan.files, *plan.markers]:
        store.delete(key)
    log.info(
        "gc of %s: removed %d version record(s) (and %d columnar form(s)), %d shard file(s) "
        "(%d bytes), %d marker(s)",
        store.url, len(plan.expired), len(plan.columnar), len(plan.files), plan.bytes,
        len(plan.markers),
    )  # fmt: skip


def render_gc(plan: GcPlan, *, applied: bool) -> Iterable[str]:
    verb = "removed" if applied else "would remove"
    for key in [*plan.expired, *plan.columnar, *plan.files, *plan.markers]:
        yield f"{verb} {key}"
    for key in plan.recent:
        yield f"kept {key} (unreferenced but recent: it may belong to a write in progress)"
    yield (
        f"gc {plan.url}: {verb} {len(plan.expired)} old version(s), {len(plan.files)} "
        f"shard file(s) ({plan.bytes:,} bytes) and {len(plan.markers)} job marker(s); "
        f"kept version(s) {plan.retained or ['index.json']}"
        + ("" if applied or plan.empty else "; run again with --yes to delete")
    )


def _shard_files(store: Store) -> dict[str, str]:
    """Every shard file in ``store`` -> itself; a local staging file -> the shard it stages."""
    found = {key: key for key in store.list()} | staging_files(store)
    return {
        key: name
        for key, name in found.items()
        if _SHARD.search(name) and not key.startswith("_sparkshard/")
    }


def _read(store: Store, key: str) -> DatasetIndex:
    return DatasetIndex.from_json(store.read(key), f"{store.url}/{key}")


def _files_of(index: DatasetIndex) -> dict[str, int]:
    """Every file name ``index`` references (raw and compressed forms), with its size."""
    table = index.table
    names = dict(zip(table.raw_names.tolist(), table.raw_bytes.tolist()))
    for name, size in zip(table.zip_names.tolist(), table.zip_bytes.tolist()):
        if size >= 0:
            names[name] = size
    return names


def _token(name: str) -> str | None:
    match = _TOKEN.match(name)
    return match.group(1) if match else None


def _job_of(index: DatasetIndex) -> str | None:
    writer = index.meta.get("writer") or {}
    job = writer.get("spark_job")
    return str(job) if job else None


def _age(store: Store, key: str, now: float) -> float | None:
    path = store.local_path(key)
    if path is None:
        return None
    try:
        return now - os.stat(path).st_mtime
    except OSError:
        return None


def _old(store: Store, key: str, now: float, min_age: float, expired_files: set[str]) -> bool:
    """A marker is stale once old enough, or (age unknown) when its job's files expired."""
    age = _age(store, key, now)
    if min_age <= 0 or (age is not None and age >= min_age):
        return True
    token = key[len(JOBS_PREFIX) :]
    return age is None and any(_token(name) == token for name in expired_files)


def _size(store: Store, key: str) -> int:
    path = store.local_path(key)
    if path is not None:
        try:
            return os.stat(path).st_size
        except OSError:
            return 0
    return 0
