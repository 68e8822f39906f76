"""Golden files pin the bytes we write and prove an old dataset keeps loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from golden_dataset import golden_table, write_golden

from loader import DatasetReader

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "dataset_v1"


def _without_zip(index: dict[str, Any]) -> dict[str, Any]:
    # zstd output may differ between zstandard releases; the raw bytes and layout may not.
    return {**index, "shards": [{**s, "zip_data": None} for s in index["shards"]]}


def test_we_still_write_the_golden_bytes(tmp_path: Path) -> None:
    write_golden(tmp_path)
    ours = json.loads((tmp_path / "index.json").read_text())
    golden = json.loads((GOLDEN / "index.json").read_text())
    assert _without_zip(ours) == _without_zip(golden)  # raw shard sizes + sha256 pinned here


def test_the_golden_dataset_keeps_loading(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN, tmp_path / "ds")
    reader = DatasetReader(tmp_path / "ds", verify_hashes=True)
    expected = golden_table().to_pylist()
    assert len(reader) == len(expected) and len(reader.shard_sizes) == 4
    for i, row in enumerate(expected):
        got = reader.get(i)
        for name, want in row.items():
            if isinstance(want, list) and want is not None:
                assert np.array_equal(np.asarray(want), got[name]), (i, name)
            else:
                assert got[name] == want, (i, name, got[name], want)
