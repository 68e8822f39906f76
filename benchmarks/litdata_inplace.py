"""The LitData side of ``bench_inplace``. Runs ONLY under the LitData venv's python.

    litdata_inplace.py epoch DIR --workers W [--max-seconds S]

LitData's own way of streaming a directory of Parquet files in place:
``index_parquet_dataset(DIR)`` (reads every footer, writes ``DIR/index.json``: give it a
copy of the files), then ``StreamingDataset(DIR, item_loader=ParquetLoader(), shuffle=True)``
through LitData's ``StreamingDataLoader`` (default collate; workers start by forkserver,
since LitData refuses fork with ``ParquetLoader``), one shuffled epoch capped at
``--max-seconds``. ``ParquetLoader`` needs polars (``benchmarks/litdata-requirements.txt``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks.common import drain, peer_epoch_main

BATCH = 256  # bench_inplace.BATCH (not imported: that module needs the main venv)


def epoch(path: str, workers: int, max_seconds: float) -> dict[str, Any]:
    import litdata
    from litdata.streaming.item_loader import ParquetLoader

    began = time.perf_counter()
    litdata.index_parquet_dataset(path, num_workers=4)
    indexed = time.perf_counter() - began
    ds = litdata.StreamingDataset(path, item_loader=ParquetLoader(), shuffle=True)
    # LitData refuses fork with ParquetLoader (polars' thread pool deadlocks in forked workers)
    context = {"multiprocessing_context": "forkserver"} if workers else {}
    loader = litdata.StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers, **context)
    result = drain(loader, max_seconds)
    return {**result, "index": indexed, "rows": len(ds), "capped": result["samples"] < len(ds)}


def main(argv: list[str]) -> None:
    peer_epoch_main(argv, epoch)


if __name__ == "__main__":
    main(sys.argv[1:])
