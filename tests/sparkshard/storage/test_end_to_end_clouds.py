"""Every flow end to end on every object store, each a real server on 127.0.0.1: s3://
(moto), gs:// (fake-gcs-server) and abfss:// (Azurite), through the ``cloud`` fixture.

ShardWriter streams shards out and commits versions; StreamingDataset streams them back
through a bounded cache, in this process and in two DataLoader workers; Spark writes from
its executors; the CLI tools inspect, verify and collect. What was written is read back
exactly once, value for value.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from clouds import CloudPlace

from loader import StreamingDataLoader, StreamingDataset
from loader.cache.directory import namespace_name
from sparkshard import ShardWriter
from sparkshard.cli import main
from sparkshard.dataset.versions import list_versions, read_index
from sparkshard.storage import Store, open_store


def _table(start: int, n: int) -> pa.Table:
    """Rows ``start .. start+n-1``; every value is a function of the id (see ``_read_back``)."""
    ids = np.arange(start, start + n)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "text": pa.array([f"row {i}" * (1 + i % 3) for i in ids]),
            "score": pa.array([None if i % 7 == 0 else i / 4 for i in ids], pa.float32()),
            "vec": pa.array([np.full(i % 4, i, np.float32) for i in ids], pa.list_(pa.float32())),
        }
    )


def _read_back(batches: Iterable[dict[str, Any]]) -> list[int]:
    """The ids of ``batches`` in order, after checking every value against ``_table``."""
    ids: list[int] = []
    for batch in batches:
        got = [int(i) for i in batch["id"].tolist()]
        assert batch["text"] == [f"row {i}" * (1 + i % 3) for i in got]
        assert batch["score"].tolist() == [None if i % 7 == 0 else i / 4 for i in got]
        for i, vec in zip(got, batch["vec"]):
            assert vec.dtype == np.float32 and vec.tolist() == [float(i)] * (i % 4), (i, vec)
        ids += got
    return ids


def _write(url: str, cloud: CloudPlace, start: int, n: int, mode: str, size: int = 2048) -> Any:
    with ShardWriter(
        url,
        mode=mode,  # type: ignore[arg-type]
        compression="zstd",
        size_limit=size,
        storage_options=cloud.storage_options,
    ) as writer:
        writer.write_batch(_table(start, n))
    return writer.info


def _shard_files(store: Store) -> set[str]:
    return {s.stored.basename for s in read_index(store).shards}


def _cached_bytes(cache: Path, url: str) -> int:
    return sum(p.stat().st_size for p in (cache / namespace_name(url) / "shards").iterdir())


def test_shard_writer_streams_shards_and_commits_versions(cloud: CloudPlace) -> None:
    url = cloud.url("datasets/ds")
    store = open_store(url, cloud.storage_options)
    options = cloud.storage_options
    with ShardWriter(url, compression="zstd", size_limit=2048, storage_options=options) as writer:
        for start in range(0, 600, 100):
            writer.write_batch(_table(start, 100))
        # Sealed shards are already in the bucket while the write is still open...
        assert store.list("data/"), "no shard was streamed out before close"
        # ...but nothing is published until it closes.
        assert not store.exists("index.json") and list_versions(store) == []
    first = writer.info
    assert first.version == 1 and first.num_samples == 600 and first.num_shards > 3
    second = _write(url, cloud, 600, 150, "append")
    assert second.version == 2 and second.num_samples == 750 and second.new_samples == 150
    assert list_versions(store) == [1, 2] and read_index(store).num_samples == 750
    index = read_index(store)
    assert all(s.stored.basename.endswith(".mds.zstd") for s in index.shards)
    assert _shard_files(store) == set(store.list("data/"))  # nothing orphaned


def test_streaming_dataset_reads_each_version_once_through_a_small_cache(
    cloud: CloudPlace, tmp_path: Path
) -> None:
    url, cache = cloud.url("ds"), tmp_path / "cache"
    _write(url, cloud, 0, 600, "error")
    _write(url, cloud, 600, 150, "append")
    shards = read_index(open_store(url, cloud.storage_options)).shards
    limit = 4 * max(s.raw_data.bytes for s in shards)
    assert sum(s.raw_data.bytes for s in shards) > 3 * limit  # the cache must evict

    def dataset(**kwargs: Any) -> StreamingDataset:
        return StreamingDataset(
            remote=url,
            local=str(cache),
            storage_options=cloud.storage_options,
            cache_limit=limit,
            shuffle=True,
            shuffle_block_size=100,  # batches mix ~2 shards: a small cache fits
            **kwargs,
        )

    latest = dataset(batch_size=25)  # 750 = 30 full batches: no padding, so exactly once
    ids = _read_back(latest.iter_batches())
    assert sorted(ids) == list(range(750)) and ids != sorted(ids)  # shuffled, each once
    assert _cached_bytes(cache, url) <= limit
    # The same cache serves the first version, pinned: only its 600 samples.
    ids = _read_back(dataset(batch_size=20, version=1).iter_batches())
    assert sorted(ids) == list(range(600))
    assert _cached_bytes(cache, url) <= limit
    # Index order is write order: version 1's rows, then the appended ones.
    assert [int(latest[i]["id"]) for i in range(0, 750, 50)] == list(range(0, 750, 50))


@pytest.mark.spark
def test_spark_writes_and_two_workers_stream_it(
    spark: Any, cloud: CloudPlace, tmp_path: Path
) -> None:
    from sparkshard import dataframe_to_shards

    url, options = cloud.url("spark/ds"), cloud.storage_options
    text = "concat('row ', CAST(id AS STRING)) AS text"
    df = spark.range(0, 3000, numPartitions=3).selectExpr("id", "id * 3 AS triple", text)
    info = dataframe_to_shards(df, url, size_limit="8KB", storage_options=options)
    assert info.version == 1 and info.num_samples == 3000 and info.num_shards >= 8
    df = spark.range(3000, 3500, numPartitions=2).selectExpr("id", "id * 3 AS triple", text)
    info = dataframe_to_shards(df, url, size_limit="8KB", storage_options=options, mode="append")
    assert info.version == 2 and info.num_samples == 3500
    store = open_store(url, options)
    # Executors streamed shards to the store and the driver committed them: nothing else.
    assert _shard_files(store) == set(store.list("data/"))
    limit = 6 * max(s.raw_data.bytes for s in read_index(store).shards)  # a few for 2 workers
    ds = StreamingDataset(
        remote=url,
        local=str(tmp_path / "cache"),
        storage_options=options,
        batch_size=50,  # 3500 = 70 full batches: no padding, so exactly once
        shuffle=True,
        shuffle_block_size=500,
        cache_limit=limit,
    )
    # This process has used the cloud client, whose I/O threads do not survive fork().
    assert ds.multiprocessing_context == "forkserver"
    loader = StreamingDataLoader(ds, num_workers=2)  # the loader picks forkserver itself
    assert loader.multiprocessing_context is not None
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    ids, triples, texts = [], [], []
    for batch in loader:
        ids += batch["id"].tolist()
        triples += batch["triple"].tolist()
        texts += batch["text"]
    assert sorted(ids) == list(range(3500))  # every sample exactly once
    assert triples == [3 * i for i in ids] and texts == [f"row {i}" for i in ids]
    assert _cached_bytes(tmp_path / "cache", url) <= limit


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tools_inspect_history_verify_and_collect(
    cloud: CloudPlace, capsys: pytest.CaptureFixture[str]
) -> None:
    url, flags = cloud.url("tools/ds"), cloud.cli_options()
    store = open_store(url, cloud.storage_options)
    _write(url, cloud, 0, 40, "error", size=512)  # 1
    _write(url, cloud, 40, 20, "append", size=512)  # 2: keeps version 1's shards
    _write(url, cloud, 100, 30, "overwrite", size=512)  # 3: only new shards
    code, out, _ = _run(capsys, "inspect", url, *flags)
    assert code == 0 and "version   3 of 1..3" in out and "[0] id=100, score=25.0" in out
    code, out, _ = _run(capsys, "history", url, *flags)
    cells = [line.split() for line in out.strip().splitlines()[1:]]
    assert code == 0 and [(c[0], c[2], c[3]) for c in cells] == [
        ("1", "error", "40"), ("2", "append", "60"), ("3", "overwrite", "30")
    ]  # fmt: skip
    code, out, _ = _run(capsys, "verify", url, "--all-versions", *flags)
    assert code == 0 and out.startswith("OK: ") and "version 1, 2, 3" in out
    # Orphans: one of a write that may still run, one of a job that has finished.
    orphan, marked = "data/0123456789ab-00000.mds", "data/ba9876543210-p00000-a1-00000.mds"
    store.write(orphan, b"fresh, unmarked: maybe a write in progress")
    store.write(marked, b"its job finished: an orphan for sure")
    store.write("_sparkshard/jobs/ba9876543210", b'{"state": "aborted"}')
    code, out, _ = _run(capsys, "gc", url, "--retain", "1", *flags)
    assert code == 0 and "would remove 2 old version(s)" in out and "--yes" in out
    assert list_versions(store) == [1, 2, 3]  # a dry run
    code, out, _ = _run(capsys, "gc", url, "--retain", "1", "--yes", *flags)
    assert code == 0 and "removed 2 old version(s)" in out and f"removed {marked}" in out
    # An object's age is unknown to gc on object storage: the unmarked orphan stays.
    assert f"kept {orphan}" in out and store.exists(orphan) and not store.exists(marked)
    assert list_versions(store) == [3] and _run(capsys, "verify", url, *flags)[0] == 0
    code, out, _ = _run(capsys, "gc", url, "--retain", "1", "--min-age", "0", "--yes", *flags)
    assert f"removed {orphan}" in out and "removed _sparkshard/jobs/ba9876543210" in out
    assert set(store.list("data/")) == _shard_files(store)
    # Damage on the store is named by verify.
    first, last = sorted(_shard_files(store))[0], sorted(_shard_files(store))[-1]
    data = bytearray(store.read(first))
    data[len(data) // 2] ^= 0x40
    store.write(first, bytes(data))
    store.delete(last)
    code, _, err = _run(capsys, "verify", url, *flags)
    assert code == 1 and "2 problem(s)" in err, err
    assert f"BROKEN {first}: " in err and "fails its xxh64 check" in err
    assert f"BROKEN {last}: " in err and "does not exist" in err


def test_pinned_reads_take_tails_and_ranges_on_every_store(cloud: CloudPlace) -> None:
    # What a table read in place asks of a store: a file's last n bytes (Azure refuses
    # suffix ranges: read there as a bounded range after a HEAD) and ranges pinned to the
    # ETag the tail returned.
    store = open_store(cloud.url("pinned"), cloud.storage_options)
    data = bytes(range(256)) * 40
    store.write("f.bin", data)
    tail, meta = store.read_pinned("f.bin", 100)
    assert tail == data[-100:] and meta["size"] == len(data)
    assert store.read_pinned("f.bin", 2 * len(data))[0] == data  # more than the object holds
    middle, _ = store.read_pinned("f.bin", (1000, 1300), meta["e_tag"])
    assert middle == data[1000:1300]
    store.write("empty.bin", b"")
    assert store.read_pinned("empty.bin", 10)[0] == b""
