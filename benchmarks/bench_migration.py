"""The migration path: Mosaic's documented subclass with a per-sample transform, ours vs Mosaic.

    python -m benchmarks migration [-- --workers 0,2 --scale 1 --peer-seconds 30]

Mosaic's docs add per-sample work by subclassing ``StreamingDataset`` and overriding
``__getitem__``. Both sides run exactly that class (:func:`normalized`, the same transform:
the 784 image bytes of W2 (60k x 784 B) to a normalised ``(28, 28)`` float32 array), under
their own ``StreamingDataLoader``, batch 256, shuffled, at 0 and 2 workers, over the same
MDS files. Goal: at least as fast as Mosaic at both.

Each child reports whether the override ran (the delivered ``image`` is the transformed
float32 array): where it did not, ours measured its batch path, not the override, and the
row says so.

Children (main venv): ``epoch PATH --workers W``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from benchmarks.bench_loader import prepare_workload
from benchmarks.common import (
    Ratio,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    print_ratios,
    run_child,
)

ME = "benchmarks.bench_migration"
MOSAIC = "benchmarks/mosaic_migration.py"
BATCH = 256


def normalize(sample: dict[str, Any]) -> dict[str, Any]:
    """The per-sample work, the same on both sides: image bytes -> (28, 28) float32 in [0, 1]."""
    pixels = np.frombuffer(sample["image"], np.uint8).reshape(28, 28)
    return {"id": sample["id"], "label": sample["label"], "image": pixels / np.float32(255)}


def normalized(base: type) -> type:
    """Mosaic's documented subclass of ``base`` (its StreamingDataset or ours)."""

    class Normalized(base):  # type: ignore[misc, valid-type]
        def __getitem__(self, index: int) -> Any:
            return normalize(super().__getitem__(index))

    return Normalized


def drain(loader: Any, max_seconds: float | None) -> dict[str, Any]:
    """One epoch (or ``max_seconds``): samples delivered, seconds, and whether the override ran."""
    samples, honoured, began = 0, None, time.perf_counter()
    for batch in loader:
        if honoured is None:
            dtype = getattr(batch["image"], "dtype", None)  # raw bytes arrive as a list
            honoured = str(dtype) in ("torch.float32", "float32")
        samples += len(batch["id"])
        if max_seconds is not None and time.perf_counter() - began > max_seconds:
            break
    return {"samples": samples, "seconds": time.perf_counter() - began, "honoured": honoured}


def child_epoch(path: str, workers: int) -> dict[str, Any]:
    from loader import StreamingDataLoader, StreamingDataset

    ds = normalized(StreamingDataset)(local=path, batch_size=BATCH, shuffle=True)
    return drain(StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers), None)


def run_one(path: Any, workers: int, peer_seconds: float, peers: bool) -> Ratio:
    ours = run_child([main_python(), "-m", ME, "epoch", path, "--workers", str(workers)]).result
    rate = ours["samples"] / ours["seconds"]
    theirs = 0.0
    if peers and mosaic_python() is not None:
        args = ["epoch", path, "--workers", str(workers), "--max-seconds", str(peer_seconds)]
        mosaic = run_child([mosaic_python(), MOSAIC, *args]).result
        if not mosaic["honoured"]:
            raise RuntimeError(
                "Mosaic did not run the __getitem__ override: the benchmark is wrong"
            )
        theirs = mosaic["samples"] / mosaic["seconds"]
    note = "goal >= 1.0x" if ours["honoured"] else "override NOT honoured: ours ran its batch path"
    metric = f"w2 __getitem__ override, workers={workers}"
    return Ratio(metric, rate, theirs, "samples/s", note=note)


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks migration --")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of W2's 60k rows")
    parser.add_argument("--peer-seconds", type=float, default=30.0)
    parser.add_argument("--skip-peers", action="store_true")
    opts = parser.parse_args(args)
    path = prepare_workload("w2", opts.scale)
    rows = [
        run_one(path, int(w), opts.peer_seconds, not opts.skip_peers)
        for w in opts.workers.split(",")
    ]
    print_ratios(f"migration: Mosaic's subclass on W2, shuffled ({machine_note()})", rows)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "epoch":
        emit_result(child_epoch(argv[1], int(argv[argv.index("--workers") + 1])))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
