"""The per-sample path: Mosaic-style ``__getitem__``/``get_item`` overrides on every path, in
the batch path's order, with its exact-once, resume and elastic guarantees; collation."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulate import global_steps, round_robin
from torch.utils.data import DataLoader

from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from loader.order.partition import PADDINGS
from loader.samples import collate_samples, empty_like
from loader.topology import Topology
from loader.transforms import FieldSpec
from sparkshard import ShardWriter

N = 1000


class Doubled(StreamingDataset):
    """Mosaic's documented pattern: transform in a ``__getitem__`` override."""

    def __getitem__(self, idx: Any) -> Any:
        obj = super().__getitem__(idx)
        return {"id": obj["id"], "double": np.int64(obj["id"]) * 2}


class Pairs(StreamingDataset):
    """A ``get_item`` override returning a tuple, as Mosaic's examples do for (x, y)."""

    def get_item(self, index: int) -> Any:
        obj = super().get_item(index)
        return np.float32(obj["id"]) + 0.5, int(obj["label"])


def _plain_ids(path: Path, batch_size: int, **options: Any) -> list[list[int]]:
    ds = StreamingDataset(local=str(path), batch_size=batch_size, **options)
    return [np.asarray(b["id"]).tolist() for b in ds.iter_batches()]


def _options(**extra: Any) -> dict[str, Any]:
    return {"shuffle": True, "shuffle_seed": 7, **extra}


def test_override_is_detected_once_and_logged(
    small_dataset: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="loader.dataset"):
        ds = Doubled(local=str(small_dataset))
    assert ds.overrides == ("__getitem__",)
    assert "Doubled overrides __getitem__" in caplog.text
    assert Pairs(local=str(small_dataset)).overrides == ("get_item",)
    assert StreamingDataset(local=str(small_dataset)).overrides == ()


def test_direct_iteration_and_indexing_call_the_override(small_dataset: Path) -> None:
    ds = Doubled(local=str(small_dataset), batch_size=16, **_options())
    samples = list(ds)
    assert [s["id"] for s in samples] == [
        i for b in _plain_ids(small_dataset, 16, **_options()) for i in b
    ]
    assert all(s["double"] == 2 * s["id"] for s in samples)
    assert ds[3] == {"id": 3, "double": 6}
    pairs = Pairs(local=str(small_dataset))
    assert pairs[5] == (5.5, 0) and pairs[-1] == (N - 0.5, 9)
    assert pairs[[1, np.int64(2)]] == [(1.5, 0), (2.5, 0)]  # lists: each through get_item
    assert [p[0] for p in pairs[2:4]] == [2.5, 3.5]  # slices go through get_item


