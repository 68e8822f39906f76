"""Loader benchmarks: ours vs Mosaic's StreamingDataset over the SAME MDS files.

    python -m benchmarks loader [-- --scale 0.1 --mosaic-seconds 30 --only throughput]

- throughput: one shuffled epoch, batch 256, num_workers 0 and 2, on W1/W2/W3 (samples/s,
  MB/s; Mosaic capped at ``--mosaic-seconds``), plus the page-cache read bandwidth.
- start-up (time to the first batch, memory, resume) has its own benchmark:
  ``python -m benchmarks startup`` (:mod:`benchmarks.bench_startup`).
- quality: per-batch label entropy and distinct shards per batch on a dataset sorted by
  label, ours ("block") vs Mosaic's default py1e at the same block size.

This module imports only numpy and benchmarks.common at the top: mosaic_loader.py (the peer
venv) reuses its metric helpers. Child mode: ``epoch`` (see ``main``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    Ratio,
    drain,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    print_ratios,
    run_child,
    workload,
)

BATCH = 256
ME = "benchmarks.bench_loader"
PEER = "benchmarks/mosaic_loader.py"


def dataset_bytes(path: Path) -> int:
    """Bytes of the raw shard files an epoch reads (from the index)."""
    index = json.loads((path / "index.json").read_text())
    return sum(s["raw_data"]["bytes"] for s in index["shards"])


def batch_quality(ids: np.ndarray, shard_size: int, labels: int, n: int) -> dict[str, float]:
    """Mean label entropy (bits) and distinct shards per batch of ``BATCH`` consecutive ids,
    for a dataset sorted by label (label = id * labels // n) in shards of ``shard_size``."""
    usable = len(ids) // BATCH * BATCH
    # (batches, batch)
    batches = np.asarray(ids[:usable], np.int64).reshape(-1, BATCH)
    label, shard = batches * labels // n, batches // shard_size
    counts = np.stack([np.bincount(row, minlength=labels) for row in label]) / BATCH
    entropy = -(np.where(counts > 0, counts * np.log2(np.maximum(counts, 1e-12)), 0)).sum(1)
    distinct = [len(np.unique(row)) for row in shard]
    return {"entropy_bits": float(entropy.mean()), "shards_per_batch": float(np.mean(distinct))}


# --- children (main venv) -------------------------------------------------------------


def child_epoch(path: str, workers: int, verify: bool = True) -> dict[str, Any]:
    from loader import StreamingDataLoader, StreamingDataset

    ds = StreamingDataset(local=path, batch_size=BATCH, shuffle=True, verify_hashes=verify)
    result = drain(StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers))
    total = dataset_bytes(Path(path))
    return {**result, "bytes": total * result["samples"] / ds.num_samples}


# --- data preparation -----------------------------------------------------------------


def prepare_workload(name: str, scale: float) -> Path:
    """Write workload ``name`` once (uncompressed, non-nullable columns) and reuse it."""
    import pyarrow as pa

    from sparkshard import ShardWriter

    table = workload(name)
    rows = max(int(table.num_rows * scale), BATCH)
    path = output_dir("loader") / f"{name}-{rows}"
    if (path / "index.json").exists():
        return path
    table = table.slice(0, rows)
    schema = pa.schema([f.with_nullable(False) for f in table.schema])
    with ShardWriter(path, compression=None, size_limit="64MB") as writer:
        writer.write_batch(table.cast(schema))
    return path


