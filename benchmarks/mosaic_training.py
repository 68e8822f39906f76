"""The Mosaic side of ``bench_training``. Runs ONLY under the peer venv's python.

    mosaic_training.py DATASET --loop model|none --batch B --workers W --epochs E

Iterates ``streaming.StreamingDataLoader(streaming.StreamingDataset(local=DATASET,
shuffle=True, batch_size=B), num_workers=W)`` over the same files as ours, with the same
loop work and the same timing (:func:`benchmarks.bench_training.timed_loop`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from benchmarks.bench_training import SEED, loop_work, timed_loop
from benchmarks.common import emit_result


def epoch_loop(path: str, loop: str, batch: int, workers: int, epochs: int) -> dict[str, Any]:
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    # Mosaic hands torch read-only numpy views; torch warns once per worker. Not our concern here.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    work = loop_work(loop)
    dataset = StreamingDataset(local=path, batch_size=batch, shuffle=True, shuffle_seed=SEED)
    loader = StreamingDataLoader(dataset, batch_size=batch, num_workers=workers)
    return timed_loop(lambda: loader, work, epochs)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--loop", choices=["model", "none"], required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    a = parser.parse_args(argv)
    emit_result(epoch_loop(a.path, a.loop, a.batch, a.workers, a.epochs))


if __name__ == "__main__":
    main(sys.argv[1:])
