"""Run every rank and worker of a topology in this process, as DataLoader would merge them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loader.dataset import StreamingDataset
from loader.topology import Topology


def round_robin(streams: list[list[Any]]) -> list[Any]:
    """DataLoader's merge of worker outputs: one item from each live worker in turn."""
    merged: list[Any] = []
    iters = [iter(s) for s in streams]
    while iters:
        for it in list(iters):
            item = next(it, None)
            if item is None:
                iters.remove(it)
            else:
                merged.append(item)
    return merged


def rank_batches(
    path: Path,
    topology: Topology,
    num_workers: int,
    *,
    state: dict[str, Any] | None = None,
    samples: bool = False,
    source: str = "local",
    **options: Any,
) -> list[list[int]]:
    """One rank's batches (lists of ids) for one epoch, its workers merged round robin;
    ``path`` is the dataset's ``source`` keyword (``local``, or ``delta``/``parquet``)."""
    per_worker = []
    for worker in range(max(num_workers, 1)):
        ds = StreamingDataset(
            **{source: str(path)}, topology=topology.with_worker(worker, num_workers), **options
        )
        if state is not None:
            ds.load_state_dict(state)
        if samples:
            ids = [int(s["id"]) for s in ds]
            size = options["batch_size"]
            per_worker.append([ids[i : i + size] for i in range(0, len(ids), size)])
        else:
            per_worker.append([np.asarray(b["id"]).tolist() for b in ds.iter_batches()])
    return round_robin(per_worker)


def global_steps(
    path: Path, nodes: int, ranks_per_node: int, num_workers: int, **options: Any
) -> list[list[int]]:
    """Ids consumed by all ranks at each step (rank after rank); checks equal step counts."""
    world = nodes * ranks_per_node
    ranks = [
        rank_batches(path, Topology.of_rank(r, world, ranks_per_node), num_workers, **options)
        for r in range(world)
    ]
    steps = {len(batches) for batches in ranks}
    assert len(steps) <= 1, f"ranks disagree on the number of steps: {steps}"
    return [
        [i for batches in ranks for i in batches[t]] for t in range(steps.pop() if steps else 0)
    ]
