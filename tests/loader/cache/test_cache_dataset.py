"""StreamingDataset(remote=..., local=...) over a file:// remote: the cache end to end.

The S3 versions of the end-to-end and fault tests are in test_cache_s3.py; these run the
same machinery without a server, so they can poke at the remote files directly.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from small_datasets import write_dataset

from loader.cache.directory import namespace_name
from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from loader.topology import Topology
from sparkshard import ShardWriter
from sparkshard.errors import CorruptShardError
from sparkshard.format.columnar_index import decode_columnar, source_digest
from sparkshard.format.index import DatasetIndex

N = 600


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    """600 samples in 10 zstd shards with xxh64 hashes, as a remote to stream from."""
    return write_dataset(tmp_path / "remote", N)


def _url(path: Path) -> str:
    return "file://" + str(path)


def _index(path: Path) -> dict[str, Any]:
    return json.loads((path / "index.json").read_text())  # type: ignore[no-any-return]


def _largest_raw(path: Path) -> int:
    return max(s["raw_data"]["bytes"] for s in _index(path)["shards"])


def _epoch(ds: StreamingDataset) -> dict[str, np.ndarray]:
    batches = list(ds.iter_batches())
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _shard_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/shards/*"))


def test_remote_epoch_equals_the_local_one_and_is_cached(remote_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    local = _epoch(StreamingDataset(local=str(remote_dir), batch_size=50, shuffle=True))
    ds = StreamingDataset(remote=_url(remote_dir), local=str(cache), batch_size=50, shuffle=True)
    streamed = _epoch(ds)
    assert sorted(streamed["id"].tolist()) == list(range(N))  # every sample exactly once
    for name in local:
        np.testing.assert_array_equal(streamed[name], local[name])
    stored = sum(s["zip_data"]["bytes"] for s in _index(remote_dir)["shards"])
    assert ds.io_counters() == {"bytes_read": N * 16, "bytes_downloaded": stored}
    assert len(_shard_files(cache)) == 10
    again = StreamingDataset(remote=_url(remote_dir), local=str(cache), batch_size=50)
    assert sorted(_epoch(again)["id"].tolist()) == list(range(N))
    assert again.io_counters()["bytes_downloaded"] == 0  # a warm cache downloads nothing


def test_workers_share_a_cache_of_a_few_shards(remote_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    limit = 6 * _largest_raw(remote_dir)  # 2 workers x (one read + one downloading), + 2
    ds = StreamingDataset(
        remote=_url(remote_dir), local=str(cache), batch_size=32, cache_limit=limit
    )
    assert ds[5]["id"] == 5  # the parent maps a shard before forking its workers
    assert ds.multiprocessing_context is None  # file:// needs no cloud client: fork is fine
    loader = StreamingDataLoader(ds, num_workers=2)
    ids = [int(i) for batch in loader for i in batch["id"]]
    assert sorted(ids) == list(range(N))  # one device: no padding, the last batch partial
    assert sum(p.stat().st_size for p in _shard_files(cache)) <= limit
    assert not list(cache.glob("*/fetch/*"))  # no fetch left behind


def test_a_cache_limit_too_small_to_progress_is_refused(remote_dir: Path, tmp_path: Path) -> None:
    largest = _largest_raw(remote_dir)
    with pytest.raises(ValueError, match=rf"too small to make progress.*>= {2 * largest}"):
        StreamingDataset(remote=_url(remote_dir), local=str(tmp_path), cache_limit=largest)
    with pytest.raises(ValueError, match="is not a size"):
        StreamingDataset(remote=_url(remote_dir), local=str(tmp_path), cache_limit="lots")
    # Enough for one process: not for two ranks on the node (refused at construction) ...
    with pytest.raises(ValueError, match=r"2 process\(es\) on this node"):
        StreamingDataset(
            remote=_url(remote_dir),
            local=str(tmp_path),
            cache_limit=2 * largest,
            topology=Topology.of_rank(0, 2, 2),
        )
    # ... nor for two DataLoader workers (refused when a worker starts reading).
    ds = StreamingDataset(
        remote=_url(remote_dir),
        local=str(tmp_path),
        batch_size=8,
        cache_limit=2 * largest,
        topology=Topology().with_worker(1, 2),
    )
    with pytest.raises(ValueError, match=r"2 process\(es\) on this node"):
        next(ds.iter_batches())


def test_a_cache_too_small_for_the_shuffle_block_refetches_and_says_so(
    remote_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 2 * _largest_raw(remote_dir)  # room to read one shard: every batch spans ten
    ds = StreamingDataset(
        remote=_url(remote_dir),
        local=str(tmp_path),
        batch_size=100,
        shuffle=True,
        cache_limit=limit,
    )
    with caplog.at_level(logging.WARNING, logger="loader.cache.reader"):
        ids = _epoch(ds)["id"]
    assert sorted(ids.tolist()) == list(range(N))  # slow, but right
    assert caplog.text.count("is downloaded again") == 1  # said once
    stored = sum(s["zip_data"]["bytes"] for s in _index(remote_dir)["shards"])
    assert ds.io_counters()["bytes_downloaded"] > 2 * stored


def test_local_data_is_never_written_to_nor_deleted(
    remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed local dataset (a read-only volume, say) is decompressed into a separate
    local cache, which cache_limit bounds; the dataset's own folder is never touched."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the default cache root
    before = sorted(
        (p.relative_to(remote_dir), p.stat().st_mtime_ns) for p in remote_dir.rglob("*")
    )
    remote_dir.chmod(0o555)
    for folder in remote_dir.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o555)
    try:
        limit = 3 * _largest_raw(remote_dir)
        with pytest.raises(ValueError, match=r"cache_limit=1 bytes is too small.*>= \d+"):
            StreamingDataset(local=str(remote_dir), batch_size=50, cache_limit=1)
        ds = StreamingDataset(local=str(remote_dir), batch_size=50, cache_limit=limit)
        assert sorted(_epoch(ds)["id"].tolist()) == list(range(N))
        cached = _shard_files(tmp_path / "tmp" / "sparkshard-cache")
        assert cached and sum(p.stat().st_size for p in cached) <= limit
        same = StreamingDataset(remote=str(remote_dir), local=str(remote_dir))
        assert sorted(_epoch(same)["id"].tolist()) == list(range(N))
    finally:
        for folder in [remote_dir, *remote_dir.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)
    after = sorted((p.relative_to(remote_dir), p.stat().st_mtime_ns) for p in remote_dir.rglob("*"))
    assert after == before  # nothing written, nothing deleted


def test_cache_limit_on_data_read_in_place_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    with ShardWriter(plain, compression=None) as writer:
        writer.write_batch(pa.table({"id": np.arange(10, dtype=np.int64)}))
    with pytest.raises(ValueError, match="uncompressed and read in place.*drop cache_limit"):
        StreamingDataset(local=str(plain), cache_limit="1GB")


def test_a_stale_cached_index_is_checked_against_the_remote(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A plain MDS dataset rewritten in place under the same file names, as Mosaic does.
    remote, cache = tmp_path / "remote", tmp_path / "cache"
    write_dataset(remote, 120)
    shutil.rmtree(remote / "_sparkshard")
    assert _epoch(StreamingDataset(remote=_url(remote), local=str(cache)))["label"].max() == 9
    newer = _rewritten_in_place(remote, tmp_path / "newer")
    with caplog.at_level(logging.INFO, logger="loader.cache.directory"):
        ds = StreamingDataset(remote=_url(remote), local=str(cache))
    assert "changed since it was cached" in caplog.text
    got = _epoch(ds)
    assert got["id"].tolist() == list(range(120)) and set(got["label"].tolist()) == {7}
    # The cache keeps the remote index as columns (derived from the JSON it just fetched).
    derived = decode_columnar(next(cache.glob("*/index/index.columnar")).read_bytes(), "cached")
    assert derived.index == DatasetIndex.from_json(newer, "newer")
    assert derived.source_digest == source_digest(newer.encode())


def _rewritten_in_place(remote: Path, scratch: Path) -> str:
    """Replace ``remote``'s shards by new content (every label 7) under the same names."""
    schema = pa.schema([pa.field("id", pa.int64(), False), pa.field("label", pa.int64(), False)])
    table = pa.table({"id": np.arange(120), "label": np.full(120, 7)}, schema=schema)
    with ShardWriter(scratch, size_limit=1500, compression="zstd") as writer:
        writer.write_batch(table)
    old, new = _index(remote), _index(scratch)
    assert len(old["shards"]) == len(new["shards"])
    for a, b in zip(old["shards"], new["shards"]):
        (scratch / b["zip_data"]["basename"]).replace(remote / a["zip_data"]["basename"])
        for part in ("raw_data", "zip_data"):
            b[part]["basename"] = a[part]["basename"]
    text = json.dumps({"shards": new["shards"], "version": 2}, sort_keys=True)
    (remote / "index.json").write_text(text)
    return text


