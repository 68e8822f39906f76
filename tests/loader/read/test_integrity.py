"""Shards are verified by default, once per process, and reading never writes a byte.

A flipped byte anywhere (a local raw shard, a compressed one, a cached copy) is an error
naming the file, or, for a cached copy, a refetch. ``verify_hashes=False`` is the explicit
opt-out. Compressed datasets are read without writing into their folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from loader import DatasetReader, StreamingDataset
from sparkshard import CorruptShardError, ShardWriter
from sparkshard.format.shard import read_offsets


def _write(path: Path, compression: str | None) -> Path:
    ids = np.arange(300, dtype=np.int64)
    with ShardWriter(path, compression=compression, size_limit=2000) as writer:
        writer.write_batch(pa.table({"id": ids, "x": ids * 2}))
    return path


def _first(path: Path, kind: str = "zip_data") -> Path:
    shard = json.loads((path / "index.json").read_text())["shards"][0]
    return path / (shard[kind] or shard["raw_data"])["basename"]


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - 3 if at is None else at] ^= 0x01  # a payload byte, far from the header
    path.write_bytes(bytes(data))


def _files(path: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(path)), p.stat().st_mtime_ns) for p in path.rglob("*"))


def test_a_flipped_byte_in_a_raw_local_shard_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "raw", None)
    shard = _first(path)
    _flip(shard)
    with pytest.raises(CorruptShardError, match=f"{shard.name} fails its xxh64 check"):
        DatasetReader(path).get(0)
    ds = StreamingDataset(local=str(path), batch_size=10)
    with pytest.raises(CorruptShardError, match=shard.name):
        next(iter(ds.iter_batches()))
    # The explicit opt-out reads what is there (the flipped value comes back as it is).
    values = DatasetReader(path, verify_hashes=False).get_batch(np.arange(300))["x"]
    assert (values != np.arange(300) * 2).sum() == 1


def test_a_damaged_compressed_shard_writes_nothing_and_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "zstd", "zstd")
    before = _files(path)
    assert DatasetReader(path).get_batch(np.arange(300))["id"].tolist() == list(range(300))
    assert _files(path) == before  # decompressed in memory, never beside the shards
    shard = _first(path)
    _flip(shard)
    before = _files(path)
    with pytest.raises(CorruptShardError, match=f"{shard.name}"):
        DatasetReader(path).get(0)
    assert _files(path) == before  # no corrupt .mds left behind either


def test_a_damaged_cached_copy_is_fetched_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote = _write(tmp_path / "remote", "zstd")
    cache = tmp_path / "cache"
    url = f"file://{remote}"
    first = StreamingDataset(remote=url, local=str(cache), batch_size=50)
    assert sorted(i for b in first.iter_batches() for i in b["id"].tolist()) == list(range(300))
    cached = sorted((cache).rglob("shards/*"))
    assert cached
    _flip(cached[0])
    with caplog.at_level(logging.WARNING, logger="loader.cache.reader"):
        again = StreamingDataset(remote=url, local=str(cache), batch_size=50)
        ids = [i for b in again.iter_batches() for i in b["id"].tolist()]
        xs = [x for b in again.iter_batches() for x in b["x"].tolist()]
    assert sorted(ids) == list(range(300)) and sorted(xs) == [2 * i for i in range(300)]
    assert "is damaged" in caplog.text and "fetching it again" in caplog.text


def test_offset_errors_say_what_is_wrong(tmp_path: Path) -> None:
    shard = _first(_write(tmp_path / "raw", None))
    data = bytearray(shard.read_bytes())
    count = int(np.frombuffer(bytes(data[:4]), "<u4")[0])
    # Sample 1 claims to start before sample 0: the end still matches the file's size.
    data[8:12] = np.array([10], "<u4").tobytes()
    with pytest.raises(CorruptShardError, match="offset of sample 0 points outside") as info:
        read_offsets(memoryview(bytes(data)), count, shard.name)
    assert "but the file has" not in str(info.value)
    with pytest.raises(CorruptShardError, match=r"offsets end at \d+ but the file has \d+"):
        read_offsets(memoryview(bytes(data[:-5])), count, shard.name)


def test_a_loader_hashes_each_raw_shard_once_across_workers_and_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loader.read.reader as reader_module
    from loader import StreamingDataLoader

    path = _write(tmp_path / "raw", None)
    log = tmp_path / "hashed"
    check = reader_module.check_local_file

    def logged(file: Path, info: object) -> None:  # forked workers inherit the patch
        with open(log, "a") as f:
            f.write(f"{Path(file).name}\n")
        check(file, info)  # type: ignore[arg-type]

    monkeypatch.setattr(reader_module, "check_local_file", logged)
    ds = StreamingDataset(local=str(path), batch_size=10, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=10, num_workers=2, multiprocessing_context="fork")
    for _ in range(2):  # two epochs: two sets of workers
        assert sorted(i for b in loader for i in b["id"].tolist()) == list(range(300))
    shards = sorted(p.name for p in path.rglob("*.mds"))
    assert len(shards) > 2 and sorted(log.read_text().split()) == shards


def test_a_flipped_byte_is_named_through_workers(tmp_path: Path) -> None:
    from loader import StreamingDataLoader

    path = _write(tmp_path / "raw", None)
    shard = _first(path)
    _flip(shard)
    ds = StreamingDataset(local=str(path), batch_size=10, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=10, num_workers=2)
    with pytest.raises(CorruptShardError, match=f"{shard.name} fails its xxh64 check"):
        for _ in loader:
            pass


@pytest.mark.parametrize("context", ["fork", "forkserver"])
def test_workers_record_their_checks_where_the_next_epoch_sees_them(
    tmp_path: Path, context: str
) -> None:
    from loader import StreamingDataLoader

    path = _write(tmp_path / "raw", None)
    ds = StreamingDataset(local=str(path), batch_size=10, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=10, num_workers=2, multiprocessing_context=context)
    ledger = ds._reader._ledger  # the dataset's own reader: its workers' checks land here
    shards = len(ds._reader.shard_sizes)
    assert not any(ledger.checked(i) for i in range(shards))
    assert sorted(i for b in loader for i in b["id"].tolist()) == list(range(300))
    assert all(ledger.checked(i) for i in range(shards))
