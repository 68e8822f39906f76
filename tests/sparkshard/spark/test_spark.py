"""The Spark writer on a real local Spark: types, order, modes, failures, the Mosaic drop-in."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mosaic_peer import mosaic_view
from pyspark import cloudpickle

import sparkshard
from loader import DatasetReader
from sparkshard import DatasetExistsError, SchemaError
from sparkshard.dataset.versions import list_versions
from sparkshard.storage import open_store

pytestmark = pytest.mark.spark
# Spark's workers cannot import this test module: ship the UDFs defined here by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
UTC = dt.timezone.utc


def _every_type(spark: Any) -> Any:
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql import types as T

    fields = {
        "b": T.ByteType(), "s": T.ShortType(), "i": T.IntegerType(), "l": T.LongType(),
        "f": T.FloatType(), "d": T.DoubleType(), "dec": T.DecimalType(12, 3),
        "str": T.StringType(), "bin": T.BinaryType(), "bo": T.BooleanType(),
        "date": T.DateType(), "ts": T.TimestampType(), "ntz": T.TimestampNTZType(),
        "dur": T.DayTimeIntervalType(), "arr": T.ArrayType(T.FloatType()),
        "grid": T.ArrayType(T.ArrayType(T.DoubleType())), "vec": VectorUDT(),
        "st": T.StructType([T.StructField("a", T.IntegerType()), T.StructField("t", T.StringType())]),
        "m": T.MapType(T.StringType(), T.LongType()),
    }  # fmt: skip
    rows = [
        (-128, -300, -7, 1 << 40, 1.5, -2.25, Decimal("-12345.678"), "héllo", b"\x00\xff",
         True, dt.date(1969, 12, 31), dt.datetime(2024, 2, 29, 23, 59, 58, 123456, UTC),
         dt.datetime(1999, 1, 2, 3, 4, 5, 6), dt.timedelta(days=-1, microseconds=7),
         [1.0, -2.0, 3.5], [[1.0, 2.0], [3.0, 4.0]], Vectors.dense([0.5, -1.0]),
         (3, "x"), {"k": 9}),
        (127, 32767, 2**31 - 1, -(1 << 62), 0.0, 1e300, Decimal("0.001"), "", b"",
         False, dt.date(2038, 1, 19), dt.datetime(1970, 1, 1, tzinfo=UTC),
         dt.datetime(2100, 12, 31), dt.timedelta(seconds=1),
         [], [[5.0, 6.0], [7.0, 8.0]], Vectors.sparse(3, [1], [2.0]), (None, None), {}),
        tuple([None] * len(fields)),
    ]  # fmt: skip
    schema = T.StructType([T.StructField(n, t) for n, t in fields.items()])
    return spark.createDataFrame(rows, schema).coalesce(2), rows, list(fields)


@pytest.fixture(scope="module")
def every_type(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    df, rows, names = _every_type(spark)
    out = tmp_path_factory.mktemp("every-type") / "ds"
    info = sparkshard.dataframe_to_shards(df, str(out), size_limit=300)
    assert (info.version, info.num_samples, info.new_samples) == (1, 3, 3)
    return out, rows, names


def _expected(value: Any) -> Any:
    from pyspark.ml.linalg import Vector

    if isinstance(value, Vector):
        return value.toArray()
    if isinstance(value, tuple):  # the struct, stored as JSON
        return {"a": value[0], "t": value[1]}
    if isinstance(value, list):
        return np.asarray(value)
    return value


def test_every_type_round_trips_with_nulls(every_type: tuple[Path, list, list]) -> None:
    out, rows, names = every_type
    reader = DatasetReader(out)
    assert len(reader) == len(rows)
    for i, row in enumerate(rows):
        got = reader.get(i)
        assert sorted(got) == sorted(names)
        for name, value in zip(names, row):
            want = _expected(value)
            if want is None:
                assert got[name] is None, (i, name, got[name])
            elif isinstance(want, np.ndarray):
                assert np.array_equal(got[name], want), (i, name, got[name], want)
            else:
                assert got[name] == want, (i, name, got[name], want)
    assert reader.get(0)["grid"].shape == (2, 2)
    assert reader.get(0)["vec"].dtype == np.float64
    assert isinstance(reader.get(0)["bo"], bool) and int(reader.get(0)["b"]) == -128


@pytest.mark.mosaic
def test_mosaic_streaming_dataset_reads_the_output(
    every_type: tuple[Path, list, list], tmp_path: Path
) -> None:
    out, rows, _ = every_type
    view = mosaic_view(tmp_path / "dump.pkl", [out])[str(out)]
    assert view["ok"], view.get("error")
    samples = view["samples"]
    assert len(samples) == len(rows)
    assert samples[0]["str"] == "héllo" and samples[0]["bin"] == b"\x00\xff"
    assert int(samples[0]["b"]) == -128 and int(samples[0]["l"]) == 1 << 40
    assert np.array_equal(samples[0]["grid"], [[1.0, 2.0], [3.0, 4.0]])
    assert samples[0]["m"] == {"k": 9} and samples[1]["dec"] == Decimal("0.001")
    assert [int(s["bo__null"]) for s in samples] == [0, 0, 1]


def test_empty_map_round_trips(spark: Any, tmp_path: Path) -> None:
    df = spark.createDataFrame([({},), ({"k": 1},)], "m map<string, bigint>")
    sparkshard.dataframe_to_shards(df.coalesce(1), str(tmp_path / "ds"))
    reader = DatasetReader(tmp_path / "ds")
    assert [reader.get(0)["m"], reader.get(1)["m"]] == [{}, {"k": 1}]


def test_order_is_partition_then_row(spark: Any, tmp_path: Path) -> None:
    df = spark.range(0, 5000, numPartitions=3).selectExpr("id", "cast(id % 10 as int) as label")
    info = sparkshard.dataframe_to_shards(df, str(tmp_path / "ds"), size_limit="8KB")
    assert info.num_shards > 3
    reader = DatasetReader(tmp_path / "ds")
    ids = reader.get_batch(np.arange(len(reader)))["id"]
    assert np.array_equal(ids, np.arange(5000))
    assert _unreferenced(tmp_path / "ds") == set()


def test_modes_error_overwrite_append(spark: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "ds")
    first = spark.range(0, 100, numPartitions=2)
    sparkshard.dataframe_to_shards(first, out)
    jobs = _job_count(spark)
    with pytest.raises(DatasetExistsError, match="mode='overwrite'"):
        sparkshard.dataframe_to_shards(first, out)
    assert _job_count(spark) == jobs  # refused before any task ran
    info = sparkshard.dataframe_to_shards(spark.range(100, 150), out, mode="overwrite")
    assert (info.version, info.num_samples) == (2, 50)
    info = sparkshard.dataframe_to_shards(spark.range(150, 160), out, mode="append")
    assert (info.version, info.num_samples, info.new_samples) == (3, 60, 10)
    reader = DatasetReader(out)
    assert reader.get_batch(np.arange(60))["id"].tolist() == list(range(100, 160))
    with pytest.raises(SchemaError, match="cannot append"):
        sparkshard.dataframe_to_shards(
            spark.range(3).selectExpr("id", "id as x"), out, mode="append"
        )
    assert _job_count(spark) == jobs + 2 and list_versions(open_store(out)) == [1, 2, 3]


def test_bad_input_is_refused_before_any_task(spark: Any, tmp_path: Path) -> None:
    jobs = _job_count(spark)
    interval = spark.range(2).selectExpr("id", "make_interval(1, 2) as every")
    with pytest.raises(SchemaError, match="column 'every'"):
        sparkshard.dataframe_to_shards(interval, str(tmp_path / "a"))
    with pytest.raises(
        SchemaError, match="column 'id' holds int64, which cannot be stored as 'str'"
    ):
        sparkshard.dataframe_to_shards(spark.range(2), str(tmp_path / "b"), columns={"id": "str"})
    with pytest.raises(SchemaError, match="not in the data"):
        sparkshard.dataframe_to_shards(spark.range(2), str(tmp_path / "c"), columns={"x": "int8"})
    assert _job_count(spark) == jobs
    assert not any(tmp_path.rglob("*.mds*"))


def test_failed_job_leaves_previous_version_intact(spark: Any, tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    out = tmp_path / "ds"
    sparkshard.dataframe_to_shards(spark.range(0, 1000, numPartitions=2), str(out), size_limit=2048)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def explode(x):  # no type hints: Spark would try to infer a pandas UDF
        if x == 1700:
            raise ValueError("injected failure")
        return x

    failing = spark.range(1000, 2000, numPartitions=2).select(
        F.udf(explode, "long")("id").alias("id")
    )
    with pytest.raises(Exception, match="injected failure"):
        sparkshard.dataframe_to_shards(failing, str(out), mode="overwrite", size_limit=2048)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    new = [k for k in after if k not in before]
    assert len(new) == 1 and str(new[0]).startswith("_sparkshard/jobs/")  # the job's marker
    assert json.loads(after.pop(new[0])) == {"state": "aborted"}
    assert after == before  # no new shard, version or index byte
    assert DatasetReader(out).get_batch(np.arange(1000))["id"].tolist() == list(range(1000))


def test_task_retries_keep_every_row_exactly_once(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    report = _script("spark_failures.py", out)
    assert report["failed"] >= 2  # both injected failures really happened
    assert report["samples"] == 8000 and set(report["seen"]) <= {8000}
    reader = DatasetReader(out)
    assert np.array_equal(reader.get_batch(np.arange(len(reader)))["id"], np.arange(8000))
    assert _unreferenced(out) == set()


@pytest.mark.slow
def test_a_writer_killed_mid_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGKILL the process that writes shards half-way through a shard's staging file."""
    from spark_stragglers import ROWS

    out, side = tmp_path / "ds", tmp_path / "side"
    side.mkdir()
    report = _script("spark_stragglers.py", "kill", out, side)
    killed = json.loads((side / "killed.json").read_text())
    assert report["failed"] >= 1 and 0 < killed["bytes"] < killed["of"]  # really cut short
    assert len(killed["landed"]) == 2  # whole shards of the killed attempt: orphans now
    assert _unreferenced(out) == set()  # neither those nor the half-written staging file
    assert not (out / "data" / killed["staging"]).exists()
    assert not any((out / "data" / name).exists() for name in killed["landed"])
    reader = DatasetReader(out)
    assert np.array_equal(reader.get_batch(np.arange(len(reader)))["id"], np.arange(ROWS))


