"""A failure anywhere in a write never loses committed data (issue: nothing lost).

Every mutating request of an append (each shard, the version record, index.json; for a
Spark job also the job marker) is failed in turn. After each failure every version that
exists reads back in full, nothing a version references is missing, and the next write
succeeds and repairs index.json.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pytest
from faulty_store import FailingStore

from loader import DatasetReader
from sparkshard import CommitUnknownError, ShardWriter
from sparkshard.dataset.modes import check_mode
from sparkshard.dataset.versions import list_versions, read_index, version_key
from sparkshard.format.schema import schema_from_arrow
from sparkshard.spark.write import _result_batch
from sparkshard.storage import LocalStore, Store
from sparkshard.write.commit import finish_job, new_job
from sparkshard.write.settings import WriterSettings
from sparkshard.write.sink import ShardSink

SETTINGS = dict(compression="zstd", size_limit=600)


def _table(first: int, n: int) -> pa.Table:
    ids = np.arange(first, first + n, dtype=np.int64)
    return pa.table({"id": ids, "x": ids.astype(np.float64) / 3})


def _base(tmp_path: Path) -> Path:
    path = tmp_path / "base"
    with ShardWriter(path, **SETTINGS) as writer:
        writer.write_batch(_table(0, 100))
    return path


def _append_with(store: Store) -> None:
    with ShardWriter(store, mode="append", **SETTINGS) as writer:
        writer.write_batch(_table(100, 80))


def _ids(path: Path, version: int) -> list[int]:
    reader = DatasetReader(path, version=version, verify_hashes=True)
    return [int(i) for i in reader.get_batch(np.arange(reader.num_samples))["id"]]


def _check_every_version_reads(path: Path) -> list[int]:
    """Every version reads in full and holds exactly its rows; the versions, ascending."""
    versions = list_versions(LocalStore(path))
    expected = {1: list(range(100)), 2: list(range(180)), 3: list(range(260))}
    for version in versions:
        assert _ids(path, version) == expected[version], f"version {version} lost rows"
    return versions


def _data_files(path: Path) -> set[str]:
    return {p.name for p in (path / "data").iterdir()}


def _referenced(path: Path) -> set[str]:
    store = LocalStore(path)
    return {
        Path(s.stored.basename).name
        for v in list_versions(store)
        for s in read_index(store, v).shards
    }


def _mutations(run: Callable[[Store], Any], base: Path, tmp_path: Path) -> list[tuple[str, str]]:
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    counting = FailingStore(LocalStore(probe))
    run(counting)
    return counting.calls


def _finish_afterwards(path: Path) -> None:
    """The next write succeeds on top of whatever the failure left, and index.json is current."""
    with ShardWriter(path, mode="append", **SETTINGS) as writer:
        writer.write_batch(_table(1000, 10))
    store = LocalStore(path)
    latest = list_versions(store)[-1]
    assert (path / "index.json").read_bytes() == store.read(version_key(latest))
    assert _referenced(path) <= _data_files(path)


def test_every_failure_point_of_an_append_keeps_every_version(tmp_path: Path) -> None:
    base = _base(tmp_path)
    calls = _mutations(_append_with, base, tmp_path)
    ops = [op for op, _ in calls]
    assert ops.count("write_new") == 1 and calls[-1] == ("write", "index.json")
    assert len(calls) >= 5  # two shards or more, the version record, its columnar form, index.json
    assert calls[-2] == ("write", "_sparkshard/versions/0000000002.columnar")
    for k in range(1, len(calls) + 1):
        path = tmp_path / f"fail-{k}"
        shutil.copytree(base, path)
        store = FailingStore(LocalStore(path), fail_at=k)
        op, key = calls[k - 1]
        committed = key == "index.json" or key.endswith(".columnar")
        if committed:
            _append_with(store)  # a stale index.json or a missing columnar form: no failure
        else:
            with pytest.raises(OSError, match="injected"):
                _append_with(store)
            assert _data_files(path) == _data_files(base), f"failure {k} left orphans"
        assert _referenced(path) <= _data_files(path), f"failure {k} ({op} {key}) lost files"
        versions = _check_every_version_reads(path)
        assert versions == ([1, 2] if committed else [1]), (k, op, key)
        _finish_afterwards(path)


def test_a_commit_whose_answer_was_lost_is_a_commit(tmp_path: Path) -> None:
    base = _base(tmp_path)
    calls = _mutations(_append_with, base, tmp_path)
    k = 1 + [op for op, _ in calls].index("write_new")
    store = FailingStore(LocalStore(base), fail_at=k, landed=True)
    _append_with(store)  # the record landed: the write succeeded
    assert _check_every_version_reads(base) == [1, 2]
    assert json.loads((base / "index.json").read_text())["sparkshard"]["dataset_version"] == 2


def test_an_unknowable_commit_deletes_nothing(tmp_path: Path) -> None:
    base = _base(tmp_path)
    calls = _mutations(_append_with, base, tmp_path)
    k = 1 + [op for op, _ in calls].index("write_new")
    before = _data_files(base)
    store = FailingStore(LocalStore(base), fail_at=k, landed=True, blind=True)
    with pytest.raises(CommitUnknownError, match="unknown whether it was committed"):
        _append_with(store)
    assert _check_every_version_reads(base) == [1, 2]  # it had landed: all of it is there
    assert _data_files(base) > before


class _Row(NamedTuple):
    partition: int
    attempt: int
    seq: int
    samples: int
    record: str | None


def _job_append(store: Store) -> None:
    """What the Spark driver does after its tasks: tasks' shards are written first."""
    previous = check_mode(store, "append")
    table = _table(100, 80)
    job = new_job(
        store.url, None, schema_from_arrow(table.schema), WriterSettings.of("zstd", None, 600)
    )
    rows: list[_Row] = []
    for partition, part in enumerate((table.slice(0, 40), table.slice(40))):
        sink = ShardSink(
            store,
            job.schema,
            prefix=f"{job.data_prefix}p{partition:05d}-a1-",
            settings=job.settings,
        )
        sink.write_batch(part)
        rows += [_Row(**r) for r in _result_batch(partition, 1, sink.close()).to_pylist()]
    finish_job(store, job, "append", previous, rows, {"source": "test"}, 0.0)


def test_every_failure_point_of_a_spark_commit_keeps_every_version(tmp_path: Path) -> None:
    base = _base(tmp_path)
    calls = _mutations(_job_append, base, tmp_path)
    first_commit = [op for op, _ in calls].index("write_new")
    for k in range(first_commit + 1, len(calls) + 1):  # the driver's requests
        path = tmp_path / f"job-{k}"
        shutil.copytree(base, path)
        store = FailingStore(LocalStore(path), fail_at=k)
        op, key = calls[k - 1]
        committed = op != "write_new"
        if committed:
            _job_append(store)  # index.json or the job marker failed: still committed
        else:
            with pytest.raises(OSError, match="injected"):
                _job_append(store)
        assert _check_every_version_reads(path) == ([1, 2] if committed else [1]), (k, op, key)
        assert _referenced(path) <= _data_files(path), f"failure {k} ({op} {key}) lost files"
        _finish_afterwards(path)