def _flip_byte(path: Path) -> bytes:
    data = path.read_bytes()
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    return data


def test_a_corrupt_download_is_refetched_then_named(
    remote_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shard = _index(remote_dir)["shards"][3]["zip_data"]
    _flip_byte(remote_dir / shard["basename"])
    ds = StreamingDataset(remote=_url(remote_dir), local=str(tmp_path), download_retry=2)
    with (
        caplog.at_level(logging.WARNING, logger="loader.cache.fetcher"),
        pytest.raises(CorruptShardError) as info,
    ):
        ds[200]  # in shard 3
    message = str(info.value)
    assert shard["basename"] in message and _url(remote_dir) in message
    assert "could not download" not in message and "corrupt" in message  # damaged, not lost
    assert "xxh64" in message and "after 3 attempts" in message
    assert caplog.text.count("refetching") == 3
    assert ds.io_counters()["bytes_downloaded"] == 3 * shard["bytes"]


def test_a_transient_corruption_is_cured_by_refetching(remote_dir: Path, tmp_path: Path) -> None:
    shard = _index(remote_dir)["shards"][3]["zip_data"]
    path = remote_dir / shard["basename"]
    original = _flip_byte(path)

    class Repair(logging.Handler):  # runs in the fetch thread, before the retry
        def emit(self, record: logging.LogRecord) -> None:
            if "refetching" in record.getMessage():
                path.write_bytes(original)

    handler = Repair(logging.WARNING)
    logging.getLogger("loader.cache.fetcher").addHandler(handler)
    try:
        ds = StreamingDataset(remote=_url(remote_dir), local=str(tmp_path), batch_size=50)
        assert sorted(_epoch(ds)["id"].tolist()) == list(range(N))
    finally:
        logging.getLogger("loader.cache.fetcher").removeHandler(handler)
    stored = sum(s["zip_data"]["bytes"] for s in _index(remote_dir)["shards"])
    assert ds.io_counters()["bytes_downloaded"] == stored + shard["bytes"]  # one refetch


def test_verify_hashes_false_skips_the_check(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    with ShardWriter(remote, columns={"id": "int64"}, compression=None, size_limit=400) as w:
        for i in range(100):
            w.write({"id": i})
    shard = _index(remote)["shards"][0]["raw_data"]
    _flip_byte(remote / shard["basename"])
    with pytest.raises(CorruptShardError, match="xxh64"):
        StreamingDataset(remote=_url(remote), local=str(tmp_path / "a"), download_retry=0)[0]
    unchecked = StreamingDataset(
        remote=_url(remote), local=str(tmp_path / "b"), verify_hashes=False, batch_size=10
    )
    assert len(_epoch(unchecked)["id"]) == 100  # the damaged value is read as it is


def test_a_shard_deleted_mid_epoch_is_named(remote_dir: Path, tmp_path: Path) -> None:
    ds = StreamingDataset(
        remote=_url(remote_dir), local=str(tmp_path), batch_size=60, prefetch_bytes=1
    )
    batches = ds.iter_batches()
    next(batches)
    last = _index(remote_dir)["shards"][-1]["zip_data"]["basename"]
    (remote_dir / last).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{last} is missing from file://.*changed or"):
        list(batches)


def test_two_datasets_share_one_cache_directory(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a", 200)
    second = write_dataset(tmp_path / "b" / "a", 300)  # same last path part, other data
    cache = tmp_path / "cache"
    largest = max(_largest_raw(first), _largest_raw(second))
    one = StreamingDataset(remote=_url(first), local=str(cache), batch_size=20)
    two = StreamingDataset(
        remote=_url(second), local=str(cache), batch_size=20, cache_limit=3 * largest
    )
    assert sorted(_epoch(one)["id"].tolist()) == list(range(200))
    assert sorted(_epoch(two)["id"].tolist()) == list(range(300))
    spaces = sorted(p.name for p in cache.iterdir())
    assert len(spaces) == 2 and all(name.startswith("a-") for name in spaces)
    one_files = list((cache / namespace_name(_url(first)) / "shards").iterdir())
    two_files = list((cache / namespace_name(_url(second)) / "shards").iterdir())
    assert len(one_files) == len(_index(first)["shards"])  # untouched by the other's limit
    assert sum(p.stat().st_size for p in two_files) <= 3 * largest


def test_a_pinned_version_streams_that_version(remote_dir: Path, tmp_path: Path) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), False), pa.field("label", pa.int64(), False)])
    more = pa.table({"id": [N], "label": [11]}, schema=schema)
    with ShardWriter(remote_dir, mode="append") as writer:
        writer.write_batch(more)
    latest = StreamingDataset(remote=_url(remote_dir), local=str(tmp_path))
    pinned = StreamingDataset(remote=_url(remote_dir), local=str(tmp_path), version=1)
    assert (latest.version, latest.num_samples) == (2, N + 1)
    assert (pinned.version, pinned.num_samples) == (1, N)


