"""Reading tables in place: ``StreamingDataset(delta=...)`` / ``parquet=`` vs the MDS path,
vs convert-then-read, and start-up on a table of 10,000 files.

    python -m benchmarks inplace [-- --workloads w1,w2 --workers 0,2 --scale 1 --no-spark
                                     --peer-seconds 30 --repeats 3 --files 0]

- A shuffled epoch's samples/s with 0 and 2 workers on W1 and W2 as a Delta table written by
  delta-rs, as Parquet written by Spark (``df.write.parquet``, read with ``parquet=``), as
  the same Spark-written files in a Delta table (``convert_to_deltalake`` on a copy of
  Spark's output, read with ``delta=``), and as our MDS shards of the same rows (warm: the
  files of either are in the page cache after a first pass). Goal: in place >= 50% of warm
  MDS. Each is timed twice: the first epoch of a fresh process, and the loader's next epoch
  (persistent workers), which has no one-time cost. ``--repeats N`` runs ours and warm MDS
  in turn N times; medians count. On this machine the first Parquet read of a process is
  one: a 47 MB row group's first read took 30-1,400 ms against 20-30 ms for the next ones.
  The cost is fresh memory, which this VM backs slowly and unevenly (400 MB written to new
  page-cache pages took 1.1-1.6 s, and 0.1 s once those pages were recycled). It shows
  with pyarrow's default pool (mimalloc, first reads 30-640 ms over 8 runs) and with
  jemalloc (80-390 ms); with THP off for the process (``prctl(PR_SET_THP_DISABLE)``) or
  ``MIMALLOC_ARENA_EAGER_COMMIT=0`` it was a steady 100-120 ms. Nothing here sets either.
  The stall is not only on a process's first read: the delta-rs W2 file (one 47 MB row
  group) read twice with pyarrow alone in a fresh process took 31-47 ms per read in most
  runs and 1.0-1.7 s for one of the two reads in others, faulting in 113-136 transparent
  huge pages (``thp_fault_alloc``); with pyarrow's system pool (no huge pages) it was a
  steady 140-240 ms. The first-epoch rows print each run's huge-page faults and seconds:
  fast and slow runs fault in about as many (89 in 0.52 s and 89 in 1.29 s for W2), so it
  is the time this VM takes to back a fresh huge page that varies, not the work done.
- End to end to the end of the first epoch: ours ``delta_to_shards`` + first epoch, Mosaic
  ``dataframe_to_mds`` (Spark, in the Mosaic venv) + its first epoch, vs in place (start-up
  and first epoch). Goal: in place faster than any convert-then-read.
- Peers: LitData's Parquet streaming of the same Spark-written files
  (``index_parquet_dataset`` + ``ParquetLoader``, in ``.venv-litdata``, see
  ``litdata_inplace.py``; on a copy, since LitData writes its index.json into the
  directory), a shuffled epoch with 0 and 2 workers capped at ``--peer-seconds``, vs ours
  reading those files with ``parquet=``; reported as skipped when the LitData venv lacks
  polars. DeltaTorch is not a peer here: tried in a scratch venv (deltatorch 0.0.3, torch
  2.13.0+cpu, pyarrow 26.0.1), its ``create_pytorch_dataloader`` fails on deltalake 1.6.6
  (our pin) in ``DeltaIterableDataset.count``: ``get_add_actions().to_pandas()`` raises
  AttributeError ('arro3.core._core.Table' has no 'to_pandas'). With deltalake 0.25.5 (and
  pandas) it reads a 1,000-row delta-rs table with 0 workers, and with 2 only under
  ``multiprocessing_context='spawn'`` (under fork delta-rs panics: "Forked process
  detected"). It needs a dense integer id column.
- Start-up on a synthesized Delta table of 10,000 files: time to first batch, peak RSS.

Children (main venv): ``epoch KIND PATH --workers W --workload NAME``, ``convert DELTA OUT
--workload NAME``, ``startup DELTA``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_loader import prepare_workload
from benchmarks.common import (
    Ratio,
    drain,
    emit_result,
    huge_page_faults,
    litdata_python,
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

ME = "benchmarks.bench_inplace"
BATCH = 256
GROUP_ROWS = 65_536  # rows per row group of the delta-rs tables


# --- preparing the tables ---------------------------------------------------------------
def prepare_delta(name: str, scale: float) -> Path:
    from deltalake import WriterProperties, write_deltalake

    table = workload(name)
    rows = max(int(table.num_rows * scale), BATCH)
    path = output_dir("inplace") / f"{name}-{rows}-delta"
    if not (path / "_delta_log").exists():
        props = WriterProperties(max_row_group_size=GROUP_ROWS, compression="SNAPPY")
        write_deltalake(path, table.slice(0, rows), writer_properties=props)
    return path


def prepare_spark_parquet(name: str, scale: float) -> Path:
    table = workload(name)
    rows = max(int(table.num_rows * scale), BATCH)
    path = output_dir("inplace") / f"{name}-{rows}-spark"
    if not (path / "_SUCCESS").exists():
        source = write_parquet(table.slice(0, rows), path.with_suffix(".input.parquet"))
        spark = spark_session()
        spark.read.parquet(str(source)).repartition(4).write.mode("overwrite").parquet(str(path))
        spark.stop()
    return path


def prepare_spark_delta(spark_parquet: Path) -> Path:
    """Spark's Parquet output, copied, committed as a Delta table by delta-rs (version 0)."""
    from deltalake import convert_to_deltalake

    path = spark_parquet.with_name(spark_parquet.name + "-delta")
    if not (path / "_delta_log").exists():
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(spark_parquet, path)
        convert_to_deltalake(path)
    return path


