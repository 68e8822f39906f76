"""Worker scaling: one shuffled epoch through DataLoader workers, ours vs Mosaic vs LitData.

    python -m benchmarks workers [-- --workers 0,1,2 --workloads w1,w2,w3,jpeg --scale 1
                                      --repeats 1 --skip-peers --mosaic-python PY]

Workloads W1 (2M x ~100 B), W2 (60k x 784 B), W3 (4k x 256 KiB), all without per-sample
work, and JPEG (3k 256x256 JPEGs, each decoded, cropped and normalised per sample:
``benchmarks.common.decode_image``). The same MDS files serve us and Mosaic; LitData reads
the same rows converted with its own ``optimize``. Each child reports samples/s, MB/s, its
peak RSS (the loop's process and, separately, the largest worker) and the peak of the
system's shared memory during the epoch. Peers are capped at ``--peer-seconds``. Our child
then times a second epoch of the same loader (persistent workers): W2's and W3's epochs last
a tenth of a second, so the first epoch of a fresh process is mostly fixed costs (forking
the workers, checking each shard's hash once), which a later epoch no longer pays. With
``--repeats N`` ours and the peers run in turn N times and each side's median run counts.

Children (main venv): ``epoch PATH --workers W --workload NAME``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_loader import dataset_bytes, prepare_workload
from benchmarks.common import (
    Ratio,
    decode_image,
    emit_result,
    litdata_python,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    print_ratios,
    run_child,
    shared_memory_bytes,
    workload,
    write_parquet,
)

ME = "benchmarks.bench_workers"
MOSAIC = "benchmarks/mosaic_workers.py"
LITDATA = "benchmarks/litdata_workers.py"
BATCH = {"w1": 256, "w2": 256, "w3": 256, "jpeg": 64}


class ShmPeak:
    """Samples the system's shared memory every few ms while a run goes on."""

    def __init__(self) -> None:
        self.base = shared_memory_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, shared_memory_bytes())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return (self.peak - self.base) / 2**20


