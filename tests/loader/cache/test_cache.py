"""ShardCache: LRU eviction within the limit, leases across processes, crash leftovers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_datasets import write_dataset

from loader.cache.directory import ShardCache
from loader.cache.eviction import CacheEntry, eviction_victims
from loader.cache.fetcher import ShardFetcher
from loader.options import DownloadOptions
from sparkshard.dataset.versions import read_index
from sparkshard.errors import CorruptShardError
from sparkshard.format.compression import parse_compression
from sparkshard.format.index import ShardRecord
from sparkshard.storage import Store, open_store

CHILD = Path(__file__).with_name("cache_child.py")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A dataset of 8 compressed shards, served through file:// as a remote."""
    return "file://" + str(write_dataset(tmp_path_factory.mktemp("remote") / "ds", 480))


def _records(remote: str) -> tuple[Store, list[ShardRecord]]:
    store = open_store(remote)
    return store, list(read_index(store).shards)


def _raw(store: Store, record: ShardRecord) -> bytes:
    data = store.read(record.stored.basename)
    compression = parse_compression(record.compression)
    return compression.decompress(data) if compression and record.zip_data else data


def _fetcher(local: Path, remote: str, limit: int | None) -> ShardFetcher:
    store = open_store(remote)
    return ShardFetcher(store, ShardCache(local, remote, limit), DownloadOptions(retries=0))


# --- the pure choice ----------------------------------------------------------------------
entries_st = st.lists(
    st.tuples(st.integers(1, 100), st.integers(0, 20), st.booleans()), max_size=12
).map(
    lambda rows: (
        [CacheEntry(f"k{i}", size, used) for i, (size, used, _) in enumerate(rows)],
        {f"k{i}" for i, (_, _, held) in enumerate(rows) if held},
    )
)


@given(entries_st, st.integers(0, 600))
def test_victims_are_the_shortest_lru_prefix_of_what_nobody_holds(
    table: tuple[list[CacheEntry], set[str]], to_free: int
) -> None:
    entries, held = table
    victims = eviction_victims(entries, to_free, held)
    free = sorted((e for e in entries if e.key not in held), key=lambda e: (e.last_used, e.key))
    assert victims == free[: len(victims)]  # never a held one; least recently used first
    freed = sum(v.size for v in victims)
    if sum(e.size for e in free) >= to_free:
        assert freed >= to_free
        assert not victims or freed - victims[-1].size < to_free  # no more than needed
    else:
        assert victims == free  # everything evictable, and still short


# --- the real cache, one process ----------------------------------------------------------
ops_st = st.lists(
    st.tuples(st.sampled_from(["fetch", "hold", "release"]), st.integers(0, 7)), max_size=25
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops_st, st.integers(0, 2))
def test_cache_stays_within_its_limit_and_spares_leased_shards(
    remote: str, ops: list[tuple[str, int]], spare: int
) -> None:
    store, records = _records(remote)
    largest = max(r.raw_data.bytes for r in records)
    max_held = 2
    limit = (max_held + 1 + spare) * largest
    expected = {i: _raw(store, r) for i, r in enumerate(records)}
    with tempfile.TemporaryDirectory() as local:
        fetcher = _fetcher(Path(local), remote, limit)
        cache = fetcher.cache
        leases: dict[int, object] = {}
        for op, i in ops:
            record = records[i]
            if op == "fetch":
                fetcher.fetch(record)
                assert cache.has(record)
            elif op == "hold" and len(leases) < max_held and i not in leases:
                fetcher.fetch(record)
                lease = cache.lease(record)
                assert lease is not None
                leases[i] = lease
            elif op == "release" and leases:
                leases.pop(next(iter(leases))).close()  # type: ignore[attr-defined]
            assert cache.usage() <= limit
            for j in leases:  # a leased shard is never evicted
                assert cache.path(records[j]).read_bytes() == expected[j]
            for entry in cache.entries():  # whatever is cached is whole and correct
                k = next(k for k, r in enumerate(records) if cache.path(r).name == entry.key)
                assert cache.path(records[k]).read_bytes() == expected[k]
        for lease in leases.values():
            lease.close()  # type: ignore[attr-defined]


def test_fetch_places_the_decompressed_verified_shard(remote: str, tmp_path: Path) -> None:
    store, records = _records(remote)
    fetcher = _fetcher(tmp_path, remote, None)
    assert fetcher.fetch(records[3]) is True
    assert fetcher.fetch(records[3]) is False  # already there: no second download
    assert fetcher.cache.path(records[3]).read_bytes() == _raw(store, records[3])
    assert fetcher.bytes_downloaded == records[3].stored.bytes
    assert not list((fetcher.cache.root / "fetch").iterdir())  # no leftovers