@pytest.mark.slow
def test_a_real_speculative_copy_wins_and_the_straggler_removes_its_late_shards(
    tmp_path: Path,
) -> None:
    """Both attempts of one partition write shards; the slow one writes more after the commit."""
    from spark_stragglers import ROWS, VICTIM

    out, side = tmp_path / "ds", tmp_path / "side"
    side.mkdir()
    report = _script("spark_stragglers.py", "speculate", out, side)
    slow, copy = (report["starts"][f"start-{VICTIM}-{n}"]["task"] for n in (0, 1))
    assert "JobFinishedError" in report["ends"]["0"]  # it wrote after the job had committed
    assert " wrote " in report["ends"]["1"]
    assert report["held"] and all(f"-a{slow}-" in name for name in report["held"])
    index = json.loads((out / "index.json").read_text())
    names = [(s["zip_data"] or s["raw_data"])["basename"] for s in index["shards"]]
    assert any(f"-p{VICTIM:05d}-a{copy}-" in name for name in names)  # the copy won
    assert not any(f"-a{slow}-" in name for name in names)
    assert _unreferenced(out) == set()  # the straggler's shards, early and late, are gone
    reader = DatasetReader(out)
    assert np.array_equal(reader.get_batch(np.arange(len(reader)))["id"], np.arange(ROWS))


