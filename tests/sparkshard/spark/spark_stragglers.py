"""Kill a shard upload half-way, or race a real speculative copy; print a JSON report.

    python tests/sparkshard/spark/spark_stragglers.py kill|speculate OUT SIDE

Used by test_spark.py. Both scenarios write ``ROWS`` ids in ``PARTITIONS`` partitions with
``dataframe_to_mds(udf_iterable=...)``: that UDF runs in the Python process that writes
the shards, so it can act from inside it. Attempt 0 of partition ``VICTIM`` misbehaves:

- ``kill`` (``local[2,4]``: Spark retries a task): it lets two shard writes land, then
  SIGKILLs its own process half-way through writing the third shard's staging file.
  SIDE/killed.json names what it left behind. Spark retries the partition.
- ``speculate`` (a standalone cluster of two one-core workers on two loopback addresses:
  local mode never speculates): it writes shards until one has landed, then waits until
  the job has committed before it writes the rest, so a speculative copy runs and wins.
  Each attempt notes its start in SIDE, and a log handler copies the writer's message at
  the end of each attempt there; the run waits until both attempts of ``VICTIM`` ended.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from spark_failures import _failed_tasks
from standalone import standalone_cluster

ROWS, PARTITIONS, VICTIM = 40_000, 4, 1
DEADLINE = 120.0  # seconds: an upper bound on every wait, never a timing assumption
_T = TypeVar("_T")


def main(scenario: str, out: Path, side: Path) -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    if scenario == "kill":
        report = _run("local[2,4]", {}, _killer(side), out, lambda: {})
    elif scenario == "speculate":
        work = side / "cluster"
        work.mkdir()
        with standalone_cluster(["127.0.0.1", "127.0.0.2"], work) as master:
            report = _run(master, _cluster_conf(), _laggard(out, side), out, lambda: _ends(side))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}: kill or speculate")
    print(json.dumps(report))


def _run(
    master: str,
    conf: dict[str, str],
    udf: Callable[..., Any],
    out: Path,
    settle: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Write the ids with ``udf``; ``settle`` waits for the stragglers (Spark still up)."""
    import sparkshard
    from sparkshard.spark.session import local_session

    spark = local_session("sparkshard-stragglers", master=master, conf=conf)
    try:
        if not master.startswith("local"):
            _wait_for(lambda: _executors(spark) >= 2, "both executors to register")
        df = spark.range(0, ROWS, numPartitions=PARTITIONS)
        sparkshard.dataframe_to_mds(
            df, mds_kwargs={"out": str(out), "columns": {"id": "int64"}, "size_limit": "4KB"},
            udf_iterable=udf,
        )  # fmt: skip
        return {"failed": _failed_tasks(spark), **settle()}
    finally:
        spark.stop()


def _cluster_conf() -> dict[str, str]:
    return {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.executor.memory": "512m",
        "spark.cores.max": "2",
        "spark.executorEnv.PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "spark.speculation": "true",
        "spark.speculation.interval": "100ms",
        "spark.speculation.quantile": "0.5",
        "spark.speculation.multiplier": "1.5",
        "spark.speculation.minTaskRuntime": "100ms",
        "spark.speculation.efficiency.enabled": "false",  # runtime alone decides
        # The losing attempt is killed once the copy wins; let its Python process run on
        # (Spark's default destroys it after 2 s) so that it really writes after the commit.
        "spark.python.task.killTimeout": f"{DEADLINE:.0f}s",
    }


def _executors(spark: Any) -> int:
    """Executors registered with the driver (the driver itself not counted)."""
    return int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()) - 1


# ---- the UDFs (run in the Python process that writes the shards) ------------------------


def _samples(df: Any) -> Iterator[dict[str, int]]:
    for x in df["id"]:
        yield {"id": int(x)}


def _killer(side: Path) -> Callable[..., Iterator[dict[str, int]]]:
    def numbers(df):  # no type hints: a whole partition as one pandas DataFrame
        from pyspark import TaskContext

        context = TaskContext.get()
        if context.partitionId() == VICTIM and context.attemptNumber() == 0:
            _die_in_write(3, side / "killed.json")
        yield from _samples(df)

    return numbers


