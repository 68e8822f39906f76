"""The Mosaic side of ``bench_startup``. Runs ONLY under the peer venv's python.

    mosaic_startup.py DATASET [--resume-at F] [--max-mib M] [--max-seconds S]

Times ``StreamingDataset(local=DATASET, shuffle=True)`` up to its first batch (after
``load_state_dict`` at ``F`` of the epoch with ``--resume-at``). Mosaic builds O(samples)
arrays at start-up, so it runs under guards and reports where it stopped
(``{"stopped": ...}``) instead of taking the machine down: after the imports its data
segment may grow by ``M`` MiB at most (``RLIMIT_DATA``: one huge allocation fails with
``MemoryError`` instead of being made), and a watchdog thread stops the process once its
resident memory passes ``M`` MiB or ``S`` seconds pass.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from typing import Any

from benchmarks.common import emit_result, mosaic_first_batch, peak_rss_mib

BATCH = 256


def _rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _limit_data(max_mib: float) -> None:
    """Let the data segment grow by ``max_mib`` beyond what the imports left."""
    limit = int((_rss_mib("VmData") + max_mib) * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _watchdog(max_mib: float, max_seconds: float, began: float, phase: list[str]) -> None:
    while True:
        rss, elapsed = _rss_mib(), time.perf_counter() - began
        if rss > max_mib or elapsed > max_seconds:
            why = f"{rss:.0f} MiB" if rss > max_mib else f"{elapsed:.0f} s"
            emit_result({"stopped": f"past {why} in {phase[0]} after {elapsed:.1f} s"})
            sys.stdout.flush()
            os._exit(0)
        time.sleep(0.02)


def startup(path: str, resume_at: float | None, max_mib: float, max_seconds: float) -> Any:
    import streaming  # noqa: F401  (imports are not part of start-up)
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    baseline = peak_rss_mib()
    began, phase = time.perf_counter(), ["construction"]
    guard = threading.Thread(
        target=_watchdog, args=(baseline + max_mib, max_seconds, began, phase), daemon=True
    )
    guard.start()
    _limit_data(max_mib)
    try:
        ds = StreamingDataset(local=path, batch_size=BATCH, shuffle=True)
        phase[0] = "the first batch"
        at = None if resume_at is None else int(resume_at * ds.num_samples)
        mosaic_first_batch(ds, BATCH, at)
    except MemoryError:
        elapsed = time.perf_counter() - began
        return {
            "stopped": f"MemoryError past +{max_mib:.0f} MiB in {phase[0]} after {elapsed:.1f} s"
        }
    return {
        "seconds": time.perf_counter() - began,
        "rss_after_imports_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
        "num_samples": ds.num_samples,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--resume-at", type=float)
    parser.add_argument("--max-mib", type=float, default=3072)
    parser.add_argument("--max-seconds", type=float, default=240)
    args = parser.parse_args(argv)
    emit_result(startup(args.dataset, args.resume_at, args.max_mib, args.max_seconds))


if __name__ == "__main__":
    main(sys.argv[1:])
