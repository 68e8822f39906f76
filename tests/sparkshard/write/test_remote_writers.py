"""ShardWriter and the Spark writer on S3 (moto): streamed shards, conditional commits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loader import DatasetReader
from sparkshard import ShardWriter, VersionConflictError
from sparkshard.dataset.versions import VERSIONS_PREFIX, list_versions, read_index
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


def test_shard_writer_streams_commits_and_appends_on_s3(s3_server: Any, tmp_path: Path) -> None:
    url = f"{s3_server.new_bucket()}/datasets/ds"
    options = s3_server.storage_options
    store = open_store(url, options)
    with ShardWriter(url, size_limit=2048, storage_options=options) as writer:
        for start in range(0, 600, 100):
            writer.write_batch(_table(start, 100))
        # Sealed shards are already in the bucket while the write is still open...
        assert store.list("data/"), "no shard was streamed out before close"
        # ...but nothing is published until it closes.
        assert not store.exists("index.json") and list_versions(store) == []
    first = writer.info
    assert first.version == 1 and first.num_samples == 600 and first.num_shards > 3
    with ShardWriter(url, size_limit=2048, storage_options=options, mode="append") as writer:
        writer.write_batch(_table(600, 150))
    assert writer.info.version == 2 and writer.info.num_samples == 750
    assert list_versions(store) == [1, 2]
    assert read_index(store).num_samples == 750
    local = _mirror(store, tmp_path / "copy")
    assert _ids(local) == list(range(750))
    assert _ids(local, version=1) == list(range(600))
    shards = {s.stored.basename for s in read_index(store).shards}
    assert set(store.list("data/")) == shards  # nothing orphaned


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
    assert len(store.list(VERSIONS_PREFIX)) == 3


@pytest.mark.spark
def test_spark_writes_to_s3(spark: Any, s3_server: Any, tmp_path: Path) -> None:
    from sparkshard import dataframe_to_shards

    url = f"{s3_server.new_bucket()}/spark/ds"
    options = s3_server.storage_options
    df = spark.range(0, 3000, numPartitions=3).selectExpr("id", "repeat('x', 50) AS text")
    info = dataframe_to_shards(df, url, size_limit="16KB", storage_options=options)
    assert info.num_samples == 3000 and info.num_shards >= 6
    df2 = spark.range(3000, 3500, numPartitions=2).selectExpr("id", "repeat('y', 50) AS text")
    info = dataframe_to_shards(df2, url, size_limit="16KB", storage_options=options, mode="append")
    assert info.version == 2 and info.num_samples == 3500
    store = open_store(url, options)
    # Executors streamed shards to S3 and the driver committed them: nothing else is left.
    shards = {s.stored.basename for s in read_index(store).shards}
    assert set(store.list("data/")) == shards
    assert sorted(_ids(_mirror(store, tmp_path / "copy"))) == list(range(3500))
