"""DatasetReader on damaged input: each failure is a specific error naming the file and fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zstandard

from loader import DatasetReader
from sparkshard import CorruptShardError, IndexFormatError, SchemaError, ShardWriter


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    with ShardWriter(root, columns={"id": "int64", "text": "str"}, size_limit=200) as w:
        for i in range(40):
            w.write({"id": i, "text": f"row {i}"})
    return root


def _first_shard(root: Path, raw: bool = False) -> Path:
    shard = json.loads((root / "index.json").read_text())["shards"][0]
    return root / shard["raw_data" if raw else "zip_data"]["basename"]


def test_batch_and_single_reads_agree(dataset: Path) -> None:
    reader = DatasetReader(dataset)
    ids = np.array([39, 0, 17, 17, 5])
    batch = reader.get_batch(ids)
    assert list(batch["id"]) == ids.tolist()
    assert batch["text"] == [reader.get(int(i))["text"] for i in ids]
    with pytest.raises(IndexError, match="out of range"):
        reader.get(40)


def test_corrupt_shard_fails_its_hash(dataset: Path) -> None:
    path = _first_shard(dataset)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=f"{path.name}.*fails its xxh64 check"):
        DatasetReader(dataset, verify_hashes=True).get(0)


def test_truncated_shard_is_named(dataset: Path) -> None:
    path = _first_shard(dataset)
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CorruptShardError, match=f"{path.name}.*bytes where the index says"):
        DatasetReader(dataset, verify_hashes=True).get(0)
    with pytest.raises(CorruptShardError, match=f"{path.name}"):
        DatasetReader(dataset).get(0)  # even without hashes, decompression notices


def test_truncated_raw_shard_without_hashes(dataset: Path) -> None:
    # A decompressed copy beside the zstd file (what Mosaic's reader leaves) is read in place.
    raw = _first_shard(dataset, raw=True)
    zipped = _first_shard(dataset)
    raw.write_bytes(zstandard.ZstdDecompressor().decompress(zipped.read_bytes()))
    assert DatasetReader(dataset).get(0)["id"] == 0
    raw.write_bytes(raw.read_bytes()[:-3])
    with pytest.raises(CorruptShardError, match="truncated or malformed"):
        DatasetReader(dataset, verify_hashes=False).get(0)
    with pytest.raises(CorruptShardError, match=f"{raw.name}.*bytes where the index says"):
        DatasetReader(dataset).get(0)


def test_missing_shard_is_named(dataset: Path) -> None:
    path = _first_shard(dataset)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=path.name):
        DatasetReader(dataset).get(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": 3, "shards": []}', "expected an MDS v2 index"),
        ('{"version": 2, "shards": [{"format": "mds"}]}', "shard 0: shard entry lacks keys"),
    ],
)
def test_malformed_index(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "index.json").write_text(text)
    with pytest.raises(IndexFormatError, match=message):
        DatasetReader(tmp_path)


def test_missing_dataset_and_unknown_version(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(FileNotFoundError, match="index.json is missing"):
        DatasetReader(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"no version 7; its versions are \[1\]"):
        DatasetReader(dataset, version=7)


def test_pickle_needs_opt_in(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, columns={"obj": "pkl"}) as w:
        w.write({"obj": {"a": (1, 2)}})
    with pytest.raises(SchemaError, match="allow_unsafe_pickle=True"):
        DatasetReader(tmp_path)
    assert DatasetReader(tmp_path, allow_unsafe_pickle=True).get(0) == {"obj": {"a": (1, 2)}}


def test_unknown_columns_are_refused(dataset: Path) -> None:
    with pytest.raises(SchemaError, match=r"columns \['nope'\] are not in the dataset"):
        DatasetReader(dataset, columns=["nope"])
    assert DatasetReader(dataset, columns=["id"]).get(3) == {"id": 3}
