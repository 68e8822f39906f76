"""The Mosaic side of ``bench_workers``. Runs ONLY under the peer venv's python.

    mosaic_workers.py epoch DATASET --workers W --workload NAME [--max-seconds S]

Mosaic's documented way to add per-sample work: a ``StreamingDataset`` subclass whose
``__getitem__`` transforms the sample (here ``benchmarks.common.decode_image`` for the JPEG
workload), collated by torch's default collate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_loader import dataset_bytes
from benchmarks.bench_workers import BATCH, ShmPeak, children_peak_rss_mib
from benchmarks.common import decode_image, emit_result


def epoch(path: str, workers: int, name: str, max_seconds: float) -> dict[str, Any]:
    import warnings

    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

    class Decoded(StreamingDataset):  # type: ignore[misc]
        def __getitem__(self, index: int) -> Any:
            sample = super().__getitem__(index)
            sample["image"] = decode_image(sample["image"])
            return sample

    clean_stale_shared_memory()
    batch = BATCH[name]
    cls = Decoded if name == "jpeg" else StreamingDataset
    ds = cls(local=path, batch_size=batch, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=batch, num_workers=workers)
    shm = ShmPeak()
    samples, began = 0, time.perf_counter()
    for item in loader:
        samples += len(item["id"])
        if time.perf_counter() - began > max_seconds:
            break
    seconds = time.perf_counter() - began
    total = dataset_bytes(Path(path))
    return {
        "samples": samples,
        "seconds": seconds,
        "bytes": total * samples / ds.num_samples,
        "shm_mib": shm.stop(),
        "workers_rss_mib": children_peak_rss_mib(),
    }


def main(argv: list[str]) -> None:
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
