"""A full local disk under the shard cache is reported as such, not as a corrupt remote."""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from loader import StreamingDataset
from sparkshard import CorruptShardError, ShardWriter


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 160 KiB file system (tmpfs) to put the cache on: it fills up for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_cache_disk_says_so_and_cleans_up(small_disk: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    rows = np.random.default_rng(0).integers(0, 255, (4, 100_000), dtype=np.uint8)
    table = pa.table({"blob": pa.array([r.tobytes() for r in rows], pa.binary())})
    with ShardWriter(remote, compression="zstd", size_limit=120_000) as writer:
        writer.write_batch(table)  # 4 shards of ~100 KB, each ~100 KB compressed
    ds = StreamingDataset(
        remote=f"file://{remote}", local=str(small_disk), batch_size=1, download_retry=2
    )
    with pytest.raises(OSError, match="is full") as info:
        list(ds.iter_batches())
    error = info.value
    assert not isinstance(error, CorruptShardError)
    assert error.errno == errno.ENOSPC and str(small_disk) in str(error)
    assert "cache_limit" in str(error) and "corrupt" not in str(error)
    stored = sum(p.stat().st_size for p in (remote / "data").iterdir())
    downloaded = ds.io_counters()["bytes_downloaded"]
    assert 0 < downloaded <= stored  # no shard fetched again (a corrupt remote gets 3 tries)
    deadline = time.monotonic() + 30  # a read-ahead fetch may still be failing the same way
    while [p for p in small_disk.rglob("*") if p.name.endswith(".tmp")]:
        assert time.monotonic() < deadline, "partial downloads were left in the cache"
        time.sleep(0.05)
