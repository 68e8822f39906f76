"""Start-up benchmark: a billion samples in 100,000 shards, ours vs Mosaic, on one index.

    python -m benchmarks startup [-- --shards 1000,10000,100000 --per-shard 10000]

For each size, a dataset of ``shards`` shards of ``per-shard`` samples (1e9 samples at 1e5
shards) is synthesized once: a real versioned sparkshard dataset (version record, its
columnar form, index.json for Mosaic) whose shard entries all point at hard links of a
few copies of one real shard file. Every measurement runs in a fresh child process:

- main process: time to the first shuffled batch (construction included), fresh and resumed
  at 90% of the epoch, and peak RSS above the imports;
- 2 DataLoader workers: time to the first batch, and the largest worker's peak RSS (forked:
  it shares the parent's pages; a worker that parsed the index again would show it);
- a plain MDS copy (index.json only, as Mosaic writes it): the first open, which derives the
  columnar form into the local cache, and the next one, which finds it there;
- the growth per shard from the smallest to the largest size (time and memory);
- Mosaic's StreamingDataset on the same index, guarded (``--mosaic-mib``, ``--mosaic-seconds``):
  it builds O(samples) arrays, so where it stops is part of the result.

Goals (issue 15): under 1 s in the main process and under 2 s with 2 workers at 1e5 shards,
under 150 MiB above imports per process, resume at 90% no slower than a fresh start.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    Ratio,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    peak_rss_mib,
    print_ratios,
    run_child,
)

BATCH = 256
ME = "benchmarks.bench_startup"
PEER = "benchmarks/mosaic_startup.py"
_LINKS = 50_000  # hard links per real shard file

# --- children (main venv) -------------------------------------------------------------


def _status_mib(pid: str, field: str) -> float:
    value = _status_field(pid, field)
    return int(value) / 1024 if value else 0.0


def _worker_peaks() -> list[float]:
    """Peak RSS (MiB) of this process's children (the DataLoader workers), while alive."""
    me, peaks = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and _status_field(entry.name, "PPid") == me:
                peaks.append(_status_mib(entry.name, "VmHWM"))
        except OSError:
            continue  # exited meanwhile
    return peaks


def _status_field(pid: str, field: str) -> str:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return line.split()[1]
    return ""


def child_startup(path: str, workers: int, resume_at: float | None) -> dict[str, Any]:
    import torch  # noqa: F401  (imports are not part of start-up)

    from loader import StreamingDataLoader, StreamingDataset

    baseline = peak_rss_mib()
    began = time.perf_counter()
    ds = StreamingDataset(local=path, batch_size=BATCH, shuffle=True)
    constructed = time.perf_counter() - began
    loader = StreamingDataLoader(ds, batch_size=BATCH, num_workers=workers)
    if resume_at is not None:
        loader.load_state_dict(ds.resume_state(0, int(resume_at * ds.num_samples)))
    batches = iter(loader)  # held: dropping the iterator would stop the workers
    batch = next(batches)
    seconds = time.perf_counter() - began
    peaks = _worker_peaks() if workers else []
    del batches
    assert len(batch["id"]) == BATCH
    return {
        "seconds": seconds,
        "construct_seconds": constructed,
        "rss_after_imports_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
        "worker_peak_rss_mib": peaks,
        "num_samples": ds.num_samples,
        "pickled_dataset_mib": len(pickle.dumps(ds)) / 2**20,
    }


# --- data preparation -----------------------------------------------------------------


def _seed_shard(per_shard: int) -> tuple[Path, Any]:
    """One real shard of ``per_shard`` int64 ids (written once) and its index record."""
    import pyarrow as pa

    from sparkshard import ShardWriter
    from sparkshard.dataset.versions import read_index
    from sparkshard.storage import LocalStore

    seed = output_dir("startup") / f"seed-{per_shard}"
    if not (seed / "index.json").exists():
        table = pa.table({"id": pa.array(np.arange(per_shard, dtype=np.int64))})
        schema = pa.schema([pa.field("id", pa.int64(), False)])
        with ShardWriter(seed, compression=None, size_limit=1 << 30) as writer:
            writer.write_batch(table.cast(schema))
    record = read_index(LocalStore(seed)).shards[0]
    return seed / record.raw_data.basename, record


def prepare(shards: int, per_shard: int) -> tuple[Path, Path]:
    """(the sparkshard dataset, its plain MDS twin) of ``shards`` x ``per_shard`` samples."""
    from dataclasses import replace

    from sparkshard.dataset.versions import commit_version
    from sparkshard.format.index import DatasetIndex, ShardTable
    from sparkshard.storage import LocalStore

    path = output_dir("startup") / f"ours-{shards}x{per_shard}"
    plain = path.with_name(f"plain-{shards}x{per_shard}")
    if (path / "index.json").exists() and (plain / "index.json").exists():
        return path, plain
    source, record = _seed_shard(per_shard)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    names = [f"data/shard.{i:06d}.mds" for i in range(shards)]
    copies: list[Path] = []
    for i, name in enumerate(names):
        if i % _LINKS == 0:  # a file system allows some 65,000 links per file
            copies.append(tmp / f"seed-{len(copies)}.mds")
            shutil.copyfile(source, copies[-1])
        os.link(copies[-1], tmp / name)
    records = [replace(record, raw_data=replace(record.raw_data, basename=n)) for n in names]
    table = ShardTable.from_records(records)
    commit_version(LocalStore(tmp), DatasetIndex(table), base_version=None, meta={"format": 1})
    shutil.rmtree(plain, ignore_errors=True)
    plain.mkdir(parents=True)
    (plain / "data").symlink_to(path / "data")
    shutil.copyfile(tmp / "index.json", plain / "index.json")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path, plain


