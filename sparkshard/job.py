"""A distributed write job: what the driver decides before any task runs, and its commit.

The commit protocol (DESIGN.md §3) that makes a Spark write exactly-once:

- :class:`Job` is decided on the driver and pickled to every task: where to write, the
  schema, compression, hashes, and a token that names every file of this write
  (``data/{token}-p{partition}-a{attempt}-{seq}.mds[.zstd]``).
- Tasks write through a :class:`GuardedStore`, so a straggler attempt that writes after
  the job finished removes its own file.
- The driver keeps one finished attempt per partition (:func:`select_records`), commits
  them as a new dataset version (:func:`commit_job`), then writes the job's marker
  ``_sparkshard/jobs/{token}`` and deletes every file of the job the version does not
  reference (:func:`clean_up`).

Nothing here imports pyspark: the driver hands in the rows its tasks returned.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkshard.errors import SparkshardError
from sparkshard.format.compression import Compression, parse_compression
from sparkshard.format.hashing import validate_hashes
from sparkshard.format.index import DatasetIndex, ShardRecord
from sparkshard.format.schema import Schema
from sparkshard.sizes import parse_size
from sparkshard.storage import Store
from sparkshard.versions import DatasetInfo, publish_write

__all__ = [
    "JOBS_PREFIX",
    "GuardedStore",
    "Job",
    "JobFinishedError",
    "clean_up",
    "commit_job",
    "new_job",
    "select_records",
]

log = logging.getLogger(__name__)
JOBS_PREFIX = "_sparkshard/jobs/"


class JobFinishedError(SparkshardError, RuntimeError):
    """A straggler attempt wrote after its job was committed or aborted."""


@dataclass(frozen=True)
class Job:
    """Everything an executor task needs, decided on the driver (pickled to the tasks)."""

    url: str
    storage_options: dict[str, Any] | None
    token: str
    schema: Schema
    compression: Compression | None
    hashes: list[str]
    size_limit: int
    udf: Callable[..., Iterable[Mapping[str, Any]]] | None = None
    udf_kwargs: dict[str, Any] = field(default_factory=dict)
    udf_takes_frames: bool = False

    @property
    def marker(self) -> str:
        return f"{JOBS_PREFIX}{self.token}"

    @property
    def data_prefix(self) -> str:
        return f"data/{self.token}-"


def new_job(
    out: str,
    storage_options: Mapping[str, Any] | None,
    schema: Schema,
    compression: str | None,
    hashes: Iterable[str] | None,
    size_limit: int | str,
) -> Job:
    """Validate the writer settings once and name the job with a fresh token."""
    limit = parse_size(size_limit, what="size_limit")
    if limit >= 1 << 32:
        raise ValueError(f"size_limit must be under 4 GiB (an MDS limit), got {size_limit!r}")
    return Job(
        url=str(out),
        storage_options=dict(storage_options) if storage_options else None,
        token=uuid.uuid4().hex[:12],
        schema=schema,
        compression=parse_compression(compression),
        hashes=validate_hashes(list(hashes) if hashes is not None else None),
        size_limit=limit,
    )


class GuardedStore:
    """A store whose writes undo themselves once the job's marker exists (stragglers)."""

    def __init__(self, inner: Store, marker: str) -> None:
        self._inner, self._marker = inner, marker

    @property
    def url(self) -> str:
        return self._inner.url

    def write(self, key: str, data: bytes) -> None:
        self._inner.write(key, data)
        # The driver writes the marker before its final sweep: either the sweep sees this
        # file, or this check sees the marker. A committed attempt never gets here late.
        if self._inner.exists(self._marker):
            self._inner.delete(key)
            raise JobFinishedError(f"job finished before {key} was written; removed it")

    def delete(self, key: str) -> None:
        self._inner.delete(key)

    def read(self, key: str) -> bytes:
        return self._inner.read(key)

    def read_view(self, key: str) -> memoryview:
        return self._inner.read_view(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        return self._inner.read_range(key, start, length)

    def write_new(self, key: str, data: bytes) -> None:
        self._inner.write_new(key, data)

    def exists(self, key: str) -> bool:
        return self._inner.exists(key)

    def list(self, prefix: str = "") -> list[str]:
        return self._inner.list(prefix)

    def local_path(self, key: str) -> str | None:
        return self._inner.local_path(key)


def select_records(rows: list[Any], job: Job) -> list[ShardRecord]:
    """The records of one finished attempt per partition, in partition then shard order."""
    by_partition: dict[int, dict[int, list[Any]]] = {}
    for row in rows:
        by_partition.setdefault(row.partition, {}).setdefault(row.attempt, []).append(row)
    partitions = sorted(by_partition)
    if partitions != list(range(len(partitions))):
        raise RuntimeError(f"job {job.token}: Spark returned partitions {partitions}, not 0..n-1")
    records: list[ShardRecord] = []
    for partition in partitions:
        finished = {a: rs for a, rs in by_partition[partition].items() if rs[-1].seq == -1}
        if not finished:
            raise RuntimeError(f"job {job.token}: partition {partition} has no finished attempt")
        attempt = min(finished)  # deterministic when speculative duplicates both finish
        shard_rows, closing = finished[attempt][:-1], finished[attempt][-1]
        if [r.seq for r in shard_rows] != list(range(len(shard_rows))) or closing.samples != sum(
            r.samples for r in shard_rows
        ):
            raise RuntimeError(f"job {job.token}: attempt {attempt} returned inconsistent rows")
        where = f"job {job.token} partition {partition}"
        records += [ShardRecord.from_json(json.loads(r.record), where) for r in shard_rows]
    return records


def commit_job(
    store: Store,
    job: Job,
    mode: str,
    previous: DatasetIndex | None,
    records: list[ShardRecord],
    source: dict[str, Any],
    started: float,
) -> DatasetInfo:
    """Publish the records as a new version, with the same meta block as ShardWriter."""
    return publish_write(
        store,
        previous=previous,
        mode=mode,
        records=records,
        schema=job.schema,
        lineage=source,
        writer={
            "compression": job.compression.name if job.compression else None,
            "hashes": job.hashes,
            "size_limit": job.size_limit,
            "spark_job": job.token,
        },
        started=started,
    )


def clean_up(store: Store, job: Job, keep: set[str] | None) -> None:
    """Mark the job finished, then delete its files the committed version does not use.

    ``keep`` None means the job failed: every file it wrote goes, nothing was published.
    """
    state = "aborted" if keep is None else "committed"
    try:
        store.write(job.marker, json.dumps({"state": state}).encode())
        orphans = [
            key
            for key in store.list("data/")
            if key.startswith(job.data_prefix) and key not in (keep or ())
        ]
        for key in orphans:
            store.delete(key)
    except Exception:  # never hide the job's own error behind a clean-up error
        log.exception("could not clean up the files of job %s under %s", job.token, store.url)
        return
    if orphans:
        log.info("removed %d unreferenced file(s) of job %s", len(orphans), job.token)
