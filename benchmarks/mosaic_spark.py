"""The Mosaic side of ``bench_spark``, and the Spark helpers both sides share.

    mosaic_spark.py write ROWS.parquet OUT     # under the peer venv (pyspark 3.5)

Both children do the same: a ``local[2]`` session, the Parquet input read and cached in
memory (counted, so the cache is full), one untimed warm-up write of a 0.1% sample (it
starts the Python workers, which a long-lived cluster already has), then the timed
writes: Spark's own ``df.write.parquet`` (zstd) and the MDS writer under test (zstd,
xxh64, 64 MiB shards). This module imports only the standard library, numpy, pyarrow,
pyspark and ``benchmarks.common`` / ``benchmarks.mosaic_format``, so both venvs can load it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.common import Stopwatch, emit_result, spark_session
from benchmarks.mosaic_format import mds_columns

COMPRESSION = "zstd"
HASHES = ["xxh64"]
SIZE_LIMIT = 1 << 26


def cached_input(spark: Any, parquet: Path) -> tuple[Any, int, dict[str, str]]:
    """(cached DataFrame, rows, MDS columns) of the workload in ``parquet``."""
    df = spark.read.parquet(str(parquet)).cache()
    rows = df.count()
    return df, rows, mds_columns(pq.read_schema(parquet))


def time_parquet(df: Any, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    with Stopwatch() as sw:
        df.write.option("compression", "zstd").parquet(str(out))
    return sw.seconds


def warm_up(df: Any, rows: int, write: Any, out: Path) -> None:
    """One untimed write of a small sample with every partition (starts Python workers)."""
    write(df.sample(fraction=min(1.0, max(0.001, 200 / max(rows, 1))), seed=1), out)
    shutil.rmtree(out, ignore_errors=True)


def write(parquet: Path, out: Path) -> None:
    from streaming.base.converters import dataframe_to_mds

    spark = spark_session()
    df, rows, columns = cached_input(spark, parquet)
    settings = {"columns": columns, "compression": COMPRESSION, "hashes": HASHES}

    def mosaic(frame: Any, target: Path) -> None:
        kwargs = {"out": str(target), "size_limit": SIZE_LIMIT, **settings}
        dataframe_to_mds(frame, merge_index=True, mds_kwargs=kwargs)

    warm_up(df, rows, mosaic, out.with_name(out.name + "-warm"))
    parquet_seconds = time_parquet(df, out.with_name(out.name + "-parquet"))
    shutil.rmtree(out, ignore_errors=True)
    with Stopwatch() as sw:
        mosaic(df, out)
    partitions = df.rdd.getNumPartitions()
    spark.stop()
    emit_result(
        {"rows": rows, "seconds": sw.seconds, "parquet_seconds": parquet_seconds,
         "partitions": partitions}
    )  # fmt: skip


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command != "write":
        raise SystemExit(f"unknown command {command!r}; usage: mosaic_spark.py write IN OUT")
    write(Path(rest[0]), Path(rest[1]))