def test_a_shard_without_a_stored_hash_is_checked_by_its_raw_hash(
    remote: str, tmp_path: Path
) -> None:
    """An index may record hashes of the raw shards only: a stored file that decompresses
    to other bytes of the right size is then refused by the raw hash, never placed."""
    store, records = _records(remote)
    record = records[2]
    compression = parse_compression(record.compression)
    assert compression is not None and record.zip_data is not None and record.raw_data.hashes
    raw = bytearray(_raw(store, record))
    raw[len(raw) // 2] ^= 0xFF  # other bytes, the same raw size
    forged = compression.compress(bytes(raw))
    served = tmp_path / "remote"
    shutil.copytree(remote.removeprefix("file://"), served)
    (served / record.stored.basename).write_bytes(forged)
    unhashed = replace(record, zip_data=replace(record.zip_data, bytes=len(forged), hashes={}))
    fetcher = _fetcher(tmp_path / "local", "file://" + str(served), None)
    with pytest.raises(CorruptShardError, match="fails its .* check"):
        fetcher.fetch(unhashed)
    assert not fetcher.cache.path(unhashed).exists()
    bare = replace(unhashed, raw_data=replace(record.raw_data, hashes={}))
    assert fetcher.fetch(bare)  # no hash to check it by: placed as it decompresses
    assert fetcher.cache.path(bare).read_bytes() == bytes(raw)


# --- several processes --------------------------------------------------------------------
@contextmanager
def _child(mode: str, local: Path, remote: str, shard: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), mode, str(local), remote, str(shard)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line in ("held", "fetching"), f"child failed: {line!r}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_a_shard_another_process_reads_is_never_evicted(remote: str, tmp_path: Path) -> None:
    _, records = _records(remote)
    largest = max(r.raw_data.bytes for r in records)
    fetcher = _fetcher(tmp_path, remote, 3 * largest)
    cache = fetcher.cache
    fetcher.fetch(records[0])
    with _child("hold", tmp_path, remote, 0) as child:
        for record in records[1:]:  # each fetch must evict something, never shard 0
            fetcher.fetch(record)
            assert cache.has(records[0])
            assert cache.usage() <= cache.limit  # type: ignore[operator]
        assert child.stdin is not None
        child.stdin.close()  # the child releases its lease and exits
        assert child.wait(timeout=30) == 0
    for record in records[1:4]:
        fetcher.fetch(record)
    assert not cache.has(records[0])  # no longer read by anyone: evicted as the oldest


def test_a_killed_fetcher_leaves_nothing_that_blocks(remote: str, tmp_path: Path) -> None:
    store, records = _records(remote)
    fetcher = _fetcher(tmp_path, remote, 4 * max(r.raw_data.bytes for r in records))
    cache = fetcher.cache
    with _child("fetching", tmp_path, remote, 2) as child:
        assert cache.usage() >= records[2].raw_data.bytes  # its reservation counts while alive
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    leftovers = sorted(p.name for p in (cache.root / "fetch").iterdir())
    assert leftovers and any(name.endswith(".tmp") for name in leftovers)
    assert cache.usage() == 0  # the dead reservation is gone, and its partial file
    assert not list((cache.root / "fetch").iterdir())
    assert fetcher.fetch(records[2]) is True  # not blocked by the dead process's lock
    assert cache.path(records[2]).read_bytes() == _raw(store, records[2])


def test_a_dead_fetchers_lock_does_not_block_the_same_shard(remote: str, tmp_path: Path) -> None:
    store, records = _records(remote)
    fetcher = _fetcher(tmp_path, remote, None)
    with _child("fetching", tmp_path, remote, 5) as child:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert fetcher.fetch(records[5]) is True  # straight away: the lock died with its owner
    assert fetcher.cache.path(records[5]).read_bytes() == _raw(store, records[5])


def test_opening_the_cache_sweeps_locks_of_fetchers_that_died_after_placing(
    remote: str, tmp_path: Path
) -> None:
    store, records = _records(remote)
    fetcher = _fetcher(tmp_path, remote, None)
    assert fetcher.fetch(records[3]) is True
    # A fetcher killed between renaming its shard into place and removing its lock (no
    # process holds the lock): the shard is cached, so nobody would fetch it again.
    lock = fetcher.cache.root / "fetch" / fetcher.cache.path(records[3]).name
    lock.write_text(str(records[3].raw_data.bytes))
    ShardCache(tmp_path, remote, None)  # the next run opens the cache
    assert not lock.exists()
    assert fetcher.cache.path(records[3]).read_bytes() == _raw(store, records[3])
