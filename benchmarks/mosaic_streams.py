"""The Mosaic side of ``bench_streams``. Runs ONLY under the peer venv's python.

    mosaic_streams.py epoch DIR DIR DIR --workers W [--max-seconds S]   # one mixed epoch
    mosaic_streams.py startup DIR DIR DIR [--resume-at F]               # time to first batch

Both build Mosaic's ``StreamingDataset(streams=[Stream(local=DIR, proportion=P), ...],
shuffle=True, batch_size=256)`` with the same proportions as ours over the same MDS files.
``epoch`` iterates a ``StreamingDataLoader`` for at most ``--max-seconds``; ``startup`` times
construction + the first batch (after ``load_state_dict`` at ``F`` of the epoch).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from benchmarks.bench_loader import BATCH
from benchmarks.bench_streams import PROPORTIONS
from benchmarks.common import drain, emit_result, mosaic_first_batch


def _dataset(dirs: list[str]) -> Any:
    from streaming import Stream, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    streams = [Stream(local=d, proportion=p) for d, p in zip(dirs, PROPORTIONS, strict=True)]
    return StreamingDataset(streams=streams, batch_size=BATCH, shuffle=True)


def epoch(dirs: list[str], workers: int, max_seconds: float) -> dict[str, Any]:
    from streaming import StreamingDataLoader

    ds = _dataset(dirs)
    return drain(StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers), max_seconds)


def startup(dirs: list[str], resume_at: float | None) -> dict[str, Any]:
    import streaming  # noqa: F401  (imports are not part of start-up)

    began = time.perf_counter()
    ds = _dataset(dirs)
    at = None if resume_at is None else int(resume_at * ds.epoch_size)
    mosaic_first_batch(ds, BATCH, at)
    return {"seconds": time.perf_counter() - began, "epoch_size": int(ds.epoch_size)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["epoch", "startup"])
    parser.add_argument("dirs", nargs=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--resume-at", type=float)
    args = parser.parse_args(argv)
    if args.mode == "epoch":
        emit_result(epoch(args.dirs, args.workers, args.max_seconds))
    else:
        emit_result(startup(args.dirs, args.resume_at))


if __name__ == "__main__":
    main(sys.argv[1:])
