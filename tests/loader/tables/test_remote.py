"""A remote Delta table on each real object store server (S3 on moto, GCS on
fake-gcs-server, ADLS on Azurite, all on 127.0.0.1): row groups by ranged GET into a small
cache, two DataLoader workers, every surviving row once, nothing written to the bucket, an
object replaced under the same name detected by its ETag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from clouds import CloudPlace
from deltalake import DeltaTable, write_deltalake
from protocol_tables import delete_rows
from table_data import deltalake_rows, ids_table, small_groups

from loader import StreamingDataLoader, StreamingDataset
from sparkshard.errors import CorruptShardError
from sparkshard.storage import open_store


def upload(table: Path, url: str, options: dict[str, Any]) -> None:
    store = open_store(url, options)
    for path in sorted(table.rglob("*")):
        if path.is_file():
            store.write(path.relative_to(table).as_posix(), path.read_bytes())


def listing(url: str, options: dict[str, Any]) -> list[tuple[str, bytes]]:
    store = open_store(url, options)
    return [(key, store.read(key)) for key in store.list("")]


@pytest.fixture
def remote_table(cloud: CloudPlace, tmp_path: Path) -> tuple[str, Path]:
    local = tmp_path / "t"
    for part in np.array_split(np.arange(3000), 3):
        write_deltalake(local, ids_table(part), mode="append", writer_properties=small_groups(200))
    first = pa.table(DeltaTable(str(local)).get_add_actions()).to_pylist()[0]["path"]
    delete_rows(local, {first: list(range(0, 1000, 3))})
    url = cloud.url("tables/ids")
    upload(local, url, cloud.storage_options)
    return url, local


def test_remote_table_small_cache_two_workers(
    remote_table: tuple[str, Path], cloud: CloudPlace, tmp_path: Path
) -> None:
    url, local = remote_table
    options = cloud.storage_options
    before = listing(url, options)
    expected = sorted(r["id"] for r in deltalake_rows(local))
    cache = tmp_path / "cache"
    limit = 400_000
    ds = StreamingDataset(
        delta=url, local=str(cache), storage_options=options, cache_limit=limit,
        batch_size=50, shuffle=True, shuffle_block_size=600,
    )  # fmt: skip
    assert ds.version == 3 and ds.num_samples == len(expected) == 3000 - 334
    assert ds.multiprocessing_context == "forkserver"
    loader = StreamingDataLoader(ds, batch_size=50, num_workers=2)
    ids = [i for batch in loader for i in batch["id"].tolist()]
    assert sorted(ids[: ds.num_samples]) == expected
    alone = StreamingDataset(
        delta=url, local=str(cache), storage_options=options, cache_limit=limit,
        batch_size=50, shuffle=True, shuffle_block_size=600,
    )  # fmt: skip
    assert ids == np.concatenate([np.asarray(b["id"]) for b in alone.iter_batches()]).tolist()
    assert alone.io_counters()["bytes_downloaded"] >= 0
    used = sum(p.stat().st_size for p in (cache).rglob("shards/*"))
    assert 0 < used <= limit
    assert listing(url, options) == before  # nothing written to the bucket
    assert ds[5]["text"] == f"row {ds[5]['id']}"


def test_remote_object_replaced_under_the_same_name(
    remote_table: tuple[str, Path], cloud: CloudPlace, tmp_path: Path
) -> None:
    url, _ = remote_table
    options = cloud.storage_options
    ds = StreamingDataset(delta=url, local=str(tmp_path / "c"), storage_options=options)
    ds[0]  # the footer of file 0 is now known to this process: only row-group GETs remain
    layout = ds._reader.layout
    later = int(np.flatnonzero(layout.shard_file == layout.shard_file[0])[-1])
    assert later > 0
    key = ds._reader.snapshot.files[int(layout.shard_file[0])].path
    store = open_store(url, options)
    store.write(key, store.read(key))  # same bytes, a new object: a new ETag on most stores
    replaced = store.read(key)
    if store.read_pinned(key, 8)[1]["e_tag"] is None:
        pytest.skip("the server gives no ETags")
    try:
        store.read_pinned(key, (0, 8), '"an ETag no object has"')
    except FileExistsError:
        pass  # the server honours If-Match, as the clouds do
    else:
        pytest.skip(f"the {cloud.name} test server ignores If-Match: it cannot show the check")
    store.write(key, replaced[:-1] + bytes([replaced[-1] ^ 1]))
    with pytest.raises(CorruptShardError, match="replaced under the same name"):
        ds[int(ds._reader._starts[later])]  # a row group of that file not fetched yet


def test_a_damaged_cached_row_group_is_fetched_again(
    remote_table: tuple[str, Path], cloud: CloudPlace, tmp_path: Path, caplog: Any
) -> None:
    """A cached span cut short or overwritten (a crash, a bad disk) is refetched, and the
    rows read after it are still exactly deltalake's."""
    url, local = remote_table
    cache = tmp_path / "cache"

    def rows() -> dict[int, str]:
        ds = StreamingDataset(delta=url, local=str(cache), storage_options=cloud.storage_options)
        return {ds[i]["id"]: ds[i]["text"] for i in range(0, ds.num_samples, 97)}

    theirs = {r["id"]: r["text"] for r in deltalake_rows(local)}
    first = rows()
    spans = sorted(p for p in cache.rglob("shards/*") if p.is_file())
    assert spans and first == {i: theirs[i] for i in first}
    for k, span in enumerate(spans):
        data = span.read_bytes()
        span.write_bytes(data[: len(data) // 2] if k % 2 else bytes(len(data)))
    with caplog.at_level("WARNING"):
        assert rows() == first
    assert "refetching" in caplog.text
