"""The loader on the columnar index: the same order, partition and resume as from index.json,
and workers that never read the index again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulate import global_steps
from small_datasets import write_dataset

from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from sparkshard import ShardWriter
from sparkshard.format.index import DatasetIndex

OPTIONS = {"shuffle": True, "shuffle_seed": 3, "num_canonical_nodes": 2}


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a dataset with its columnar index, the same files with index JSON only)."""
    root = tmp_path_factory.mktemp("twins")
    ours = write_dataset(root / "ours", 700, size_limit=900)
    with ShardWriter(ours, size_limit=2000, compression="zstd", mode="append") as writer:
        more = np.arange(700, 1033, dtype=np.int64)  # other shard sizes, an odd last one
        schema = pa.schema([pa.field(c, pa.int64(), False) for c in ("id", "label")])
        writer.write_batch(pa.table({"id": more, "label": more % 10}, schema=schema))
    json_only = root / "json-only"
    shutil.copytree(ours, json_only)
    for side in json_only.rglob("*.columnar"):
        side.unlink()
    return ours, json_only


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """JSON indexes parsed during the test; nothing derived is kept (every open parses)."""
    seen: list[str] = []
    original = DatasetIndex.from_json.__func__  # type: ignore[attr-defined]

    def spy(cls: type[DatasetIndex], data: bytes | str, source: str) -> DatasetIndex:
        seen.append(source)
        return original(cls, data, source)  # type: ignore[no-any-return]

    monkeypatch.setattr(DatasetIndex, "from_json", classmethod(spy))
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setattr("loader.cache.directory.index_dir", lambda *_: blocked / "index")
    return seen


topologies = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(1, 50))


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(topologies, st.integers(0, 2), st.floats(0, 1), st.booleans())
def test_order_partition_and_resume_are_those_of_index_json(
    twins: tuple[Path, Path],
    parses: list[str],
    topology: tuple[int, int, int, int],
    epoch: int,
    at: float,
    drop_last: bool,
) -> None:
    ours, json_only = twins
    nodes, per_node, workers, batch = topology
    options = {**OPTIONS, "drop_last": drop_last, "batch_size": batch}
    parses.clear()
    a, b = StreamingDataset(local=str(ours), **options), StreamingDataset(local=str(json_only))
    assert parses == [f"{json_only}/_sparkshard/versions/0000000002.json"]  # ours parsed none
    assert len(set(a.shard_sizes.tolist())) > 2
    assert np.array_equal(a.shard_sizes, b.shard_sizes) and a.num_samples == b.num_samples
    assert a.fingerprint() == StreamingDataset(local=str(json_only), **options).fingerprint()
    # A state taken on one resumes on the other: the same steps, id for id.
    state = a.resume_state(epoch, int(at * a.num_samples))
    steps = [
        global_steps(path, nodes, per_node, workers, state=state, **options)
        for path in (ours, json_only)
    ]
    assert steps[0] == steps[1]


@pytest.mark.parametrize("context", [None, "forkserver"])
@pytest.mark.parametrize("compression", [None, "zstd"])
def test_workers_never_read_the_index_again(
    tmp_path: Path, context: str | None, compression: str | None
) -> None:
    # Uncompressed: read in place; compressed: through the cache (one reader per process).
    path = tmp_path / "ds"
    with ShardWriter(path, size_limit=1500, compression=compression) as writer:
        writer.write_batch(pa.table({"id": np.arange(600, dtype=np.int64)}))
    ds = StreamingDataset(local=str(path), batch_size=32, shuffle=True)
    # The parent has read the index: remove every index file, so that a worker which read it
    # again would fail.
    for index_file in [*path.rglob("*.json"), *path.rglob("*.columnar")]:
        index_file.unlink()
    loader = StreamingDataLoader(ds, batch_size=32, num_workers=2, multiprocessing_context=context)
    ids = np.concatenate([np.asarray(batch["id"]) for batch in loader])
    assert set(ids.tolist()) == set(range(600)) and len(ids) == len(ds)
