"""Direction (a): datasets written by the REAL Mosaic ``MDSWriter`` read by our reader.

The suite (``mosaic_tool.py write-suite``) covers every MDS encoding under every
compression and several hash algorithms, a ``merge_index`` of two sub-directories, an
empty first shard and a dataset without shards. Every value of every sample must equal
what Mosaic's own ``StreamingDataset`` decodes from the same files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.mosaic

SameValue = Callable[[Any, Any, str], None]

DATASETS = [
    "enc-none",
    "enc-zstd",
    "enc-zstd-7",
    "enc-br",
    "enc-bz2",
    "enc-gz",
    "enc-snappy",
    "merged",
    "empty-first-shard",
]


def _open(path: Path, **kwargs: Any) -> Any:
    from loader import DatasetReader

    return DatasetReader(str(path), **{"allow_unsafe_pickle": True, **kwargs})


def _stored_copy(src: Path, dst: Path) -> Path:
    """Copy the index and the stored shard files only: no raw files a reader left behind."""
    index = json.loads((src / "index.json").read_text())
    dst.mkdir(parents=True)
    shutil.copy(src / "index.json", dst)
    for shard in index["shards"]:
        stored = (shard["zip_data"] or shard["raw_data"])["basename"]
        (dst / stored).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / stored, dst / stored)
    return dst


def _column_sizes(path: Path) -> dict[str, int | None]:
    """Column name -> fixed size (None if variable), from the first shard of the index."""
    shards = json.loads((path / "index.json").read_text())["shards"]
    first = shards[0]
    return dict(zip(first["column_names"], first["column_sizes"], strict=True))


@pytest.mark.parametrize("name", DATASETS)
def test_every_sample_equals_mosaics(
    mosaic_suite: Any, same_value: SameValue, tmp_path: Path, name: str
) -> None:
    expected = mosaic_suite.samples(name)
    reader = _open(_stored_copy(mosaic_suite.root / name, tmp_path / name), verify_hashes=True)
    assert len(reader) == len(expected)
    for i, theirs in enumerate(expected):
        ours = reader.get(i)
        assert sorted(ours) == sorted(theirs), f"{name}[{i}] columns differ"
        for column, value in theirs.items():
            same_value(ours[column], value, f"{name}[{i}].{column}")


@pytest.mark.parametrize("name", ["enc-none", "enc-snappy", "merged", "empty-first-shard"])
def test_batches_in_random_order_equal_mosaics(
    mosaic_suite: Any, same_value: SameValue, name: str
) -> None:
    expected = mosaic_suite.samples(name)
    reader = _open(mosaic_suite.root / name)
    sizes = _column_sizes(mosaic_suite.root / name)
    ids = np.random.default_rng(7).permutation(len(expected))
    for start in range(0, len(ids), 5):
        chunk = ids[start : start + 5]
        batch = reader.get_batch(chunk)
        assert sorted(batch) == sorted(expected[0]), f"{name}: batch columns differ"
        for column, values in batch.items():
            theirs = [expected[int(i)][column] for i in chunk]
            where = f"{name}{chunk.tolist()}.{column}"
            if sizes[column] is None:
                assert isinstance(values, list), f"{where}: variable column should be a list"
                assert len(values) == len(chunk)
                for k, (ours_v, theirs_v) in enumerate(zip(values, theirs, strict=True)):
                    mine = ours_v
                    if isinstance(theirs_v, bytes):  # batches hand bytes out as views (README)
                        assert isinstance(ours_v, memoryview) and ours_v.readonly, where
                        mine = bytes(ours_v)
                    same_value(mine, theirs_v, f"{where}[{k}]")
            else:
                want = np.stack([np.asarray(v) for v in theirs])
                if column == "int":  # Mosaic decodes `int` to Python int; stored as int64
                    want = want.astype(np.int64)
                assert isinstance(values, np.ndarray), f"{where}: fixed column should be ndarray"
                same_value(values, want, where)


def test_dataset_without_shards_is_empty(mosaic_suite: Any) -> None:
    path = mosaic_suite.root / "no-shards"
    assert json.loads((path / "index.json").read_text())["shards"] == []
    # Mosaic itself refuses such a dataset; we read it as empty.
    assert "no samples" in mosaic_suite.view[str(path)]["error"]
    reader = _open(path)
    assert len(reader) == 0


def test_pickle_columns_need_opt_in(mosaic_suite: Any) -> None:
    from sparkshard import SchemaError

    with pytest.raises(SchemaError, match=r"'pkl'.*allow_unsafe_pickle=True"):
        _open(mosaic_suite.root / "enc-none", allow_unsafe_pickle=False)


@pytest.mark.parametrize("name", ["enc-none", "enc-zstd"])
def test_mosaic_hashes_catch_a_corrupt_shard(mosaic_suite: Any, tmp_path: Path, name: str) -> None:
    from sparkshard import CorruptShardError

    copy = _stored_copy(mosaic_suite.root / name, tmp_path / name)
    index = json.loads((copy / "index.json").read_text())
    info = index["shards"][1]["zip_data"] or index["shards"][1]["raw_data"]
    path = copy / info["basename"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last byte of the file
    path.write_bytes(bytes(data))
    first_of_shard = index["shards"][0]["samples"]
    _open(copy, verify_hashes=False).get(0)  # shard 0 is intact
    with pytest.raises(CorruptShardError, match=info["basename"].replace(".", r"\.")):
        _open(copy, verify_hashes=True).get(first_of_shard)
