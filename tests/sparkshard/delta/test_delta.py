"""Delta tables (written with deltalake) -> shards: pinned versions, lineage, incremental sync."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from concurrent_writers import sync_delta
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkshard
from loader import DatasetReader
from sparkshard import (
    DatasetExistsError,
    SchemaError,
    SourceRewrittenError,
    UnsupportedSourceError,
)
from sparkshard.dataset.versions import list_versions, read_index
from sparkshard.delta.rowfilter import RowFilter
from sparkshard.storage import open_store

UTC = dt.timezone.utc


def _table(ids: list[int], start: int = 0) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": pa.array([i % 3 for i in ids], pa.int32()),
            "part": pa.array([["a b", "c%d", "x"][i % 3] for i in ids]),
        }
    )


def _ids(path: Path, version: int | None = None) -> Counter[int]:
    reader = DatasetReader(path, version=version)
    if not len(reader):
        return Counter()
    return Counter(reader.get_batch(np.arange(len(reader)))["id"].tolist())


def _table_ids(uri: Path, version: int | None = None) -> Counter[int]:
    # Through delta-rs's own reader, never through the code under test.
    table = DeltaTable(str(uri), version=version)
    return Counter(pa.table(table.to_pandas(columns=["id"]))["id"].to_pylist())


def test_every_type_partitions_and_lineage(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    ts = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "f": pa.array([0.5, None, -2.0], pa.float32()),
            "s": ["héllo", None, ""],
            "ts": pa.array([ts, None, ts], pa.timestamp("us", tz="UTC")),
            "day": pa.array([dt.date(1969, 12, 31), dt.date(2038, 1, 19), None], pa.date32()),
            "dec": pa.array([Decimal("1.50"), None, Decimal("-0.01")], pa.decimal128(5, 2)),
            "vec": pa.array([[1.0, 2.0], [], None], pa.list_(pa.float64())),
            "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}]),
            "bin": pa.array([b"\x00\xff", b"", None]),
            "k": pa.array([7, 7, 9], pa.int32()),
            "p": ["a b", "c%d", "a b"],
        }
    )
    write_deltalake(uri, data, partition_by=["k", "p"])
    info = sparkshard.delta_to_shards(uri, out)
    assert (info.version, info.num_samples, info.new_samples) == (1, 3, 3)
    reader = DatasetReader(out)
    rows = sorted((reader.get(i) for i in range(3)), key=lambda r: r["id"])
    expected = sorted(DeltaTable(str(uri)).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
    for got, want in zip(rows, expected):
        got["vec"] = None if got["vec"] is None else got["vec"].tolist()
        assert got == want
    lineage = reader.index.meta["lineage"]
    assert lineage["source"] == "delta" and lineage["table_uri"] == str(uri)
    assert (
        lineage["delta_version"] == 0 and lineage["columns"] is None and lineage["filter"] is None
    )
    stamp = dt.datetime.fromisoformat(lineage["commit_timestamp"])
    assert stamp.tzinfo is not None and abs(stamp.timestamp() - uri.stat().st_mtime) < 3600


def test_pinned_version_is_time_travel(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    write_deltalake(uri, _table([10, 20, 30]))
    write_deltalake(uri, _table([40]), mode="append")
    DeltaTable(str(uri)).delete("id = 20")
    info = sparkshard.delta_to_shards(uri, out, version=1)
    assert _ids(out) == Counter([10, 20, 30, 40]) == _table_ids(uri, 1)
    assert read_index(open_store(out)).meta["lineage"]["delta_version"] == 1 == info.version
    with pytest.raises(ValueError, match=r"versions 0\.\.2; version=5"):
        sparkshard.delta_to_shards(uri, tmp_path / "other", version=5)


def test_many_small_commits_append_incrementally(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    rng = np.random.default_rng(3)
    ids = rng.choice(10**12, size=200, replace=False).tolist()  # sparse, unordered ids
    write_deltalake(uri, _table(ids[:5]), partition_by=["part"])
    assert sparkshard.delta_to_shards(uri, out, size_limit="1KB").version == 1
    position = 5
    for round_ in range(3):
        for _ in range(12):  # a dozen tiny commits between syncs
            take = int(rng.integers(1, 5))
            write_deltalake(uri, _table(ids[position : position + take]), mode="append")
            position += take
        before = read_index(open_store(out))
        info = sparkshard.delta_to_shards(uri, out, size_limit="1KB")
        after = read_index(open_store(out))
        assert (
            info.version == round_ + 2
            and info.new_samples == after.num_samples - before.num_samples
        )
        assert after.shards[: len(before.shards)] == before.shards  # old shards kept, not rewritten
        assert after.meta["lineage"]["sync"] == "incremental"
        assert _ids(out) == Counter(ids[:position]) == _table_ids(uri)
    assert _ids(out, version=1) == Counter(ids[:5])  # earlier versions still readable


def test_rewrites_rebuild_or_are_refused(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    write_deltalake(uri, _table(list(range(20))))
    sparkshard.delta_to_shards(uri, out)
    DeltaTable(str(uri)).delete("label = 1")
    with pytest.raises(SourceRewrittenError, match=r"removed, rewritten or lost rows.*1 DELETE"):
        sparkshard.delta_to_shards(uri, out, on_rewrite="error")
    assert list_versions(open_store(out)) == [1]  # nothing written
    info = sparkshard.delta_to_shards(uri, out)
    assert info.version == 2 and info.new_samples == info.num_samples
    assert (
        _ids(out) == _table_ids(uri)
        and read_index(open_store(out)).meta["lineage"]["sync"] == "full"
    )
    write_deltalake(uri, _table([100, 101]), mode="overwrite")
    assert sparkshard.delta_to_shards(uri, out).version == 3 and _ids(out) == Counter([100, 101])
    DeltaTable(str(uri)).update({"label": "label + 10"})
    sparkshard.delta_to_shards(uri, out)
    labels = DatasetReader(out).get_batch([0, 1])["label"].tolist()
    assert sorted(labels) == [11, 12]


def test_nothing_new_keeps_the_version(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    write_deltalake(uri, _table([1, 2]))
    first = sparkshard.delta_to_shards(uri, out)
    again = sparkshard.delta_to_shards(uri, out)
    assert (again.version, again.new_samples, again.num_samples) == (first.version, 0, 2)
    assert list_versions(open_store(out)) == [1]


def test_columns_filter_and_their_changes(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    write_deltalake(uri, _table(list(range(30))), partition_by=["part"])
    kwargs: dict[str, Any] = {
        "columns": ["id"],
        "filter": [("label", "in", [0, 2]), ("part", "!=", "x")],
    }
    sparkshard.delta_to_shards(uri, out, **kwargs)
    reader = DatasetReader(out)
    assert reader.schema.names == ("id",)
    assert _ids(out) == Counter(i for i in range(30) if i % 3 == 0)  # label 2 is part "x"
    write_deltalake(uri, _table([30, 31, 33]), mode="append")
    assert sparkshard.delta_to_shards(uri, out, **kwargs).new_samples == 2  # 30, 33
    info = sparkshard.delta_to_shards(uri, out, columns=["id"], filter=[("id", ">=", 30)])
    assert info.new_samples == info.num_samples == 3  # settings changed: rebuilt
    lineage = read_index(open_store(out)).meta["lineage"]
    assert lineage["filter"] == [[["id", ">=", 30]]] and lineage["columns"] == ["id"]
    with pytest.raises(SchemaError, match=r"\['nope'\] are not in version"):
        sparkshard.delta_to_shards(uri, out, columns=["id", "nope"])
    with pytest.raises(ValueError, match="Spark SQL, which only Spark evaluates"):
        sparkshard.delta_to_shards(uri, out, filter="id > 3")


def test_other_sources_and_modes(tmp_path: Path) -> None:
    one, two, out = tmp_path / "one", tmp_path / "two", tmp_path / "ds"
    write_deltalake(one, _table([1]))
    write_deltalake(two, _table([2, 3]))
    sparkshard.delta_to_shards(one, out)
    with pytest.raises(DatasetExistsError, match=f"converted from Delta table {one}"):
        sparkshard.delta_to_shards(two, out)
    with pytest.raises(DatasetExistsError, match="mode='sync'"):
        sparkshard.delta_to_shards(one, out, mode="error")
    assert sparkshard.delta_to_shards(two, out, mode="overwrite").version == 2
    assert _ids(out) == Counter([2, 3]) and _ids(out, version=1) == Counter([1])


def test_column_mapping_is_refused_but_a_deletion_vector_flag_alone_is_not(tmp_path: Path) -> None:
    mapped = tmp_path / "mapped"
    write_deltalake(mapped, _table([1]), configuration={"delta.columnMapping.mode": "name"})
    with pytest.raises(UnsupportedSourceError, match="column mapping"):
        sparkshard.delta_to_shards(mapped, tmp_path / "a")
    flagged = tmp_path / "flagged"
    write_deltalake(flagged, _table([1, 2]), configuration={"delta.enableDeletionVectors": "true"})
    DeltaTable(str(flagged)).delete("id = 1")  # delta-rs rewrites the file: no vector exists
    sparkshard.delta_to_shards(flagged, tmp_path / "b")
    assert _ids(tmp_path / "b") == Counter([2])


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 6)),
        st.tuples(st.just("delete"), st.integers(0, 2)),
        st.tuples(st.just("sync"), st.just(0)),
    ),
    min_size=2,
    max_size=7,
)


@settings(max_examples=8, deadline=None)
@given(ops=_OPS, seed=st.integers(0, 1000))
def test_sync_mirrors_the_table_after_any_history(
    tmp_path_factory: Any, ops: list[Any], seed: int
) -> None:
    """Whatever appends and deletes happened, a sync leaves every row exactly once."""
    root = tmp_path_factory.mktemp("prop")
    uri, out = root / "t", root / "ds"
    rng = np.random.default_rng(seed)
    write_deltalake(uri, _table(rng.choice(10**9, 3, replace=False).tolist()))
    for op, arg in [*ops, ("sync", 0)]:
        if op == "append":
            write_deltalake(
                uri, _table(rng.choice(10**9, arg, replace=False).tolist()), mode="append"
            )
        elif op == "delete":
            DeltaTable(str(uri)).delete(f"label = {arg}")
        else:
            sparkshard.delta_to_shards(uri, out)
            assert _ids(out) == _table_ids(uri)


@pytest.mark.slow
def test_concurrent_syncs_write_every_row_once(tmp_path: Path) -> None:
    uri, out = tmp_path / "t", tmp_path / "ds"
    write_deltalake(uri, _table(list(range(50))))
    sparkshard.delta_to_shards(uri, out)
    write_deltalake(uri, _table(list(range(50, 80))), mode="append")
    # spawn: delta-rs must not be opened before a fork, and this process already did.
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        outcomes = pool.map(sync_delta, [(str(uri), str(out))] * 3)
    assert outcomes.count("wrote") == 1, outcomes
    assert list_versions(open_store(out)) == [1, 2]
    assert _ids(out) == Counter(range(80))


def test_forked_dataloader_workers_read_a_converted_table(tmp_path: Path) -> None:
    from loader import StreamingDataLoader, StreamingDataset

    uri, out = tmp_path / "t", tmp_path / "ds"
    ids = list(range(0, 308, 7))  # 44 ids, not dense
    write_deltalake(uri, _table(ids), partition_by=["part"])
    assert DeltaTable(str(uri)).version() == 0  # a table is open in the parent before the fork
    sparkshard.delta_to_shards(uri, out, size_limit="512B")
    dataset = StreamingDataset(local=str(out), batch_size=4, shuffle=True)
    context = "fork" if sys.platform.startswith("linux") else None
    loader = StreamingDataLoader(
        dataset, batch_size=4, num_workers=2, multiprocessing_context=context
    )
    seen = [i for batch in loader for i in batch["id"].tolist()]
    assert Counter(seen) == Counter(ids)


def test_row_filter_parsing() -> None:
    one = RowFilter.parse([("a", "=", 1), ("b", "in", ["x", "y's"])])
    assert one is not None and one.to_spark_sql() == "(`a` = 1 AND `b` IN ('x', 'y\\'s'))"
    two = RowFilter.parse([[("a", ">", 1.5)], [("d", "<=", dt.date(2024, 1, 2))]])
    assert two is not None and two.to_spark_sql() == "(`a` > 1.5D) OR (`d` <= DATE '2024-01-02')"
    assert two.to_json() == [[["a", ">", 1.5]], [["d", "<=", "2024-01-02"]]]
    for bad, error in [([("a", "~", 1)], ValueError), ([("a", "=", None)], ValueError),
                       ([("a", "in", "xy")], TypeError), ([("a", "=")], TypeError), ("  ", ValueError)]:  # fmt: skip
        with pytest.raises(error):
            RowFilter.parse(bad)


# ---- through Spark (the shared local session; no delta-spark jar here) --------------------


@pytest.mark.spark
def test_spark_path_converts_and_appends_like_the_local_path(spark: Any, tmp_path: Path) -> None:
    uri = tmp_path / "t"
    write_deltalake(uri, _table(list(range(0, 60, 2))), partition_by=["part"])
    kwargs: dict[str, Any] = {"columns": ["part", "id"], "filter": [("label", "!=", 2)]}
    distributed = sparkshard.delta_to_shards(uri, tmp_path / "spark", spark=spark, **kwargs)
    local = sparkshard.delta_to_shards(uri, tmp_path / "local", **kwargs)
    assert distributed.num_samples == local.num_samples == 20
    both = [DatasetReader(tmp_path / name) for name in ("spark", "local")]
    rows = [sorted(r.get(i)["id"] for i in range(len(r))) for r in both]
    assert rows[0] == rows[1] and both[0].schema.names == ("id", "part")
    parts = {r.get(i)["part"] for r in both for i in range(len(r))}
    assert parts == {"a b", "c%d"}  # partition values decoded from the paths ("x" filtered)
    write_deltalake(uri, _table([61, 62, 63, 64]), mode="append")
    info = sparkshard.delta_to_shards(uri, tmp_path / "spark", spark=spark, **kwargs)
    assert info.version == 2 and info.new_samples == 3  # 62 has label 2
    assert read_index(open_store(tmp_path / "spark")).meta["lineage"]["sync"] == "incremental"
    assert _ids(tmp_path / "spark") == Counter(
        i for i in [*range(0, 60, 2), 61, 62, 63, 64] if i % 3 != 2
    )
    sql = sparkshard.delta_to_shards(
        uri, tmp_path / "sql", spark=spark, filter="id > 60 AND part <> 'x'"
    )
    assert _ids(tmp_path / "sql") == Counter([61, 63, 64]) and sql.version == 1


_VALUES = {"n": st.integers(-3, 3), "s": st.sampled_from(["a", "b", "it's", "ü"])}
_TERMS = st.one_of(
    *[
        st.tuples(st.just(col), st.sampled_from(["=", "!=", "<", ">=", "<="]), values)
        for col, values in _VALUES.items()
    ],
    *[
        st.tuples(
            st.just(col),
            st.sampled_from(["in", "not in"]),
            st.lists(values, min_size=1, max_size=3),
        )
        for col, values in _VALUES.items()
    ],
)


_FILTERED = pa.table(
    {
        "k": list(range(12)),
        "n": pa.array([-3, -1, 0, 1, 2, 3, None, 0, 2, -2, 1, 3], pa.int64()),
        "s": ["a", "b", "it's", "ü", None, "a", "b", "a", "ü", "it's", "b", "a"],
    }
)


@pytest.fixture(scope="module")
def filtered_frame(spark: Any) -> Any:
    rows = [tuple(r.values()) for r in _FILTERED.to_pylist()]
    return spark.createDataFrame(rows, "k long, n long, s string").cache()


@pytest.mark.spark
@settings(max_examples=3, deadline=None)
@given(
    filters=st.lists(
        st.lists(st.lists(_TERMS, min_size=1, max_size=3), min_size=1, max_size=2),
        min_size=20,
        max_size=20,
    )
)
def test_filters_keep_the_same_rows_in_arrow_and_in_spark(
    filtered_frame: Any, filters: list[Any]
) -> None:
    """Nulls included: SQL's three-valued logic on both paths (20 filters per Spark job)."""
    parsed = [RowFilter.parse(groups) for groups in filters]
    columns = [
        f"CASE WHEN {f.to_spark_sql()} THEN 1 ELSE 0 END AS f{j}" for j, f in enumerate(parsed) if f
    ]
    rows = filtered_frame.selectExpr("k", *columns).collect()
    for j, row_filter in enumerate(parsed):
        assert row_filter is not None
        by_arrow = sorted(_FILTERED.filter(row_filter.to_arrow())["k"].to_pylist())
        by_spark = sorted(r.k for r in rows if r[f"f{j}"])
        assert by_arrow == by_spark, row_filter


def test_a_file_that_gains_a_deletion_vector_is_a_rewrite() -> None:
    from sparkshard.delta.snapshot import DeltaFile, DeltaSnapshot, compare

    def snapshot(version: int, *files: DeltaFile, unreadable: str | None = None) -> DeltaSnapshot:
        return DeltaSnapshot("/t", version, None, "{}", pa.schema([]), (), files, unreadable)

    a, b = DeltaFile("a.parquet", 10, {}, 5), DeltaFile("b.parquet", 20, {}, 7)
    assert compare(snapshot(1, a), snapshot(2, a, b)).appended == (b,)
    vector = DeltaFile("a.parquet", 10, {}, 5, deletion_vector='{"storageType": "u"}')
    change = compare(snapshot(1, a), snapshot(2, vector, b))
    assert change.appended is None and "lost rows" in change.reason
    with pytest.raises(UnsupportedSourceError, match="deletion vectors"):
        snapshot(
            2, vector, unreadable="version 2 of Delta table /t has deletion vectors"
        ).check_files_readable()
