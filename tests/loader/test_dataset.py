"""StreamingDataset over real shards: order, any topology, exact and elastic resume."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulate import global_steps, rank_batches

from loader.dataset import StreamingDataset
from loader.order.epoch import EpochOrder
from loader.order.partition import PADDINGS, EpochPartition
from loader.topology import Topology
from sparkshard import ShardWriter
from sparkshard.errors import ResumeStateError

N = 1000


def test_len_getitem_and_columns(small_dataset: Path) -> None:
    ds = StreamingDataset(local=str(small_dataset), batch_size=64, columns=["id"])
    assert ds.num_samples == N
    assert len(ds) == N  # one rank pads nothing: 15 batches of 64 and one of 40 (as Mosaic)
    assert ds.size == N
    assert ds[17] == {"id": 17}
    assert ds[-1] == {"id": N - 1}
    with pytest.raises(IndexError, match=r"\[-1000, 1000\)"):
        ds[N]


def test_iteration_follows_the_pure_order(small_dataset: Path) -> None:
    ds = StreamingDataset(local=str(small_dataset), batch_size=64, shuffle=True, shuffle_seed=5)
    ids = np.concatenate([b["id"] for b in ds.iter_batches()])
    order = EpochOrder(ds.shard_sizes, ds.order_settings, epoch=0).all_ids()
    assert ids.tolist() == order[np.arange(len(ids)) % N].tolist()
    # Same order on every call: a fresh dataset, sample by sample, agrees.
    fresh = StreamingDataset(local=str(small_dataset), batch_size=64, shuffle=True, shuffle_seed=5)
    assert [int(s["id"]) for s in fresh] == ids.tolist()


def test_epochs_advance_and_reshuffle(small_dataset: Path) -> None:
    ds = StreamingDataset(local=str(small_dataset), batch_size=100, shuffle=True)
    first = np.concatenate([b["id"] for b in ds.iter_batches()])
    assert ds.state_dict()["epoch"] == 1 and ds.state_dict()["sample_in_epoch"] == 0
    second = np.concatenate([b["id"] for b in ds.iter_batches()])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(N))
    assert not np.array_equal(first, second)


topologies = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3), st.integers(1, 64))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    topologies,
    topologies,
    st.booleans(),
    st.sampled_from(PADDINGS),
    st.booleans(),
    st.integers(0, 3),
    st.data(),
)
def test_any_topology_reads_everything_once_and_resumes_elastically(
    small_dataset: Path,
    before: tuple[int, int, int, int],
    after: tuple[int, int, int, int],
    drop_last: bool,
    padding: str,
    same_global_batch: bool,
    epoch: int,
    data: st.DataObject,
) -> None:
    options = {
        "shuffle": True,
        "shuffle_seed": 11,
        "num_canonical_nodes": 4,
        "drop_last": drop_last,
        "padding": padding,
    }
    nodes, per_node, workers, batch = before
    probe = StreamingDataset(local=str(small_dataset), **options)
    start_state = probe.resume_state(epoch, 0)
    run = global_steps(
        small_dataset, nodes, per_node, workers, batch_size=batch, state=start_state, **options
    )
    g, world = nodes * per_node * batch, nodes * per_node
    part = EpochPartition(N, batch, nodes, per_node, 0, drop_last, padding)
    seen = Counter(i for step in run for i in step)
    if drop_last:
        assert all(len(step) == g for step in run)
        assert len(run) == N // g and set(seen.values()) <= {1}
    elif padding == "none":  # exact: every sample once, whatever the world size
        assert len(run) == -(-N // g) and sorted(seen.elements()) == list(range(N))
    else:  # a partial last step, padded only to equal batches (< world repeats)
        assert [len(step) for step in run] == [part.step_batch(t) * world for t in range(len(run))]
        assert set(seen) == set(range(N)) and 0 <= sum(seen.values()) - N < world
    # Stop after k steps, resume on another topology.
    k = data.draw(st.integers(0, len(run)))
    state = probe.resume_state(epoch, min(k * g, N))
    if k * g >= N:  # a finished epoch resumes at the start of the next one
        assert (state["epoch"], state["sample_in_epoch"]) == (epoch + 1, 0)
        return
    nodes2, per_node2, workers2, batch2 = after
    if same_global_batch and g % (nodes2 * per_node2) == 0:
        batch2 = g // (nodes2 * per_node2)
    rest = global_steps(
        small_dataset, nodes2, per_node2, workers2, batch_size=batch2, state=state, **options
    )
    if batch2 * nodes2 * per_node2 == g:  # the same steps (the last one's padding may differ)
        assert len(rest) == len(run) - k
        assert [sorted(s) for s in rest[:-1]] == [sorted(s) for s in run[k:-1]]
    # Every step reads exactly the ids at its positions of the epoch's order (padding folded),
    # before and after the resume: the run continues where it stopped.
    order = EpochOrder(probe.shard_sizes, probe.order_settings, epoch).all_ids()
    consumed, g2 = min(k * g, N), nodes2 * per_node2 * batch2
    part2 = EpochPartition(N, batch2, nodes2, per_node2, consumed, drop_last, padding)
    spans = [(t * g, part.step_batch(t) * world) for t in range(k)] + [
        (consumed + t * g2, part2.step_batch(t) * part2.world) for t in range(len(rest))
    ]
    for step, (first, size) in zip(run[:k] + rest, spans, strict=True):
        wanted = [p % N for p in range(first, first + size) if padding == "repeat" or p < N]
        assert Counter(step) == Counter(order[wanted].tolist())
    real = [p for first, size in spans for p in range(first, first + size) if p < N]
    assert real == list(range(len(real)))
    assert N - len(real) < (g2 if drop_last else 1)


def test_samples_and_batches_agree_with_workers(small_dataset: Path) -> None:
    topology = Topology.of_rank(1, world=2, ranks_per_node=2)
    options = {"batch_size": 7, "shuffle": True}
    batches = rank_batches(small_dataset, topology, 3, **options)
    samples = rank_batches(small_dataset, topology, 3, samples=True, **options)
    assert batches == samples and len(batches) == -(-N // 14)


def test_resume_in_process_and_reuse_after_load(small_dataset: Path) -> None:
    ds = StreamingDataset(local=str(small_dataset), batch_size=32, shuffle=True)
    whole = [b["id"].tolist() for b in ds.iter_batches()]
    ds.load_state_dict(ds.resume_state(0, 0))  # the same object, back to the start
    it = ds.iter_batches()
    head = [next(it)["id"].tolist() for _ in range(5)]
    state = ds.state_dict()
    assert state["sample_in_epoch"] == 5 * 32 and head == whole[:5]
    ds.load_state_dict(state)  # reuse the object mid-epoch
    assert [b["id"].tolist() for b in ds.iter_batches()] == whole[5:]
    other = StreamingDataset(local=str(small_dataset), batch_size=32, shuffle=True)
    other.load_state_dict(state)
    assert [b["id"].tolist() for b in other.iter_batches()] == whole[5:]


def test_resume_skips_without_reading_skipped_data(small_dataset: Path) -> None:
    ds = StreamingDataset(
        local=str(small_dataset), batch_size=10, shuffle=True, shuffle_block_size=100
    )
    ds.load_state_dict(ds.resume_state(0, 900))
    batches = ds.iter_batches()  # kept: an epoch's iterator lets go of its shards when dropped
    batch = next(batches)
    opened = set(ds._reader._shards)  # type: ignore[attr-defined]
    sizes = np.cumsum(ds.shard_sizes)
    assert opened == set(np.searchsorted(sizes, batch["id"], side="right").tolist())


def test_mismatched_state_is_refused(small_dataset: Path) -> None:
    state = StreamingDataset(local=str(small_dataset), shuffle=True, shuffle_seed=1).state_dict()
    ds = StreamingDataset(local=str(small_dataset), shuffle=True, shuffle_seed=2)
    with pytest.raises(ResumeStateError, match="shuffle_seed: state has 1, dataset has 2"):
        ds.load_state_dict(state)


def test_default_canonical_nodes_follow_the_state(small_dataset: Path) -> None:
    saved = StreamingDataset(local=str(small_dataset), shuffle=True, num_canonical_nodes=3)
    state = saved.resume_state(2, 500)
    ds = StreamingDataset(local=str(small_dataset), shuffle=True)
    ds.load_state_dict(state)
    assert ds.order_settings == saved.order_settings
    explicit = StreamingDataset(local=str(small_dataset), shuffle=True, num_canonical_nodes=1)
    with pytest.raises(ResumeStateError, match="num_canonical_nodes: state has 3, dataset has 1"):
        explicit.load_state_dict(state)


def test_new_dataset_version_is_refused(small_dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    state = StreamingDataset(local=str(copy), shuffle=True).resume_state(0, 10)
    schema = pa.schema([pa.field("id", pa.int64(), False), pa.field("label", pa.int64(), False)])
    more = pa.table({"id": [N], "label": [9]}, schema=schema)
    with ShardWriter(copy, mode="append") as writer:
        writer.write_batch(more)
    ds = StreamingDataset(local=str(copy), shuffle=True)
    with pytest.raises(ResumeStateError, match="dataset_version: state has 1, dataset has 2"):
        ds.load_state_dict(state)
    pinned = StreamingDataset(local=str(copy), shuffle=True, version=1)
    pinned.load_state_dict(state)  # time travel: the old version resumes fine


def test_object_storage_needs_a_local_cache_directory() -> None:
    with pytest.raises(ValueError, match="needs local=<a directory on local disk>"):
        StreamingDataset(remote="s3://bucket/ds")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_canonical_nodes": 0}, "num_canonical_nodes must be a whole number >= 1, got 0"),
        ({"shuffle_seed": "abc"}, "shuffle_seed must be a whole number >= 0, got 'abc'"),
        ({"shuffle_block_size": 0}, "shuffle_block_size must be a whole number >= 1"),
        ({"shuffle": "yes"}, "shuffle must be True or False"),
        ({"download_retry": -1}, "download_retry must be a whole number >= 0"),
        ({"cache_limit": "lots"}, "cache_limit 'lots' is not a size"),
        ({"shuffle_algo": "zigzag"}, "shuffle_algo must be one of"),
    ],
)
def test_bad_options_are_refused_before_anything_is_opened(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    missing = tmp_path / "nothing-here"  # were anything opened, this would fail differently
    with pytest.raises(ValueError, match=re.escape(message)):
        StreamingDataset(local=str(missing), **kwargs)  # type: ignore[arg-type]


def test_options_values_and_flat_keywords_are_one_or_the_other(small_dataset: Path) -> None:
    from loader import DownloadOptions, ShuffleOptions

    ds = StreamingDataset(local=str(small_dataset), shuffle=ShuffleOptions(True, seed=3))
    assert ds.order_settings.seed == 3 and ds.order_settings.shuffle
    with pytest.raises(ValueError, match=r"shuffle=ShuffleOptions.*\['shuffle_seed'\] were both"):
        StreamingDataset(local=str(small_dataset), shuffle=ShuffleOptions(), shuffle_seed=4)
    with pytest.raises(ValueError, match=r"\['download_retry'\] were both given"):
        StreamingDataset(local=str(small_dataset), download=DownloadOptions(), download_retry=1)


def test_mosaic_dataset_surface(small_dataset: Path) -> None:
    ds = StreamingDataset(local=str(small_dataset), columns=["id"])
    assert ds.size == ds.num_samples == N and ds.get_item(7) == {"id": 7}
    assert ds[2:5] == [{"id": 2}, {"id": 3}, {"id": 4}]
    assert ds[-2:] == [{"id": N - 2}, {"id": N - 1}]
    assert ds[[0, -1]] == [{"id": 0}, {"id": N - 1}]
    assert ds[np.array([4, 1])] == [{"id": 4}, {"id": 1}]
    assert ds[[[1], [2, 3]]] == [[{"id": 1}], [{"id": 2}, {"id": 3}]]  # nested, as Mosaic
    assert ds[np.int64(9)] == {"id": 9}
    with pytest.raises(TypeError, match="np.flatnonzero"):
        ds[np.ones(N, bool)]
    with pytest.raises(TypeError, match="got str"):
        ds["id"]
    with pytest.raises(IndexError, match=r"\[-1000, 1000\), got 1000"):
        ds[[0, N]]
    # Mosaic's per-shard attributes, the same values and types.
    sizes = ds.samples_per_shard
    assert ds.num_shards == len(sizes) > 1 and sizes.dtype == np.int64 and sizes.sum() == N
    offsets = ds.sample_offset_per_shard
    assert offsets[0] == 0 and np.array_equal(offsets[1:], np.cumsum(sizes)[:-1])
    shard, j = ds.spanner[int(offsets[3]) + 2]
    assert (shard, j) == (3, 2) and ds.spanner[int(offsets[3])] == (3, 0)
    assert [ds.spanner[i] for i in (0, N - 1)] == [(0, 0), (len(sizes) - 1, int(sizes[-1]) - 1)]
    with pytest.raises(IndexError, match="Invalid sample index"):
        ds.spanner[N]
    assert ds.num_streams == 1 and ds.shards_per_stream.tolist() == [len(sizes)]
    assert ds.shard_offset_per_stream.tolist() == [0]
    with pytest.raises(AttributeError, match="samples_per_shard"):
        ds.shards  # noqa: B018


def test_two_iterations_are_two_epochs(small_dataset: Path) -> None:
    ds = StreamingDataset(local=str(small_dataset), shuffle=True, columns=["id"])
    first, second = [s["id"] for s in ds], [s["id"] for s in ds]
    assert sorted(first) == sorted(second) == list(range(N)) and first != second
    assert ds.state_dict()["epoch"] == 2
    again = StreamingDataset(local=str(small_dataset), shuffle=True, columns=["id"])
    again.load_state_dict(again.resume_state(1, 0))
    assert [s["id"] for s in again] == second


def test_len_counts_what_this_rank_yields(small_dataset: Path) -> None:
    # Mosaic's len: ceil(N / world) per rank; a single device never pads.
    for world in (1, 2, 3, 7):
        for rank in range(world):
            topo = Topology.of_rank(rank, world, world)
            ds = StreamingDataset(local=str(small_dataset), batch_size=8, topology=topo)
            ids = [s["id"] for s in ds]
            assert len(ds) == len(ids) == -(-N // world)
            exact = StreamingDataset(
                local=str(small_dataset), batch_size=8, topology=topo, padding="none"
            )
            assert len(exact) == len(list(exact))
            dropping = StreamingDataset(
                local=str(small_dataset), batch_size=8, topology=topo, drop_last=True
            )
            assert len(dropping) == len(list(dropping)) == N // (8 * world) * 8
    with pytest.raises(ValueError, match="padding must be one of"):
        StreamingDataset(local=str(small_dataset), padding="mark")
