"""Which positions of an epoch's order each rank and worker reads: pure arithmetic.

Step ``t`` consumes the positions ``[start + t*G, start + (t+1)*G)`` of the epoch's order, where
``G = world size * batch size`` and ``start`` is where a resumed epoch picks up. Within a step,
physical node ``n`` of ``P`` reads the positions congruent to ``start + n`` modulo ``P``, and
its ranks take consecutive chunks of ``batch_size`` of those, rank after rank::

    position(t, n, l, i) = start + t*G + n + P * (l*B + i)      (i < B, the batch slot)

Because the order interleaves canonical nodes (position ``p`` belongs to canonical node
``p % C``), a physical node reads only its own canonical nodes' shards whenever ``P`` divides
``C`` (and ``start`` is a multiple of ``P``, as it is unless the global batch changed).

Every rank takes the same number of steps, and the last one may be partial, as in Mosaic: when
only ``r < G`` positions are left, every rank's last batch holds ``b = ceil(r / world)``
samples (the formula above with ``B`` replaced by ``b``). That needs ``b * world - r < world``
positions past the end; how they are read is ``padding``:

- ``"repeat"`` (the default): position ``p >= N`` reads position ``p mod N``, a repeat from
  the start of the epoch (as torch's ``DistributedSampler`` pads). One rank never pads.
- ``"none"``: positions past the end are left out, so every position is read exactly once
  over all ranks (exact evaluation); the last batch of some ranks is then smaller, or empty.

With ``drop_last`` the incomplete last step is dropped instead. Worker ``w`` of ``W``
produces its rank's steps ``t = w (mod W)``, matching DataLoader's round robin over workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PADDINGS", "EpochPartition"]

PADDINGS = ("repeat", "none")


@dataclass(frozen=True)
class EpochPartition:
    """The steps of one (possibly resumed) epoch and the positions each rank reads in them."""

    num_samples: int
    batch_size: int
    nodes: int = 1
    ranks_per_node: int = 1
    start: int = 0
    drop_last: bool = False
    padding: str = "repeat"

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(
                f"padding must be one of {PADDINGS} ('none' reads every sample exactly once, "
                f"for evaluation), got {self.padding!r}"
            )
        if self.num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {self.num_samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 sample per rank, got {self.batch_size}")
        if self.nodes < 1 or self.ranks_per_node < 1:
            raise ValueError(
                f"need >= 1 node and >= 1 rank per node, got {self.nodes} x {self.ranks_per_node}"
            )
        if not 0 <= self.start <= self.num_samples:
            raise ValueError(
                f"start (samples already consumed) must lie in [0, {self.num_samples}], "
                f"got {self.start}"
            )

    @property
    def world(self) -> int:
        return self.nodes * self.ranks_per_node

    @property
    def global_batch(self) -> int:
        """Positions consumed per step, ``G = world size * batch size``."""
        return self.world * self.batch_size

    @property
    def num_steps(self) -> int:
        """Steps every rank takes in this epoch (after ``start``)."""
        left = self.num_samples - self.start
        if self.drop_last:
            return left // self.global_batch
        return -(-left // self.global_batch)

    @property
    def last_batch(self) -> int:
        """Samples per rank in the last step: ``ceil(r / world)`` of the ``r`` positions left
        (``batch_size`` when they fill a whole step)."""
        if self.num_steps == 0:
            return self.batch_size
        left = self.num_samples - self.start - (self.num_steps - 1) * self.global_batch
        return min(-(-left // self.world), self.batch_size)

    def step_batch(self, step: int) -> int:
        """Positions per rank at ``step`` (padding included): ``batch_size`` but in the last."""
        return self.last_batch if step == self.num_steps - 1 else self.batch_size

    def run(self, step: int, node: int, local_rank: int) -> tuple[int, int]:
        """``(first, stride)`` of the rank's ``step_batch(step)`` positions, before padding."""
        self._check(step, node, local_rank)
        base = self.start + step * self.global_batch + node
        return base + self.nodes * local_rank * self.step_batch(step), self.nodes

    def padded(self, step: int) -> bool:
        """Whether the step reaches past the end of the order (only the last one can)."""
        end = self.start + step * self.global_batch + self.step_batch(step) * self.world
        return end > self.num_samples

    def positions(self, step: int, node: int, local_rank: int) -> np.ndarray:
        """The rank's positions at ``step``: past the end, folded back into ``[0, N)``
        (``padding="repeat"``) or left out (``"none"``)."""
        first, stride = self.run(step, node, local_rank)
        positions = first + stride * np.arange(self.step_batch(step), dtype=np.int64)
        if not self.padded(step):
            return positions
        if self.padding == "none":
            return positions[positions < self.num_samples]
        return positions % self.num_samples

    def rank_samples(self, node: int, local_rank: int) -> int:
        """Samples the rank yields in this epoch (repeats included), what ``len()`` reports."""
        if self.num_steps == 0:
            return 0
        last = len(self.positions(self.num_steps - 1, node, local_rank))
        return (self.num_steps - 1) * self.batch_size + last

    def worker_steps(self, worker: int, num_workers: int) -> range:
        """The steps worker ``worker`` of ``num_workers`` produces, in order."""
        if not 0 <= worker < num_workers:
            raise ValueError(f"worker must lie in [0, {num_workers}), got {worker}")
        return range(worker, self.num_steps, num_workers)

    def consumed(self, steps_done: int) -> int:
        """Positions of the order consumed once ``steps_done`` steps are delivered."""
        if not 0 <= steps_done <= self.num_steps:
            raise ValueError(f"steps_done must lie in [0, {self.num_steps}], got {steps_done}")
        return min(self.start + steps_done * self.global_batch, self.num_samples)

    def _check(self, step: int, node: int, local_rank: int) -> None:
        if not 0 <= step < self.num_steps:
            raise IndexError(f"step must lie in [0, {self.num_steps}), got {step}")
        if not 0 <= node < self.nodes:
            raise IndexError(f"node must lie in [0, {self.nodes}), got {node}")
        if not 0 <= local_rank < self.ranks_per_node:
            raise IndexError(f"local_rank must lie in [0, {self.ranks_per_node}), got {local_rank}")
