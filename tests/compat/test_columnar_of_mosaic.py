"""Datasets written by the REAL Mosaic ``MDSWriter`` get a columnar index on first open.

Every field of their index.json round-trips through it (a merged index of two
sub-directories with different compressions and hashes, an empty first shard, no shards at
all), it is kept outside the dataset, and a reader started from it decodes every sample as
Mosaic's own ``StreamingDataset`` does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparkshard.dataset.versions import read_index
from sparkshard.format.columnar_index import decode_columnar, encode_columnar, source_digest
from sparkshard.format.index import DatasetIndex
from sparkshard.storage import LocalStore

pytestmark = pytest.mark.mosaic

NAMES = ["enc-none", "enc-zstd", "enc-br", "enc-snappy", "merged", "empty-first-shard"]


@pytest.mark.parametrize("name", [*NAMES, "no-shards"])
def test_every_field_of_mosaics_index_round_trips(mosaic_suite: Any, name: str) -> None:
    data = (mosaic_suite.root / name / "index.json").read_bytes()
    parsed = DatasetIndex.from_json(data, name)
    decoded = decode_columnar(encode_columnar(parsed, data), name)
    assert decoded.source_digest == source_digest(data)
    assert list(decoded.index.shards) == list(parsed.shards)
    # Every shard entry comes back as Mosaic wrote it, key for key.
    theirs = json.loads(data)["shards"]
    ours = json.loads(decoded.index.to_json())["shards"]
    assert ours == theirs
    if name == "merged":
        assert {s["raw_data"]["basename"].split("/")[0] for s in ours} == {"part0", "part1"}
        assert len({(s["compression"], tuple(s["hashes"])) for s in ours}) == 2
    if name == "empty-first-shard":
        assert ours[0]["samples"] == 0


@pytest.mark.parametrize("name", NAMES)
def test_a_reader_from_the_derived_index_equals_mosaic(
    mosaic_suite: Any, same_value: Callable[[Any, Any, str], None], tmp_path: Path, name: str
) -> None:
    from loader import DatasetReader

    path = tmp_path / name
    shutil.copytree(mosaic_suite.root / name, path)
    before = sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))
    derived = tmp_path / "derived"
    first = read_index(LocalStore(path), derived=derived)
    assert [p.name for p in derived.iterdir()] == ["index.columnar"]
    again = read_index(LocalStore(path), derived=derived)  # from the derived form
    assert again == first and again.fingerprint() == first.fingerprint()
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) == before
    reader = DatasetReader(path, index=again, allow_unsafe_pickle=True)
    expected = mosaic_suite.samples(name)
    assert len(reader) == len(expected)
    for i, theirs in enumerate(expected):
        for column, value in theirs.items():
            same_value(reader.get(i)[column], value, f"{name}[{i}].{column}")
