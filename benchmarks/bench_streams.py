"""Streams benchmark: a 3-stream mixture, ours vs Mosaic's Streams over the SAME MDS files.

    python -m benchmarks streams [-- --scale 0.25 --mosaic-seconds 30 --only throughput]

- throughput: one shuffled mixed epoch, batch 256, num_workers 0 and 2 (samples/s; Mosaic
  capped at ``--mosaic-seconds``). The streams are three slices (60/30/10% of W1's rows)
  weighted ``proportion=0.2/0.3/0.5``: A is downsampled (a seeded subset), C upsampled 5x.
- startup: time to first batch and peak RSS of a mixture of three indexes of
  ``--startup-sizes`` samples (shards of 10,000 samples, hard links to one real shard),
  fresh and resumed at 90% of the epoch.

This module imports only numpy, benchmarks.common and benchmarks.bench_loader at the top:
mosaic_streams.py (the peer venv) reuses its constants. Child modes: ``epoch``, ``startup``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_loader import BATCH, dataset_bytes, prepare_index
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

ME = "benchmarks.bench_streams"
PEER = "benchmarks/mosaic_streams.py"
SLICES = (0.6, 0.3, 0.1)  # of W1's rows, one stream each
PROPORTIONS = (0.2, 0.3, 0.5)


# --- children (main venv) -------------------------------------------------------------


def _streams(dirs: list[str], proportions: tuple[float, ...] | None) -> list[Any]:
    from loader import Stream

    if proportions is None:
        return [Stream(local=d) for d in dirs]
    return [Stream(local=d, proportion=p) for d, p in zip(dirs, proportions, strict=True)]


def child_epoch(dirs: list[str], workers: int) -> dict[str, Any]:
    from loader import StreamingDataLoader, StreamingDataset

    ds = StreamingDataset(streams=_streams(dirs, PROPORTIONS), batch_size=BATCH, shuffle=True)
    result = drain(StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers))
    return {**result, "epoch_size": ds.epoch_size}


def child_startup(dirs: list[str], resume_at: float | None) -> dict[str, Any]:
    import torch  # noqa: F401  (imports are not part of start-up)

    from benchmarks.common import peak_rss_mib
    from loader import StreamingDataLoader, StreamingDataset

    baseline = peak_rss_mib()
    began = time.perf_counter()
    ds = StreamingDataset(streams=_streams(dirs, PROPORTIONS), batch_size=BATCH, shuffle=True)
    loader = StreamingDataLoader(ds, batch_size=BATCH)
    if resume_at is not None:
        loader.load_state_dict(ds.resume_state(0, int(resume_at * ds.epoch_size)))
    next(iter(loader))
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "rss_after_imports_mib": baseline, "epoch_size": ds.epoch_size}


# --- data preparation -----------------------------------------------------------------


def prepare_streams(scale: float) -> list[Path]:
    """Three slices of W1 (uncompressed, 8 MB shards), written once and reused."""
    import pyarrow as pa

    from sparkshard import ShardWriter

    table = workload("w1")
    rows = max(int(table.num_rows * scale), 10 * BATCH)
    table = table.slice(0, rows)
    schema = pa.schema([f.with_nullable(False) for f in table.schema])
    table = table.cast(schema)
    paths, start = [], 0
    for name, share in zip("abc", SLICES, strict=True):
        n = int(rows * share)
        path = output_dir("streams") / f"w1-{rows}-{name}"
        if not (path / "index.json").exists():
            with ShardWriter(path, compression=None, size_limit="8MB") as writer:
                writer.write_batch(table.slice(start, n))
        paths.append(path)
        start += n
    return paths


# --- orchestration --------------------------------------------------------------------


def throughput(scale: float, mosaic_seconds: float, peer: Path | None) -> None:
    dirs = [str(p) for p in prepare_streams(scale)]
    rows: list[Ratio] = []
    for workers in (0, 2):
        ours = run_child([main_python(), "-m", ME, "epoch", *dirs, "--workers", str(workers)])
        o_sps = ours.result["samples"] / ours.result["seconds"]
        t_sps, note = 0.0, ""
        if peer is not None:
            cap = ["--max-seconds", str(mosaic_seconds)]
            argv = [peer, PEER, "epoch", *dirs, "--workers", str(workers), *cap]
            theirs = run_child(argv)
            t_sps = theirs.result["samples"] / theirs.result["seconds"]
            if theirs.result["samples"] < ours.result["samples"] - BATCH * 8:
                note = f"mosaic read {theirs.result['samples']:,} (time cap)"
        mb = sum(dataset_bytes(Path(d)) for d in dirs) / 1e6
        note = note or f"{ours.result['epoch_size']:,} samples/epoch over {mb:.0f} MB"
        rows.append(Ratio(f"mixed epoch workers={workers}", o_sps, t_sps, "samples/s", note=note))
    title = f"3-stream mixture, proportions {PROPORTIONS}, shuffled, batch {BATCH}"
    print_ratios(f"{title} ({machine_note()})", rows)


def startup(peer: Path | None, sizes: list[int]) -> None:
    dirs = [str(prepare_index(n)) for n in sizes]
    label = "+".join(f"{n / 1e6:g}M" for n in sizes)
    rows: list[Ratio] = []
    for resume in (None, 0.9):
        extra = [] if resume is None else ["--resume-at", str(resume)]
        ours = run_child([main_python(), "-m", ME, "startup", *dirs, *extra])
        t_s = t_rss = 0.0
        if peer is not None:
            theirs = run_child([peer, PEER, "startup", *dirs, *extra], timeout=1800)
            t_s, t_rss = theirs.result["seconds"], theirs.peak_rss_mib
        when = "fresh" if resume is None else "resume@90%"
        base = ours.result["rss_after_imports_mib"]
        note = f"ours: {ours.peak_rss_mib - base:.0f} MiB above imports ({base:.0f})"
        rows.append(Ratio(f"{label} {when} first batch", ours.result["seconds"], t_s, "s", False))
        rows.append(Ratio(f"{label} {when} peak RSS", ours.peak_rss_mib, t_rss, "MiB", False, note))
    print_ratios("3-stream mixture start-up (time to first batch, peak RSS)", rows)


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks streams --")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of W1's rows")
    parser.add_argument("--mosaic-seconds", type=float, default=30.0)
    parser.add_argument("--startup-sizes", default="10000000,5000000,2000000")
    parser.add_argument("--skip-mosaic", action="store_true")
    parser.add_argument("--only", choices=["throughput", "startup"])
    opts = parser.parse_args(args)
    peer = None if opts.skip_mosaic else mosaic_python()
    if peer is None and not opts.skip_mosaic:
        print("the Mosaic peer venv is missing (make setup): Mosaic columns will read 0")
    if opts.only in (None, "throughput"):
        throughput(opts.scale, opts.mosaic_seconds, peer)
    if opts.only in (None, "startup"):
        startup(peer, [int(s) for s in opts.startup_sizes.split(",")])


def _dirs_and_flag(argv: list[str], flag: str) -> tuple[list[str], str | None]:
    if flag in argv:
        cut = argv.index(flag)
        return argv[1:cut], argv[cut + 1]
    return argv[1:], None


def main(argv: list[str]) -> None:
    if argv and argv[0] == "epoch":
        dirs, workers = _dirs_and_flag(argv, "--workers")
        emit_result(child_epoch(dirs, int(workers or 0)))
    elif argv and argv[0] == "startup":
        dirs, resume = _dirs_and_flag(argv, "--resume-at")
        emit_result(child_startup(dirs, None if resume is None else float(resume)))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