def test_duplicate_finished_attempts_keep_the_lowest() -> None:
    from sparkshard.spark.write import _result_batch
    from sparkshard.write.commit import select_records as _select

    job = _fake_job()
    record = _record("data/x-p00000-a7-00000.mds")
    other = _record("data/x-p00000-a9-00000.mds")
    rows = _rows(_result_batch(0, 9, [other])) + _rows(_result_batch(0, 7, [record]))
    rows += _rows(_result_batch(1, 8, []))  # an empty partition still reports
    assert _select(rows, job) == [record]
    unfinished = _rows(_result_batch(0, 3, [record]))[:-1]  # no closing row
    with pytest.raises(RuntimeError, match="no finished attempt"):
        _select(unfinished, job)


def test_straggler_write_after_the_job_finished_removes_itself(tmp_path: Path) -> None:
    from sparkshard.errors import JobFinishedError as _JobFinishedError
    from sparkshard.write.commit import GuardedStore as _GuardedStore

    store = open_store(tmp_path)
    guarded = _GuardedStore(store, "_sparkshard/jobs/x")
    guarded.write("data/x-p0-a1-00000.mds", b"early")
    store.write("_sparkshard/jobs/x", b'{"state": "committed"}')
    with pytest.raises(_JobFinishedError):
        guarded.write("data/x-p0-a2-00000.mds", b"late")
    assert store.list("data/") == ["data/x-p0-a1-00000.mds"]