def _derived_path(plain: Path) -> Path:
    from loader.cache.directory import default_cache_dir, index_dir

    return index_dir(default_cache_dir(), plain) / "index.columnar"


# --- orchestration --------------------------------------------------------------------


def _ours(path: Path, workers: int = 0, resume: float | None = None) -> dict[str, Any]:
    argv = [main_python(), "-m", ME, "child", str(path), "--workers", str(workers)]
    if resume is not None:
        argv += ["--resume-at", str(resume)]
    return run_child(argv, timeout=600).result


def _mosaic(
    peer: Path | None, path: Path, resume: float | None, limits: tuple[int, int]
) -> tuple[float, float, str]:
    """Mosaic's (seconds, MiB above imports, note): zeros and where it stopped if it did."""
    if peer is None:
        return 0.0, 0.0, "Mosaic not run"
    mib, seconds = limits
    argv: list[str | os.PathLike[str]] = [peer, PEER, str(path), "--max-mib", str(mib)]
    argv += ["--max-seconds", str(seconds)]
    if resume is not None:
        argv += ["--resume-at", str(resume)]
    try:
        result = run_child(argv, timeout=seconds + 60).result
    except RuntimeError as exc:
        return 0.0, 0.0, f"Mosaic failed: {str(exc).splitlines()[0][:100]}"
    if result.get("stopped"):
        return 0.0, 0.0, f"Mosaic stopped: {result['stopped']}"
    return result["seconds"], result["peak_rss_mib"] - result["rss_after_imports_mib"], ""


def _measure(path: Path, plain: Path) -> dict[str, Any]:
    fresh, resumed = _ours(path), _ours(path, resume=0.9)
    two = _ours(path, workers=2)
    _derived_path(plain).unlink(missing_ok=True)
    first_plain, next_plain = _ours(plain), _ours(plain)
    return {"fresh": fresh, "resumed": resumed, "workers": two, "plain": (first_plain, next_plain)}


def _above(result: dict[str, Any]) -> float:
    return float(result["peak_rss_mib"] - result["rss_after_imports_mib"])


def _rows(
    shards: int, per_shard: int, m: dict[str, Any], mosaic: list[tuple[float, float, str]]
) -> list[Ratio]:
    label = f"{shards:,} shards x {per_shard:,}"
    fresh, resumed, two = m["fresh"], m["resumed"], m["workers"]
    first_plain, next_plain = m["plain"]
    base = two["rss_after_imports_mib"]
    worker_peak = max(two["worker_peak_rss_mib"], default=0.0)
    worker_note = f"absolute (forked; the parent after imports: {base:.0f} MiB)"
    pickled = f"dataset pickles to {fresh['pickled_dataset_mib']:.1f} MiB"
    (m_fresh, m_rss, m_note), (m_resumed, _, m_resume_note) = mosaic
    return [
        Ratio(f"{label}: first batch", fresh["seconds"], m_fresh, "s", False, m_note),
        Ratio(f"{label}: resume@90%", resumed["seconds"], m_resumed, "s", False, m_resume_note),
        Ratio(f"{label}: peak RSS above imports", _above(fresh), m_rss, "MiB", False, pickled),
        Ratio(f"{label}: 2 workers first batch", two["seconds"], 0, "s", False),
        Ratio(f"{label}: 2 workers, worker peak RSS", worker_peak, 0, "MiB", False, worker_note),
        Ratio(f"{label}: plain MDS, first open (derives)", first_plain["seconds"], 0, "s", False),
        Ratio(f"{label}: plain MDS, next open", next_plain["seconds"], 0, "s", False),
    ]


def _growth(results: dict[int, dict[str, Any]]) -> list[Ratio]:
    sizes = sorted(results)
    if len(sizes) < 2:
        return []
    lo, hi = results[sizes[0]]["fresh"], results[sizes[-1]]["fresh"]
    span = sizes[-1] - sizes[0]
    us = (hi["seconds"] - lo["seconds"]) / span * 1e6
    kib = (_above(hi) - _above(lo)) / span * 1024
    note = f"from {sizes[0]:,} to {sizes[-1]:,} shards"
    return [
        Ratio("growth: time per shard", us, 0, "us", False, note),
        Ratio("growth: memory per shard", kib, 0, "KiB", False, note),
    ]


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks startup --")
    parser.add_argument("--shards", default="1000,10000,100000")
    parser.add_argument("--per-shard", type=int, default=10_000)
    parser.add_argument("--skip-mosaic", action="store_true")
    parser.add_argument("--mosaic-mib", type=int, default=3072, help="Mosaic's RSS guard")
    parser.add_argument("--mosaic-seconds", type=int, default=240, help="Mosaic's time guard")
    opts = parser.parse_args(args)
    peer = None if opts.skip_mosaic else mosaic_python()
    limits = (opts.mosaic_mib, opts.mosaic_seconds)
    rows: list[Ratio] = []
    results: dict[int, dict[str, Any]] = {}
    for shards in [int(float(s)) for s in opts.shards.split(",")]:
        path, plain = prepare(shards, opts.per_shard)
        results[shards] = m = _measure(path, plain)
        mosaic = [_mosaic(peer, path, r, limits) for r in (None, 0.9)]
        rows += _rows(shards, opts.per_shard, m, mosaic)
        print(json.dumps({"shards": shards, **m}, default=str), flush=True)
    rows += _growth(results)
    print_ratios(f"start-up at a billion samples ({machine_note()})", rows)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "child":
        workers = int(argv[argv.index("--workers") + 1])
        resume = float(argv[argv.index("--resume-at") + 1]) if "--resume-at" in argv else None
        emit_result(child_startup(argv[1], workers, resume))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
