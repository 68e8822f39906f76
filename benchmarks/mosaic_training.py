"""The Mosaic side of ``bench_training``. Runs ONLY under the peer venv's python.

    mosaic_training.py DATASET --loop model|none --batch B --workers W --epochs E [--device D]

Iterates ``streaming.StreamingDataLoader(streaming.StreamingDataset(local=DATASET,
shuffle=True, batch_size=B), num_workers=W)`` over the same files as ours, with the same
loop work and the same timing (:func:`benchmarks.bench_training.timed_loop`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from benchmarks.bench_training import SEED, loop_work, synchronize, timed_loop
from benchmarks.common import emit_result


def epoch_loop(
    path: str, loop: str, batch: int, workers: int, epochs: int, device: str
) -> dict[str, Any]:
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    # Mosaic hands torch read-only numpy views; torch warns once per worker. Not our concern here.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    work = loop_work(loop, device)  # copies each batch to the device, non_blocking
    dataset = StreamingDataset(local=path, batch_size=batch, shuffle=True, shuffle_seed=SEED)
    pin = device != "cpu"
    loader = StreamingDataLoader(dataset, batch_size=batch, num_workers=workers, pin_memory=pin)
    return timed_loop(lambda: loader, work, epochs, lambda: synchronize(device))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--loop", choices=["model", "none"], required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    a = parser.parse_args(argv)
    emit_result(epoch_loop(a.path, a.loop, a.batch, a.workers, a.epochs, a.device))


if __name__ == "__main__":
    main(sys.argv[1:])