# ---- the Mosaic drop-in ------------------------------------------------------------------


@pytest.fixture(scope="module")
def numbers(spark: Any) -> Any:
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    data = [(n, " ".join(words[int(c)] for c in str(n))) for n in range(0, 4000, 7)]
    return spark.createDataFrame(data, "number long, words string").cache()


def pandas_processing_fn(df: pd.DataFrame, **args: Any) -> Iterator[dict[str, bytes]]:
    """Mosaic's documented UDF, with a whitespace tokenizer instead of a HF download."""
    buffer: list[int] = []
    for text in df["words"]:
        buffer += [len(w) for w in text.split()]
        while len(buffer) >= args["concat_tokens"]:
            yield {"tokens": np.asarray(buffer[: args["concat_tokens"]]).tobytes()}
            buffer = buffer[args["concat_tokens"] :]


def count_frames(frames: Iterator[pd.DataFrame]) -> Iterator[dict[str, bytes]]:
    """Annotated as taking an iterator of frames: one sample ``"k:rows"`` per frame."""
    for k, frame in enumerate(frames):
        yield {"frame": f"{k}:{len(frame)}".encode()}


def test_dataframe_to_mds_runs_mosaics_documented_example(numbers: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "mds")
    mds_kwargs = {"out": out, "columns": {"number": "int64", "words": "str"}}
    pdf = numbers.repartition(4)
    assert sparkshard.dataframe_to_mds(pdf, merge_index=True, mds_kwargs=mds_kwargs) == (out, "")
    reader = DatasetReader(out)
    got = sorted((int(reader.get(i)["number"]), reader.get(i)["words"]) for i in range(len(reader)))
    assert got == sorted(tuple(r) for r in numbers.collect())
    assert reader.index.shards[0].column_encodings == ("int64", "str")


def test_udf_iterable_sees_the_whole_partition(spark: Any, numbers: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "tok")
    kwargs = {"concat_tokens": 4, "tokenizer": "whitespace", "split": "train"}
    parts = numbers.repartition(2).cache()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")  # many batches
    try:
        sparkshard.dataframe_to_mds(
            parts, mds_kwargs={"out": out, "columns": {"tokens": "bytes"}},
            udf_iterable=pandas_processing_fn, udf_kwargs=kwargs,
        )  # fmt: skip
        sparkshard.dataframe_to_mds(
            parts, mds_kwargs={"out": str(tmp_path / "frames"), "columns": {"frame": "bytes"}},
            udf_iterable=count_frames,
        )  # fmt: skip
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    from pyspark.sql import functions as F

    by_part = parts.withColumn("p", F.spark_partition_id()).toPandas().groupby("p")
    want = [s["tokens"] for _, g in sorted(by_part) for s in pandas_processing_fn(g, **kwargs)]
    reader = DatasetReader(out)
    assert [reader.get(i)["tokens"] for i in range(len(reader))] == want
    frames = DatasetReader(tmp_path / "frames")
    seen = [frames.get(i)["frame"].decode().split(":") for i in range(len(frames))]
    assert [k for k, _ in seen].count("0") == 2  # called once per partition, state kept
    assert max(int(n) for _, n in seen) <= 50  # streamed batch by batch
    assert sum(int(n) for _, n in seen) == numbers.count()


