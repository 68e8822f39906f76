"""Mixtures of streams over real shards: weights, exact and elastic resume, curriculum."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simulate import round_robin

from loader import Stream
from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from loader.order.partition import EpochPartition
from loader.read.mixture import open_mixture
from loader.read.reader import DatasetReader
from loader.topology import Topology
from sparkshard import ShardWriter
from sparkshard.errors import ResumeStateError, SchemaError

SIZES = (100, 60, 30)  # samples of streams A, B, C
BASE = 10_000  # stream s holds ids s * BASE + i: a sample names its stream and index
SCHEMA = pa.schema([pa.field("id", pa.int64(), False), pa.field("label", pa.int64(), False)])


def write_stream(path: Path, stream: int, n: int, size_limit: int = 400) -> Path:
    ids = stream * BASE + np.arange(n, dtype=np.int64)
    table = pa.table({"id": ids, "label": np.full(n, stream, np.int64)}, schema=SCHEMA)
    with ShardWriter(path, size_limit=size_limit, compression="zstd") as writer:
        writer.write_batch(table)
    return path


@pytest.fixture(scope="session")
def stream_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("streams")
    return [str(write_stream(root / "abc"[s], s, n)) for s, n in enumerate(SIZES)]


def values(mixture_ids: np.ndarray, datasets: list[int]) -> list[int]:
    """The ``id`` column value of mixture sample ids, the streams being these datasets."""
    offsets = np.concatenate([[0], np.cumsum([SIZES[d] for d in datasets])])
    stream = np.searchsorted(offsets, mixture_ids, side="right") - 1
    return (np.array(datasets)[stream] * BASE + (mixture_ids - offsets[stream])).tolist()


# --- Stream ---------------------------------------------------------------------------------


def test_stream_options_are_checked_once() -> None:
    assert Stream(local="/d", proportion=0.3).weight_kind == "proportion"
    assert Stream(remote="s3://b/d", local="/c").weight_kind is None
    with pytest.raises(ValueError, match="remote= .* or local="):
        Stream()
    with pytest.raises(ValueError, match="sets proportion and repeat: give at most one"):
        Stream(local="/d", proportion=0.5, repeat=2)
    with pytest.raises(ValueError, match="proportion= must be a finite number >= 0"):
        Stream(local="/d", proportion=-1)
    with pytest.raises(ValueError, match="repeat= must be a finite number"):
        Stream(local="/d", repeat=float("inf"))
    with pytest.raises(ValueError, match="choose= must be a whole number"):
        Stream(local="/d", choose=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version= must be a dataset version"):
        Stream(local="/d", version="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split= must be a non-empty string"):
        Stream(local="/d", split="")
    with pytest.raises(AttributeError):
        Stream(local="/d").choose = 3  # type: ignore[misc]  # frozen


# --- the mixture reader ---------------------------------------------------------------------


class _Local:
    per_process = False

    def __init__(self, stream: Stream) -> None:
        self.path = stream.local

    def open(self, version: int | None) -> DatasetReader:
        return DatasetReader(str(self.path), version=version)


def test_mixture_reader_reads_across_streams(stream_dirs: list[str]) -> None:
    streams = [Stream(local=d) for d in stream_dirs]
    mixture, source, reader = open_mixture(streams, _Local)
    assert reader.num_samples == sum(SIZES) and mixture.epoch_size == sum(SIZES)
    ids = np.array([0, 99, 100, 159, 160, 189, 5, 101])
    batch = reader.get_batch(ids)
    assert batch["id"].tolist() == values(ids, [0, 1, 2])
    assert batch["label"].tolist() == [0, 0, 1, 1, 2, 2, 0, 1]
    assert reader.get(101) == {"id": BASE + 1, "label": 1}
    assert source.open().get_batch(ids)["id"].tolist() == batch["id"].tolist()
    with pytest.raises(IndexError, match="190"):
        reader.get(190)


def test_streams_must_share_columns(stream_dirs: list[str], tmp_path: Path) -> None:
    other = tmp_path / "other"
    table = pa.table({"id": np.arange(5, dtype=np.int64)})
    with ShardWriter(other) as writer:
        writer.write_batch(table)
    streams = [Stream(local=stream_dirs[0]), Stream(local=str(other))]
    with pytest.raises(SchemaError, match=r"stream 1 .* has columns \['id'\].*columns=\["):
        open_mixture(streams, _Local)


# --- StreamingDataset(streams=...) ----------------------------------------------------------


def test_dataset_over_a_weighted_mixture(stream_dirs: list[str]) -> None:
    a, b, c = stream_dirs
    streams = [Stream(local=a, proportion=5), Stream(local=b, proportion=3), Stream(local=c)]
    with pytest.raises(ValueError, match="stream 2 .* sets no weight"):
        StreamingDataset(streams=streams)
    streams[2] = Stream(local=c, proportion=2)
    ds = StreamingDataset(streams=streams, epoch_size="1k", batch_size=50, shuffle=True)
    assert ds.epoch_size == 1000 and ds.num_samples == sum(SIZES) and len(ds) == 1000
    assert ds[100] == {"id": BASE, "label": 1}  # ds[i] indexes the streams concatenated
    labels = np.concatenate([b["label"] for b in ds.iter_batches()])
    assert np.bincount(labels).tolist() == [500, 300, 200]  # exactly, every epoch
    with pytest.raises(ValueError, match="give remote=/local=/version= on each Stream"):
        StreamingDataset(streams=streams, local=a)
    assert StreamingDataset(local=a, epoch_size=10).epoch_size == 10  # one dataset resampled
    with pytest.raises(ValueError, match="'per_stream' needs batch_size"):
        StreamingDataset(streams=streams, batching_method="per_stream")
    with pytest.raises(ValueError, match="batching_method='device_per_stream'.*'per_stream'"):
        StreamingDataset(streams=streams, batching_method="device_per_stream")


def test_unweighted_streams_read_every_sample_exactly_once(stream_dirs: list[str]) -> None:
    streams = [Stream(local=d) for d in stream_dirs] + [Stream(local=stream_dirs[2], repeat=2)]
    ds = StreamingDataset(streams=streams, batch_size=50, shuffle=True, num_canonical_nodes=2)
    for _ in range(2):
        seen = Counter(np.concatenate([b["id"] for b in ds.iter_batches()]).tolist())
        expected = Counter(values(np.arange(sum(SIZES)), [0, 1, 2]))
        expected.update({2 * BASE + i: 2 for i in range(SIZES[2])})  # C: once, then twice more
        assert seen == expected


def test_random_mix_holds_proportions_in_expectation(stream_dirs: list[str]) -> None:
    """The first batch of each of 60 epochs: stream shares within 4.5 sigma of the weights."""
    streams = [Stream(local=d, proportion=p) for d, p in zip(stream_dirs, (0.5, 0.3, 0.2))]
    ds = StreamingDataset(streams=streams, epoch_size=250, batch_size=25, shuffle=True)
    epochs, counts = 60, np.zeros(3)
    for _ in range(epochs):
        first = next(ds.iter_batches())
        counts += np.bincount(first["label"], minlength=3)
    draws = epochs * 25
    for share, got in zip((0.5, 0.3, 0.2), counts):
        # Hypergeometric within an epoch (one shuffle block): at most the binomial variance.
        assert abs(got - draws * share) < 4.5 * np.sqrt(draws * share * (1 - share))


def test_stratified_batches_hold_exact_proportions(stream_dirs: list[str]) -> None:
    streams = [Stream(local=d, proportion=p) for d, p in zip(stream_dirs, (0.5, 0.3, 0.2))]
    ranks = []
    for rank in range(2):
        ds = StreamingDataset(
            streams=streams,
            epoch_size=640,
            batch_size=32,
            shuffle=True,
            batching_method="stratified",
            topology=Topology.of_rank(rank, 2, 2),
        )
        ranks.append([b["label"] for b in ds.iter_batches()])
    for step in zip(*ranks):  # every global batch of 64: 32, 19 or 20, 12 or 13
        shares = np.bincount(np.concatenate(step), minlength=3).tolist()
        assert shares[0] == 32 and shares[1] in (19, 20) and shares[2] in (12, 13)
        assert sum(shares) == 64


def test_fractional_repeat_draws_a_fresh_seeded_subset_each_epoch(stream_dirs: list[str]) -> None:
    streams = [Stream(local=stream_dirs[0], repeat=0.5), Stream(local=stream_dirs[1])]
    ds = StreamingDataset(streams=streams, batch_size=15, shuffle=True)
    epochs = [np.concatenate([b["id"] for b in ds.iter_batches()]) for _ in range(3)]
    subsets = [set(e[e < BASE].tolist()) for e in epochs]
    assert all(len(s) == SIZES[0] // 2 for s in subsets) and subsets[0] != subsets[1]
    again = StreamingDataset(streams=streams, batch_size=15, shuffle=True)
    assert np.concatenate([b["id"] for b in again.iter_batches()]).tolist() == epochs[0].tolist()
    fixed = StreamingDataset(streams=streams, batch_size=15, shuffle=True, sampling_method="fixed")
    firsts = [np.concatenate([b["id"] for b in fixed.iter_batches()]) for _ in range(2)]
    assert set(firsts[0][firsts[0] < BASE].tolist()) == set(firsts[1][firsts[1] < BASE].tolist())


# --- exact and elastic resume over random mixtures ------------------------------------------


def mix_rank_batches(
    streams: list[Stream],
    topology: Topology,
    num_workers: int,
    state: dict[str, Any] | None,
    **options: Any,
) -> list[list[int]]:
    per_worker = []
    for worker in range(max(num_workers, 1)):
        ds = StreamingDataset(
            streams=streams, topology=topology.with_worker(worker, num_workers), **options
        )
        if state is not None:
            ds.load_state_dict(state)
        per_worker.append([np.asarray(b["id"]).tolist() for b in ds.iter_batches()])
    return round_robin(per_worker)


def mix_global_steps(
    streams: list[Stream], nodes: int, per_node: int, workers: int, **options: Any
) -> list[list[int]]:
    world = nodes * per_node
    ranks = [
        mix_rank_batches(streams, Topology.of_rank(r, world, per_node), workers, **options)
        for r in range(world)
    ]
    steps = {len(batches) for batches in ranks}
    assert len(steps) == 1, f"ranks disagree on the number of steps: {steps}"
    return [[i for batches in ranks for i in batches[t]] for t in range(steps.pop())]


@st.composite
def weighted_streams(draw: st.DrawFn, dirs: list[str]) -> tuple[list[Stream], int | None]:
    chosen = draw(st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
    kind = draw(st.sampled_from(["none", "proportion", "absolute"]))
    if kind == "proportion":
        shares = [draw(st.integers(0, 4)) for _ in chosen]
        shares[0] = shares[0] or 1
        size = draw(st.none() | st.integers(1, 300))
        return [Stream(local=dirs[s], proportion=p) for s, p in zip(chosen, shares)], size
    if kind == "none":
        return [Stream(local=dirs[s]) for s in chosen], draw(st.none() | st.integers(1, 300))
    weights = st.sampled_from([{}, {"repeat": 0.5}, {"repeat": 1.7}, {"choose": 33}])
    return [Stream(local=dirs[s], **draw(weights)) for s in chosen], None


topologies = st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(0, 2), st.integers(1, 24))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data(), topologies, topologies, st.booleans(), st.integers(0, 3))
def test_any_mixture_reads_its_order_and_resumes_elastically(
    stream_dirs: list[str],
    data: st.DataObject,
    before: tuple[int, int, int, int],
    after: tuple[int, int, int, int],
    drop_last: bool,
    epoch: int,
) -> None:
    streams, epoch_size = data.draw(weighted_streams(stream_dirs))
    options = {
        "shuffle": True,
        "shuffle_seed": 3,
        "shuffle_block_size": data.draw(st.sampled_from([16, 1 << 18])),
        "num_canonical_nodes": 2,
        "drop_last": drop_last,
        "epoch_size": epoch_size,
        "batching_method": data.draw(st.sampled_from(["random", "stratified"])),
    }
    nodes, per_node, workers, batch = before
    g = nodes * per_node * batch
    probe = StreamingDataset(
        streams=streams,
        batch_size=batch,
        topology=Topology.of_rank(0, nodes * per_node, per_node),
        **options,
    )
    n = probe.epoch_size
    start = probe.resume_state(epoch, 0)
    run = mix_global_steps(
        streams, nodes, per_node, workers, batch_size=batch, state=start, **options
    )
    part = EpochPartition(n, batch, nodes, per_node, 0, drop_last)
    assert len(run) == (n // g if drop_last else -(-n // g))
    assert [len(s) for s in run] == [part.step_batch(t) * part.world for t in range(len(run))]
    datasets = [stream_dirs.index(str(s.local)) for s in streams]
    order = values(probe.order(epoch).all_ids(), datasets)
    k = data.draw(st.integers(0, len(run)))
    state = probe.resume_state(epoch, min(k * g, n))
    order2, rest, g2, part2 = order, [], g, part
    if k * g >= n:
        assert (state["epoch"], state["sample_in_epoch"]) == (epoch + 1, 0)
    else:
        nodes2, per_node2, workers2, batch2 = after
        g2 = nodes2 * per_node2 * batch2
        part2 = EpochPartition(n, batch2, nodes2, per_node2, min(k * g, n), drop_last)
        rest = mix_global_steps(
            streams, nodes2, per_node2, workers2, batch_size=batch2, state=state, **options
        )
        resumed = StreamingDataset(
            streams=streams,
            batch_size=batch2,
            topology=Topology.of_rank(0, nodes2 * per_node2, per_node2),
            **options,
        )
        resumed.load_state_dict(state)
        order2 = values(resumed.order(epoch).all_ids(), datasets)
        # Mid-epoch the same order continues on any topology; a state at the epoch's very
        # start may re-stratify by the new global batch.
        if k or options["batching_method"] == "random" or g2 == g:
            assert order2 == order
    # Every step reads exactly the ids at its positions of the mixed order, before and after
    # the resume (padding folded back to the epoch's start): the run continues where it stopped.
    consumed = min(k * g, n)
    spans = [(t * g, part.step_batch(t) * part.world, order) for t in range(k)]
    spans += [
        (consumed + t * g2, part2.step_batch(t) * part2.world, order2) for t in range(len(rest))
    ]
    for step, (first, size, ref) in zip(run[:k] + rest, spans, strict=True):
        assert Counter(step) == Counter(ref[p % n] for p in range(first, first + size))
    real = [p for first, size, _ in spans for p in range(first, first + size) if p < n]
    assert real == list(range(len(real)))
    assert n - len(real) < (g2 if drop_last else 1)


# --- curriculum: the mixture changes between epochs -----------------------------------------


def test_new_weights_or_streams_start_at_the_next_epoch(stream_dirs: list[str]) -> None:
    a, b, c = stream_dirs
    old = [Stream(local=a, proportion=0.8), Stream(local=b, proportion=0.2)]
    new = [Stream(local=a, proportion=0.4), Stream(local=b, proportion=0.3)]
    new.append(Stream(local=c, proportion=0.3))
    options: dict[str, Any] = {"batch_size": 20, "shuffle": True, "epoch_size": 200}
    loader = StreamingDataLoader(StreamingDataset(streams=old, **options), num_workers=0)
    first = [b["label"].tolist() for b in loader]
    assert np.bincount(np.concatenate(first)).tolist() == [160, 40]
    boundary = loader.state_dict()
    assert (boundary["epoch"], boundary["sample_in_epoch"]) == (1, 0)
    # A new mixture continues from the boundary: its epoch 1, exactly as a fresh run has it.
    switched = StreamingDataLoader(StreamingDataset(streams=new, **options), num_workers=0)
    switched.load_state_dict(boundary)
    fresh = StreamingDataset(streams=new, **options)
    fresh.load_state_dict(fresh.resume_state(1, 0))
    got = [b["id"].tolist() for b in switched]
    assert got == [b["id"].tolist() for b in fresh.iter_batches()]
    assert np.bincount(np.concatenate([b["label"] for b in fresh.iter_batches()])).tolist() == [
        80,
        60,
        60,
    ]
    assert switched.state_dict()["epoch"] == 2
    # Within an epoch, a changed mixture is refused, naming what changed.
    mid_loader = StreamingDataLoader(StreamingDataset(streams=old, **options), num_workers=0)
    it = iter(mid_loader)
    next(it)
    middle = mid_loader.state_dict()
    with pytest.raises(ResumeStateError) as info:
        StreamingDataset(streams=new, **options).load_state_dict(middle)
    message = str(info.value)
    assert "the mixture changed within epoch 0 (20 of 200 samples consumed)" in message
    assert "stream 0: state has" in message and "per_epoch=160" in message
    assert "stream 2: state has 'no such stream'" in message
    assert "epoch=1 and sample_in_epoch=0" in message
    # ... while the seed may not change even at a boundary.
    with pytest.raises(ResumeStateError, match="shuffle_seed"):
        StreamingDataset(streams=new, shuffle_seed=1, **options).load_state_dict(boundary)


def test_stream_versions_are_pinned_and_fingerprinted(
    stream_dirs: list[str], tmp_path: Path
) -> None:
    grown = tmp_path / "grown"
    shutil.copytree(stream_dirs[1], grown)
    streams = [Stream(local=stream_dirs[0]), Stream(local=str(grown))]
    ds = StreamingDataset(streams=streams, batch_size=10, shuffle=True)
    state = ds.resume_state(0, 30)
    more = pa.table({"id": [BASE + 999], "label": [1]}, schema=SCHEMA)
    with ShardWriter(grown, mode="append") as writer:
        writer.write_batch(more)
    latest = StreamingDataset(streams=streams, batch_size=10, shuffle=True)
    with pytest.raises(ResumeStateError, match="stream 1: state has .*version=1.*version=2"):
        latest.load_state_dict(state)
    streams[1] = Stream(local=str(grown), version=1)
    pinned = StreamingDataset(streams=streams, batch_size=10, shuffle=True)
    pinned.load_state_dict(state)  # time travel: the pinned version resumes exactly
    assert pinned.epoch_size == sum(SIZES[:2])


def test_a_remote_stream_streams_through_its_own_cache(
    stream_dirs: list[str], s3_server: Any, tmp_path: Path
) -> None:
    """One stream from S3 (moto on 127.0.0.1) through its cache, mixed with a local one."""
    remote = f"{s3_server.new_bucket()}/c"
    table = pa.table({"id": 2 * BASE + np.arange(30), "label": np.full(30, 2)}, schema=SCHEMA)
    with ShardWriter(remote, size_limit=400, storage_options=s3_server.storage_options) as w:
        w.write_batch(table)
    cache = tmp_path / "cache"
    streams = [Stream(remote=remote, local=str(cache), version=1), Stream(local=stream_dirs[1])]
    ds = StreamingDataset(
        streams=[streams[0], Stream(local=stream_dirs[1], repeat=2)],
        storage_options=s3_server.storage_options,
        batch_size=10,
        shuffle=True,
    )
    assert ds.fingerprint().streams[0].startswith("fingerprint=")
    seen = Counter(i for b in StreamingDataLoader(ds) for i in b["id"].tolist())
    expected = Counter({2 * BASE + i: 1 for i in range(30)})
    expected.update({BASE + i: 2 for i in range(SIZES[1])})
    assert seen == expected
    assert any(cache.rglob("*.mds")), "the remote stream's shards were cached locally"
    assert ds.io_counters()["bytes_downloaded"] > 0


def test_loader_workers_resume_a_stratified_mixture(stream_dirs: list[str]) -> None:
    streams = [Stream(local=d, repeat=r) for d, r in zip(stream_dirs, (1, 0.5, 2))]
    options: dict[str, Any] = {"batch_size": 16, "shuffle": True, "batching_method": "stratified"}
    loader = StreamingDataLoader(StreamingDataset(streams=streams, **options), num_workers=2)
    whole = [b["id"].tolist() for b in loader]
    loader = StreamingDataLoader(StreamingDataset(streams=streams, **options), num_workers=2)
    it = iter(loader)
    head = [next(it)["id"].tolist() for _ in range(5)]
    state = loader.state_dict()
    del it
    assert head == whole[:5]
    # Resume with a different batch size and worker count: the same order continues.
    other = StreamingDataset(streams=streams, **{**options, "batch_size": 8})
    resumed = StreamingDataLoader(other, num_workers=1)
    resumed.load_state_dict(state)
    rest = [i for b in resumed for i in b["id"].tolist()]
    n = SIZES[0] + SIZES[1] // 2 + 2 * SIZES[2]  # 190: one device, so no padding
    assert rest[: n - 80] == [i for batch in whole for i in batch][80:n]


def test_raw_and_compressed_streams_mix_through_workers(tmp_path: Path) -> None:
    # A raw stream's bytes column crosses by reference, a compressed one's by value; a batch
    # holding both arrives like the 0-worker read, value for value and in order.
    def write(path: Path, base: int, compression: str | None) -> str:
        ids = np.arange(base, base + 90, dtype=np.int64)
        blobs = [None if i % 7 == 0 else bytes([i % 256]) * (i % 11) for i in ids.tolist()]
        table = pa.table({"id": ids, "blob": pa.array(blobs, pa.binary())})
        with ShardWriter(path, size_limit=600, compression=compression) as writer:
            writer.write_batch(table)
        return str(path)

    streams = [
        Stream(local=write(tmp_path / "raw", 0, None)),
        Stream(local=write(tmp_path / "zstd", 1000, "zstd")),
    ]

    def epoch(workers: int) -> list[list[Any]]:
        ds = StreamingDataset(streams=streams, batch_size=16, shuffle=True, shuffle_seed=3)
        loader = StreamingDataLoader(ds, batch_size=16, num_workers=workers)
        return [
            list(zip(b["id"].tolist(), [None if v is None else bytes(v) for v in b["blob"]]))
            for b in loader
        ]

    alone = epoch(0)
    assert sorted(i for b in alone for i, _ in b) == [*range(90), *range(1000, 1090)]
    assert all(v is None or v == bytes([i % 256]) * (i % 11) for b in alone for i, v in b)
    assert epoch(2) == alone
