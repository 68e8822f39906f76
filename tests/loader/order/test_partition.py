"""Which positions each rank and worker reads: exact cover, equal steps, elastic resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.order.partition import EpochPartition

partitions = st.builds(
    EpochPartition,
    num_samples=st.integers(0, 300),
    batch_size=st.integers(1, 64),
    nodes=st.integers(1, 4),
    ranks_per_node=st.integers(1, 4),
    drop_last=st.booleans(),
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
                out += range(first, first + stride * part.batch_size, stride)
    return out


@settings(max_examples=200, deadline=None)
@given(partitions, st.data())
def test_epoch_reads_every_position_once_plus_padding(
    base: EpochPartition, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, base.num_samples))
    part = EpochPartition(**{**base.__dict__, "start": start})
    n, g = part.num_samples, part.global_batch
    seen: Counter[int] = Counter()
    for step in range(part.num_steps):
        # Step t consumes exactly [start + t*G, start + (t+1)*G) before padding is folded.
        raw = _step_positions(part, step, fold=False)
        assert sorted(raw) == list(range(start + step * g, start + (step + 1) * g))
        seen.update(_step_positions(part, step))
    if part.drop_last:
        assert part.num_steps == (n - start) // g
        assert sorted(seen) == list(range(start, start + part.num_steps * g))
        assert set(seen.values()) <= {1}
    else:
        assert part.num_steps == -(-(n - start) // g)
        assert set(range(start, n)) <= set(seen)
        assert all(0 <= p < n for p in seen)
        # Exactly the padding is repeated: it comes from the start of the epoch.
        assert sum(seen.values()) - (n - start) == part.num_steps * g - (n - start)


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
    resumed = EpochPartition(n, batch, nodes, per_node, consumed, part.drop_last)
    if same_global:
        # The same steps with the same positions: the rest of the uninterrupted run.
        assert resumed.num_steps == part.num_steps - done
        for s in range(resumed.num_steps):
            assert sorted(_step_positions(resumed, s)) == sorted(_step_positions(part, s + done))
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
    part = EpochPartition(num_samples=10, batch_size=2, nodes=2, ranks_per_node=1, start=1)
    assert [part.positions(s, n, 0).tolist() for s in range(3) for n in range(2)] == [
        [1, 3],
        [2, 4],
        [5, 7],
        [6, 8],
        [9, 1],
        [0, 2],
    ]


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
    assert np.array_equal(part.positions(2, 0, 0), [4, 0])