def children_peak_rss_mib() -> float:
    """The largest peak RSS of the reaped children (the DataLoader workers), in MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def child_epoch(path: str, workers: int, name: str) -> dict[str, Any]:
    from loader import FieldSpec, StreamingDataLoader, StreamingDataset

    batch = BATCH[name]
    ds = StreamingDataset(local=path, batch_size=batch, shuffle=True)
    fields = [FieldSpec("image", decode_image, per_sample=True)] if name == "jpeg" else None
    loader = StreamingDataLoader(
        ds, batch_size=batch, num_workers=workers, fields=fields, persistent_workers=workers > 0
    )
    shm = ShmPeak()
    seconds = []
    for _ in range(
        2
    ):  # the first epoch of a fresh process (what peers are timed on), then one more
        samples, began = 0, time.perf_counter()
        for item in loader:
            samples += len(item["id"])
        seconds.append(time.perf_counter() - began)
    del loader  # persistent workers end (and are reaped) only now: their RSS counts below
    gc.collect()
    total = dataset_bytes(Path(path))
    return {
        "samples": samples,
        "seconds": seconds[0],
        "later_seconds": seconds[1],
        "bytes": total * samples / ds.num_samples,
        "shm_mib": shm.stop(),
        "workers_rss_mib": children_peak_rss_mib(),
    }


def _rates(result: dict[str, Any]) -> tuple[float, float]:
    return result["samples"] / result["seconds"], result["bytes"] / result["seconds"] / 1e6


def _litdata_dir(name: str, table_rows: int) -> Path | None:
    peer = litdata_python()
    if peer is None:
        return None
    out = output_dir("workers") / f"litdata-{name}-{table_rows}"
    if not (out / "index.json").exists():
        source = write_parquet(workload(name).slice(0, table_rows), out.with_suffix(".parquet"))
        run_child([peer, LITDATA, "prepare", source, out], timeout=3600)
    return out


def run_one(
    name: str,
    workers: int,
    scale: float,
    peer_seconds: float,
    peers: bool,
    repeats: int = 1,
    mosaic: Path | None = None,
) -> tuple[list[Ratio], float]:
    """The rows of one worker count, and our samples/s in a later epoch. With ``repeats``,
    ours and the peers run in turn that many times and the median run of each counts (this
    machine drifts by a third between runs; in turn, a drift hits every side alike).
    ``mosaic`` is the Mosaic peer's interpreter (default: its venv's, where built)."""
    path = prepare_workload(name, scale)
    mosaic = mosaic or mosaic_python()
    rows: list[Ratio] = []
    cap = ["--max-seconds", str(peer_seconds)]
    args = ["--workers", str(workers), "--workload", name, *cap]
    children = {"ours": [main_python(), "-m", ME, "epoch", path, "--workers", str(workers),
                         "--workload", name]}  # fmt: skip
    if peers and mosaic is not None:
        children["mosaic"] = [mosaic, MOSAIC, "epoch", path, *args]
    litdata_dir = _litdata_dir(name, dataset_rows(path)) if peers else None
    if litdata_dir is not None:
        children["litdata"] = [litdata_python(), LITDATA, "epoch", litdata_dir, *args]
    runs: dict[str, list[Any]] = {side: [] for side in children}
    for _ in range(repeats):
        for side, argv in children.items():
            runs[side].append(run_child(argv))
    our_runs = runs.pop("ours")
    ours = _median(our_runs)
    o_sps, o_mbs = _rates(ours.result)
    theirs = {peer: _rates(_median(got).result) for peer, got in runs.items()}
    label = f"{name} workers={workers}"
    spread = f"median of {repeats} runs in turn" if repeats > 1 else ""
    for peer, (t_sps, _) in theirs.items():
        rows.append(Ratio(f"{label} samples/s vs {peer}", o_sps, t_sps, "samples/s", note=spread))
    if not theirs:
        rows.append(Ratio(f"{label} samples/s", o_sps, 0.0, "samples/s", note=spread))
    note = (
        f"ours: loop RSS {ours.peak_rss_mib:.0f} MiB, worker RSS "
        f"{ours.result['workers_rss_mib']:.0f} MiB, shm peak {ours.result['shm_mib']:.0f} MiB"
    )
    rows.append(Ratio(f"{label} MB/s", o_mbs, theirs.get("mosaic", (0, 0))[1], "MB/s", note=note))
    later = statistics.median(r.result["samples"] / r.result["later_seconds"] for r in our_runs)
    return rows, later


def _median(runs: list[Any]) -> Any:
    """The run whose samples/s is the median (the lower middle one of an even count)."""
    ranked = sorted(runs, key=lambda r: r.result["samples"] / r.result["seconds"])
    return ranked[(len(ranked) - 1) // 2]


def dataset_rows(path: Path) -> int:
    import json

    return sum(s["samples"] for s in json.loads((path / "index.json").read_text())["shards"])


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks workers --")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--workloads", default="w1,w2,w3,jpeg")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows")
    parser.add_argument("--peer-seconds", type=float, default=30.0)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="runs in turn; medians count")
    parser.add_argument(
        "--mosaic-python",
        type=Path,
        help="the interpreter that runs Mosaic (default: .venv-mosaic's, where it was built)",
    )
    opts = parser.parse_args(args)
    counts = [int(w) for w in opts.workers.split(",")]
    for name in opts.workloads.split(","):
        rows: list[Ratio] = []
        speeds: dict[int, tuple[float, float]] = {}  # workers -> (first epoch, a later one)
        for workers in counts:
            got, later = run_one(
                name,
                workers,
                opts.scale,
                opts.peer_seconds,
                not opts.skip_peers,
                opts.repeats,
                opts.mosaic_python,
            )
            rows += got
            speeds[workers] = got[0].ours, later
        if 0 in speeds:
            for workers, (first, later) in speeds.items():
                if workers:
                    note = "goal: >= 1.6x with per-sample work, >= 1.0x without"
                    metric = f"{name} ours {workers} vs 0 workers"
                    rows.append(Ratio(metric, first, speeds[0][0], "samples/s", note=note))
                    metric += ", a later epoch (persistent workers)"
                    rows.append(Ratio(metric, later, speeds[0][1], "samples/s"))
        print_ratios(f"workers: {name}, shuffled ({machine_note()})", rows, theirs_name="peer")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "epoch":
        workers = int(argv[argv.index("--workers") + 1])
        name = argv[argv.index("--workload") + 1]
        emit_result(child_epoch(argv[1], workers, name))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
