"""Concurrent ShardWriters on S3 (moto): the conditional commit lets one win, loses nothing.

Writing and appending end to end on every cloud (ShardWriter and Spark) is in
tests/sparkshard/storage/test_end_to_end_clouds.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from loader import DatasetReader
from sparkshard import ShardWriter, VersionConflictError
from sparkshard.dataset.versions import VERSIONS_PREFIX, read_index
from sparkshard.storage import Store, open_store


def _mirror(store: Store, dest: Path) -> Path:
    """Copy every object of ``store`` into ``dest``: the local reader then reads it back."""
    for key in store.list():
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.read(key))
    return dest


def _ids(path: Path, version: int | None = None) -> list[int]:
    reader = DatasetReader(path, version=version, verify_hashes=True)
    return [int(reader.get(i)["id"]) for i in range(len(reader))]


def _table(start: int, n: int) -> pa.Table:
    ids = pa.array(range(start, start + n), pa.int64())
    return pa.table(
        {"id": ids, "text": pa.array([f"row {i}" * 3 for i in range(start, start + n)])}
    )


def test_concurrent_appenders_on_s3_one_wins_nothing_lost(s3_server: Any, tmp_path: Path) -> None:
    url = f"{s3_server.new_bucket()}/ds"
    options = s3_server.storage_options
    store = open_store(url, options)
    with ShardWriter(url, size_limit=4096, storage_options=options) as writer:
        writer.write_batch(_table(0, 100))
    # Both appenders read version 1 before either commits.
    writers = {
        name: ShardWriter(url, size_limit=4096, storage_options=options, mode="append")
        for name in ("a", "b")
    }
    writers["a"].write_batch(_table(1000, 200))
    writers["b"].write_batch(_table(2000, 300))
    barrier = threading.Barrier(2)
    outcome: dict[str, BaseException | int] = {}

    def close(name: str) -> None:
        barrier.wait()
        try:
            outcome[name] = writers[name].close().version
        except VersionConflictError as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=close, args=(n,)) for n in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, o in outcome.items() if o == 2]
    losers = [n for n, o in outcome.items() if isinstance(o, VersionConflictError)]
    assert len(winners) == 1 and len(losers) == 1, outcome
    assert "run it again" in str(outcome[losers[0]])
    # The loser's shards are gone; the winner's version is intact.
    assert set(store.list("data/")) == {s.stored.basename for s in read_index(store).shards}
    # Running the losing write again commits version 3 with everything, each row once.
    loser_rows = {"a": _table(1000, 200), "b": _table(2000, 300)}[losers[0]]
    with ShardWriter(url, size_limit=4096, storage_options=options, mode="append") as writer:
        writer.write_batch(loser_rows)
    assert writer.info.version == 3
    got = _ids(_mirror(store, tmp_path / "copy"))
    assert sorted(got) == [*range(100), *range(1000, 1200), *range(2000, 2300)]
    listed = store.list(VERSIONS_PREFIX)  # three records, each with its columnar form
    assert len([k for k in listed if k.endswith(".json")]) == 3
    assert len([k for k in listed if k.endswith(".columnar")]) == 3
