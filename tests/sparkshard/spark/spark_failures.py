"""Run a write under injected task failures in a fresh SparkSession; print a JSON report.

    python tests/sparkshard/spark/spark_failures.py OUT_DIR

Used by test_spark.py: task retries need ``local[N,maxFailures]``, which the shared test
session cannot change, so this runs in its own process. Attempt 0 of partitions 1 and 3
fails half-way through its partition, after shards were written: partition 1 raises,
partition 3 kills its Python worker outright (the UDF's worker, not the one writing the
shards: spark_stragglers.py kills that one). The speculation settings are inert here:
local mode never speculates (spark_stragglers.py runs a real speculative copy).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

ROWS, PARTITIONS = 8_000, 4


def main(out: Path) -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    import sparkshard

    spark = (
        SparkSession.builder.master("local[2,4]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.speculation", "true")
        .config("spark.speculation.interval", "100ms")
        .config("spark.speculation.quantile", "0.5")
        .config("spark.speculation.minTaskRuntime", "100ms")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    seen: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(out, seen, stop), daemon=True)
    watcher.start()
    df = spark.range(0, ROWS, numPartitions=PARTITIONS).select(_flaky()("id").alias("id"))
    info = sparkshard.dataframe_to_shards(df, str(out), size_limit="4KB", compression="zstd")
    stop.set()
    watcher.join()
    failed = _failed_tasks(spark)
    spark.stop()
    report = {"version": info.version, "samples": info.num_samples, "seen": seen, "failed": failed}
    print(json.dumps(report))


def _failed_tasks(spark: object) -> int:
    tracker = spark.sparkContext.statusTracker()  # type: ignore[attr-defined]
    stages = [s for j in tracker.getJobIdsForGroup() for s in tracker.getJobInfo(j).stageIds]
    return sum(tracker.getStageInfo(s).numFailedTasks for s in stages)


def _flaky() -> object:
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    def flaky(x):  # no type hints: Spark would warn it cannot infer a pandas UDF
        context = TaskContext.get()
        if context.attemptNumber() == 0 and x % (ROWS // PARTITIONS) == ROWS // PARTITIONS // 2:
            if context.partitionId() == 1:
                raise RuntimeError(f"injected failure at row {x}")
            if context.partitionId() == 3:
                os._exit(3)
        return x

    return F.udf(flaky, "long")


def _watch(out: Path, seen: list[int], stop: threading.Event) -> None:
    """Record the sample count of every index.json visible while the job runs."""
    while not stop.is_set():
        try:
            index = json.loads((out / "index.json").read_text())
            seen.append(sum(s["samples"] for s in index["shards"]))
        except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
            if not isinstance(exc, FileNotFoundError):
                seen.append(-1)  # a partial or malformed index was visible
        time.sleep(0.005)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
