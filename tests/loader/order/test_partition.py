"""Which positions each rank and worker reads: exact cover, equal steps, elastic resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.order.partition import PADDINGS, EpochPartition

partitions = st.builds(
    EpochPartition,
    num_samples=st.integers(0, 300),
    batch_size=st.integers(1, 64),
    nodes=st.integers(1, 4),
    ranks_per_node=st.integers(1, 4),
    drop_last=st.booleans(),
    padding=st.sampled_from(PADDINGS),
)


def _step_positions(part: EpochPartition, step: int, *, fold: bool = True) -> list[int]:
    """All positions of one step, rank by rank (global rank order)."""
    out: list[int] = []
    for node in range(part.nodes):
        for local in range(part.ranks_per_node):
            if fold:
                out += part.positions(step, node, local).tolist()
            else:
                first, stride = part.run(step, node, local)
                out += range(first, first + stride * part.step_batch(step), stride)
    return out


@settings(max_examples=300, deadline=None)
@given(partitions, st.data())
def test_epoch_reads_every_position_once_plus_minimal_padding(
    base: EpochPartition, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, base.num_samples))
    part = EpochPartition(**{**base.__dict__, "start": start})
    n, g, world = part.num_samples, part.global_batch, part.world
    seen: Counter[int] = Counter()
    for step in range(part.num_steps):
        # Step t consumes [start + t*G, start + (t+1)*G); the last one only what it needs.
        raw = _step_positions(part, step, fold=False)
        first = start + step * g
        assert sorted(raw) == list(range(first, first + part.step_batch(step) * world))
        if step < part.num_steps - 1:
            assert part.step_batch(step) == part.batch_size and not part.padded(step)
        seen.update(_step_positions(part, step))
    assert all(0 <= p < n for p in seen)
    if part.drop_last:
        assert part.num_steps == (n - start) // g
        assert sorted(seen) == list(range(start, start + part.num_steps * g))
        assert set(seen.values()) <= {1}
        return
    assert part.num_steps == -(-(n - start) // g)
    assert set(range(start, n)) <= set(seen)
    repeats = sum(seen.values()) - (n - start)
    if part.padding == "none":  # exact: every position once, nothing else
        assert repeats == 0 and sorted(seen) == list(range(start, n))
    else:  # only what equal batches across ranks need; never on one device
        assert 0 <= repeats < world and (world > 1 or repeats == 0)
        if part.num_steps:
            tail = n - start - (part.num_steps - 1) * g
            assert part.last_batch == -(-tail // world)
    # len() per rank: what the rank yields; over all ranks, every position read.
    total = sum(
        part.rank_samples(node, local)
        for node in range(part.nodes)
        for local in range(part.ranks_per_node)
    )
    assert total == sum(seen.values())


@settings(max_examples=200, deadline=None)
@given(partitions, st.integers(0, 3))
def test_workers_split_steps_round_robin(part: EpochPartition, workers: int) -> None:
    num_workers = max(workers, 1)
    streams = [list(part.worker_steps(w, num_workers)) for w in range(num_workers)]
    # DataLoader's round robin: ask workers in turn, skipping exhausted ones.
    merged: list[int] = []
    iters = [iter(s) for s in streams]
    while iters:
        for it in list(iters):
            step = next(it, None)
            if step is None:
                iters.remove(it)
            else:
                merged.append(step)
    assert merged == list(range(part.num_steps))


@settings(max_examples=200, deadline=None)
@given(partitions, st.data())
def test_resume_continues_the_uninterrupted_run(part: EpochPartition, data: st.DataObject) -> None:
    """Stop after k steps; resume on another topology with the same or another batch size."""
    done = data.draw(st.integers(0, part.num_steps))
    consumed = part.consumed(done)
    n, g = part.num_samples, part.global_batch
    nodes, per_node = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    same_global = g % (nodes * per_node) == 0 and data.draw(st.booleans())
    batch = g // (nodes * per_node) if same_global else data.draw(st.integers(1, 64))
    resumed = EpochPartition(n, batch, nodes, per_node, consumed, part.drop_last, part.padding)
    if same_global:
        # The same steps with the same real positions: the rest of the uninterrupted run (the
        # last step's padding, fewer than world size repeats, depends on the world size).
        assert resumed.num_steps == part.num_steps - done
        for s in range(resumed.num_steps):
            mine = [p for p in _step_positions(resumed, s, fold=False) if p < n]
            theirs = [p for p in _step_positions(part, s + done, fold=False) if p < n]
            assert sorted(mine) == sorted(theirs)
            if s < resumed.num_steps - 1:
                assert sorted(_step_positions(resumed, s)) == sorted(
                    _step_positions(part, s + done)
                )
    # Real (unpadded) positions over both runs: each exactly once, none skipped.
    before = [p for s in range(done) for p in _step_positions(part, s, fold=False) if p < n]
    after = [p for s in range(resumed.num_steps) for p in _step_positions(resumed, s, fold=False)]
    real = sorted(before + [p for p in after if p < n])
    assert real == list(range(len(real)))
    if not part.drop_last:
        assert len(real) == n
    else:
        assert n - len(real) < resumed.global_batch


def test_physical_nodes_read_only_their_canonical_nodes() -> None:
    canonical = 8
    for nodes in (1, 2, 4, 8):
        part = EpochPartition(num_samples=10_000, batch_size=16, nodes=nodes, ranks_per_node=2)
        for step in range(0, part.num_steps - 1, 7):
            for node in range(nodes):
                for local in range(2):
                    owners = set((part.positions(step, node, local) % canonical).tolist())
                    assert owners <= {c for c in range(canonical) if c % nodes == node}


def test_golden_positions() -> None:
    # Pinned on purpose (issue 16 changed it): the last step's batch holds ceil(left / world)
    # per rank, so 1 position left on 2 nodes pads 1 (it used to be 3, a whole step).
    part = EpochPartition(num_samples=10, batch_size=2, nodes=2, ranks_per_node=1, start=1)
    assert [part.positions(s, n, 0).tolist() for s in range(3) for n in range(2)] == [
        [1, 3],
        [2, 4],
        [5, 7],
        [6, 8],
        [9],
        [0],
    ]
    exact = EpochPartition(10, 2, nodes=2, ranks_per_node=1, start=1, padding="none")
    assert [exact.positions(2, n, 0).tolist() for n in range(2)] == [[9], []]
    assert [exact.rank_samples(n, 0) for n in range(2)] == [5, 4]


def test_one_device_never_pads() -> None:
    # Mosaic's behaviour: 117 samples in batches of 8 on one device are 14 full batches and
    # one of 5; len() is 117.
    part = EpochPartition(num_samples=117, batch_size=8)
    assert part.num_steps == 15 and part.last_batch == 5 and not part.padded(14)
    assert part.positions(14, 0, 0).tolist() == list(range(112, 117))
    assert part.rank_samples(0, 0) == 117
    dropped = EpochPartition(num_samples=117, batch_size=8, drop_last=True)
    assert dropped.num_steps == 14 and dropped.rank_samples(0, 0) == 112
    # Two ranks: 117 = 7 steps of 16 and 5 left, 3 per rank: one repeat (Mosaic: 59 each).
    two = EpochPartition(num_samples=117, batch_size=8, ranks_per_node=2)
    assert [two.rank_samples(0, r) for r in range(2)] == [59, 59]
    assert [two.positions(7, 0, r).tolist() for r in range(2)] == [[112, 113, 114], [115, 116, 0]]


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="start"):
        EpochPartition(num_samples=5, batch_size=1, start=6)
    with pytest.raises(ValueError, match="batch_size"):
        EpochPartition(num_samples=5, batch_size=0)
    part = EpochPartition(num_samples=5, batch_size=2)
    with pytest.raises(IndexError, match="step"):
        part.positions(3, 0, 0)
    with pytest.raises(ValueError, match="worker"):
        part.worker_steps(2, 2)
    assert np.array_equal(part.positions(2, 0, 0), [4])
    with pytest.raises(ValueError, match="padding"):
        EpochPartition(num_samples=5, batch_size=1, padding="mark")
