"""Versioned datasets: time travel, readers pinned mid-epoch, concurrent appenders, Mosaic."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from concurrent_writers import append_at_once
from mosaic_peer import mosaic_view

from loader import DatasetReader, StreamingDataLoader, StreamingDataset
from sparkshard import ShardWriter, VersionConflictError
from sparkshard.dataset.versions import list_versions, read_index
from sparkshard.storage import open_store


def _write(out: Path, ids: range | list[int], mode: str = "append", **kwargs: Any) -> Any:
    with ShardWriter(out, mode=mode, size_limit="2KB", **kwargs) as writer:  # type: ignore[arg-type]
        writer.write_batch(pa.table({"id": pa.array(list(ids), pa.int64())}))
    return writer.info


def _epoch_ids(dataset: Any) -> list[int]:
    return [int(i) for batch in dataset.iter_batches() for i in batch["id"].tolist()]


@pytest.fixture
def three_versions(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    _write(out, range(0, 100), mode="error")  # 1
    _write(out, range(100, 160))  # 2: appended
    _write(out, range(500, 520), mode="overwrite")  # 3: replaced
    return out


def test_version_reads_exactly_that_version(three_versions: Path) -> None:
    expected = {1: set(range(100)), 2: set(range(160)), 3: set(range(500, 520))}
    for version, ids in expected.items():
        dataset = StreamingDataset(local=str(three_versions), version=version, batch_size=10)
        assert dataset.version == version and dataset.num_samples == len(ids)
        assert Counter(_epoch_ids(dataset)) == Counter(ids)
    latest = StreamingDataset(local=str(three_versions))
    assert latest.version == 3 and latest.num_samples == 20
    with pytest.raises(FileNotFoundError, match="no version 7"):
        StreamingDataset(local=str(three_versions), version=7)


def test_a_reader_mid_epoch_is_unaffected_by_appends_and_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _write(out, range(400), mode="error")
    settings: dict[str, Any] = {"batch_size": 8, "shuffle": True, "shuffle_seed": 11}
    reference = _epoch_ids(StreamingDataset(local=str(out), **settings))
    dataset = StreamingDataset(local=str(out), **settings)
    loader = StreamingDataLoader(dataset, batch_size=8, num_workers=2)
    seen: list[int] = []
    for step, batch in enumerate(loader):
        seen += batch["id"].tolist()
        if step == 5:  # workers are mid-epoch: commit two new versions under them
            assert _write(out, range(1000, 1300)).version == 2
            assert _write(out, range(2000, 2010), mode="overwrite").version == 3
    assert seen == reference and dataset.version == 1
    assert StreamingDataset(local=str(out)).num_samples == 10  # a new reader sees version 3
    assert Counter(_epoch_ids(StreamingDataset(local=str(out), version=2))) == Counter(
        [*range(400), *range(1000, 1300)]
    )


def test_concurrent_appenders_one_wins_and_nothing_is_lost(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _write(out, range(10), mode="error")
    batches = [list(range(100 * k, 100 * k + 37)) for k in range(1, 5)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(batches)), context.Queue()
    writers = [
        context.Process(target=append_at_once, args=(str(out), k, b, barrier, results))
        for k, b in enumerate(batches)
    ]
    for process in writers:
        process.start()
    by_writer = dict(results.get(timeout=120) for _ in writers)
    for process in writers:
        process.join(timeout=60)
    outcomes = [by_writer[k] for k in range(len(batches))]
    winners = [k for k, outcome in enumerate(outcomes) if outcome == "committed"]
    assert len(winners) == 1, outcomes
    assert all("another writer committed version 2" in o for o in outcomes if o != "committed")
    reader = DatasetReader(out)
    assert reader.version == 2
    assert Counter(reader.get_batch(np.arange(len(reader)))["id"].tolist()) == Counter(
        [*range(10), *batches[winners[0]]]
    )
    stored = {s.stored.basename for s in reader.index.shards}
    raw = {s.raw_data.basename for s in reader.index.shards}  # the reader's decompressed copies
    assert stored <= set(open_store(out).list("data/")) <= stored | raw  # no loser's shard left
    for k, ids in enumerate(batches):  # the losers run again: nothing is lost
        if k not in winners:
            _write(out, ids)
    final = DatasetReader(out)
    everything = [*range(10), *(i for b in batches for i in b)]
    assert Counter(final.get_batch(np.arange(len(final)))["id"].tolist()) == Counter(everything)
    assert list_versions(open_store(out)) == [1, 2, 3, 4, 5]


def test_a_write_planned_against_an_old_version_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _write(out, range(5), mode="error")
    _write(out, range(5, 9), base_version=1)
    with pytest.raises(VersionConflictError, match="planned against version 1 .* at version 2"):
        ShardWriter(out, mode="append", base_version=1)
    assert read_index(open_store(out)).num_samples == 9


@pytest.mark.mosaic
def test_mosaic_reads_the_latest_version(three_versions: Path, tmp_path: Path) -> None:
    _write(three_versions, range(600, 605))  # version 4: 20 + 5 samples
    view = mosaic_view(tmp_path / "dump.pkl", [three_versions])[str(three_versions)]
    assert view["ok"], view.get("error")
    assert sorted(int(s["id"]) for s in view["samples"]) == [*range(500, 520), *range(600, 605)]