def prepare_litdata_copy(spark_parquet: Path) -> Path:
    """A copy of Spark's Parquet output for LitData, which writes index.json into it."""
    path = spark_parquet.with_name(spark_parquet.name + "-litdata")
    if not (path / "_SUCCESS").exists():
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(spark_parquet, path, ignore=shutil.ignore_patterns("index.json"))
    return path


def prepare_many_files(files: int = 10_000, rows: int = 20) -> Path:
    """A Delta table of ``files`` small Parquet files, committed in one log entry."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = output_dir("inplace") / f"many-{files}"
    if (path / "_delta_log" / f"{0:020d}.json").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    (path / "_delta_log").mkdir(parents=True)
    schema = {"type": "struct", "fields": [
        {"name": "id", "type": "long", "nullable": True, "metadata": {}},
        {"name": "x", "type": "double", "nullable": True, "metadata": {}},
    ]}  # fmt: skip
    actions: list[dict[str, Any]] = [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {"metaData": {"id": str(uuid.uuid4()), "format": {"provider": "parquet", "options": {}},
                      "schemaString": json.dumps(schema), "partitionColumns": [],
                      "configuration": {}, "createdTime": 0}},
    ]  # fmt: skip
    for f in range(files):
        ids = np.arange(f * rows, (f + 1) * rows, dtype=np.int64)
        name = f"part-{f:05d}.parquet"
        pq.write_table(pa.table({"id": ids, "x": ids * 0.5}), path / name)
        size = (path / name).stat().st_size
        actions.append({"add": {"path": name, "partitionValues": {}, "size": size,
                                "modificationTime": 0, "dataChange": True}})  # fmt: skip
    lines = "\n".join(json.dumps(a) for a in actions) + "\n"
    (path / "_delta_log" / f"{0:020d}.json").write_text(lines)
    return path


# --- children (main venv) -----------------------------------------------------------------
def child_epoch(kind: str, path: str, workers: int) -> dict[str, Any]:
    from loader import StreamingDataLoader, StreamingDataset

    began = time.perf_counter()
    where = {"delta": {"delta": path}, "parquet": {"parquet": path}, "mds": {"local": path}}
    ds = StreamingDataset(**where[kind], batch_size=BATCH, shuffle=True)  # type: ignore[arg-type]
    loader = StreamingDataLoader(
        ds, batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0
    )
    opened = time.perf_counter() - began
    faults = huge_page_faults()
    result = drain(loader)
    after = huge_page_faults()
    huge = None if faults is None or after is None else after - faults
    first = None if result["first_batch"] is None else opened + result["first_batch"]
    total = time.perf_counter() - began
    later = drain(loader)  # the next epoch of the same loader: no one-time costs
    return {**result, "first_batch": first, "total": total, "later_seconds": later["seconds"],
            "huge_page_faults": huge}  # fmt: skip


def child_convert(delta: str, out: str) -> dict[str, Any]:
    import sparkshard

    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    sparkshard.delta_to_shards(delta, out, compression=None)
    return {"seconds": time.perf_counter() - began}


def child_startup(delta: str) -> dict[str, Any]:
    from loader import StreamingDataset

    began = time.perf_counter()
    ds = StreamingDataset(delta=delta, batch_size=BATCH, shuffle=True)
    opened = time.perf_counter() - began
    next(iter(ds.iter_batches()))
    return {"open": opened, "first_batch": time.perf_counter() - began, "rows": ds.num_samples,
            "row_groups": len(ds.shard_sizes)}  # fmt: skip


# --- the comparisons ----------------------------------------------------------------------
def _epoch(kind: str, path: Path, workers: int) -> dict[str, Any]:
    argv = [main_python(), "-m", ME, "epoch", kind, str(path), "--workers", str(workers)]
    return run_child(argv, timeout=3600).result


def _huge_pages(runs: list[dict[str, Any]]) -> str:
    """The first epochs' huge-page faults (system-wide), run by run with their seconds: like
    counts with unlike seconds are this VM's slow fresh huge pages (the module docstring)."""
    if any(r.get("huge_page_faults") is None for r in runs):
        return ""
    each = ", ".join(f"{r['huge_page_faults']} in {r['seconds']:.2f}s" for r in runs)
    return f"; huge-page faults per first epoch: {each}"


