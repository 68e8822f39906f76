"""``verify``: is every file a dataset version references there, whole and readable?

For each shard of the checked versions: the stored file exists, has the recorded size and
every recorded hash; it decompresses to the recorded raw size and raw hashes; its header
and the lengths of every sample agree with the index; its first and last samples decode.
A decompressed copy next to a compressed shard (what a local reader leaves) is checked
too, because readers prefer it. The index files themselves must parse, a version record's
columnar form (if it has one) must be sound and derived from it, and ``index.json`` must be
the latest version (what Mosaic readers see).
Problems are collected, not raised, so one run names everything that is broken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sparkshard.dataset.index_files import columnar_key, columnar_problem
from sparkshard.dataset.shards import check_file, fetch_raw
from sparkshard.dataset.versions import list_versions, version_key
from sparkshard.errors import SparkshardError
from sparkshard.format.index import INDEX_KEY, DatasetIndex, ShardRecord
from sparkshard.format.shard import check_samples, decode_sample
from sparkshard.storage import Store

__all__ = ["Problem", "VerifyReport", "render_verify", "verify_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """Something broken: the file (or index) and what is wrong with it."""

    where: str
    what: str


@dataclass(frozen=True)
class VerifyReport:
    url: str
    versions: list[int | None]
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(
    store: Store, *, version: int | None = None, all_versions: bool = False
) -> VerifyReport:
    """Check ``version`` (default: latest), or every kept version with ``all_versions``."""
    problems: list[Problem] = []
    versions = list_versions(store)
    indexes = _indexes(store, versions, version, all_versions, problems)
    report = VerifyReport(store.url, [v for v, _ in indexes], problems=problems)
    seen: dict[str, ShardRecord] = {}
    for _, index in indexes:
        for record in index.shards:
            seen.setdefault(record.stored.basename, record)
    shards = samples = total = 0
    for name, record in seen.items():
        try:
            _check_shard(store, record)
        except (FileNotFoundError, SparkshardError, ValueError, OSError) as exc:
            problems.append(Problem(name, str(exc)))
            continue
        shards, samples, total = shards + 1, samples + record.samples, total + record.stored.bytes
    log.info("verified %d shards of %s: %d problem(s)", shards, store.url, len(problems))
    return VerifyReport(store.url, report.versions, shards, samples, total, problems)


def _indexes(
    store: Store,
    versions: list[int],
    version: int | None,
    all_versions: bool,
    problems: list[Problem],
) -> list[tuple[int | None, DatasetIndex]]:
    """The indexes to check (problems for those that do not parse), and index.json's state."""
    out: list[tuple[int | None, DatasetIndex]] = []
    latest: int | None = versions[-1] if versions else None  # None: a plain MDS index.json
    wanted: list[int | None] = (
        list(versions) if all_versions else [version if version is not None else latest]
    )
    for v in wanted:
        key = INDEX_KEY if v is None else version_key(v)
        if v is not None and v not in versions:
            raise FileNotFoundError(f"dataset {store.url} has no version {v}; it has {versions}")
        try:
            data = store.read(key)
            out.append((v, DatasetIndex.from_json(data, f"{store.url}/{key}")))
        except (FileNotFoundError, SparkshardError, ValueError) as exc:
            problems.append(Problem(key, str(exc)))
            continue
        problem = columnar_problem(store, key, data) if v is not None else None
        if problem is not None:
            fix = f"run python -m sparkshard verify --repair {store.url} to rewrite it"
            problems.append(Problem(columnar_key(key), f"{problem}; {fix}"))
    if versions:
        _check_index_json(store, versions[-1], problems)
    return out


def _check_index_json(store: Store, latest: int, problems: list[Problem]) -> None:
    try:
        data = store.read(INDEX_KEY)
    except FileNotFoundError:
        problems.append(
            Problem(
                INDEX_KEY,
                f"missing: Mosaic readers cannot open the dataset (latest version is {latest})",
            )
        )
        return
    try:
        found = DatasetIndex.from_json(data, f"{store.url}/{INDEX_KEY}").dataset_version
    except (SparkshardError, ValueError) as exc:
        problems.append(Problem(INDEX_KEY, str(exc)))
        return
    if found != latest:
        problems.append(
            Problem(
                INDEX_KEY,
                f"holds version {found} but the latest version is {latest}: Mosaic readers see an old dataset",
            )
        )


def _check_shard(store: Store, record: ShardRecord) -> None:
    name = record.stored.basename
    raw = fetch_raw(store, record, verify=True)
    offsets = check_samples(raw, record, name)
    for j in sorted({0, record.samples - 1} - {-1}):
        try:
            decode_sample(raw, offsets, record, j)
        except Exception as exc:
            raise ValueError(f"sample {j} does not decode: {exc}") from None
    if record.zip_data is not None and store.exists(record.raw_data.basename):
        # A reader that finds the decompressed copy uses it instead of the stored file.
        copy = store.read(record.raw_data.basename)
        where = f"decompressed copy {record.raw_data.basename}"
        check_file(copy, record.raw_data, where, every_hash=True)


def render_verify(report: VerifyReport) -> Iterable[str]:
    versions = ", ".join("index.json" if v is None else str(v) for v in report.versions)
    for problem in report.problems:
        yield f"BROKEN {problem.where}: {problem.what}"
    state = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    yield (
        f"{state}: {report.url} (version {versions or '-'}): {report.shards} shard(s), "
        f"{report.samples:,} samples, {report.bytes:,} bytes verified"
    )