def _leased(cache: Path) -> list[str]:
    """Cached shard files some reader holds (a shared lock), so no eviction can take them."""
    held = []
    for path in _shard_files(cache):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(path.name)
        finally:
            os.close(fd)
    return held


def test_a_finished_epoch_leaves_the_cache_to_other_readers(
    remote_dir: Path, tmp_path: Path
) -> None:
    """A dataset that has read its epoch holds no shard: a second one on the same small cache
    (another version, an evaluation pass) gets all the room, instead of waiting for it."""
    cache, limit = tmp_path / "cache", 3 * _largest_raw(remote_dir)

    def dataset(**kwargs: Any) -> StreamingDataset:
        return StreamingDataset(
            remote=_url(remote_dir), local=str(cache), cache_limit=limit, download_timeout=1,
            download_retry=0, **kwargs,
        )  # fmt: skip

    first = dataset(batch_size=50)
    assert sorted(_epoch(first)["id"].tolist()) == list(range(N))
    assert _leased(cache) == []
    second = dataset(batch_size=40, shuffle=True)
    assert sorted(_epoch(second)["id"].tolist()) == list(range(N))
    assert _leased(cache) == [] and sum(p.stat().st_size for p in _shard_files(cache)) <= limit
    # The next epoch opens its shards again; sample by sample, it lets go of them too.
    assert sorted(int(sample["id"]) for sample in first) == list(range(N))
    assert _leased(cache) == []


