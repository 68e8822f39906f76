"""The LitData side of ``bench_workers``. Runs ONLY under the LitData venv's python.

    litdata_workers.py prepare ROWS.parquet OUT       # litdata.optimize the same rows
    litdata_workers.py epoch OUT --workers W --workload NAME [--max-seconds S]

Per-sample work goes through LitData's ``transform=`` (``decode_image`` on the image).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from benchmarks.bench_workers import BATCH, ShmPeak, children_peak_rss_mib
from benchmarks.common import decode_image, emit_result


def _row(table: Any, i: int) -> dict[str, Any]:
    row = {name: table.column(name)[i].as_py() for name in table.column_names}
    for name, value in row.items():
        if isinstance(value, list):
            row[name] = np.asarray(value, np.float32)
    return row


def prepare(source: str, out: str) -> dict[str, Any]:
    import litdata

    table = pq.read_table(source)
    began = time.perf_counter()
    litdata.optimize(
        fn=functools.partial(_row, table), inputs=list(range(table.num_rows)), output_dir=out, chunk_bytes="64MB",
        num_workers=1, start_method="fork", verbose=False,
    )  # fmt: skip
    return {"seconds": time.perf_counter() - began, "rows": table.num_rows}


def _decode(sample: dict[str, Any]) -> dict[str, Any]:
    sample["image"] = decode_image(sample["image"])
    return sample


def epoch(out: str, workers: int, name: str, max_seconds: float) -> dict[str, Any]:
    import litdata

    batch = BATCH[name]
    transform = _decode if name == "jpeg" else None
    ds = litdata.StreamingDataset(out, shuffle=True, transform=transform)
    loader = litdata.StreamingDataLoader(ds, batch_size=batch, num_workers=workers)
    shm = ShmPeak()
    samples, began = 0, time.perf_counter()
    for item in loader:
        samples += len(item["id"])
        if time.perf_counter() - began > max_seconds:
            break
    seconds = time.perf_counter() - began
    total = sum(p.stat().st_size for p in Path(out).glob("*.bin"))
    return {
        "samples": samples,
        "seconds": seconds,
        "bytes": total * samples / len(ds),
        "shm_mib": shm.stop(),
        "workers_rss_mib": children_peak_rss_mib(),
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["prepare"]:
        emit_result(prepare(argv[1], argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["epoch"])
    parser.add_argument("path")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    a = parser.parse_args(argv)
    emit_result(epoch(a.path, a.workers, a.workload, a.max_seconds))


if __name__ == "__main__":
    main(sys.argv[1:])