@pytest.mark.parametrize("num_workers", [0, 2])
def test_torch_dataloader_calls_the_override(small_dataset: Path, num_workers: int) -> None:
    ds = Doubled(local=str(small_dataset), batch_size=50, **_options())
    batches = list(DataLoader(ds, batch_size=50, num_workers=num_workers))
    ids = torch.cat([b["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(N))
    assert all(torch.equal(b["double"], 2 * b["id"]) for b in batches)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_streaming_loader_calls_the_override_in_the_batch_order(
    small_dataset: Path, num_workers: int
) -> None:
    ds = Doubled(local=str(small_dataset), **_options())
    loader = StreamingDataLoader(ds, batch_size=64, num_workers=num_workers)
    assert loader.dataset is ds
    batches = list(loader)
    assert [b["id"].tolist() for b in batches] == _plain_ids(small_dataset, 64, **_options())
    for batch in batches:  # collated as torch's default collate: int64 tensors
        assert batch["double"].dtype == torch.int64 and torch.equal(
            batch["double"], 2 * batch["id"]
        )
    pairs = list(StreamingDataLoader(Pairs(local=str(small_dataset)), 100, num_workers))
    x, y = pairs[0]  # a tuple becomes a list of two columns, as default_collate makes it
    assert isinstance(pairs[0], list) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x[:3].tolist() == [0.5, 1.5, 2.5]


def test_override_with_a_collate_fn_and_refused_options(small_dataset: Path) -> None:
    def ids_only(samples: list[dict[str, Any]]) -> list[int]:
        return [int(s["double"]) for s in samples]

    ds = Doubled(local=str(small_dataset))
    batches = list(StreamingDataLoader(ds, batch_size=300, collate_fn=ids_only, num_workers=2))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    assert sorted(i for b in batches for i in b) == list(range(0, 2 * N, 2))
    with pytest.raises(ValueError, match="overrides __getitem__"):
        StreamingDataLoader(ds, batch_size=300, fields=[FieldSpec("id", abs)])
    with pytest.raises(ValueError, match="output='numpy' applies on the batch path"):
        StreamingDataLoader(ds, batch_size=300, output="numpy")


def _override_batches(
    path: Path, topology: Topology, workers: int, state: dict[str, Any] | None, **options: Any
) -> list[list[int]]:
    """One rank's per-sample batches (ids, each checked transformed), workers merged."""
    streams = []
    for worker in range(max(workers, 1)):
        ds = Doubled(local=str(path), topology=topology.with_worker(worker, workers), **options)
        if state is not None:
            ds.load_state_dict(state)
        steps = []
        for samples in ds.iter_sample_batches():
            assert all(s["double"] == 2 * s["id"] for s in samples)
            steps.append([int(s["id"]) for s in samples])
        streams.append(steps)
    return round_robin(streams)


def _global(path: Path, nodes: int, per_node: int, workers: int, **kw: Any) -> list[list[int]]:
    world = nodes * per_node
    ranks = [
        _override_batches(path, Topology.of_rank(r, world, per_node), workers, **kw)
        for r in range(world)
    ]
    assert len({len(r) for r in ranks}) == 1, "ranks disagree on the number of steps"
    return [[i for r in ranks for i in r[t]] for t in range(len(ranks[0]))]


topologies = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(0, 3), st.integers(1, 90))


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(topologies, topologies, st.booleans(), st.sampled_from(PADDINGS), st.data())
def test_override_path_reads_every_sample_once_and_resumes_exactly(
    small_dataset: Path,
    before: tuple[int, int, int, int],
    after: tuple[int, int, int, int],
    drop_last: bool,
    padding: str,
    data: st.DataObject,
) -> None:
    options = _options(num_canonical_nodes=3, drop_last=drop_last, padding=padding)
    nodes, per_node, workers, batch = before
    run = _global(small_dataset, nodes, per_node, workers, state=None, batch_size=batch, **options)
    g = nodes * per_node * batch
    seen = Counter(i for step in run for i in step)
    if drop_last:
        assert len(run) == N // g and set(seen.values()) <= {1} and len(seen) == len(run) * g
    elif padding == "none":
        assert sorted(seen.elements()) == list(range(N))  # exactly once, any world size
    else:
        assert set(seen) == set(range(N)) and sum(seen.values()) - N < nodes * per_node
    # Stop after k steps, resume on another topology: exactly the rest, once.
    k = data.draw(st.integers(0, len(run)))
    probe = StreamingDataset(local=str(small_dataset), **options)
    state = probe.resume_state(0, min(k * g, N))
    nodes2, per_node2, workers2, batch2 = after
    if state["epoch"] == 1:  # a finished epoch resumes at the start of the next one
        return
    rest = _global(
        small_dataset, nodes2, per_node2, workers2, state=state, batch_size=batch2, **options
    )
    # The same steps as the batch path, before and after the resume (whose exact-once and
    # elastic resume tests/loader/test_dataset.py proves), only read through the override.
    assert run == global_steps(small_dataset, nodes, per_node, workers, batch_size=batch, **options)
    assert rest == global_steps(
        small_dataset, nodes2, per_node2, workers2, batch_size=batch2, state=state, **options
    )
    if padding == "none" and not drop_last:  # exact evaluation across a resume
        assert sorted(i for step in run[:k] + rest for i in step) == list(range(N))


def test_override_loader_state_resumes_exactly_with_workers(small_dataset: Path) -> None:
    whole = [b["id"].tolist() for b in StreamingDataLoader(Doubled(local=str(small_dataset),
                                                                   **_options()), 40)]  # fmt: skip
    loader = StreamingDataLoader(
        Doubled(local=str(small_dataset), **_options()), 40, num_workers=2, prefetch_factor=4
    )
    head = []
    for i, batch in enumerate(loader):
        head.append(batch["id"].tolist())
        if i == 6:
            break
    state = loader.state_dict()
    assert state["sample_in_epoch"] == 7 * 40
    resumed = StreamingDataLoader(Doubled(local=str(small_dataset), **_options()), 25, 0)
    resumed.load_state_dict(state)
    rest = [i for b in resumed for i in b["id"].tolist()]
    assert [i for b in head for i in b] + rest == [i for b in whole for i in b]


@pytest.fixture(scope="module")
def grids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 samples with an int64 ``id`` and a (2, 3) float32 ``grid`` (an ndarray column)."""
    ids = np.arange(200, dtype=np.int64)
    grid = pa.array(
        [np.full((2, 3), i, np.float32).tolist() for i in range(200)],
        pa.list_(pa.list_(pa.float32(), 3), 2),
    )
    path = tmp_path_factory.mktemp("grids") / "ds"
    with ShardWriter(path, size_limit=3000) as writer:
        writer.write_batch(pa.table({"id": ids, "grid": grid}))
    return path


class Scaled(StreamingDataset):
    def __getitem__(self, idx: Any) -> Any:
        obj = super().__getitem__(idx)
        return {"grid": obj["grid"], "id": obj["id"]}  # views of the shard, as in Mosaic


def bump(column: np.ndarray) -> np.ndarray:
    column += 1  # in place, in the worker
    return column


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_are_writable_without_warnings(grids: Path, num_workers: int) -> None:
    # filterwarnings=error: torch's "The given NumPy array is not writable" would fail here.
    ds = Scaled(local=str(grids))
    assert not ds[0]["grid"].flags.writeable  # samples are read-only views (as Mosaic's)
    for batch in StreamingDataLoader(ds, batch_size=64, num_workers=num_workers):
        assert batch["grid"].shape[1:] == (2, 3)
        batch["grid"] *= 2  # in-place augmentation of a collated batch
    plain = StreamingDataset(local=str(grids))
    loader = StreamingDataLoader(plain, 64, num_workers, fields=[FieldSpec("grid", bump)])
    firsts = sorted(int(b["grid"][i, 0, 0]) for b in loader for i in range(len(b["grid"])))
    assert firsts == list(range(1, 201))
    numpy_out = StreamingDataLoader(StreamingDataset(local=str(grids)), 64, num_workers,
                                    output="numpy")  # fmt: skip
    for batch in numpy_out:
        batch["grid"] *= 2
        batch["id"] += 1
    # torch's own DataLoader: its default collate would warn on the read-only views, so
    # collate_samples (its semantics, one writable copy per batch) is there to pass in.
    samples = list(DataLoader(ds, 64, num_workers=num_workers, collate_fn=collate_samples))
    assert sum(len(b["id"]) for b in samples) == 200
    samples[0]["grid"] += 1


def test_collate_stacks_arrays_in_one_writable_copy() -> None:
    shard = np.arange(12, dtype=np.int32)
    shard.flags.writeable = False  # like a view of a mapped shard
    samples = [{"x": shard[i * 3 : i * 3 + 3], "y": i, "s": "a", "b": memoryview(b"z")}
               for i in range(4)]  # fmt: skip
    batch = collate_samples(samples)
    assert batch["x"].shape == (4, 3) and batch["x"].dtype == torch.int32
    batch["x"] += 1
    assert batch["y"].tolist() == [0, 1, 2, 3] and batch["s"] == ["a"] * 4
    assert batch["b"] == [b"z"] * 4 and not shard.flags.writeable and shard[0] == 0
    ragged = collate_samples([np.zeros(2), np.zeros(2, np.float32)])  # torch decides, as before
    assert ragged.shape == (2, 2)
    empty = empty_like(batch)
    assert empty["x"].shape == (0, 3) and empty["s"] == []


def test_padding_none_gives_empty_batches_not_fewer_steps(small_dataset: Path) -> None:
    # 1000 samples on 3 ranks in batches of 333: one step of 999, then 1 sample for rank 0.
    topo = [Topology.of_rank(r, 3, 3) for r in range(3)]
    for cls in (StreamingDataset, Doubled):
        lengths = []
        for t in topo:
            ds = cls(local=str(small_dataset), topology=t, padding="none")
            batches = list(StreamingDataLoader(ds, batch_size=333))
            lengths.append([len(b["id"]) for b in batches])
            assert batches[-1]["id"].dtype == torch.int64
        assert lengths == [[333, 1], [333, 0], [333, 0]]


def test_override_path_with_persistent_workers_runs_epochs(small_dataset: Path) -> None:
    ds = Doubled(local=str(small_dataset), **_options())
    loader = StreamingDataLoader(ds, batch_size=100, num_workers=2, persistent_workers=True)
    epochs = [[i for b in loader for i in b["double"].tolist()] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(0, 2 * N, 2))
    assert epochs[0] != epochs[1] and loader.state_dict()["epoch"] == 2
