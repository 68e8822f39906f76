"""The Mosaic side of ``bench_loader``. Runs ONLY under the peer venv's python.

    mosaic_loader.py epoch DATASET --workers W [--max-seconds S]   # one shuffled epoch
    mosaic_loader.py quality --shard-size Z --shards S --labels L --block B

``epoch`` iterates ``StreamingDataLoader(StreamingDataset(local=..., shuffle=True,
batch_size=256))`` over the same MDS files as ours, stopping after ``--max-seconds`` (the
rate is per sample delivered; start-up is mosaic_startup.py's). ``quality`` measures py1e's
order on a dataset written sorted by label (no files needed: the order only needs sizes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_loader import BATCH, batch_quality, dataset_bytes
from benchmarks.common import drain, emit_result


def _dataset(path: str, **kwargs: Any) -> Any:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    return StreamingDataset(local=path, batch_size=BATCH, shuffle=True, **kwargs)


def epoch(path: str, workers: int, max_seconds: float) -> dict[str, Any]:
    from streaming import StreamingDataLoader

    ds = _dataset(path)
    loader = StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers)
    result = drain(loader, max_seconds)
    total = dataset_bytes(Path(path))
    return {**result, "bytes": total * result["samples"] / ds.num_samples}


def quality(shard_size: int, shards: int, labels: int, block: int) -> dict[str, Any]:
    from streaming.base.shuffle import get_shuffle

    sizes = np.full(shards, shard_size, np.int64)
    ids = get_shuffle("py1e", sizes, 1, 9176, 0, block)
    return batch_quality(ids, shard_size, labels, int(sizes.sum()))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["epoch", "quality"])
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--shard-size", type=int)
    parser.add_argument("--shards", type=int)
    parser.add_argument("--labels", type=int)
    parser.add_argument("--block", type=int)
    args = parser.parse_args(argv)
    if args.mode == "epoch":
        emit_result(epoch(args.dataset, args.workers, args.max_seconds))
    else:
        result = quality(args.shard_size, args.shards, args.labels, args.block)
        print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
