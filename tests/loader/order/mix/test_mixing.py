"""The math of mixtures: weights, drawn subsets, stratified batches and mixed orders (pure)."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.options import Stream
from loader.order.epoch import OrderSettings
from loader.order.mix.orders import RandomMixOrder, StratifiedMixOrder
from loader.order.mix.strata import StratumPlan
from loader.order.mix.virtual import VirtualShards, partial_subset
from loader.order.mix.weights import (
    apportion,
    mixture_may_change,
    parse_epoch_size,
    samples_per_stream,
)


def _streams(**weights: list[float | int | None]) -> list[Stream]:
    kind, values = next(iter(weights.items()))
    return [Stream(local=f"s{i}", **{kind: v}) for i, v in enumerate(values)]


# --- weights ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10_000),
    st.lists(st.floats(0, 100, allow_nan=False) | st.integers(0, 100), min_size=1, max_size=6),
)
def test_apportion_rounds_each_quota_down_or_up(total: int, weights: list[float]) -> None:
    exact = [Fraction(w) for w in weights]
    if total and sum(exact) == 0:
        with pytest.raises(ValueError, match="add up to 0"):
            apportion(total, weights)
        return
    shares = apportion(total, weights)
    assert int(shares.sum()) == total
    if all(isinstance(w, int) for w in weights):  # the vectorized integer path agrees
        assert shares.tolist() == apportion(total, exact).tolist()
    for share, w in zip(shares.tolist(), exact):
        quota = total * w / sum(exact) if total else Fraction(0)
        assert quota - 1 < share < quota + 1


def test_apportion_is_exact_for_decimal_proportions() -> None:
    assert apportion(1000, [0.7, 0.2, 0.1]).tolist() == [700, 200, 100]
    assert apportion(10, [1, 1, 1]).tolist() == [4, 3, 3]  # ties go to the lower index
    assert apportion(7, [0, 5, 0]).tolist() == [0, 7, 0]


def test_weights_follow_mosaic_semantics() -> None:
    sizes = [1000, 500, 250]
    # Relative: normalized; epoch_size defaults to all samples together.
    assert samples_per_stream(sizes, _streams(proportion=[2, 1, 1]), None).tolist() == [
        875,
        438,
        437,
    ]
    assert samples_per_stream(sizes, _streams(proportion=[0.5, 0.3, 0.2]), 100).tolist() == [
        50,
        30,
        20,
    ]
    # Absolute: repeat (to the nearest sample), choose, or the stream's size.
    streams = [Stream(local="a", repeat=0.29), Stream(local="b", choose=7), Stream(local="c")]
    assert samples_per_stream(sizes, streams, None).tolist() == [290, 7, 250]
    assert samples_per_stream(sizes, _streams(repeat=[2, 0, 1.5]), None).tolist() == [
        2000,
        0,
        375,
    ]
    # No weights: every sample once, or shares of epoch_size proportional to size.
    assert samples_per_stream(sizes, _streams(repeat=[None] * 3), None).tolist() == sizes
    assert samples_per_stream(sizes, _streams(repeat=[None] * 3), 70).tolist() == [40, 20, 10]


def test_bad_weights_are_refused_with_the_fix() -> None:
    mixed = [Stream(local="a", proportion=0.5), Stream(local="b", repeat=2)]
    with pytest.raises(ValueError, match=r"stream 0 .* proportion= \(relative\).* stream 1"):
        samples_per_stream([10, 10], mixed, None)
    unweighted = [Stream(local="a", proportion=0.5), Stream(local="b")]
    with pytest.raises(ValueError, match="sets no weight"):
        samples_per_stream([10, 10], unweighted, None)
    with pytest.raises(ValueError, match="epoch_size=5 applies to proportion="):
        samples_per_stream([10, 10], _streams(choose=[1, 2]), 5)
    with pytest.raises(ValueError, match="every stream has proportion=0"):
        samples_per_stream([10, 10], _streams(proportion=[0, 0]), None)
    with pytest.raises(ValueError, match="stream 1 .* has no samples"):
        samples_per_stream([10, 0], _streams(choose=[1, 2]), None)


def test_epoch_size_accepts_mosaic_abbreviations() -> None:
    assert parse_epoch_size(None) is None
    assert parse_epoch_size(1234) == 1234
    assert parse_epoch_size("250k") == 250_000
    assert parse_epoch_size("1.5M") == 1_500_000
    for bad in ("many", "1.5", -3, 2.5, True):
        with pytest.raises(ValueError, match="epoch_size"):
            parse_epoch_size(bad)  # type: ignore[arg-type]


# --- what an epoch draws ------------------------------------------------------------------

shard_lists = st.lists(st.integers(0, 30), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(shard_lists, st.integers(0, 200), st.integers(0, 50), st.integers(0, 2**32))
def test_a_stream_draws_every_sample_k_or_k_plus_one_times(
    sizes: list[int], count: int, epoch: int, seed: int
) -> None:
    n = sum(sizes)
    if not n:
        count = 0
    virtual = VirtualShards.draw(np.array(sizes), count, first_shard=3, first_id=100)
    assert virtual.num_samples == count
    ids = virtual.real_ids(
        np.arange(count),
        lambda v: partial_subset(
            seed, epoch, int(virtual.key[v]), virtual.whole[v], virtual.sizes[v]
        ),
    )
    seen = np.bincount(ids - 100, minlength=n) if n else np.zeros(0, np.int64)
    k = count // n if n else 0
    assert set(seen.tolist()) <= {k, k + 1} and int(seen.sum()) == count
    # The fractional rest is spread over the shards by largest remainder.
    starts = np.cumsum([0, *sizes])
    rest = count - k * n
    for i, size in enumerate(sizes):
        extra = int(seen[starts[i] : starts[i + 1]].sum()) - k * size
        assert abs(extra - Fraction(rest * size, max(n, 1))) < 1


def test_partial_subsets_are_seeded_and_uniform_over_epochs() -> None:
    a = partial_subset(7, 0, 3, 100, 30)
    assert a.tolist() == partial_subset(7, 0, 3, 100, 30).tolist()
    assert len(set(a.tolist())) == 30 and a.tolist() == sorted(a.tolist())
    assert a.tolist() != partial_subset(7, 1, 3, 100, 30).tolist()
    assert a.tolist() != partial_subset(7, 0, 4, 100, 30).tolist()
    # Over E epochs each sample is drawn Binomial(E, 0.3) times: all within 5 sigma.
    epochs = 400
    counts = np.zeros(100)
    for epoch in range(epochs):
        counts[partial_subset(7, epoch, 3, 100, 30)] += 1
    sigma = np.sqrt(epochs * 0.3 * 0.7)
    assert np.abs(counts - epochs * 0.3).max() < 5 * sigma
    chi2 = float(((counts - epochs * 0.3) ** 2 / (epochs * 0.3 * 0.7)).sum())
    assert chi2 < 100 + 5 * np.sqrt(2 * 100)  # ~chi-square with ~100 degrees of freedom


# --- stratified batches -------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=6), st.integers(1, 100))
def test_every_full_stratum_holds_each_share_rounded_down_or_up(
    counts: list[int], stratum: int
) -> None:
    total = sum(counts)
    plan = StratumPlan(np.array(counts, np.int64), stratum)
    full = total // stratum
    assert plan.num_strata == -(-total // stratum)
    running = np.zeros(len(counts), np.int64)
    for j in range(plan.num_strata):
        assert (plan.before(j) == running).all()
        composition = plan.composition(j)
        assert (composition >= 0).all() and int(composition.sum()) == plan.size(j)
        if j < full:
            for c, share in zip(composition.tolist(), counts):
                quota = Fraction(stratum * share, total)
                assert quota - 1 < c < quota + 1
        running += composition
    assert running.tolist() == counts  # the epoch holds exactly each stream's count


def test_stratum_plan_pinned_case() -> None:
    plan = StratumPlan(np.array([500, 300, 200]), 64)
    rows = [plan.composition(j).tolist() for j in range(plan.num_strata)]
    assert rows[:4] == [[32, 20, 12]] * 3 + [[32, 19, 13]]  # 64 * (.5, .3, .2) = 32, 19.2, 12.8
    assert rows[-1] == [20, 12, 8] and len(rows) == 16
    assert all(sum(r) == 64 for r in rows[:-1])


# --- the curriculum rule ------------------------------------------------------------------


def test_mixture_may_change_only_between_epochs() -> None:
    assert mixture_may_change({"streams", "num_samples"}, 0, mixture=True)
    assert not mixture_may_change({"streams"}, 10, mixture=True)
    assert not mixture_may_change({"streams", "shuffle_seed"}, 0, mixture=True)
    assert not mixture_may_change({"dataset_version"}, 0, mixture=False)


# --- mixed orders -------------------------------------------------------------------------


def _mixture(sizes: list[list[int]], counts: list[int]) -> list[VirtualShards]:
    parts, first_shard, first_id = [], 0, 0
    for shard_sizes, count in zip(sizes, counts):
        parts.append(VirtualShards.draw(np.array(shard_sizes), count, first_shard, first_id))
        first_shard, first_id = first_shard + len(shard_sizes), first_id + sum(shard_sizes)
    return parts


@st.composite
def mixtures(draw: st.DrawFn) -> tuple[list[list[int]], list[int]]:
    sizes = draw(st.lists(st.lists(st.integers(1, 25), min_size=1, max_size=5), max_size=4))
    sizes = sizes or [[5]]
    counts = [draw(st.integers(0, 3 * sum(s))) for s in sizes]
    if not sum(counts):
        counts[0] = 1
    return sizes, counts


order_settings = st.builds(
    OrderSettings,
    seed=st.integers(0, 2**32),
    num_canonical_nodes=st.integers(1, 5),
    shuffle=st.booleans(),
    block_size=st.integers(1, 64),
)


@settings(max_examples=120, deadline=None)
@given(mixtures(), order_settings, st.integers(0, 4), st.integers(1, 40), st.data())
def test_mixed_orders_draw_exact_counts_in_any_access_pattern(
    mixture: tuple[list[list[int]], list[int]],
    cfg: OrderSettings,
    epoch: int,
    stratum: int,
    data: st.DataObject,
) -> None:
    sizes, counts = mixture
    parts = _mixture(sizes, counts)
    stream_of = np.repeat(np.arange(len(sizes)), [sum(s) for s in sizes])
    for order in (
        RandomMixOrder(VirtualShards.concat(parts), cfg, epoch, epoch),
        StratifiedMixOrder(parts, cfg, epoch, epoch, stratum),
    ):
        full = order.all_ids()
        assert len(full) == sum(counts) == order.num_samples
        per_stream = np.bincount(stream_of[full], minlength=len(sizes))
        assert per_stream.tolist() == counts
        # Where a stream's weight says once, every one of its samples comes exactly once.
        seen = Counter(full.tolist())
        start = 0
        for shard_sizes, count in zip(sizes, counts):
            n = sum(shard_sizes)
            if count == n:
                assert all(seen[i] == 1 for i in range(start, start + n))
            start += n
        # A fresh instance read in random order and in strided runs agrees.
        fresh = type(order)(*order_args(order, parts, cfg, epoch, stratum))
        n = len(full)
        positions = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=40)), np.int64)
        assert fresh.ids(positions).tolist() == full[positions].tolist()
        first = data.draw(st.integers(0, n - 1))
        stride = data.draw(st.integers(1, 7))
        count = data.draw(st.integers(0, (n - 1 - first) // stride + 1))
        expected = full[first : first + stride * count : stride]
        assert fresh.ids_run(first, stride, count).tolist() == expected.tolist()


def order_args(
    order: RandomMixOrder | StratifiedMixOrder,
    parts: list[VirtualShards],
    cfg: OrderSettings,
    epoch: int,
    stratum: int,
) -> tuple[object, ...]:
    if isinstance(order, RandomMixOrder):
        return (VirtualShards.concat(parts), cfg, epoch, epoch)
    return (parts, cfg, epoch, epoch, stratum)


@settings(max_examples=80, deadline=None)
@given(mixtures(), order_settings, st.integers(0, 4), st.integers(1, 40))
def test_stratified_strata_hold_exact_shares(
    mixture: tuple[list[list[int]], list[int]], cfg: OrderSettings, epoch: int, stratum: int
) -> None:
    sizes, counts = mixture
    order = StratifiedMixOrder(_mixture(sizes, counts), cfg, epoch, epoch, stratum)
    stream_of = np.repeat(np.arange(len(sizes)), [sum(s) for s in sizes])
    ids = order.all_ids()
    plan = StratumPlan(np.array(counts), stratum)
    for j in range(plan.num_strata):
        window = ids[j * stratum : (j + 1) * stratum]
        got = np.bincount(stream_of[window], minlength=len(sizes))
        assert got.tolist() == plan.composition(j).tolist()


def test_mixed_orders_are_pinned() -> None:
    """Golden: changing the mixed order (or the seeds under it) must be deliberate."""
    parts = _mixture([[4, 3], [5]], [10, 3])
    cfg = OrderSettings(seed=42, num_canonical_nodes=1, block_size=64)
    random_mix = RandomMixOrder(VirtualShards.concat(parts), cfg, 1, 1).all_ids()
    stratified = StratifiedMixOrder(parts, cfg, 1, 1, 4).all_ids()
    assert random_mix.tolist() == GOLDEN_RANDOM
    assert stratified.tolist() == GOLDEN_STRATIFIED


GOLDEN_RANDOM = [5, 4, 6, 1, 9, 1, 7, 5, 10, 2, 2, 0, 3]
GOLDEN_STRATIFIED = [6, 0, 3, 9, 1, 2, 7, 5, 2, 10, 4, 5, 1]