@pytest.mark.parametrize("how", ["break", "close", "error"])
def test_an_abandoned_epoch_leaves_the_cache_to_other_readers(
    remote_dir: Path, tmp_path: Path, how: str
) -> None:
    """Train, break out, open another dataset on the same cache in the same process (what a
    notebook or a train-then-evaluate script does): the abandoned epoch's leases and threads
    are gone, so the new reader gets room instead of a CacheTimeoutError."""
    cache, limit = tmp_path / "cache", 3 * _largest_raw(remote_dir)

    def dataset(**kwargs: Any) -> StreamingDataset:
        return StreamingDataset(
            remote=_url(remote_dir), local=str(cache), cache_limit=limit, download_timeout=1,
            download_retry=0, **kwargs,
        )  # fmt: skip

    first = dataset(batch_size=50, shuffle=True)
    if how == "break":
        for _ in StreamingDataLoader(first, batch_size=50):
            break  # the loader's iterator is dropped here
    elif how == "close":
        batches = first.iter_batches()
        next(batches)
        batches.close()
    else:
        with pytest.raises(RuntimeError, match="stop"):
            for _ in first.iter_batches():
                raise RuntimeError("stop")
    assert _leased(cache) == []
    del first
    second = dataset(batch_size=40)
    assert sorted(_epoch(second)["id"].tolist()) == list(range(N))
