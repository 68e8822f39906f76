"""The Mosaic side of ``bench_format``. Runs ONLY under the peer venv's python.

    mosaic_format.py write ROWS.parquet OUT    # MDSWriter.write per row dict (zstd, xxh64)
    mosaic_format.py read DATASET [--max-seconds S]   # StreamingDataset[i], random order

Rows are converted from Arrow to the dicts ``MDSWriter`` takes in chunks, outside the
timed region: only ``write`` and ``finish`` are timed, Mosaic's best case. Reading is
``StreamingDataset(local=..., shuffle=False, batch_size=1)[i]`` over a random permutation
of every sample, stopped after ``--max-seconds`` (the rate is still per sample read);
opening the dataset is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Stopwatch, emit_result

COMPRESSION = "zstd"
HASHES = ["xxh64"]
SIZE_LIMIT = 1 << 26
CHUNK_ROWS = 65_536
READ_SEED = 1234


def mds_columns(schema: pa.Schema) -> dict[str, str]:
    """The MDS encodings of the benchmark workloads (as our writer infers them)."""
    columns = {}
    for field in schema:
        t = field.type
        if pa.types.is_fixed_size_list(t):
            columns[field.name] = f"ndarray:{t.value_type.to_pandas_dtype().__name__}:{t.list_size}"
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            columns[field.name] = "bytes"
        else:
            columns[field.name] = str(t.to_pandas_dtype().__name__)
    return columns


def _rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """Row dicts with the value types Mosaic's encoders take (numpy scalars/arrays, bytes)."""
    columns: dict[str, Any] = {}
    for field, array in zip(batch.schema, batch.columns, strict=True):
        t = field.type
        if pa.types.is_fixed_size_list(t):
            flat = array.flatten().to_numpy()
            columns[field.name] = list(flat.reshape(len(array), t.list_size))
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            columns[field.name] = array.to_pylist()
        else:
            columns[field.name] = list(array.to_numpy())
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values())]


def write(parquet: Path, out: Path) -> None:
    from streaming import MDSWriter

    table = pq.read_table(parquet)
    columns = mds_columns(table.schema)
    seconds = 0.0
    settings = {"compression": COMPRESSION, "hashes": HASHES, "size_limit": SIZE_LIMIT}
    writer = MDSWriter(out=str(out), columns=columns, **settings)
    for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
        rows = _rows(batch)
        with Stopwatch() as sw:
            for row in rows:
                writer.write(row)
        seconds += sw.seconds
    with Stopwatch() as sw:
        writer.finish()
    seconds += sw.seconds
    emit_result({"rows": table.num_rows, "seconds": seconds, "columns": columns})


def read(path: Path, max_seconds: float) -> None:
    from streaming import StreamingDataset

    dataset = StreamingDataset(local=str(path), shuffle=False, batch_size=1)
    order = np.random.default_rng(READ_SEED).permutation(len(dataset))
    done = 0
    deadline = time.perf_counter() + max_seconds
    with Stopwatch() as sw:
        for i in order:
            dataset[int(i)]
            done += 1
            if done % 1024 == 0 and time.perf_counter() > deadline:
                break
    emit_result({"samples": done, "seconds": sw.seconds, "total": len(order)})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mosaic_format")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("parquet", type=Path)
    w.add_argument("out", type=Path)
    r = sub.add_parser("read")
    r.add_argument("path", type=Path)
    r.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.parquet, args.out)
    else:
        read(args.path, args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
