"""Spark writes with awkward input: each refused before any task runs, or written exactly."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from loader import DatasetReader
from sparkshard import SchemaError, dataframe_to_shards

pytestmark = pytest.mark.spark


def _no_jobs_ran(spark: Any, group: str) -> bool:
    return not spark.sparkContext.statusTracker().getJobIdsForGroup(group)


def test_invalid_utf8_from_spark_is_refused_naming_the_column(spark: Any, tmp_path: Path) -> None:
    df = spark.sql("select cast(X'FFFE' as string) s, 1 as id")
    out = tmp_path / "ds"
    with pytest.raises(Exception, match=r"column 's' holds text that is not valid UTF-8"):
        dataframe_to_shards(df, str(out))
    assert not (out / "index.json").exists()
    assert not [p for p in (out / "data").rglob("*") if p.is_file()]  # nothing left behind
    ok = dataframe_to_shards(df, str(tmp_path / "bytes"), columns={"s": "bytes"})
    assert ok.num_samples == 1
    assert DatasetReader(tmp_path / "bytes").get(0)["s"] == b"\xff\xfe"


def test_an_append_that_drops_the_time_zone_is_refused_before_any_task(
    spark: Any, tmp_path: Path
) -> None:
    out = str(tmp_path / "ds")
    dataframe_to_shards(spark.sql("select timestamp'2024-05-06 07:08:09' t"), out)
    group = f"ntz-{uuid.uuid4().hex}"
    spark.sparkContext.setJobGroup(group, "append")
    try:
        ntz = spark.sql("select timestamp_ntz'2024-05-06 07:08:09' t")
        with pytest.raises(
            SchemaError, match=r"column 't' is .* in time zone .* without a time zone"
        ):
            dataframe_to_shards(ntz, out, mode="append")
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert _no_jobs_ran(spark, group)
    assert DatasetReader(out).num_samples == 1


def test_column_names_with_dots_round_trip(spark: Any, tmp_path: Path) -> None:
    df = spark.sql("select id as `a.b`, cast(id as string) as `c d.e` from range(5)")
    info = dataframe_to_shards(df, str(tmp_path / "ds"))
    reader = DatasetReader(tmp_path / "ds")
    assert info.num_samples == 5 and set(reader.column_names) == {"a.b", "c d.e"}
    assert reader.get(3) == {"a.b": 3, "c d.e": "3"}


def test_an_output_that_is_a_file_is_refused_before_any_task(spark: Any, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a dataset")
    group = f"file-{uuid.uuid4().hex}"
    spark.sparkContext.setJobGroup(group, "write")
    try:
        with pytest.raises(NotADirectoryError, match="is an existing file, not a dataset folder"):
            dataframe_to_shards(spark.range(3), str(target))
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert _no_jobs_ran(spark, group) and target.read_text() == "not a dataset"
