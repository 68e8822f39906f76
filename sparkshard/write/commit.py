"""A distributed write job: what the driver decides before any task runs, and its commit.

The commit protocol (DESIGN.md §3) that makes a Spark write exactly-once:

- :class:`Job` is decided on the driver and pickled to every task: where to write, the
  schema, compression, hashes, and a token that names every file of this write
  (``data/{token}-p{partition}-a{attempt}-{seq}.mds[.zstd]``).
- Tasks write through a :class:`GuardedStore`, so a straggler attempt that writes after
  the job finished removes its own file.
- The driver keeps one finished attempt per partition (:func:`select_records`), commits
  them as a new dataset version (:func:`finish_job`), then writes the job's marker
  ``_sparkshard/jobs/{token}`` and deletes every file of the job the version does not
  reference, half-written staging files of killed attempts included (:func:`clean_up`).

Nothing here imports pyspark: the driver hands in the rows its tasks returned.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkshard.dataset.versions import DatasetInfo, publish_write
from sparkshard.errors import JobFinishedError
from sparkshard.format.index import DatasetIndex, ShardRecord
from sparkshard.format.schema import Schema
from sparkshard.storage import Store, StoreWrapper, staging_files
from sparkshard.write.settings import WriterSettings

__all__ = [
    "JOBS_PREFIX",
    "GuardedStore",
    "Job",
    "clean_up",
    "finish_job",
    "new_job",
    "select_records",
]

log = logging.getLogger(__name__)
JOBS_PREFIX = "_sparkshard/jobs/"


@dataclass(frozen=True)
class Job:
    """Everything an executor task needs, decided on the driver (pickled to the tasks)."""

    url: str
    storage_options: dict[str, Any] | None
    token: str
    schema: Schema
    settings: WriterSettings
    udf: Callable[..., Iterable[Mapping[str, Any]]] | None = None
    udf_kwargs: dict[str, Any] = field(default_factory=dict)
    udf_takes_frames: bool = False
    # The DataFrame's column names, in order: tasks see positional names (Spark's mapInArrow
    # cannot resolve some names, e.g. with dots), and give the batches these back.
    input_names: tuple[str, ...] = ()

    @property
    def marker(self) -> str:
        return f"{JOBS_PREFIX}{self.token}"

    @property
    def data_prefix(self) -> str:
        return f"data/{self.token}-"


def new_job(
    out: str, storage_options: Mapping[str, Any] | None, schema: Schema, settings: WriterSettings
) -> Job:
    """Name a write of ``schema`` to ``out`` with a fresh token."""
    return Job(
        url=str(out),
        storage_options=dict(storage_options) if storage_options else None,
        token=uuid.uuid4().hex[:12],
        schema=schema,
        settings=settings,
    )


class GuardedStore(StoreWrapper):
    """A store whose writes undo themselves once the job's marker exists (stragglers)."""

    def __init__(self, inner: Store, marker: str) -> None:
        super().__init__(inner)
        self._marker = marker

    def write(self, key: str, data: bytes) -> None:
        self.inner.write(key, data)
        # The driver writes the marker before its final sweep: either the sweep sees this
        # file, or this check sees the marker. A committed attempt never gets here late.
        if self.inner.exists(self._marker):
            self.inner.delete(key)
            raise JobFinishedError(f"job finished before {key} was written; removed it")


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


def finish_job(
    store: Store,
    job: Job,
    mode: str,
    previous: DatasetIndex | None,
    rows: list[Any],
    source: dict[str, Any],
    started: float,
) -> DatasetInfo:
    """The driver's half after the tasks: keep one attempt per partition, commit it as a new
    version (same meta block as ShardWriter), then sweep the job's unreferenced files.

    The job's files are deleted wholesale only while no version references them: if the
    commit fails, :func:`commit_version` decides (see there), never this function.
    """
    try:
        records = select_records(rows, job)
    except BaseException:
        clean_up(store, job, None)
        raise
    info = publish_write(
        store,
        previous=previous,
        mode=mode,
        records=records,
        schema=job.schema,
        lineage=source,
        writer={**job.settings.to_json(), "spark_job": job.token},
        started=started,
        discard=lambda: clean_up(store, job, None),
    )
    clean_up(store, job, {r.stored.basename for r in records})
    return info


def clean_up(store: Store, job: Job, keep: set[str] | None) -> None:
    """Mark the job finished, then delete its files the committed version does not use,
    and what its killed attempts left half-written (a local store's staging files).

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
        # Never referenced, and no attempt stages a file after its results came back.
        orphans += [
            key
            for key, target in staging_files(store, "data/").items()
            if target.startswith(job.data_prefix)
        ]
        for key in orphans:
            store.delete(key)
    except Exception:  # never hide the job's own error behind a clean-up error
        log.exception("could not clean up the files of job %s under %s", job.token, store.url)
        return
    if orphans:
        log.info("removed %d unreferenced file(s) of job %s", len(orphans), job.token)
