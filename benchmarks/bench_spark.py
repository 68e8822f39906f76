"""Spark writer benchmark: ``dataframe_to_shards`` vs Mosaic's ``dataframe_to_mds`` vs
Spark's own ``df.write.parquet``, on the same cached DataFrames (W1, W2, W3).

Each side runs in a fresh child: ours under the main venv (pyspark 4), Mosaic's under the
peer venv (pyspark 3.5); each also times Spark's Parquet write (zstd) of the same cached
DataFrame in its own session, the yardstick. Settings: ``local[2]``, zstd, xxh64, 64 MiB
shards, the same MDS columns on both sides. See ``mosaic_spark.py`` for the protocol.

    python -m benchmarks spark [-- --workloads w1,w2,w3 --scale 1.0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Ratio,
    Stopwatch,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    print_ratios,
    run_child,
    spark_session,
    workload,
    write_parquet,
)
from benchmarks.mosaic_spark import (
    COMPRESSION,
    HASHES,
    SIZE_LIMIT,
    cached_input,
    time_parquet,
    warm_up,
)

DEFAULT_ROWS = {"w1": 2_000_000, "w2": 60_000, "w3": 4_000}
GOAL_VS_PARQUET = 1.2  # our time / Spark's Parquet time, at most


def child_write(parquet: Path, out: Path) -> None:
    import sparkshard

    spark = spark_session()
    df, rows, columns = cached_input(spark, parquet)

    def ours(frame: Any, target: Path) -> Any:
        return sparkshard.dataframe_to_shards(
            frame, str(target), columns=columns, compression=COMPRESSION, hashes=HASHES,
            size_limit=SIZE_LIMIT,
        )  # fmt: skip

    warm_up(df, rows, ours, out.with_name(out.name + "-warm"))
    parquet_seconds = time_parquet(df, out.with_name(out.name + "-parquet"))
    shutil.rmtree(out, ignore_errors=True)
    with Stopwatch() as sw:
        info = ours(df, out)
    assert info.num_samples == rows
    partitions = df.rdd.getNumPartitions()
    spark.stop()
    emit_result(
        {"rows": rows, "seconds": sw.seconds, "parquet_seconds": parquet_seconds,
         "partitions": partitions, "shards": info.num_shards}
    )  # fmt: skip


def _measure(name: str, rows: int) -> tuple[list[Ratio], str]:
    base = output_dir(f"spark/{name}")
    parquet = base / f"{name}-{rows}.parquet"
    if not parquet.exists():
        write_parquet(workload(name, rows), parquet)
    peer = mosaic_python()
    if peer is None:
        raise SystemExit("the Mosaic peer venv is missing: run `make setup` first")
    ours = run_child(
        [main_python(), "-m", "benchmarks.bench_spark", "write", parquet, base / "ours"]
    )
    theirs = run_child([peer, "benchmarks/mosaic_spark.py", "write", parquet, base / "mosaic"])
    o, m = ours.result, theirs.result
    label = f"{name.upper()} ({rows:,} rows, {o['partitions']} partitions)"
    line = (
        f"  {name.upper()}: ours {o['seconds']:.2f} s = {o['seconds'] / o['parquet_seconds']:.2f}x "
        f"Spark Parquet ({o['parquet_seconds']:.2f} s; goal <= {GOAL_VS_PARQUET}x: "
        f"{'met' if o['seconds'] <= GOAL_VS_PARQUET * o['parquet_seconds'] else 'MISSED'}); "
        f"mosaic {m['seconds']:.2f} s = {m['seconds'] / m['parquet_seconds']:.2f}x its Spark "
        f"Parquet ({m['parquet_seconds']:.2f} s)"
    )
    return [
        Ratio(f"{label} write", rows / o["seconds"], rows / m["seconds"], "rows/s"),
        Ratio(
            f"{label} write vs Parquet",
            rows / o["seconds"],
            rows / o["parquet_seconds"],
            "rows/s",
            note="theirs = Spark's df.write.parquet (zstd), same session",
        ),
        Ratio(
            f"{label} driver peak RSS",
            ours.peak_rss_mib,
            theirs.peak_rss_mib,
            "MiB",
            higher_is_better=False,
        ),
    ], line


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks spark")
    parser.add_argument("--workloads", default="w1,w2,w3", help="comma-separated: w1,w2,w3")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows")
    opts = parser.parse_args(args)
    print(machine_note(), flush=True)
    rows: list[Ratio] = []
    lines: list[str] = []
    for name in opts.workloads.lower().split(","):
        measured, line = _measure(name, max(1, int(DEFAULT_ROWS[name] * opts.scale)))
        rows += measured
        lines.append(line)
        print(line, flush=True)
    print_ratios("spark: dataframe_to_shards vs Mosaic's dataframe_to_mds (local[2])", rows)
    print("\n".join(lines))
    print(machine_note())


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command != "write":
        raise SystemExit(f"unknown child command {command!r}")
    child_write(Path(rest[0]), Path(rest[1]))