def _sps(result: dict[str, Any]) -> float:
    return float(result["samples"] / result["seconds"])


def _later_sps(result: dict[str, Any]) -> float:
    return float(result["samples"] / result["later_seconds"])


def throughput(
    name: str, scale: float, workers: list[int], spark: bool, peer_seconds: float, repeats: int
) -> list[Ratio]:
    delta, mds = prepare_delta(name, scale), prepare_workload(name, scale)
    sources = [("delta-rs Delta", "delta", delta)]
    spark_parquet = prepare_spark_parquet(name, scale) if spark else None
    if spark_parquet is not None:
        sources.append(("Spark Parquet", "parquet", spark_parquet))
        sources.append(("Spark-written Delta", "delta", prepare_spark_delta(spark_parquet)))
    rows, on_spark_parquet = [], {}
    spread = f"; medians of {repeats} runs in turn" if repeats > 1 else ""
    for w in workers:
        _epoch("mds", mds, w)  # warm the page cache
        for label, kind, path in sources:
            _epoch(kind, path, w)  # the table's files warm too
            warm, ours = [], []
            for _ in range(repeats):  # in turn: this machine drifts between runs
                warm.append(_epoch("mds", mds, w))
                ours.append(_epoch(kind, path, w))
            first = statistics.median(_sps(r) for r in ours)
            if path == spark_parquet:
                on_spark_parquet[w] = first
            batch = statistics.median(r["first_batch"] for r in ours)
            note = "goal >= 0.5x" + (f"; first batch {batch:.2f}s" if w == 0 else "")
            note += _huge_pages(ours) + spread
            metric = f"{name} {label} in place vs warm MDS, {w} workers"
            rows.append(Ratio(metric, first, statistics.median(_sps(r) for r in warm),
                              "samples/s", note=note))  # fmt: skip
            rows.append(Ratio(f"{metric}, later epoch",
                              statistics.median(_later_sps(r) for r in ours),
                              statistics.median(_later_sps(r) for r in warm),
                              "samples/s", note="the loader's second epoch" + spread))  # fmt: skip
    if spark_parquet is not None:
        rows += litdata_parquet(name, spark_parquet, on_spark_parquet, peer_seconds)
    return rows


def litdata_parquet(
    name: str, spark_parquet: Path, ours: dict[int, float], peer_seconds: float
) -> list[Ratio]:
    """LitData streaming the same Spark-written Parquet vs ours (``parquet=``), per workers."""
    import subprocess

    metric = f"{name} Spark Parquet in place vs LitData Parquet streaming"
    peer = litdata_python()
    if peer is None:
        return [Ratio(metric, 0.0, 0.0, "samples/s", note="skipped: no .venv-litdata")]
    probe = [str(peer), "-c", "import polars"]
    if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
        note = "skipped: LitData's ParquetLoader needs polars, absent from .venv-litdata"
        return [Ratio(metric, 0.0, 0.0, "samples/s", note=note)]
    copy = prepare_litdata_copy(spark_parquet)
    rows = []
    for w, sps in ours.items():
        got = run_child(
            [peer, "benchmarks/litdata_inplace.py", "epoch", copy, "--workers", str(w),
             "--max-seconds", str(peer_seconds)], timeout=3600,
        ).result  # fmt: skip
        capped = f"capped at {peer_seconds:g}s" if got["capped"] else "a full epoch"
        note = f"LitData: {got['samples']} samples, {capped}; its index {got['index']:.2f}s"
        rows.append(Ratio(f"{metric}, {w} workers", sps, _sps(got), "samples/s", note=note))
    return rows


