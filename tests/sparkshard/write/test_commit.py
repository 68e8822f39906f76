"""The commit protocol's clean-up, without Spark (the Spark tests run it end to end)."""

from __future__ import annotations

import json
from pathlib import Path

from sparkshard.format.schema import Schema
from sparkshard.storage import LocalStore, staging_files
from sparkshard.storage._local import _staged
from sparkshard.write.commit import Job, clean_up
from sparkshard.write.settings import WriterSettings


def _job(token: str) -> Job:
    settings = WriterSettings(None, (), 1024)
    return Job("unused", None, token, Schema.from_encodings({"id": "int64"}), settings)


def test_clean_up_removes_orphans_and_half_written_staging_files(tmp_path: Path) -> None:
    store, job = LocalStore(tmp_path), _job("0123456789ab")
    kept, orphan = f"{job.data_prefix}p00000-a1-00000.mds", f"{job.data_prefix}p00000-a2-00000.mds"
    other = "data/ba9876543210-p00000-a1-00000.mds"  # another job's: not ours to judge
    for key in (kept, orphan, other):
        store.write(key, b"shard")
    with (
        _staged(tmp_path / f"{job.data_prefix}p00001-a3-00002.mds", b"half"),  # a killed write
        _staged(tmp_path / other.replace("-00000", "-00001"), b"half") as theirs,
    ):
        clean_up(store, job, {kept})
        assert store.list("data/") == sorted([kept, other])
        assert list(staging_files(store)) == [theirs.relative_to(tmp_path).as_posix()]
    assert json.loads(store.read(job.marker)) == {"state": "committed"}


def test_a_failed_job_removes_all_it_wrote(tmp_path: Path) -> None:
    store, job = LocalStore(tmp_path), _job("0123456789ab")
    store.write(f"{job.data_prefix}p00000-a1-00000.mds", b"shard")
    with _staged(tmp_path / f"{job.data_prefix}p00000-a1-00001.mds", b"half"):
        clean_up(store, job, None)
        assert store.list("data/") == [] and staging_files(store) == {}
    assert json.loads(store.read(job.marker)) == {"state": "aborted"}
