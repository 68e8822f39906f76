"""Mosaic's side of test_mosaic_streams.py. Runs ONLY under the peer venv's python.

    mosaic_streams_tool.py OUT N SPECS_JSON

Writes ``N`` rows ``{id: i, label: 0}`` with Mosaic's MDSWriter to ``OUT``, then, for each
spec ``{"streams": [{"local": DIR, "proportion"|"repeat"|"choose": W}, ...], "epoch_size":
N|null}`` (one process start for everything: the peer takes seconds to import), builds
Mosaic's ``StreamingDataset(streams=[Stream(...)])`` over copies of the directories (Mosaic
writes decompressed shards next to the compressed ones) and prints, as one JSON list, every
sample's label in epoch 0 of each spec.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def write(out: str, first_id: int, n: int, label: int) -> None:
    from streaming import MDSWriter

    columns = {"id": "int64", "label": "int64"}
    with MDSWriter(out=out, columns=columns, compression="zstd", size_limit=400) as writer:
        for i in range(n):
            writer.write({"id": np.int64(first_id + i), "label": np.int64(label)})


def mix(spec: dict) -> list[int]:
    from streaming import Stream, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    with tempfile.TemporaryDirectory(prefix="mosaic-mix-") as tmp:
        streams = []
        for i, entry in enumerate(spec["streams"]):
            copy = Path(tmp) / str(i)
            shutil.copytree(entry.pop("local"), copy)
            streams.append(Stream(local=str(copy), **entry))
        dataset = StreamingDataset(
            streams=streams, epoch_size=spec["epoch_size"], shuffle=True, batch_size=10
        )
        labels = [int(sample["label"]) for sample in dataset]
        del dataset
    return labels


def main(argv: list[str]) -> None:
    write(argv[0], 0, int(argv[1]), 0)
    print(json.dumps([mix(spec) for spec in json.loads(argv[2])]))


if __name__ == "__main__":
    main(sys.argv[1:])