def end_to_end(name: str, scale: float) -> list[Ratio]:
    delta = prepare_delta(name, scale)
    inplace = _epoch("delta", delta, 0)
    out = output_dir("inplace") / f"{name}-converted"
    convert = run_child([main_python(), "-m", ME, "convert", str(delta), str(out)], timeout=3600)
    ours_epoch = _epoch("mds", out, 0)
    ours_total = convert.result["seconds"] + ours_epoch["total"]
    rows = [Ratio(f"{name} end to end: in place vs delta_to_shards + epoch", inplace["total"],
                  ours_total, "s", higher_is_better=False, note="goal > 1x")]  # fmt: skip
    # The same rows with the same types: Delta has no fixed-size arrays, so W1's x is a list
    # column both in place and after delta_to_shards (the MDS rows above store it as (16,)).
    warm = _epoch("mds", out, 0)
    note = "in place vs warm MDS of delta_to_shards' output (same types), 0 workers"
    rows.append(Ratio(f"{name} in place vs warm converted MDS", _sps(inplace), _sps(warm),
                      "samples/s", note=note))  # fmt: skip
    peer = mosaic_python()
    if peer is not None:
        rows_in = _rows(delta)
        source = write_parquet(
            workload(name).slice(0, rows_in), output_dir("inplace") / f"{name}-{rows_in}-in.parquet"
        )
        target = output_dir("inplace") / f"{name}-mosaic-mds"
        write = run_child(
            [peer, "benchmarks/mosaic_spark.py", "write", source, target], timeout=7200
        )
        epoch = run_child(
            [peer, "benchmarks/mosaic_workers.py", "epoch", target, "--workers", "0",
             "--workload", name, "--max-seconds", "100000"], timeout=7200,
        )  # fmt: skip
        mosaic_total = write.result["seconds"] + epoch.seconds
        note = "Mosaic: dataframe_to_mds (session start excluded) + its first epoch"
        rows.append(Ratio(f"{name} end to end: in place vs Mosaic convert + epoch",
                          inplace["total"], mosaic_total, "s", higher_is_better=False, note=note))  # fmt: skip
    return rows


def _rows(delta: Path) -> int:
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(delta)).get_add_actions())
    return int(sum(actions.column("num_records").to_pylist()))


def startup(files: int) -> Ratio:
    path = prepare_many_files(files)
    got = run_child([main_python(), "-m", ME, "startup", str(path)], timeout=3600)
    note = f"open {got.result['open']:.2f}s, peak RSS {got.peak_rss_mib:.0f} MiB"
    return Ratio(f"start-up, {files} files: time to first batch", got.result["first_batch"],
                 0.0, "s", higher_is_better=False, note=note)  # fmt: skip


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks inplace --")
    parser.add_argument("--workloads", default="w1,w2")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows")
    parser.add_argument("--files", type=int, default=10_000, help="0: no start-up row")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark-written Parquet")
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--peer-seconds", type=float, default=30.0, help="cap on a peer's epoch")
    parser.add_argument("--repeats", type=int, default=1, help="runs in turn; medians count")
    opts = parser.parse_args(args)
    workers = [int(w) for w in opts.workers.split(",")]
    rows: list[Ratio] = []
    for name in opts.workloads.split(","):
        spark = not opts.no_spark
        rows += throughput(name, opts.scale, workers, spark, opts.peer_seconds, opts.repeats)
        if not opts.no_end_to_end:
            rows += end_to_end(name, opts.scale)
    if opts.files:
        rows.append(startup(opts.files))
    rows.append(Ratio("DeltaTorch", 0.0, 0.0, "-", note="not run: 0.0.3 fails on deltalake "
                      "1.6.6 (get_add_actions().to_pandas()); see the docstring"))  # fmt: skip
    print_ratios(f"in place ({machine_note()})", rows, theirs_name="reference")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "epoch":
        workers = int(argv[argv.index("--workers") + 1])
        emit_result(child_epoch(argv[1], argv[2], workers))
    elif argv and argv[0] == "convert":
        emit_result(child_convert(argv[1], argv[2]))
    elif argv and argv[0] == "startup":
        emit_result(child_startup(argv[1]))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
