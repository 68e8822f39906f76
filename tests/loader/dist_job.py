"""One rank of a real multi-process run (gloo), launched by test_distributed.py.

Reads RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE/MASTER_* like any torchrun job, trains on
nothing (an all_reduce per step proves every rank takes the same number of steps), records
the ids of its batches, and on rank 0 saves the loader state after ``--stop-after`` steps.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset

OPTIONS: dict[str, Any] = {"shuffle": True, "shuffle_seed": 7, "num_canonical_nodes": 2}


def run_rank(data: str, out: str, batch_size: int, stop_after: int, state: str | None) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    dataset = StreamingDataset(local=data, batch_size=batch_size, **OPTIONS)
    loader = StreamingDataLoader(dataset, batch_size=batch_size, num_workers=2)
    if state:
        loader.load_state_dict(json.loads(Path(state).read_text()))
    batches: list[list[int]] = []
    for step, batch in enumerate(loader):
        batches.append(batch["id"].tolist())
        dist.all_reduce(torch.ones(1))  # hangs (and times out) if a rank ran out of steps
        if step + 1 == stop_after:
            break
    if rank == 0 and stop_after:
        Path(out, "state.json").write_text(json.dumps(loader.state_dict()))
    Path(out, f"rank{rank}.json").write_text(json.dumps(batches))
    dist.barrier()
    dist.destroy_process_group()


def distributor_main(data: str, out: str) -> None:
    """The function TorchDistributor runs in each process: one full epoch, ids to a file."""
    run_rank(data, out, batch_size=16, stop_after=0, state=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--stop-after", type=int, default=0)
    parser.add_argument("--state")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    run_rank(args.data, args.out, args.batch_size, args.stop_after, args.state)


if __name__ == "__main__":
    main()
