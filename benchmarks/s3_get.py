"""S3 GET throughput of one object: sparkshard's store (obstore) vs boto3, same server, same run.

    .venv/bin/python -m benchmarks.s3_get [--mib 64] [--repeats 5]

Starts ``moto_server`` in its own process on 127.0.0.1 (so the server does not share this
process's GIL), uploads one object of random bytes, and reads it whole with each client.
Prints the best of ``--repeats`` runs in MiB/s and the ratio. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

ACCESS = {"key": "bench", "secret": "bench", "region": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _best(read: Callable[[], bytes | memoryview], size: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        data = read()
        best = min(best, time.perf_counter() - started)
        assert len(data) == size
    return size / (1 << 20) / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import boto3

    from sparkshard.storage import open_store

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS["key"],
            aws_secret_access_key=ACCESS["secret"],
            region_name=ACCESS["region"],
        )
        client.create_bucket(Bucket="bench")
        size = args.mib << 20
        store = open_store("s3://bench/ds", {"endpoint_url": endpoint, **ACCESS})
        store.write("blob.bin", os.urandom(size))

        def boto3_get() -> bytes:
            return bytes(client.get_object(Bucket="bench", Key="ds/blob.bin")["Body"].read())

        view = _best(lambda: store.read_view("blob.bin"), size, args.repeats)
        ours = _best(lambda: store.read("blob.bin"), size, args.repeats)
        theirs = _best(boto3_get, size, args.repeats)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"S3 GET of a {args.mib} MiB object from moto_server on 127.0.0.1, best of {args.repeats}"
    )
    print(f"  store.read_view (obstore, no copy): {view:8.1f} MiB/s")
    print(f"  store.read (+ one copy to bytes):   {ours:8.1f} MiB/s")
    print(f"  boto3 get_object()['Body'].read():  {theirs:8.1f} MiB/s")
    print(f"  ratios vs boto3: read_view {view / theirs:.2f}x, read {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
