"""Every keyword of Mosaic's StreamingDataset and Stream has a defined fate (loader.mosaic_keywords).

The keyword lists are pinned here and checked against Mosaic 0.13.0's real signatures (in its
own venv), so a keyword Mosaic has cannot be forgotten; then each fate is exercised.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mosaic_peer import PEER_PYTHON, REPO_ROOT, require_mosaic_peer

from loader import Stream, Topology
from loader.dataset import StreamingDataset
from loader.mosaic_keywords import DATASET_FATES, STREAM_FATES, fate_table, replicate
from sparkshard import ShardWriter

# Mosaic 0.13.0's keyword-only parameters (checked against the real signatures below).
MOSAIC_DATASET = [
    "streams", "remote", "local", "split", "download_retry", "download_timeout",
    "validate_hash", "keep_zip", "epoch_size", "predownload", "cache_limit", "sampling_method",
    "sampling_granularity", "partition_algo", "num_canonical_nodes", "batch_size", "shuffle",
    "shuffle_algo", "shuffle_seed", "shuffle_block_size", "batching_method",
    "allow_unsafe_types", "replication", "stream_name", "stream_config",
]  # fmt: skip
MOSAIC_STREAM = [
    "remote", "local", "split", "proportion", "repeat", "choose", "download_retry",
    "download_timeout", "validate_hash", "keep_zip",
]  # fmt: skip
N = 117


def _write(path: Path, n: int = N, compression: str | None = None) -> str:
    schema = pa.schema([pa.field("id", pa.int64(), False)])
    table = pa.table({"id": np.arange(n, dtype=np.int64)}, schema=schema)
    with ShardWriter(path, compression=compression, size_limit=300) as writer:
        writer.write_batch(table)
    return str(path)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> str:
    """117 samples ``{id}``, uncompressed (read in place), in several shards."""
    return _write(tmp_path_factory.mktemp("kw") / "plain")


@pytest.fixture(scope="module")
def zipped(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same, zstd-compressed (read through the cache)."""
    return _write(tmp_path_factory.mktemp("kw") / "zipped", compression="zstd")


def _ids(ds: StreamingDataset, epoch: int = 0) -> list[int]:
    """The epoch's global order as sample ids (no partition, no padding)."""
    order = ds.order(epoch)
    return [int(i) for i in order.ids(np.arange(ds.epoch_size, dtype=np.int64))]


# --- the table covers Mosaic's signatures ------------------------------------------------
def test_the_table_covers_every_pinned_keyword_and_we_accept_each() -> None:
    assert list(DATASET_FATES) == MOSAIC_DATASET
    assert sorted(STREAM_FATES) == sorted(MOSAIC_STREAM)
    ours = inspect.signature(StreamingDataset.__init__).parameters
    assert [k for k in MOSAIC_DATASET if k not in ours] == []
    stream_fields = {f.name for f in fields(Stream)}
    assert [k for k in MOSAIC_STREAM if k not in stream_fields] == []