def prepare_index(num_samples: int, per_shard: int = 10_000) -> Path:
    """A plain MDS index of ``num_samples`` over shards of ``per_shard`` (hard links)."""
    import pyarrow as pa

    from sparkshard import ShardWriter

    path = output_dir("loader") / f"index-{num_samples}"
    if (path / "index.json").exists():
        return path
    seed = output_dir("loader") / f"seed-shard-{per_shard}"
    if not (seed / "index.json").exists():
        ids = pa.array(np.arange(per_shard, dtype=np.int64))
        table = pa.table({"id": ids}, schema=pa.schema([pa.field("id", pa.int64(), False)]))
        with ShardWriter(seed, compression=None, size_limit=1 << 30) as writer:
            writer.write_batch(table)
    record = json.loads((seed / "index.json").read_text())["shards"][0]
    source = seed / record["raw_data"]["basename"]
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = []
    for i in range(num_samples // per_shard):
        name = f"shard.{i:06d}.mds"
        os.link(source, tmp / name)
        shards.append({**record, "raw_data": {**record["raw_data"], "basename": name}})
    (tmp / "index.json").write_text(json.dumps({"version": 2, "shards": shards}))
    tmp.rename(path)
    return path


def page_cache_gbps(path: Path) -> float:
    """Read every shard file twice with 8 MiB reads; the second (warm) pass, in GB/s."""
    files = [p for p in path.rglob("*.mds")]
    for warm in (False, True):
        began, total = time.perf_counter(), 0
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while chunk := fh.read(8 << 20):
                    total += len(chunk)
        if warm:
            return total / (time.perf_counter() - began) / 1e9
    raise AssertionError("unreachable")


# --- orchestration --------------------------------------------------------------------


def _rate(result: dict[str, Any]) -> tuple[float, float]:
    seconds = result["seconds"]
    return result["samples"] / seconds, result["bytes"] / seconds / 1e6


def throughput(scale: float, mosaic_seconds: float, peer: Path | None) -> None:
    rows: list[Ratio] = []
    for name in ("w1", "w2", "w3"):
        path = prepare_workload(name, scale)
        for workers in (0, 2):
            ours = run_child([main_python(), "-m", ME, "epoch", path, "--workers", str(workers)])
            o_sps, o_mbs = _rate(ours.result)
            t_sps = t_mbs = 0.0
            note = ""
            if peer is not None:
                cap = ["--max-seconds", str(mosaic_seconds)]
                theirs = run_child([peer, PEER, "epoch", path, "--workers", str(workers), *cap])
                t_sps, t_mbs = _rate(theirs.result)
                if theirs.result["samples"] < ours.result["samples"] - BATCH * 8:
                    note = f"mosaic read {theirs.result['samples']:,} (time cap)"
            label = f"{name} workers={workers}"
            rows.append(Ratio(f"{label} samples/s", o_sps, t_sps, "samples/s", note=note))
            rows.append(Ratio(f"{label} MB/s", o_mbs, t_mbs, "MB/s"))
        if name == "w3":
            cache = page_cache_gbps(path)
            best = max(r.ours for r in rows if r.metric.startswith("w3") and r.unit == "MB/s")
            note = f"page cache {cache:.2f} GB/s; ours at {best / 1e3 / cache:.0%} of it"
            rows.append(Ratio("w3 page-cache read", cache * 1e3, 0.0, "MB/s", note=note))
    print_ratios(f"loader throughput, shuffled, batch {BATCH} ({machine_note()})", rows)


def verification(scale: float) -> None:
    """What checking every shard's hash once per process (the default) costs: one shuffled
    epoch in a fresh process with verify_hashes on and off, 0 workers."""
    rows: list[Ratio] = []
    for name in ("w1", "w2", "w3"):
        path = prepare_workload(name, scale)
        on, off = (
            run_child([main_python(), "-m", ME, "epoch", path, "--workers", "0", *flag])
            for flag in ([], ["--no-verify"])
        )
        note = "ratio = time unverified / verified (1.0x: verification is free)"
        rows.append(
            Ratio(
                f"{name} epoch seconds",
                on.result["seconds"],
                off.result["seconds"],
                "s",
                False,
                note,
            )
        )
    print_ratios(f"hash verification cost ({machine_note()})", rows, theirs_name="unverified")


def quality(peer: Path | None) -> None:
    from loader.order.epoch import EpochOrder, OrderSettings

    shard_size, shards, labels = 5_000, 200, 100
    n = shard_size * shards
    rows: list[Ratio] = []
    for block in (1 << 16, 1 << 18):
        settings = OrderSettings(seed=9176, num_canonical_nodes=1, block_size=block)
        ids = EpochOrder(np.full(shards, shard_size), settings, 0).all_ids()
        ours = batch_quality(ids, shard_size, labels, n)
        theirs = {"entropy_bits": 0.0, "shards_per_batch": 0.0}
        if peer is not None:
            argv = ["--shard-size", str(shard_size), "--shards", str(shards)]
            argv += ["--labels", str(labels), "--block", str(block)]
            theirs = run_child([peer, PEER, "quality", *argv]).result
        for key, unit in (("entropy_bits", "bits"), ("shards_per_batch", "shards")):
            rows.append(Ratio(f"block {block} {key}", ours[key], theirs[key], unit))
    title = f"shuffle quality vs py1e ({n:,} samples sorted by label, {labels} labels)"
    print_ratios(title, rows, theirs_name="py1e")


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks loader --")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of W1-W3 rows")
    parser.add_argument("--mosaic-seconds", type=float, default=30.0)
    parser.add_argument("--skip-mosaic", action="store_true")
    parser.add_argument("--only", choices=["throughput", "quality", "verification"])
    opts = parser.parse_args(args)
    peer = None if opts.skip_mosaic else mosaic_python()
    if peer is None and not opts.skip_mosaic:
        print("the Mosaic peer venv is missing (make setup): Mosaic columns will read 0")
    if opts.only in (None, "quality"):
        quality(peer)
    if opts.only in (None, "throughput"):
        throughput(opts.scale, opts.mosaic_seconds, peer)
    if opts.only in (None, "verification"):
        verification(opts.scale)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "epoch":
        workers = int(argv[argv.index("--workers") + 1])
        emit_result(child_epoch(argv[1], workers, verify="--no-verify" not in argv))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
