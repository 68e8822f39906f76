"""A Mosaic-written and a sparkshard-written dataset mixed in one run, against real Mosaic."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from mosaic_peer import run_mosaic_tool

from loader import Stream
from loader.dataloader import StreamingDataLoader
from loader.dataset import StreamingDataset
from sparkshard import ShardWriter

pytestmark = pytest.mark.mosaic  # skipped (or failed) without the peer: see mosaic_peer.py

TOOL = Path(__file__).resolve().parent / "mosaic_streams_tool.py"
MOSAIC_N, OURS_N = 80, 50


WEIGHTS: list[tuple[list[dict[str, Any]], int | None]] = [
    ([{"proportion": 0.6}, {"proportion": 0.4}], 200),
    ([{"repeat": 0.5}, {"choose": 70}], None),
    ([{}, {"repeat": 3}], None),
]


@pytest.fixture(scope="module")
def two_writers(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, list[list[int]]]:
    """Ids 0.. written by Mosaic's MDSWriter (label 0), ids 1000.. by ours (label 1), and the
    labels of epoch 0 of Mosaic's StreamingDataset over both for each of ``WEIGHTS``."""
    root = tmp_path_factory.mktemp("two-writers")
    mosaic, ours = str(root / "mosaic"), str(root / "ours")
    schema = pa.schema([pa.field("id", pa.int64(), False), pa.field("label", pa.int64(), False)])
    ids = 1000 + np.arange(OURS_N, dtype=np.int64)
    table = pa.table({"id": ids, "label": np.ones(OURS_N, np.int64)}, schema=schema)
    with ShardWriter(ours, size_limit=400) as writer:
        writer.write_batch(table)
    specs = [
        {"streams": [{"local": d, **w} for d, w in zip((mosaic, ours), weights)], "epoch_size": n}
        for weights, n in WEIGHTS
    ]
    out = run_mosaic_tool(mosaic, str(MOSAIC_N), json.dumps(specs), tool=TOOL)
    return mosaic, ours, json.loads(out)


def test_one_run_mixes_a_mosaic_and_a_sparkshard_dataset(
    two_writers: tuple[str, str, list[list[int]]],
) -> None:
    mosaic, ours, _ = two_writers
    streams = [Stream(local=mosaic), Stream(local=ours, repeat=2)]
    ds = StreamingDataset(streams=streams, batch_size=16, shuffle=True)
    assert len(ds._reader.readers[0].shard_sizes) > 1  # type: ignore[attr-defined]
    seen = Counter(i for b in StreamingDataLoader(ds, num_workers=2) for i in b["id"].tolist())
    expected = Counter({i: 1 for i in range(MOSAIC_N)})
    expected.update({1000 + i: 2 for i in range(OURS_N)})
    assert seen == expected  # one device: the last batch is partial, nothing repeats (as Mosaic)


@pytest.mark.parametrize("case", range(len(WEIGHTS)))
def test_mosaic_weighs_the_same_streams_alike(
    two_writers: tuple[str, str, list[list[int]]], case: int
) -> None:
    """Mosaic's StreamingDataset and ours, over the same two datasets and weights, draw the
    same number of samples from each stream in an epoch (Mosaic's weighting semantics)."""
    mosaic, ours, mosaic_labels = two_writers
    weights, epoch_size = WEIGHTS[case]
    streams = [Stream(local=d, **w) for d, w in zip((mosaic, ours), weights)]
    ds = StreamingDataset(streams=streams, epoch_size=epoch_size, shuffle=True, batch_size=10)
    labels = np.concatenate([b["label"] for b in ds.iter_batches()]).tolist()[: ds.epoch_size]
    assert Counter(labels) == Counter(mosaic_labels[case])