def _die_in_write(nth: int, report: Path) -> None:
    """From now on this process SIGKILLs itself half-way through its ``nth`` staged write.

    LocalStore stages every write in a ``.{name}.{uuid}.tmp`` file it then renames; this
    lets ``nth - 1`` of them land whole, then writes half of the next one's bytes."""
    original = Path.write_bytes
    landed: list[str] = []
    # The sink uploads from background threads: one staged write at a time here, so the
    # count is exact and a single thread reaches the kill. (Two used to: the second one's
    # report truncated the first's as it was renamed into place, leaving an empty file.)
    one_at_a_time = threading.Lock()

    def write_bytes(self: Path, data: Any) -> int:
        if not self.name.endswith(".tmp"):
            return original(self, data)
        with one_at_a_time:
            if len(landed) < nth - 1:
                landed.append(self.name[1:].rsplit(".", 2)[0])  # the key's name, not the temp's
                return original(self, data)
            _write_half_and_die(self, data, landed, report)

    Path.write_bytes = write_bytes  # type: ignore[method-assign]


def _write_half_and_die(path: Path, data: Any, landed: list[str], report: Path) -> NoReturn:
    """Write half of ``data`` to ``path``, say so in ``report``, then SIGKILL this process
    (the caller holds the lock: no other staged write starts meanwhile)."""
    view = memoryview(data)
    with path.open("wb") as f:
        f.write(view[: len(view) // 2])
        f.flush()
        os.fsync(f.fileno())
    info = {"staging": path.name, "bytes": len(view) // 2, "of": len(view), "landed": landed}
    partial = report.with_name(f".{report.name}.{os.getpid()}")
    partial.write_text(json.dumps(info))
    os.replace(partial, report)  # whole or absent, whoever reads it and whenever
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the process is gone")


def _laggard(out: Path, side: Path) -> Callable[..., Iterator[dict[str, int]]]:
    def numbers(df):  # no type hints: a whole partition as one pandas DataFrame
        from pyspark import TaskContext

        context = TaskContext.get()
        partition, attempt, task = (
            context.partitionId(), context.attemptNumber(), context.taskAttemptId()
        )  # fmt: skip
        _record_end_of_attempt(side)
        (side / f"start-{partition}-{attempt}.json").write_text(json.dumps({"task": task}))
        samples = _samples(df)
        if partition == VICTIM and attempt == 0:
            # More samples than the sink buffers (4096) before it seals shards and uploads
            # them in the background: some land while this attempt waits.
            yield from itertools.islice(samples, len(df) * 3 // 4)
            landed = _wait_for(lambda: _shards_of(out, partition, task), "one of its shards")
            _wait_for(lambda: _markers(out), "the job to commit")
            (side / "held.json").write_text(json.dumps(landed))  # landed before the commit
        yield from samples

    return numbers


def _shards_of(out: Path, partition: int, task: int) -> list[str]:
    return sorted(p.name for p in (out / "data").glob(f"*-p{partition:05d}-a{task}-*"))


def _markers(out: Path) -> list[Path]:
    jobs = out / "_sparkshard" / "jobs"
    return list(jobs.iterdir()) if jobs.is_dir() else []


class _EndOfAttempt(logging.Handler):
    """Copies the writer's messages, with the task they come from, to SIDE/log-{pid}.jsonl."""

    def __init__(self, side: Path) -> None:
        super().__init__(logging.INFO)
        self.path = side / f"log-{os.getpid()}.jsonl"

    def emit(self, record: logging.LogRecord) -> None:
        from pyspark import TaskContext

        context = TaskContext.get()
        line = {
            "partition": context.partitionId() if context else None,
            "attempt": context.attemptNumber() if context else None,
            "message": record.getMessage(),
        }
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")


def _record_end_of_attempt(side: Path) -> None:
    """Install the handler once per Python worker (Spark reuses workers across tasks)."""
    logger = logging.getLogger("sparkshard.spark.write")
    if not any(type(h).__name__ == _EndOfAttempt.__name__ for h in logger.handlers):
        logger.addHandler(_EndOfAttempt(side))
        logger.setLevel(logging.INFO)


# ---- the driver's view of the side channel ---------------------------------------------


def _ends(side: Path) -> dict[str, Any]:
    """Wait until both attempts of the victim ended; what they said, and how they started."""
    ends = _wait_for(lambda: _victim_messages(side), "both attempts of the victim to end")
    starts = {p.stem: json.loads(p.read_text()) for p in side.glob("start-*.json")}
    return {"ends": ends, "starts": starts, "held": json.loads((side / "held.json").read_text())}


def _victim_messages(side: Path) -> dict[str, str] | None:
    """The writer's end-of-attempt message of attempts 0 and 1 of the victim, once both exist."""
    ends = {}
    for path in side.glob("log-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line still being written: read it next time
                continue
            if entry["partition"] == VICTIM:
                ends[str(entry["attempt"])] = entry["message"]
    return ends if {"0", "1"} <= set(ends) else None


def _wait_for(probe: Callable[[], _T | None], what: str) -> _T:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"waited {DEADLINE:.0f} s for {what}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
