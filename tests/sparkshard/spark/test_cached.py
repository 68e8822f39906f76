"""``sparkshard.cache``: reuse while the source is unchanged, convert again once it changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

import sparkshard
from loader import DatasetReader
from sparkshard.spark.fingerprint import dataframe_fingerprint
from sparkshard.spark.session import read_source

pytestmark = pytest.mark.spark


def _ids(cached: Any) -> Counter[int]:
    reader = DatasetReader(cached.url)
    return Counter(reader.get_batch(np.arange(len(reader)))["id"].tolist())


def test_the_petastorm_stale_cache_case(spark: Any, tmp_path: Path) -> None:
    """Same code, source Parquet overwritten in place: the new data is served."""
    source, cache_dir = tmp_path / "src", tmp_path / "cache"
    source.mkdir()
    pq.write_table(pa.table({"id": np.arange(0, 40)}), source / "part-0.parquet")

    def load() -> Any:  # the user's code path, run again each time
        return spark.read.parquet(str(source)).where("id % 2 = 0").selectExpr("id", "id * 3 AS x")

    first = sparkshard.cache(load(), cache_dir)
    again = sparkshard.cache(load(), cache_dir)
    assert not first.reused and again.reused and again.url == first.url
    assert again.info.version == first.info.version == 1
    pq.write_table(pa.table({"id": np.arange(100, 140)}), source / "part-0.parquet")  # same name
    fresh = sparkshard.cache(load(), cache_dir)
    assert not fresh.reused and fresh.key != first.key
    assert _ids(fresh) == Counter(range(100, 140, 2))
    batches = list(fresh.dataloader(batch_size=5, shuffle=True))
    assert sorted(int(i) for b in batches for i in b["id"]) == list(range(100, 140, 2))
    assert len(fresh.dataset(batch_size=4)) == 20
    first.delete()
    assert not Path(first.url).exists() and Path(fresh.url).exists()
    assert sparkshard.cache(load(), cache_dir).reused  # the fresh entry is still there


def test_a_new_delta_version_is_a_new_key(spark: Any, tmp_path: Path) -> None:
    uri, cache_dir = tmp_path / "t", tmp_path / "cache"
    write_deltalake(uri, pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    before = sparkshard.cache(read_source(spark, str(uri), "delta"), cache_dir)
    assert sparkshard.cache(read_source(spark, str(uri), "delta"), cache_dir).reused
    write_deltalake(uri, pa.table({"id": pa.array([7, 8], pa.int64())}), mode="overwrite")
    after = sparkshard.cache(read_source(spark, str(uri), "delta"), cache_dir)
    assert (
        not after.reused and _ids(after) == Counter([7, 8]) and _ids(before) == Counter([1, 2, 3])
    )
    # A commit that touches no data file (a deletion vector would not either) still counts.
    frame = spark.read.parquet(str(uri))
    key = dataframe_fingerprint(frame)
    DeltaTable(str(uri)).alter.set_table_properties(
        {"delta.logRetentionDuration": "interval 7 days"}
    )
    changed = dataframe_fingerprint(spark.read.parquet(str(uri)))
    assert key["delta_versions"] == {f"file://{uri}": 1}
    assert changed["delta_versions"] == {f"file://{uri}": 2} and changed["key"] != key["key"]


def test_in_memory_frames_and_writer_settings_get_their_own_entries(
    spark: Any, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    one = spark.createDataFrame([(1,), (2,)], "id long")
    two = spark.createDataFrame([(5,), (6,)], "id long")  # same plan text, other rows
    a, b = sparkshard.cache(one, cache_dir), sparkshard.cache(two, cache_dir)
    assert a.key != b.key and _ids(a) == Counter([1, 2]) and _ids(b) == Counter([5, 6])
    assert sparkshard.cache(one, cache_dir).reused
    other = sparkshard.cache(one, cache_dir, compression=None)
    assert not other.reused and other.key != a.key


_OTHER_RUN = """
import json, os, sys
from pyspark.sql import SparkSession
import sparkshard
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
df = spark.read.parquet(sys.argv[1]).where("id % 2 = 0").selectExpr("id", "id * 3 AS x")
cached = sparkshard.cache(df, sys.argv[2])
print(json.dumps({"key": cached.key, "reused": cached.reused}))
spark.stop()
"""


@pytest.mark.slow
def test_another_process_finds_the_same_entry(spark: Any, tmp_path: Path) -> None:
    """The key holds no object identity or expression ids: a later run reuses the shards."""
    source, cache_dir = tmp_path / "src", tmp_path / "cache"
    source.mkdir()
    pq.write_table(pa.table({"id": np.arange(0, 30)}), source / "part-0.parquet")
    here = sparkshard.cache(
        spark.read.parquet(str(source)).where("id % 2 = 0").selectExpr("id", "id * 3 AS x"),
        cache_dir,
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run(
        [sys.executable, "-c", _OTHER_RUN, str(source), str(cache_dir)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert there == {"key": here.key, "reused": True}


def test_an_entry_whose_shards_were_deleted_is_converted_again(spark: Any, tmp_path: Path) -> None:
    df = spark.range(30).selectExpr("id", "id * 2 AS x")
    first = sparkshard.cache(df, tmp_path / "cache", size_limit="1KB")
    shards = sorted((Path(first.url) / "data").iterdir())
    assert len(shards) > 1
    shards[0].unlink()  # someone cleaned the cache folder by hand
    again = sparkshard.cache(df, tmp_path / "cache", size_limit="1KB")
    assert not again.reused and again.url == first.url and again.info.version == 2
    assert _ids(again) == Counter(range(30))
