"""Remote streaming: a cold epoch from S3 (moto_server on 127.0.0.1, started here).

    python -m benchmarks remote [-- --rows 1500 --threads 8 --repeats 2 --skip-mosaic]

Over the SAME shard files in the same bucket, in the same run:

- raw GET: every stored shard file read whole with our store's client (obstore),
  ``--threads`` at a time, bytes discarded: the bound on this machine.
- GET + write: the same GETs, each file decompressed (zstd, streamed) into a fresh file
  in a temp directory, no hash, no loader: the work any loader that caches raw shards on
  local disk must do, so the bound that includes this machine's cost of putting new pages
  into the page cache (a cold epoch writes the raw size, about twice the stored bytes).
- ours: one cold epoch (fresh cache directory) of ``StreamingDataset(remote="s3://...",
  local=...)`` through ``StreamingDataLoader`` (batch 256, num_workers 0), with hash
  verification on (the default).
- mosaic: the same with Mosaic's ``StreamingDataset(remote="s3://...")`` (``S3_ENDPOINT_URL``)
  in the peer venv (``benchmarks/mosaic_remote.py``), its defaults otherwise.

Two epochs each: in index order, and shuffled with a shuffle block of about 4 shards (the
same ``shuffle_block_size`` for both; a block spanning the whole dataset would make the first
batch wait for every shard). MB/s = stored (compressed) bytes of the dataset / wall time of
the epoch, construction included. Each side runs in a fresh process; the best of
``--repeats`` counts. The data is W3 (256 KiB rows, half random, half zeros) in shards of
16 MB raw (zstd, or ``--compression none``), so the epoch is bound by the download path,
not by decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import (
    Ratio,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    print_ratios,
    run_child,
    workload,
)

ME = "benchmarks.bench_remote"
PEER = "benchmarks/mosaic_remote.py"
BATCH = 256
KEYS = {"key": "bench", "secret": "bench", "region": "us-east-1"}
BUCKET = "bench"


def s3_env(endpoint: str) -> dict[str, str]:
    """What boto3 (Mosaic's client) needs to reach the local server."""
    return {
        "S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": KEYS["key"],
        "AWS_SECRET_ACCESS_KEY": KEYS["secret"],
        "AWS_DEFAULT_REGION": KEYS["region"],
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# --- children (main venv) ---------------------------------------------------------------


def child_raw(url: str, endpoint: str, threads: int) -> dict[str, Any]:
    from sparkshard.dataset.versions import read_index
    from sparkshard.storage import open_store

    store = open_store(url, {"endpoint_url": endpoint, **KEYS})
    keys = [s.stored.basename for s in read_index(store).shards]
    began, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda key: len(store.read_view(key)), keys))
    seconds = time.perf_counter() - began
    return {"bytes": total, "seconds": seconds, "cpu_seconds": time.process_time() - cpu}


def child_raw_write(url: str, endpoint: str, threads: int) -> dict[str, Any]:
    import zstandard

    from sparkshard.dataset.versions import read_index
    from sparkshard.storage import open_store

    store = open_store(url, {"endpoint_url": endpoint, **KEYS})
    shards = read_index(store).shards
    local = tempfile.mkdtemp(prefix="bench-write-", dir=output_dir("remote"))

    def fetch(k: int) -> int:
        data = store.read_view(shards[k].stored.basename)
        with open(os.path.join(local, str(k)), "wb") as out:
            if shards[k].zip_data is None:
                out.write(data)
            else:
                writer = zstandard.ZstdDecompressor().stream_writer(out, closefd=False)
                writer.write(data)
                writer.flush()
        return len(data)

    try:
        began, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(fetch, range(len(shards))))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return {"bytes": total, "seconds": seconds, "cpu_seconds": cpu}


def child_ours(url: str, endpoint: str, threads: int, order: dict[str, Any]) -> dict[str, Any]:
    from loader import StreamingDataLoader, StreamingDataset

    local = tempfile.mkdtemp(prefix="bench-remote-", dir=output_dir("remote"))
    try:
        began, cpu = time.perf_counter(), time.process_time()
        ds = StreamingDataset(
            remote=url,
            local=local,
            storage_options={"endpoint_url": endpoint, **KEYS},
            batch_size=BATCH,
            download_threads=threads,
            **order,
        )
        samples = sum(len(b["id"]) for b in StreamingDataLoader(ds, num_workers=0))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        counters = ds.io_counters()
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return {
        "samples": samples,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "bytes": counters["bytes_downloaded"],
    }


# --- the parent ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """moto_server in its own process (so it does not share a GIL with any client)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto_server did not start within 60 s")


