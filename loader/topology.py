"""Where this process sits in the job: a frozen value, detected once at the edge.

This is the only module of the loader that reads environment variables, torch.distributed or
DataLoader worker info. Everything else receives a :class:`Topology` as an argument, so every
function can be tested for any world size without starting processes.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["Topology"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topology:
    """Node, rank and DataLoader worker of this process.

    Ranks are numbered node-major (``rank = node * ranks_per_node + local_rank``), as torchrun
    and TorchDistributor number them. ``num_workers`` counts the partitions of a rank: a
    DataLoader with ``num_workers=0`` reads in the main process, which is one partition.
    """

    node: int = 0
    nodes: int = 1
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    ranks_per_node: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.ranks_per_node < 1 or self.num_workers < 1:
            raise ValueError(
                f"nodes, ranks_per_node and num_workers must be >= 1, got {self.nodes}, "
                f"{self.ranks_per_node}, {self.num_workers}"
            )
        if self.world != self.nodes * self.ranks_per_node:
            raise ValueError(
                f"world size {self.world} must equal nodes x ranks per node = "
                f"{self.nodes} x {self.ranks_per_node}; every node must run as many ranks"
            )
        for name, value, bound in (
            ("rank", self.rank, self.world),
            ("local_rank", self.local_rank, self.ranks_per_node),
            ("node", self.node, self.nodes),
            ("worker", self.worker, self.num_workers),
        ):
            if not 0 <= value < bound:
                raise ValueError(f"{name} must lie in [0, {bound}), got {value}")
        if self.rank != self.node * self.ranks_per_node + self.local_rank:
            raise ValueError(
                f"rank {self.rank} must equal node x ranks_per_node + local_rank = "
                f"{self.node} x {self.ranks_per_node} + {self.local_rank}; ranks must be "
                "numbered node-major (as torchrun numbers them)"
            )

    @classmethod
    def of_rank(cls, rank: int, world: int, ranks_per_node: int) -> Topology:
        """The topology of one rank (worker 0 of 1), from its global rank."""
        if ranks_per_node < 1 or world % ranks_per_node:
            raise ValueError(
                f"world size {world} must be a multiple of ranks per node {ranks_per_node}"
            )
        node, local_rank = divmod(rank, ranks_per_node)
        return cls(node, world // ranks_per_node, rank, world, local_rank, ranks_per_node)

    @classmethod
    def detect(
        cls,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        local_rank: int | None = None,
        local_world_size: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Topology:
        """Detect the rank part of the topology; explicit arguments win over detection.

        Sources, in order: the arguments; ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
        ``LOCAL_WORLD_SIZE`` (torchrun, TorchDistributor); an initialized torch.distributed
        group (assumed to be one node unless ``LOCAL_WORLD_SIZE`` says otherwise); else a
        single process. Worker info is added later by :meth:`in_current_worker`.
        """
        env = os.environ if env is None else env
        group = _distributed_group()
        rank = _first(rank, env.get("RANK"), group and group[0], 0)
        world = _first(world_size, env.get("WORLD_SIZE"), group and group[1], 1)
        per_node = _first(local_world_size, env.get("LOCAL_WORLD_SIZE"), world)
        if world % per_node:
            raise ValueError(
                f"world size {world} is not a multiple of the local world size {per_node}; "
                "set LOCAL_WORLD_SIZE (or local_world_size=) to the ranks per node"
            )
        local = _first(local_rank, env.get("LOCAL_RANK"), rank % per_node)
        node = rank // per_node
        topology = cls(node, world // per_node, rank, world, local, per_node)
        logger.debug("detected %s", topology)
        return topology

    def with_worker(self, worker: int, num_workers: int) -> Topology:
        """This rank's topology as seen by DataLoader worker ``worker`` of ``num_workers``."""
        return replace(self, worker=worker, num_workers=max(num_workers, 1))

    def in_current_worker(self) -> Topology:
        """Add the calling DataLoader worker's id, or return ``self`` in the main process."""
        data = sys.modules.get("torch.utils.data")
        info = data.get_worker_info() if data is not None else None
        if info is None:
            return self
        return self.with_worker(info.id, info.num_workers)


def _first(*values: object) -> int:
    """The first value that is set, as an int (env strings included)."""
    for value in values:
        if value is not None and value != "" and value is not False:
            return int(value)  # type: ignore[call-overload]
    raise AssertionError("unreachable: the last default is always set")


def _distributed_group() -> tuple[int, int] | None:
    """``(rank, world)`` of an initialized default torch.distributed group, if any."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist.get_rank(), dist.get_world_size()
