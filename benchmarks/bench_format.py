"""Format benchmark: our writer and batch reader vs mosaicml-streaming's, on W1 and W2.

Writing: ``ShardWriter.write_batch`` (Arrow record batches of 10k rows, as Spark hands
them over) vs ``MDSWriter.write`` per row dict, same rows and settings (zstd, xxh64,
64 MiB shards), one process each. Reading: the whole dataset in a random order through
``DatasetReader.get_batch`` (batches of 256) vs Mosaic's ``StreamingDataset[i]`` per
sample, both starting from the same compressed files (decompression included; opening
the dataset and drawing the order are not timed, on either side). Every
measurement runs in a fresh child process, so each peak RSS is that child's own.

    python -m benchmarks format [-- --workloads w1,w2 --scale 0.1 --mosaic-read-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import (
    ChildResult,
    Ratio,
    Stopwatch,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    print_ratios,
    run_child,
    workload,
    write_parquet,
)

COMPRESSION = "zstd"
HASHES = ("xxh64",)
SIZE_LIMIT = 1 << 26
ARROW_BATCH_ROWS = 10_000
READ_BATCH = 256
READ_SEED = 1234
DEFAULT_ROWS = {"w1": 2_000_000, "w2": 60_000, "w3": 4_000}
GOALS = {"write": 10.0, "read": 40.0}


def child_write(parquet: Path, out: Path) -> None:
    """Time ``write_batch`` of every row of ``parquet`` into a new dataset at ``out``."""
    import sparkshard

    batches = pq.read_table(parquet).to_batches(max_chunksize=ARROW_BATCH_ROWS)
    rows = sum(b.num_rows for b in batches)
    writer = sparkshard.ShardWriter(out, None, COMPRESSION, HASHES, SIZE_LIMIT)
    with Stopwatch() as sw, writer:
        for batch in batches:
            writer.write_batch(batch)
    assert writer.info.num_samples == rows
    emit_result({"rows": rows, "seconds": sw.seconds, "shards": writer.info.num_shards})


def child_read(path: Path) -> None:
    """Time reading every sample of ``path`` in a random order, ``READ_BATCH`` at a time."""
    from loader import DatasetReader

    reader = DatasetReader(path)
    order = np.random.default_rng(READ_SEED).permutation(len(reader))
    id_sum = 0
    with Stopwatch() as sw:
        for start in range(0, len(order), READ_BATCH):
            batch = reader.get_batch(order[start : start + READ_BATCH])
            id_sum += int(np.asarray(batch["id"], np.int64).sum())
    n = len(order)
    if id_sum != n * (n - 1) // 2:  # ids are 0..n-1: every sample was read exactly once
        raise RuntimeError(f"read the wrong samples: id sum {id_sum}")
    emit_result({"samples": n, "seconds": sw.seconds})


def _fresh_copy(src: Path, dst: Path) -> Path:
    """Hard-linked copy of a dataset, so each reader starts from the compressed files."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _measure(name: str, rows: int | None, mosaic_read_seconds: float) -> list[Ratio]:
    base = output_dir(f"format/{name}")
    for stale in ("ours", "mosaic", "read-ours", "read-mosaic"):
        shutil.rmtree(base / stale, ignore_errors=True)
    table = workload(name, rows)
    parquet = write_parquet(table, base / f"{name}.parquet")
    n = table.num_rows
    del table
    peer = mosaic_python()
    if peer is None:
        raise SystemExit("the Mosaic peer venv is missing: run `make setup` first")
    py, me, theirs = main_python(), "benchmarks.bench_format", "benchmarks/mosaic_format.py"
    w_ours = run_child([py, "-m", me, "write", parquet, base / "ours"])
    w_mosaic = run_child([peer, theirs, "write", parquet, base / "mosaic"])
    r_ours = run_child([py, "-m", me, "read", _fresh_copy(base / "ours", base / "read-ours")])
    r_mosaic = run_child(
        [
            peer,
            theirs,
            "read",
            _fresh_copy(base / "ours", base / "read-mosaic"),
            "--max-seconds",
            str(mosaic_read_seconds),
        ]
    )
    read_note = ""
    if r_mosaic.result["samples"] < n:
        read_note = f"mosaic read {r_mosaic.result['samples']:,} of {n:,} (time cap)"
    label = f"{name.upper()} ({n:,} rows)"
    write_rates = _rate(w_ours, "rows"), _rate(w_mosaic, "rows")
    read_rates = _rate(r_ours, "samples"), _rate(r_mosaic, "samples")
    write_rss = w_ours.peak_rss_mib, w_mosaic.peak_rss_mib
    read_rss = r_ours.peak_rss_mib, r_mosaic.peak_rss_mib
    return [
        Ratio(f"{label} write", *write_rates, "rows/s"),
        Ratio(f"{label} read", *read_rates, "samples/s", note=read_note),
        Ratio(f"{label} write peak RSS", *write_rss, "MiB", higher_is_better=False),
        Ratio(f"{label} read peak RSS", *read_rss, "MiB", higher_is_better=False),
    ]


def _rate(child: ChildResult, key: str) -> float:
    return float(child.result[key]) / float(child.result["seconds"])


def _goal_lines(rows: list[Ratio]) -> list[str]:
    lines = []
    for r in rows:
        kind = r.metric.rsplit(" ", 1)[-1]
        if kind in GOALS:
            verdict = "met" if r.ratio >= GOALS[kind] else "MISSED"
            lines.append(f"  goal {GOALS[kind]:.0f}x {r.metric}: {r.ratio:.1f}x ({verdict})")
    return lines


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks format")
    parser.add_argument("--workloads", default="w1,w2", help="comma-separated: w1,w2,w3")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows")
    parser.add_argument("--mosaic-read-seconds", type=float, default=60.0)
    opts = parser.parse_args(args)
    print(machine_note(), flush=True)
    rows: list[Ratio] = []
    for name in opts.workloads.lower().split(","):
        n = max(1, int(DEFAULT_ROWS[name] * opts.scale))
        rows += _measure(name, n, opts.mosaic_read_seconds)
    print_ratios("format: sparkshard vs mosaicml-streaming 0.13.0 (one process each)", rows)
    print("\n".join(_goal_lines(rows)))
    print(machine_note())


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "write":
        child_write(Path(rest[0]), Path(rest[1]))
    elif command == "read":
        child_read(Path(rest[0]))
    else:
        raise SystemExit(f"unknown child command {command!r}")