def upload_dataset(
    endpoint: str, name: str, rows: int, compression: str | None = "zstd"
) -> tuple[str, int, int]:
    """Workload ``name`` with ``rows`` rows written straight to the bucket; (URL, stored
    bytes, samples in the first shard)."""
    import boto3
    import pyarrow as pa

    from sparkshard import ShardWriter

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEYS["key"],
        aws_secret_access_key=KEYS["secret"],
        region_name=KEYS["region"],
    ).create_bucket(Bucket=BUCKET)
    table = workload(name, rows)
    table = table.cast(pa.schema([f.with_nullable(False) for f in table.schema]))
    url = f"s3://{BUCKET}/{name}-{rows}-{compression}"
    options = {"endpoint_url": endpoint, **KEYS}
    with ShardWriter(url, compression=compression, size_limit="16MB", storage_options=options) as w:
        w.write_batch(table)
    from sparkshard.dataset.versions import read_index
    from sparkshard.storage import open_store

    first = read_index(open_store(url, options)).shards[0].samples
    return url, w.info.bytes, first


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks remote --")
    parser.add_argument("--rows", type=int, default=1500, help="W3 rows (256 KiB each)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent GETs (ours, raw)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compression", default="zstd", help="shard compression, or 'none'")
    parser.add_argument("--skip-mosaic", action="store_true")
    opts = parser.parse_args(args)
    peer = None if opts.skip_mosaic else mosaic_python()
    if peer is None and not opts.skip_mosaic:
        print("the Mosaic peer venv is missing (make setup): Mosaic columns will read 0")
    server, endpoint = start_server()
    try:
        compression = None if opts.compression == "none" else opts.compression
        url, stored, per_shard = upload_dataset(endpoint, "w3", opts.rows, compression)
        print(f"dataset: {url}, {stored / 1e6:.0f} MB stored; {machine_note()}")
        orders = {
            "in order": {"shuffle": False},
            "shuffled": {"shuffle": True, "shuffle_block_size": 4 * per_shard},
        }
        best: dict[str, float] = {}
        for _ in range(opts.repeats):
            for name, label in (("raw", "raw GET"), ("write", "GET + write")):
                rate, cpu = _measure(name, url, endpoint, opts.threads, peer, stored, {})
                best[name] = max(best.get(name, 0.0), rate)
                print(f"  {label}: {rate:,.0f} MB/s{cpu}", flush=True)
            for label, order in orders.items():
                for name in ("ours", "mosaic"):
                    if name == "mosaic" and peer is None:
                        continue
                    rate, cpu = _measure(name, url, endpoint, opts.threads, peer, stored, order)
                    best[f"{name} {label}"] = max(best.get(f"{name} {label}", 0.0), rate)
                    print(f"  {name} {label}: {rate:,.0f} MB/s{cpu}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    note = f"{opts.threads} GETs at a time, hash checks on"
    print_ratios(
        "cold epoch from S3 (moto on 127.0.0.1): ours vs Mosaic",
        [
            Ratio(
                f"epoch {label}",
                best[f"ours {label}"],
                best.get(f"mosaic {label}", 0.0),
                "MB/s",
                note=note,
            )
            for label in orders
        ],
    )
    print_ratios(
        "cold epoch vs the raw GET bound (same client, same files)",
        [
            Ratio(f"epoch {label}", best[f"ours {label}"], best["raw"], "MB/s", note="goal >= 0.8x")
            for label in orders
        ],
        theirs_name="raw GET",
    )
    extra = "what the loader adds to the cache's own writes"
    print_ratios(
        "cold epoch vs GET + writing the raw shards to fresh files (the page-cache bound)",
        [
            Ratio(f"epoch {label}", best[f"ours {label}"], best["write"], "MB/s", note=extra)
            for label in orders
        ],
        theirs_name="GET + write",
    )


def _measure(
    name: str,
    url: str,
    endpoint: str,
    threads: int,
    peer: Any,
    stored: int,
    order: dict[str, Any],
) -> tuple[float, str]:
    """MB/s of one run, and the CPU its process spent in the epoch (for ours and raw)."""
    env, settings = s3_env(endpoint), json.dumps(order)
    if name == "mosaic":
        local = tempfile.mkdtemp(prefix="bench-mosaic-", dir=output_dir("remote"))
        try:
            child = run_child([peer, PEER, "epoch", url, local, settings], env=env)
        finally:
            shutil.rmtree(local, ignore_errors=True)
    else:
        argv = [main_python(), "-m", ME, name, url, endpoint, "--threads", str(threads)]
        child = run_child([*argv, "--order", settings], env=env)
    result = child.result
    if name not in ("raw", "write") and result.get("bytes", stored) < stored:
        raise RuntimeError(f"{name} read {result.get('bytes')} of {stored} bytes")
    cpu = result.get("cpu_seconds")
    spent = "" if cpu is None else f" (CPU {cpu:.2f} s in {float(result['seconds']):.2f} s)"
    return stored / 1e6 / float(result["seconds"]), spent


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("raw", "write", "ours"):
        threads = int(argv[argv.index("--threads") + 1])
        order = json.loads(argv[argv.index("--order") + 1])
        if argv[0] == "raw":
            emit_result(child_raw(argv[1], argv[2], threads))
        elif argv[0] == "write":
            emit_result(child_raw_write(argv[1], argv[2], threads))
        else:
            emit_result(child_ours(argv[1], argv[2], threads, order))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