# ---- helpers -----------------------------------------------------------------------------


def _script(name: str, *args: str | Path, timeout: float = 400) -> dict[str, Any]:
    """Run one of the scripts next to this file (its own SparkSession); its JSON report."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run(
        [sys.executable, str(HERE / name), *map(str, args)],
        check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _unreferenced(out: Path) -> set[str]:
    """Every file under data/ that the index does not reference, hidden staging files too."""
    index = json.loads((out / "index.json").read_text())
    referenced = {(s["zip_data"] or s["raw_data"])["basename"] for s in index["shards"]}
    files = {p.relative_to(out).as_posix() for p in (out / "data").rglob("*") if p.is_file()}
    return (
        files
        - referenced
        - {
            f.removesuffix(".zstd")
            for f in referenced  # raw copies the reader decompressed
        }
    )


def _job_count(spark: Any) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup())


def _fake_job() -> Any:
    from sparkshard.format.schema import Schema
    from sparkshard.write.commit import Job as _Job
    from sparkshard.write.settings import WriterSettings

    settings = WriterSettings(None, (), 1024)
    return _Job("x", None, "x", Schema.from_encodings({"id": "int64"}), settings)


def _record(name: str) -> Any:
    from sparkshard.format.index import FileInfo, ShardRecord

    return ShardRecord(
        column_names=("id",), column_encodings=("int64",), column_sizes=(8,), compression=None,
        hashes=(), raw_data=FileInfo(name, 10, {}), samples=1, size_limit=1024, zip_data=None,
    )  # fmt: skip


def _rows(batch: Any) -> list[Any]:
    from types import SimpleNamespace

    return [SimpleNamespace(**row) for row in batch.to_pylist()]


def test_large_rows_reach_tasks_in_16_mb_arrow_batches_unless_the_session_says(
    spark: Any, tmp_path: Path
) -> None:
    # 40 rows of 1 MiB in one partition. Spark's default (64 MB Arrow batches) hands the task
    # them in one batch; while our job runs, batches are 16 MB, so the task starts encoding
    # after 16 rows, not 40. A size the session sets is honoured, and left as it was.
    from pyspark.sql import functions as F

    key = "spark.sql.execution.arrow.maxBytesPerBatch"
    rows = spark.range(40).select("id", F.expr("repeat('x', 1048576)").alias("s")).coalesce(1)

    def frames(out: Path) -> list[int]:
        mds_kwargs = {"out": str(out), "columns": {"frame": "bytes"}}
        sparkshard.dataframe_to_mds(rows, mds_kwargs=mds_kwargs, udf_iterable=count_frames)
        reader = DatasetReader(out)
        sizes = sorted(bytes(reader.get(i)["frame"]).decode() for i in range(len(reader)))
        return [int(s.split(":")[1]) for s in sizes]

    assert spark.conf.get(key, None) is None
    ours = frames(tmp_path / "ours")
    assert sum(ours) == 40 and len(ours) >= 3 and max(ours) <= 16, ours
    assert spark.conf.get(key, None) is None  # restored
    spark.conf.set(key, str(64 << 20))
    try:
        assert frames(tmp_path / "theirs") == [40]
        assert spark.conf.get(key, None) == str(64 << 20)
    finally:
        spark.conf.unset(key)
