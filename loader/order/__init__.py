"""Which sample is read when: pure functions of integers, seeds and the epoch.

- :mod:`~loader.order.seeds`: the one seeded random generator;
- :mod:`~loader.order.epoch`: the global order of one epoch (canonical nodes, block shuffle);
- :mod:`~loader.order.partition`: which positions of it each rank and worker reads;
- :mod:`~loader.order.mix`: the same for a mixture of streams (weights, virtual shards,
  strata, mixed orders).

No I/O, no environment, no torch.
"""

from __future__ import annotations

from loader.order.epoch import SHUFFLE_ALGOS, EpochOrder, OrderSettings, node_sizes
from loader.order.partition import EpochPartition

__all__ = ["SHUFFLE_ALGOS", "EpochOrder", "EpochPartition", "OrderSettings", "node_sizes"]
