"""The epoch order: a seeded permutation, lazy, shard-local, and pinned by a golden case."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.order.epoch import EpochOrder, OrderSettings, node_sizes

shard_sizes = st.lists(st.integers(0, 40), min_size=1, max_size=12).map(
    lambda sizes: np.array(sizes, np.int64)
)
order_settings = st.builds(
    OrderSettings,
    seed=st.integers(0, 2**32),
    num_canonical_nodes=st.integers(1, 6),
    shuffle=st.booleans(),
    block_size=st.integers(1, 64),
)


def _shard_of(sizes: np.ndarray) -> np.ndarray:
    """Shard index of every global sample id."""
    return np.repeat(np.arange(len(sizes)), sizes)


@settings(max_examples=150, deadline=None)
@given(shard_sizes, order_settings, st.integers(0, 5))
def test_every_sample_exactly_once(sizes: np.ndarray, cfg: OrderSettings, epoch: int) -> None:
    ids = EpochOrder(sizes, cfg, epoch).all_ids()
    assert sorted(ids.tolist()) == list(range(int(sizes.sum())))


@settings(max_examples=100, deadline=None)
@given(shard_sizes, order_settings, st.integers(0, 5), st.data())
def test_any_access_pattern_gives_the_same_order(
    sizes: np.ndarray, cfg: OrderSettings, epoch: int, data: st.DataObject
) -> None:
    full = EpochOrder(sizes, cfg, epoch).all_ids()
    n = len(full)
    if n == 0:
        return
    # A fresh instance with a one-block cache, read in random order and in strided runs.
    order = EpochOrder(sizes, cfg, epoch, cache_blocks=1)
    positions = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=50)), np.int64)
    assert order.ids(positions).tolist() == full[positions].tolist()
    first = data.draw(st.integers(0, n - 1))
    stride = data.draw(st.integers(1, 9))
    count = data.draw(st.integers(0, (n - 1 - first) // stride + 1))
    expected = full[first : first + stride * count : stride] if count else full[:0]
    assert order.ids_run(first, stride, count).tolist() == expected.tolist()


@settings(max_examples=100, deadline=None)
@given(shard_sizes, order_settings, st.integers(0, 5))
def test_canonical_nodes_own_fixed_disjoint_shard_ranges(
    sizes: np.ndarray, cfg: OrderSettings, epoch: int
) -> None:
    nodes = cfg.num_canonical_nodes
    a, b = EpochOrder(sizes, cfg, epoch).all_ids(), EpochOrder(sizes, cfg, epoch + 1).all_ids()
    shard = _shard_of(sizes)
    for c in range(nodes):
        mine_a, mine_b = a[c::nodes], b[c::nodes]
        assert len(mine_a) == node_sizes(len(a), nodes)[c]
        # The same samples every epoch: a node's cache stays warm across epochs.
        assert set(mine_a.tolist()) == set(mine_b.tolist())
        # Whole shards, except at most the two cut at the node's boundaries.
        touched = np.unique(shard[mine_a])
        partial = [s for s in touched if (shard[mine_a] == s).sum() < sizes[s]]
        assert len(partial) <= 2


@settings(max_examples=100, deadline=None)
@given(shard_sizes, order_settings, st.integers(0, 5))
def test_blocks_are_shard_local(sizes: np.ndarray, cfg: OrderSettings, epoch: int) -> None:
    """Any ``block_size`` consecutive samples of a node's stream touch few shards."""
    order = EpochOrder(sizes, cfg, epoch)
    stream = order.all_ids()[0 :: cfg.num_canonical_nodes]
    shard = _shard_of(sizes)
    smallest = int(sizes[sizes > 0].min()) if (sizes > 0).any() else 1
    window = cfg.block_size if cfg.shuffle else 1
    for lo in range(0, len(stream), window):
        touched = len(np.unique(shard[stream[lo : lo + window]]))
        assert touched <= -(-window // smallest) + 4


@settings(max_examples=100, deadline=None)
@given(shard_sizes, order_settings, st.integers(0, 5))
def test_each_shard_piece_is_read_within_one_block(
    sizes: np.ndarray, cfg: OrderSettings, epoch: int
) -> None:
    nodes = cfg.num_canonical_nodes
    ids = EpochOrder(sizes, cfg, epoch).all_ids()
    shard = _shard_of(sizes)
    for c in range(nodes):
        stream_shards = shard[ids[c::nodes]]
        # A stream of n samples has round(n / block_size) blocks (at least 1), cut at span
        # boundaries: a block holds at most n / blocks plus one span (a shard piece).
        blocks = max(round(len(stream_shards) / cfg.block_size), 1)
        block = -(-len(stream_shards) // blocks) if cfg.shuffle else 0
        limit = block + int(sizes.max()) + 1
        for s in np.unique(stream_shards):
            where = np.flatnonzero(stream_shards == s)
            assert where[-1] - where[0] < limit


def test_unshuffled_single_node_is_index_order() -> None:
    cfg = OrderSettings(seed=7, num_canonical_nodes=1, shuffle=False)
    assert EpochOrder(np.array([3, 0, 4]), cfg, 2).all_ids().tolist() == list(range(7))


def test_unshuffled_nodes_interleave_contiguous_ranges() -> None:
    cfg = OrderSettings(seed=7, num_canonical_nodes=2, shuffle=False)
    ids = EpochOrder(np.array([3, 4]), cfg, 0).all_ids()
    assert ids.tolist() == [0, 4, 1, 5, 2, 6, 3]


def test_golden_order() -> None:
    """Pins the exact order of one small case: change it only on purpose (a new algo)."""
    cfg = OrderSettings(seed=1234, num_canonical_nodes=2, shuffle=True, block_size=5)
    order = EpochOrder(np.array([4, 0, 7, 3, 6]), cfg, epoch=3)
    assert order.all_ids().tolist() == GOLDEN


GOLDEN = [2, 6, 0, 4, 1, 10, 3, 8, 16, 5, 17, 7, 14, 9, 15, 13, 19, 11, 18, 12]


def test_seed_and_epoch_change_the_order() -> None:
    sizes = np.full(20, 50)
    base = OrderSettings(seed=1, num_canonical_nodes=2, block_size=200)
    first = EpochOrder(sizes, base, 0).all_ids()
    assert not np.array_equal(first, EpochOrder(sizes, base, 1).all_ids())
    reseeded = OrderSettings(seed=2, num_canonical_nodes=2, block_size=200)
    assert not np.array_equal(first, EpochOrder(sizes, reseeded, 0).all_ids())
    assert np.array_equal(first, EpochOrder(sizes.copy(), base, 0).all_ids())


def _peak_bytes(work: Callable[[], None]) -> int:
    """The most memory Python and numpy held at once, beyond what was held before, while
    ``work()`` ran (tracemalloc counts numpy's array buffers too)."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        held_before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        work()
        return tracemalloc.get_traced_memory()[1] - held_before
    finally:
        if not tracing:
            tracemalloc.stop()


def _start_up(shards: int, per_shard: int) -> None:
    """Build an epoch's order and read one batch of positions mid-epoch, as a resume does."""
    order = EpochOrder(
        np.full(shards, per_shard, np.int64), OrderSettings(seed=0, num_canonical_nodes=8), 5
    )
    assert order.num_samples == shards * per_shard
    ids = order.ids_run(order.num_samples // 3, 8, 256)
    assert len(np.unique(ids)) == 256 and ids.max() < order.num_samples


def test_start_up_memory_grows_with_shards_not_samples() -> None:
    """A billion samples in 100,000 shards: one int64 per sample alone would be 8 GB."""
    _start_up(1_000, 10)  # first-call allocations (numpy internals) are not the order's
    billion = _peak_bytes(lambda: _start_up(100_000, 10_000))
    million = _peak_bytes(lambda: _start_up(100_000, 10))
    # A few int64 arrays per shard (about 100 bytes a shard) plus the one block read.
    block = OrderSettings(seed=0, num_canonical_nodes=8).block_size
    assert billion < 400 * 100_000 + 32 * block, f"{billion:,} bytes for 1e9 samples"
    # A thousand times the samples in as many shards: the same memory, within 10%.
    assert billion < 1.1 * million, f"{billion:,} bytes for 1e9 samples, {million:,} for 1e6"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "shuffle_seed"),
        ({"num_canonical_nodes": 0}, "num_canonical_nodes"),
        ({"block_size": 0}, "shuffle_block_size"),
        ({"algo": "py1e"}, "shuffle_algo"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"seed": 0, "num_canonical_nodes": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        OrderSettings(**args)  # type: ignore[arg-type]


def test_positions_outside_the_order_are_refused() -> None:
    order = EpochOrder(np.array([5]), OrderSettings(seed=0, num_canonical_nodes=1), 0)
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        order.ids(np.array([5]))
    with pytest.raises(IndexError):
        order.ids_run(3, 1, 3)
