"""The Mosaic side of ``bench_migration``. Runs ONLY under the peer venv's python.

    mosaic_migration.py epoch DATASET --workers W [--max-seconds S]

Mosaic's documented subclass (``__getitem__`` with the per-sample transform of
``benchmarks.bench_migration.normalize``), under its ``StreamingDataLoader``, batch 256,
shuffled, collated by torch's default collate.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from benchmarks.bench_migration import BATCH, drain, normalized
from benchmarks.common import peer_epoch_main


def epoch(path: str, workers: int, max_seconds: float) -> dict[str, Any]:
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    clean_stale_shared_memory()
    ds = normalized(StreamingDataset)(local=path, batch_size=BATCH, shuffle=True)
    return drain(StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers), max_seconds)


def main(argv: list[str]) -> None:
    peer_epoch_main(argv, epoch)


if __name__ == "__main__":
    main(sys.argv[1:])
