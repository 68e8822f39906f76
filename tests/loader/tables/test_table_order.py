"""Row groups as shards: every row exactly once per epoch on any topology, exact and elastic
resume, the same order on every call, DataLoader workers, mixed with MDS streams."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulate import global_steps
from small_datasets import write_dataset
from table_data import N

from loader import FieldSpec, Stream, StreamingDataLoader, StreamingDataset
from loader.order.epoch import EpochOrder
from loader.order.partition import EpochPartition

topologies = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(0, 3), st.integers(8, 48))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(topologies, topologies, st.booleans(), st.integers(0, 2), st.data())
def test_every_row_once_per_epoch_on_any_topology_and_elastic_resume(
    id_table: Path,
    before: tuple[int, int, int, int],
    after: tuple[int, int, int, int],
    drop_last: bool,
    epoch: int,
    data: st.DataObject,
) -> None:
    options = {"shuffle": True, "shuffle_seed": 3, "num_canonical_nodes": 3, "drop_last": drop_last}
    probe = StreamingDataset(delta=str(id_table), **options)
    nodes, per_node, workers, batch = before
    start = probe.resume_state(epoch, 0)
    run = global_steps(
        id_table, nodes, per_node, workers, state=start, batch_size=batch, source="delta",
        **options,
    )  # fmt: skip
    g, world = nodes * per_node * batch, nodes * per_node
    part = EpochPartition(N, batch, nodes, per_node, 0, drop_last)
    seen = Counter(i for step in run for i in step)
    if drop_last:
        assert len(run) == N // g and set(seen.values()) <= {1}
    else:  # a partial last step, padded only to equal batches (< world repeats)
        assert [len(step) for step in run] == [part.step_batch(t) * world for t in range(len(run))]
        assert set(seen) == set(range(N)) and 0 <= sum(seen.values()) - N < world
    k = data.draw(st.integers(0, max(len(run) - 1, 0)))
    state = probe.resume_state(epoch, min(k * g, N))
    nodes2, per_node2, workers2, batch2 = after
    rest = global_steps(
        id_table, nodes2, per_node2, workers2, state=state, batch_size=batch2, source="delta",
        **options,
    )  # fmt: skip
    # Before and after the resume, each step holds exactly its positions of the pure order.
    # Sample i is the i-th row in file order; the ids tell which row a step read.
    id_of = np.asarray(probe._reader.get_batch(np.arange(N))["id"])
    order = id_of[EpochOrder(probe.shard_sizes, probe.order_settings, epoch).all_ids()]
    g2 = nodes2 * per_node2 * batch2
    consumed = min(k * g, N)
    part2 = EpochPartition(N, batch2, nodes2, per_node2, consumed, drop_last)
    spans = [(t * g, part.step_batch(t) * world) for t in range(k)] + [
        (consumed + t * g2, part2.step_batch(t) * part2.world) for t in range(len(rest))
    ]
    for step, (first, size) in zip(run[:k] + rest, spans, strict=True):
        assert Counter(step) == Counter(order[np.arange(first, first + size) % N].tolist())
    real = [p for first, size in spans for p in range(first, first + size) if p < N]
    assert real == list(range(len(real)))


def test_same_order_on_every_call_and_new_order_each_epoch(id_table: Path) -> None:
    def epoch_ids(ds: StreamingDataset) -> list[int]:
        return np.concatenate([np.asarray(b["id"]) for b in ds.iter_batches()]).tolist()

    a = StreamingDataset(delta=str(id_table), batch_size=50, shuffle=True, shuffle_seed=8)
    b = StreamingDataset(delta=str(id_table), batch_size=50, shuffle=True, shuffle_seed=8)
    first = epoch_ids(a)
    assert (
        first
        == epoch_ids(b)
        == [
            int(s["id"])
            for s in StreamingDataset(
                delta=str(id_table), batch_size=50, shuffle=True, shuffle_seed=8
            )
        ]
    )
    assert sorted(first) == list(range(N))
    second = epoch_ids(a)
    assert sorted(second) == list(range(N)) and second != first
    order = EpochOrder(a.shard_sizes, a.order_settings, 0).all_ids()
    ids = np.array([a._reader.get(int(i))["id"] for i in order])
    assert ids.tolist() == first


def test_resume_in_process_is_exact(id_table: Path) -> None:
    full = StreamingDataset(delta=str(id_table), batch_size=32, shuffle=True)
    everything = [np.asarray(b["id"]).tolist() for b in full.iter_batches()]
    ds = StreamingDataset(delta=str(id_table), batch_size=32, shuffle=True)
    it = ds.iter_batches()
    head = [np.asarray(next(it)["id"]).tolist() for _ in range(5)]
    state = ds.state_dict()
    assert state["dataset_version"] == 3 and state["dataset_fingerprint"].startswith("delta:")
    resumed = StreamingDataset(delta=str(id_table), batch_size=32, shuffle=True)
    resumed.load_state_dict(state)
    assert head + [np.asarray(b["id"]).tolist() for b in resumed.iter_batches()] == everything


def test_dataloader_workers_read_every_row_once(id_table: Path) -> None:
    ds = StreamingDataset(delta=str(id_table), batch_size=25, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=25, num_workers=2)
    ids = [i for batch in loader for i in batch["id"].tolist()]
    assert sorted(ids) == list(range(N))
    # exactly what the same epoch gives in one process
    alone = StreamingDataset(delta=str(id_table), batch_size=25, shuffle=True)
    assert ids == np.concatenate([np.asarray(b["id"]) for b in alone.iter_batches()]).tolist()


def test_forked_workers_inherit_the_row_groups_of_their_first_batches(id_table: Path) -> None:
    """Each worker's first batch is read once in the loop's process before the fork, so the
    workers inherit those decoded row groups: here the two batches are the whole epoch, so
    every row group is decoded once in all (the loader's stats count it), none in a worker.
    The loop's process keeps none of it after."""
    half = N // 2
    ds = StreamingDataset(delta=str(id_table), batch_size=half, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=half, num_workers=2, multiprocessing_context="fork")
    ids = [i for batch in loader for i in batch["id"].tolist()]
    alone = StreamingDataset(delta=str(id_table), batch_size=half, shuffle=True)
    assert ids == np.concatenate([np.asarray(b["id"]) for b in alone.iter_batches()]).tolist()
    assert sorted(ids) == list(range(N))
    once = alone.io_counters()["bytes_read"]  # one process decoding every row group once
    assert once > 0 and loader.stats().bytes_read == once  # not once in each worker
    assert not ds._reader._groups  # the loop's process let its copy go after the fork


def test_delta_and_mds_streams_mix(id_table: Path, tmp_path: Path) -> None:
    mds = write_dataset(tmp_path / "mds", 300)
    streams = [Stream(delta=str(id_table), proportion=0.5), Stream(local=str(mds), proportion=0.5)]
    ds = StreamingDataset(
        streams=streams, columns=["id"], epoch_size=400, batch_size=20, shuffle=True
    )
    batches = list(ds.iter_batches())
    assert sum(len(b["id"]) for b in batches) == 400
    state = ds.state_dict()
    assert state["epoch"] == 1 and any("fingerprint=delta:" in s for s in state["streams"])
    with pytest.raises(ValueError, match="delta= .*not both|give delta="):
        StreamingDataset(delta=str(id_table), parquet=str(id_table))


def test_loader_options_work_on_tables(id_table: Path) -> None:
    ds = StreamingDataset(delta=str(id_table), batch_size=100, shuffle=True, columns=["id", "text"])
    fields = [FieldSpec("text", len, per_sample=True)]
    loader = StreamingDataLoader(ds, batch_size=100, fields=fields, output="numpy")
    batches = list(loader)
    assert all(isinstance(b["id"], np.ndarray) for b in batches)
    ids = np.concatenate([b["id"] for b in batches])
    lengths = np.concatenate([np.asarray(b["text"]) for b in batches])
    assert lengths.tolist() == [len(f"row {i}") for i in ids.tolist()]
    stats = loader.stats()
    assert stats.samples == N and stats.bytes_read > 0
    torch_batch = next(iter(StreamingDataLoader(ds, batch_size=100, num_workers=0)))
    assert torch_batch["id"].dtype == torch.int64 and len(torch_batch["text"]) == 100
