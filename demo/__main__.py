"""`make demo`: write scikit-learn's digits (1,797 real 8x8 images) as shards, read them back.

Runs on embedded defaults: no download, a local folder (./demo-output), a few seconds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from sklearn.datasets import load_digits

from loader import DatasetReader
from sparkshard import ShardWriter


def digits_table() -> pa.Table:
    digits = load_digits()
    images = digits.images.astype(np.uint8)  # (samples, 8, 8) grey levels 0..16
    pixels = pa.array(images.reshape(-1))
    rows = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(pixels, 8), 8)
    return pa.table(
        {
            "id": pa.array(np.arange(len(images)), pa.int64()),
            "image": rows,
            "label": pa.array(digits.target.astype(np.int8)),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output/digits", help="dataset folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)

    table = digits_table()
    print(f"[1/2] writing {table.num_rows} digit images to {out} ...")
    started = time.perf_counter()
    with ShardWriter(out, compression="zstd", size_limit="32KB") as writer:
        writer.write_batch(table)
    info = writer.info
    print(
        f"      {info.num_samples} samples in {info.num_shards} shards, "
        f"{info.raw_bytes / 1024:.0f} KiB raw -> {info.bytes / 1024:.0f} KiB zstd, "
        f"version {info.version}, {time.perf_counter() - started:.2f}s"
    )

    print("[2/2] reading it back in random batches with hash checks on ...")
    reader = DatasetReader(out, verify_hashes=True)
    order = np.random.default_rng(0).permutation(len(reader))
    images = np.empty((len(reader), 8, 8), np.uint8)
    labels = np.empty(len(reader), np.int64)
    for start in range(0, len(order), 256):
        ids = order[start : start + 256]
        batch = reader.get_batch(ids)
        images[ids] = np.ma.getdata(batch["image"])
        labels[ids] = np.ma.getdata(batch["label"])
    digits = load_digits()
    same = np.array_equal(labels, digits.target) and np.array_equal(images, digits.images)
    counts = np.bincount(labels, minlength=10)
    print(f"      every sample read back exactly: {same}; label counts {counts.tolist()}")
    print(f"done: {out}/index.json is readable by sparkshard and by mosaicml-streaming")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
