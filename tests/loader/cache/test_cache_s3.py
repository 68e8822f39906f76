"""Streaming from a real S3 server (moto on 127.0.0.1) under faults: restarts, kills, damage.

Streaming end to end on every cloud (from Spark, through two workers and a small cache) is
in tests/sparkshard/storage/test_end_to_end_clouds.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from servers import MotoServer, serving

from loader.cache.directory import namespace_name
from loader.dataset import StreamingDataset
from sparkshard import ShardWriter
from sparkshard.dataset.versions import read_index
from sparkshard.errors import CorruptShardError
from sparkshard.storage import open_store

CHILD = Path(__file__).with_name("cache_child.py")


def _write(url: str, options: dict[str, Any], rows: int, value_bytes: int) -> None:
    """``rows`` samples ``{id, blob}`` of random bytes, in uncompressed 64 KiB shards."""
    rng = np.random.default_rng(0)
    with ShardWriter(
        url,
        columns={"id": "int64", "blob": "bytes"},
        compression=None,
        size_limit=64 << 10,
        storage_options=options,
    ) as writer:
        for i in range(rows):
            writer.write({"id": i, "blob": rng.bytes(value_bytes)})


@pytest.fixture
def own_server() -> Iterator[MotoServer]:
    """A moto server this test may stop and restart on the same port."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    with serving(MotoServer()) as server:
        yield server


def test_download_retries_ride_out_a_server_restart(
    own_server: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, options = f"{own_server.new_bucket()}/ds", own_server.storage_options
    _write(url, options, 200, 4000)
    fast_fail = {**options, "max_retries": 0, "timeout": "2s", "connect_timeout": "1s"}
    ds = StreamingDataset(
        remote=url,
        local=str(tmp_path),
        storage_options=fast_fail,  # no retries inside the client: ours must do it
        batch_size=20,
        prefetch_bytes=1,
        download_retry=8,
    )
    batches = ds.iter_batches()
    ids = next(batches)["id"].tolist()
    own_server.stop()
    restart = threading.Timer(1.5, own_server.start)
    restart.start()
    try:
        with caplog.at_level(logging.WARNING, logger="loader.cache.fetcher"):
            ids += [i for batch in batches for i in batch["id"].tolist()]
    finally:
        restart.join()
    assert ids == list(range(200))
    assert "failed" in caplog.text and "retrying" in caplog.text  # the outage was hit


def test_a_process_killed_mid_download_leaves_a_usable_cache(
    s3_server: Any, tmp_path: Path
) -> None:
    url, options = f"{s3_server.new_bucket()}/ds", s3_server.storage_options
    _write(url, options, 960, 16000)  # 240 shards of 64 KiB: the child cannot finish first
    cache = tmp_path / "cache"
    settings = json.dumps({"storage_options": options, "download_threads": 2})
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "stream", str(cache), url, settings],
        stdout=subprocess.DEVNULL,
    )
    fetching = cache / namespace_name(url) / "fetch"
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            if fetching.exists() and any(not p.name.endswith(".tmp") for p in fetching.iterdir()):
                os.kill(child.pid, signal.SIGKILL)  # in the middle of a download
                break
            time.sleep(0.0005)
    finally:
        if child.poll() is None:
            child.kill()
        returncode = child.wait()
    assert returncode == -signal.SIGKILL, "the child finished before it could be killed"
    ds = StreamingDataset(remote=url, local=str(cache), storage_options=options, batch_size=24)
    batches = list(ds.iter_batches())
    assert [i for b in batches for i in b["id"].tolist()] == list(range(960))
    assert all(len(blob) == 16000 for b in batches for blob in b["blob"])
    assert not list(fetching.iterdir())  # the dead download's lock and data are gone


def test_a_flipped_byte_in_s3_is_refetched_then_named(s3_server: Any, tmp_path: Path) -> None:
    url, options = f"{s3_server.new_bucket()}/ds", s3_server.storage_options
    schema = pa.schema([pa.field("id", pa.int64(), False)])
    with ShardWriter(url, size_limit=800, storage_options=options) as writer:
        writer.write_batch(pa.table({"id": np.arange(300)}, schema=schema))
    store = open_store(url, options)
    key = read_index(store).shards[1].stored.basename
    data = bytearray(store.read(key))
    data[len(data) // 2] ^= 0x01
    store.write(key, bytes(data))
    ds = StreamingDataset(
        remote=url, local=str(tmp_path), storage_options=options, download_retry=1
    )
    with pytest.raises(CorruptShardError, match=rf"{key} downloaded from {url}/{key}.*2 attempts"):
        list(ds)
    assert ds.io_counters()["bytes_downloaded"] >= 2 * len(data)


def test_a_shard_deleted_from_s3_mid_epoch_is_named(s3_server: Any, tmp_path: Path) -> None:
    url, options = f"{s3_server.new_bucket()}/ds", s3_server.storage_options
    schema = pa.schema([pa.field("id", pa.int64(), False)])
    with ShardWriter(url, size_limit=800, storage_options=options) as writer:
        writer.write_batch(pa.table({"id": np.arange(300)}, schema=schema))
    ds = StreamingDataset(
        remote=url, local=str(tmp_path), storage_options=options, batch_size=20, prefetch_bytes=1
    )
    batches = ds.iter_batches()
    next(batches)
    store = open_store(url, options)
    key = read_index(store).shards[-1].stored.basename
    store.delete(key)
    with pytest.raises(FileNotFoundError, match=rf"{key} is missing from {url}/{key}: the remote"):
        list(batches)