@pytest.mark.mosaic
def test_the_pinned_keywords_are_mosaics_real_signatures() -> None:
    require_mosaic_peer()
    code = (
        "import inspect, json\n"
        "from streaming import StreamingDataset, Stream\n"
        "def kw(f):\n"
        "    ps = inspect.signature(f).parameters.values()\n"
        "    return [p.name for p in ps if p.kind is p.KEYWORD_ONLY]\n"
        "print(json.dumps([kw(StreamingDataset.__init__), kw(Stream.__init__)]))\n"
    )
    import subprocess

    out = subprocess.run(
        [str(PEER_PYTHON), "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    dataset, stream = json.loads(out.stdout.strip().splitlines()[-1])
    assert dataset == MOSAIC_DATASET
    assert stream == MOSAIC_STREAM


def test_the_readme_shows_the_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert fate_table() in readme, "README's keyword table is stale: paste fate_table() there"


# --- validation as Mosaic does it ---------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"sampling_method": "ayo"}, ["sampling_method", "balanced"]),
        ({"sampling_granularity": 0}, ["sampling_granularity"]),
        ({"sampling_granularity": 4}, ["sampling_granularity", "omit"]),
        ({"batching_method": "per_stream"}, ["per_stream", "batch_size"]),
        ({"batching_method": "device_per_stream"}, ["device_per_stream", "'per_stream'"]),
        ({"batching_method": "nope"}, ["batching_method"]),
        ({"partition_algo": "nope"}, ["partition_algo", "relaxed"]),
        ({"replication": 0}, ["replication"]),
        ({"predownload": -1}, ["predownload"]),
        ({"predownload": 8, "prefetch_bytes": "1MB"}, ["predownload", "prefetch_bytes"]),
        ({"validate_hash": "nope"}, ["validate_hash"]),
        ({"validate_hash": "xxh64", "verify_hashes": False}, ["validate_hash", "verify_hashes"]),
        ({"validate_hash": "sha1"}, ["validate_hash", "sha1", "xxh64"]),
        ({"stream_name": "custom"}, ["stream_name", "streams="]),
        ({"stream_config": {"bogus": 1}}, ["stream_config", "bogus"]),
        ({"shuffle_seed": -1}, ["shuffle_seed"]),
    ],
)
def test_bad_values_are_refused_naming_the_keyword(
    plain: str, kwargs: dict[str, object], names: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        StreamingDataset(local=plain, **kwargs)  # type: ignore[arg-type]
    for name in names:
        assert name in str(info.value)


def test_keep_zip_true_with_a_remote_is_refused(plain: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_zip"):
        StreamingDataset(remote=plain, local=str(tmp_path / "cache"), keep_zip=True)
    with pytest.raises(ValueError, match="keep_zip"):
        Stream(remote=plain, local=str(tmp_path / "c"), keep_zip=True)
    assert StreamingDataset(local=plain, keep_zip=True).num_samples == N  # nothing deleted


def test_accepted_values_keep_our_behaviour(plain: str, caplog: pytest.LogCaptureFixture) -> None:
    base = _ids(StreamingDataset(local=plain, shuffle=True))
    with caplog.at_level(logging.WARNING, logger="loader"):
        ds = StreamingDataset(
            local=plain, shuffle=True, partition_algo="relaxed", sampling_granularity=1,
            sampling_method="fixed", validate_hash="xxh64", keep_zip=False, stream_name="stream",
            shuffle_algo="py1e", predownload=64,
        )  # fmt: skip
    assert _ids(ds) == base
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "partition_algo='relaxed'" in warned and "shuffle_algo='py1e'" in warned


# --- epoch_size on one dataset: a one-stream mixture ----------------------------------------
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(epoch_size=st.integers(1, 4 * N), shuffle=st.booleans())
def test_epoch_size_resamples_one_dataset(plain: str, epoch_size: int, shuffle: bool) -> None:
    ds = StreamingDataset(local=plain, epoch_size=epoch_size, shuffle=shuffle)
    assert ds.epoch_size == epoch_size and ds.num_samples == N
    seen = Counter(_ids(ds))
    assert sum(seen.values()) == epoch_size
    whole, rest = divmod(epoch_size, N)
    assert set(seen) <= set(range(N))
    # every sample `whole` times, `rest` of them once more: balanced, as Mosaic samples
    assert {seen[i] for i in range(N)} <= {whole, whole + 1}
    assert sum(seen[i] == whole + 1 for i in range(N)) == rest


def test_epoch_size_takes_mosaics_abbreviations_and_stream_config(plain: str) -> None:
    assert StreamingDataset(local=plain, epoch_size="0.2k").epoch_size == 200
    assert StreamingDataset(local=plain, stream_config={"repeat": 2}).epoch_size == 2 * N
    assert StreamingDataset(local=plain, stream_config={"choose": 10}).epoch_size == 10
    with pytest.raises(ValueError, match="stream_config"):
        StreamingDataset(streams=[Stream(local=plain)], stream_config={"repeat": 2})


def test_a_balanced_subset_is_fresh_each_epoch_and_fixed_stays(plain: str) -> None:
    fresh = StreamingDataset(local=plain, epoch_size=40, shuffle=True)
    fixed = StreamingDataset(local=plain, epoch_size=40, shuffle=True, sampling_method="fixed")
    assert set(_ids(fresh, 0)) != set(_ids(fresh, 1))
    assert set(_ids(fixed, 0)) == set(_ids(fixed, 1))


# --- replication ----------------------------------------------------------------------------
def _rank_ids(path: str, rank: int, world: int, per_node: int, replication: int) -> list[int]:
    topo = Topology.of_rank(rank, world, per_node)
    ds = StreamingDataset(local=path, batch_size=4, topology=topo, replication=replication)
    return [int(i) for b in ds.iter_batches() for i in b["id"]]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    groups=st.integers(1, 4),
    replication=st.integers(1, 4),
    per_node=st.sampled_from([1, 2, 4]),
)
def test_replication_gives_groups_of_ranks_the_same_samples(
    plain: str, groups: int, replication: int, per_node: int
) -> None:
    world = groups * replication
    if world % per_node:
        per_node = 1
    reads = [_rank_ids(plain, r, world, per_node, replication) for r in range(world)]
    plain_reads = [_rank_ids(plain, g, groups, 1, 1) for g in range(groups)]
    for rank, ids in enumerate(reads):
        assert ids == reads[rank - rank % replication], f"rank {rank} differs from its group"
    # the groups split the epoch as `groups` plain ranks would: every sample, equal steps
    firsts = [reads[g * replication] for g in range(groups)]
    assert [len(ids) for ids in firsts] == [len(ids) for ids in plain_reads]
    assert {i for ids in firsts for i in ids} == set(range(N))


def test_replication_must_divide_the_world(plain: str) -> None:
    with pytest.raises(ValueError, match="replication=3 must divide"):
        StreamingDataset(local=plain, topology=Topology.of_rank(0, 4, 2), replication=3)


def test_replicate_is_mosaics_world_replicate() -> None:
    # 2 nodes x 8 ranks, replication 2: 8 parallel ranks, on one node (Mosaic's rule)
    topo = replicate(Topology.of_rank(13, 16, 8), 2)
    assert (topo.rank, topo.world, topo.nodes, topo.ranks_per_node) == (6, 8, 1, 8)
    topo = replicate(Topology.of_rank(13, 16, 4), 2)
    assert (topo.rank, topo.world, topo.nodes, topo.node, topo.local_rank) == (6, 8, 2, 1, 2)


# --- predownload, validate_hash, Stream download keywords ------------------------------------
def test_predownload_maps_onto_the_read_ahead(zipped: str) -> None:
    ds = StreamingDataset(local=zipped, predownload=10)
    index = json.loads((Path(zipped) / "index.json").read_text())
    raw = sum(s["raw_data"]["bytes"] for s in index["shards"])
    want = 10 * -(-raw // N)
    assert ds._source.options.download.prefetch_bytes == want  # type: ignore[attr-defined]
    assert sorted(_ids(ds)) == list(range(N))
    assert [int(b["id"][0]) for b in ds.iter_batches()][:1] == [0]


def test_validate_hash_must_be_recorded_in_the_index(zipped: str, tmp_path: Path) -> None:
    StreamingDataset(local=zipped, validate_hash="xxh64")
    with pytest.raises(ValueError, match="records only"):
        StreamingDataset(streams=[Stream(local=zipped, validate_hash="md5")])


def test_stream_download_keywords_reach_its_source(zipped: str, plain: str) -> None:
    streams = [
        Stream(local=zipped, download_retry=5, download_timeout=7.5, validate_hash="xxh64"),
        Stream(local=plain),
    ]
    ds = StreamingDataset(streams=streams, download_retry=1)
    first, second = ds._source.sources  # type: ignore[attr-defined]
    assert (first.options.download.retries, first.options.download.timeout) == (5, 7.5)
    assert first.options.verify_hashes
    assert second.options.download.retries == 1
    for bad in ({"download_retry": -1}, {"download_timeout": 0}, {"validate_hash": "nope"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Stream(local=plain, **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verify_hashes"):
        Stream(local=plain, validate_hash="xxh64", verify_hashes=False)


# --- per_stream batching --------------------------------------------------------------------
@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> str:
    """45 samples ``{id}`` with ids from 1000 (a second stream)."""
    path = tmp_path_factory.mktemp("kw") / "other"
    schema = pa.schema([pa.field("id", pa.int64(), False)])
    table = pa.table({"id": 1000 + np.arange(45, dtype=np.int64)}, schema=schema)
    with ShardWriter(path, compression=None, size_limit=300) as writer:
        writer.write_batch(table)
    return str(path)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.sampled_from([4, 5, 8]), world=st.sampled_from([1, 2]), repeat=st.sampled_from([1, 2])
)
def test_per_stream_batches_hold_one_stream(
    plain: str, other: str, batch: int, world: int, repeat: float
) -> None:
    streams = [Stream(local=plain), Stream(local=other, repeat=repeat)]
    z = batch * world
    reads = []
    for rank in range(world):
        topo = Topology.of_rank(rank, world, world)
        ds = StreamingDataset(
            streams=streams, batching_method="per_stream", batch_size=batch, topology=topo,
            shuffle=True,
        )  # fmt: skip
        reads.append([[int(i) for i in b["id"]] for b in ds.iter_batches()])
    assert ds.epoch_size == N // z * z + (45 * repeat) // z * z
    steps = [list(step) for step in zip(*reads)]
    assert len(steps) == ds.epoch_size // z and all(len(r) == len(steps) for r in reads)
    seen: Counter[int] = Counter()
    for step in steps:
        ids = [i for part in step for i in part]
        assert len({i >= 1000 for i in ids}) == 1, f"a global batch mixes streams: {ids}"
        seen.update(ids)
    assert max(seen.values()) <= repeat and sum(seen.values()) == ds.epoch_size
    origins = [step[0][0] >= 1000 for step in steps]
    assert origins != sorted(origins)  # the streams' batches interleave, seeded


def test_per_stream_on_one_dataset_drops_the_last_partial_batch(plain: str) -> None:
    ds = StreamingDataset(local=plain, batching_method="per_stream", batch_size=8)
    assert ds.epoch_size == 112 and len(set(_ids(ds))) == 112


def test_per_stream_resumes_exactly_and_refuses_a_stream_short_of_a_batch(
    plain: str, other: str
) -> None:
    streams = [Stream(local=plain), Stream(local=other)]
    kwargs = {"streams": streams, "batching_method": "per_stream", "shuffle": True}
    ds = StreamingDataset(batch_size=8, **kwargs)  # type: ignore[arg-type]
    whole = [int(i) for b in ds.iter_batches() for i in b["id"]]
    resumed = StreamingDataset(batch_size=8, **kwargs)  # type: ignore[arg-type]
    resumed.load_state_dict(ds.resume_state(0, 40))
    assert [int(i) for b in resumed.iter_batches() for i in b["id"]] == whole[40:]
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StreamingDataset(batch_size=64, **kwargs)  # type: ignore[arg-type]
