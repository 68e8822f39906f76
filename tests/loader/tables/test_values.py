"""Values read in place equal deltalake's own read of the version and, value for value and
type for type, what the MDS path returns after delta_to_shards (nulls, every type,
partition columns typed from the schema, deletion vectors, column mapping)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from protocol_tables import column_mapped_table, delete_rows
from table_data import deltalake_rows, ids_table, small_groups

import sparkshard
from loader import DatasetReader, StreamingDataset
from sparkshard.errors import CorruptShardError, SchemaError, UnsupportedSourceError


def plain(value: Any) -> Any:
    """A value as plain Python, for comparing with deltalake's to_pylist()."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def deltalake_value(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return dict(value)  # a map: the MDS path stores string-keyed maps as JSON objects
    return plain(value)


def by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(r["id"]): r for r in rows}


def test_every_type_with_nulls_equals_deltalake_and_the_mds_path(
    typed_table: Path, tmp_path: Path
) -> None:
    ds = StreamingDataset(delta=str(typed_table))
    assert ds.version == 0 and ds.num_samples == 30
    ours = by_id([ds[i] for i in range(ds.num_samples)])
    theirs = by_id(deltalake_rows(typed_table))
    assert ours.keys() == theirs.keys()
    for key, row in theirs.items():
        assert {c: plain(v) for c, v in ours[key].items()} == {
            c: deltalake_value(v) for c, v in row.items()
        }
    # The MDS path on the same version: the same values with the same types, batch and sample.
    sparkshard.delta_to_shards(typed_table, tmp_path / "mds")
    mds = DatasetReader(tmp_path / "mds")
    assert mds.column_names == ds._reader.column_names
    assert by_id([mds.get(i) for i in range(len(mds))]).keys() == ours.keys()
    for key, sample in by_id([mds.get(i) for i in range(len(mds))]).items():
        assert_same_sample(ours[key], sample)
    ids_mds = np.asarray(mds.get_batch(np.arange(len(mds)))["id"])
    ids_ours = np.asarray(ds._reader.get_batch(np.arange(ds.num_samples))["id"])
    order_mds, order_ours = np.argsort(ids_mds), np.argsort(ids_ours)
    batch_mds = mds.get_batch(order_mds)
    batch_ours = ds._reader.get_batch(order_ours)
    assert batch_ours.keys() == batch_mds.keys()
    for name in batch_mds:
        assert_same_column(name, batch_ours[name], batch_mds[name])
    none = np.zeros(0, np.int64)  # an empty batch, as padding="none" can ask for
    empty_mds, empty_ours = mds.get_batch(none), ds._reader.get_batch(none)
    assert empty_ours.keys() == empty_mds.keys()
    for name in empty_mds:
        assert_same_column(name, empty_ours[name], empty_mds[name])


def assert_same_sample(ours: dict[str, Any], mds: dict[str, Any]) -> None:
    assert ours.keys() == mds.keys()
    for name, b in mds.items():
        a = ours[name]
        assert type(a) is type(b), (name, a, b)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        elif isinstance(a, float) and math.isnan(a):
            assert math.isnan(b), name
        elif isinstance(a, np.floating) and np.isnan(a):
            assert np.isnan(b), name
        else:
            assert a == b, (name, a, b)


def assert_same_column(name: str, ours: Any, mds: Any) -> None:
    assert type(ours) is type(mds), (name, type(ours), type(mds))
    if isinstance(mds, np.ndarray):
        assert ours.dtype == mds.dtype and ours.shape == mds.shape, name
        assert np.array_equal(np.ma.getmaskarray(ours), np.ma.getmaskarray(mds)), name
        data_a, data_b = np.ma.getdata(ours), np.ma.getdata(mds)
        if data_a.dtype.kind == "f":
            assert np.array_equal(data_a, data_b, equal_nan=True), name
        else:
            assert np.array_equal(data_a, data_b), name
        return
    assert len(ours) == len(mds), name
    for a, b in zip(ours, mds):
        assert type(a) is type(b), (name, a, b)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        elif isinstance(a, memoryview):
            assert bytes(a) == bytes(b), name
        else:
            assert a == b, (name, a, b)


def test_partition_columns_are_typed_from_the_schema(typed_table: Path) -> None:
    ds = StreamingDataset(delta=str(typed_table), columns=["k", "p", "pday"], batch_size=30)
    batch = next(iter(ds.iter_batches()))
    assert np.ma.getdata(batch["k"]).dtype == np.int32
    assert np.ma.getdata(batch["pday"]).dtype == np.dtype("datetime64[D]")
    assert set(batch["p"]) == {"a b", "c%d", None}
    assert ds[2] == {"k": 7, "p": None, "pday": ds[2]["pday"]} and ds[2]["pday"] is not None


def test_deletion_vectors_are_honoured_as_deltalake_reads_them(tmp_path: Path) -> None:
    uri = tmp_path / "dv"
    ids = np.arange(9000)
    write_deltalake(uri, ids_table(ids), writer_properties=small_groups(1000))
    write_deltalake(uri, ids_table(ids + 9000), mode="append", writer_properties=small_groups(700))
    files = [a["path"] for a in pa.table(DeltaTable(str(uri)).get_add_actions()).to_pylist()]
    # A bitmap container (> 4096 rows of one 2^16 block), array containers, a whole row
    # group deleted (0..999 in the first file), an inline vector on the second file.
    first = list(range(0, 1000)) + list(range(1000, 9000, 2)) + [8999]
    version = delete_rows(uri, {files[0]: sorted(set(first))})
    version = delete_rows(uri, {files[1]: [0, 1, 699, 700, 8999]}, inline=True)
    ds = StreamingDataset(delta=str(uri), batch_size=256, shuffle=True)
    assert ds.version == version
    expected = sorted(r["id"] for r in deltalake_rows(uri))
    assert ds.num_samples == len(expected) == 18000 - len(set(first)) - 5
    seen = np.concatenate([np.asarray(b["id"]) for b in ds.iter_batches()])[: ds.num_samples]
    assert sorted(seen.tolist()) == expected
    # the row group that lost every row is not a shard at all
    assert len(ds.shard_sizes) == 9 - 1 + 13 and 0 not in ds.shard_sizes.tolist()
    # version 1 (before the deletes) still reads every row
    assert StreamingDataset(delta=str(uri), version=1).num_samples == 18000


def test_a_damaged_deletion_vector_is_reported(tmp_path: Path) -> None:
    uri = tmp_path / "dv"
    write_deltalake(uri, ids_table(np.arange(100)))
    path = pa.table(DeltaTable(str(uri)).get_add_actions()).to_pylist()[0]["path"]
    delete_rows(uri, {path: [3, 4]})
    (dv,) = (uri / "dv").iterdir()
    data = bytearray(dv.read_bytes())
    data[-6] ^= 0xFF
    dv.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="CRC-32"):
        StreamingDataset(delta=str(uri))


def test_column_mapping_reads_logical_names(tmp_path: Path) -> None:
    uri = tmp_path / "mapped"
    data = pa.table(
        {
            "id": pa.array(range(40), pa.int64()),
            "s": [f"v{i}" if i % 3 else None for i in range(40)],
        }
    )
    column_mapped_table(uri, data, files=3)
    assert pq.read_schema(next(uri.glob("*.parquet"))).names[0].startswith("col-")
    ds = StreamingDataset(delta=str(uri))
    assert ds._reader.column_names == ("id", "s")
    ours = by_id([ds[i] for i in range(ds.num_samples)])
    assert ours == by_id([{k: plain(v) for k, v in r.items()} for r in deltalake_rows(uri)])
    assert ours[3]["s"] is None and ours[4]["s"] == "v4"


def test_unreadable_features_are_refused_naming_them(tmp_path: Path) -> None:
    uri = tmp_path / "t"
    write_deltalake(uri, ids_table(np.arange(10)))
    log = uri / "_delta_log" / f"{1:020d}.json"
    protocol = {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["variantType"],
        "writerFeatures": ["variantType"],
    }
    log.write_text(json.dumps({"protocol": protocol}) + "\n")
    with pytest.raises(UnsupportedSourceError, match="variantType"):
        StreamingDataset(delta=str(uri))
    assert StreamingDataset(delta=str(uri), version=0).num_samples == 10


def test_a_replaced_file_is_refused(tmp_path: Path) -> None:
    uri = tmp_path / "t"
    write_deltalake(uri, ids_table(np.arange(100)))
    ds = StreamingDataset(delta=str(uri))
    (data,) = uri.glob("*.parquet")
    pq.write_table(ids_table(np.arange(200)), data)  # same name, other bytes
    with pytest.raises(CorruptShardError, match="replaced or truncated"):
        ds[0]


def test_plain_parquet_folder_glob_and_list(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    (folder / "day=2024-01-01").mkdir(parents=True)
    (folder / "day=2024-01-02").mkdir()
    pq.write_table(
        ids_table(np.arange(0, 50)), folder / "day=2024-01-01" / "a.parquet", row_group_size=9
    )
    pq.write_table(ids_table(np.arange(50, 80)), folder / "day=2024-01-02" / "b.parquet")
    (folder / "_SUCCESS").write_bytes(b"")
    ds = StreamingDataset(parquet=str(folder), batch_size=16, shuffle=True)
    assert ds.num_samples == 80 and ds.version is None and len(ds.shard_sizes) == 7
    assert ds[60] == {"day": "2024-01-02", "id": 60, "label": 60 % 7, "text": "row 60"}
    ids = np.concatenate([np.asarray(b["id"]) for b in ds.iter_batches()])
    assert sorted(ids[:80].tolist()) == list(range(80))
    assert StreamingDataset(parquet=str(folder / "*" / "b.parquet")).num_samples == 30
    listed = [
        str(folder / "day=2024-01-02" / "b.parquet"),
        str(folder / "day=2024-01-01" / "a.parquet"),
    ]
    assert StreamingDataset(parquet=listed).num_samples == 80
    with pytest.raises(FileNotFoundError, match="no Parquet files"):
        StreamingDataset(parquet=str(folder / "*.csv"))


def test_spark_written_parquet_reads_like_spark(spark: Any, tmp_path: Path) -> None:
    out = str(tmp_path / "spark")
    df = spark.range(0, 500).selectExpr(
        "id", "cast(id % 3 as int) as label", "cast(id as string) as s"
    )
    df.repartition(4).write.parquet(out)
    ds = StreamingDataset(parquet=out, batch_size=50, shuffle=True)
    assert ds.num_samples == 500
    rows = by_id([ds[i] for i in range(500)])
    assert rows[42] == {"id": 42, "label": 0, "s": "42"}


def test_nothing_is_written_into_the_table_directory(typed_table: Path, tmp_path: Path) -> None:
    uri = tmp_path / "copy"
    shutil.copytree(typed_table, uri)
    before = sorted((p.relative_to(uri), p.stat().st_mtime_ns) for p in uri.rglob("*"))
    ds = StreamingDataset(delta=str(uri), batch_size=4, shuffle=True)
    for _ in ds.iter_batches():
        pass
    ds.load_state_dict(ds.state_dict())
    [ds[i] for i in range(ds.num_samples)]
    assert sorted((p.relative_to(uri), p.stat().st_mtime_ns) for p in uri.rglob("*")) == before


def test_filter_keeps_matching_rows_of_the_pinned_version(tmp_path: Path) -> None:
    uri = tmp_path / "f"
    ids = np.arange(2000)
    table = ids_table(ids).append_column("split", pa.array(np.where(ids % 4 == 0, "test", "train")))
    write_deltalake(uri, table, partition_by=["split"], writer_properties=small_groups(128))
    files = [a["path"] for a in pa.table(DeltaTable(str(uri)).get_add_actions()).to_pylist()]
    train = next(p for p in files if "split=train" in p)
    delete_rows(uri, {train: list(range(0, 300))})  # deletion vectors and the filter combine
    wanted = [("split", "=", "train"), ("label", "in", [1, 2, 3])]
    ds = StreamingDataset(delta=str(uri), filter=wanted, batch_size=64, shuffle=True)
    expected = sorted(
        r["id"] for r in deltalake_rows(uri) if r["split"] == "train" and r["label"] in (1, 2, 3)
    )
    seen = np.concatenate([np.asarray(b["id"]) for b in ds.iter_batches()])[: ds.num_samples]
    assert ds.num_samples == len(expected) and sorted(seen.tolist()) == expected
    assert all(ds[i]["split"] == "train" for i in range(0, ds.num_samples, 97))
    unfiltered = StreamingDataset(delta=str(uri))
    assert ds.fingerprint().dataset_fingerprint != unfiltered.fingerprint().dataset_fingerprint
    with pytest.raises(SchemaError, match="nope"):
        StreamingDataset(delta=str(uri), filter=[("nope", "=", 1)])
    with pytest.raises(ValueError, match="Spark SQL"):
        StreamingDataset(delta=str(uri), filter="label = 1")


def test_list_columns_of_one_length_per_row_group_read_as_deltalake(tmp_path: Path) -> None:
    """Row groups whose list rows share one length are held as one matrix; batches mixing
    them with other widths, varied lengths and null rows still equal deltalake's read."""
    lengths = [4] * 10 + [1, 0, 3, 5, 2, 4, 4, 6, 1, 2] + [4] * 10 + [2] * 10
    rows = [
        None if i == 25 else [float(i * 10 + j) for j in range(n)] for i, n in enumerate(lengths)
    ]
    table = pa.table(
        {"id": pa.array(range(len(rows)), pa.int64()), "v": pa.array(rows, pa.list_(pa.float32()))}
    )
    uri = tmp_path / "lists"
    write_deltalake(uri, table, writer_properties=small_groups(10))
    theirs = {r["id"]: r["v"] for r in deltalake_rows(uri)}
    from loader import StreamingDataLoader

    ds = StreamingDataset(delta=str(uri), batch_size=8, shuffle=True)
    assert len(ds.shard_sizes) == 4
    shuffled = np.random.default_rng(0).permutation(len(rows))
    uniform = np.array([31, 38, 3, 7])  # two row groups held as matrices of two widths
    for ids in (uniform[:2], uniform, shuffled):  # ... and every form in one batch
        check_lists(ds._reader.get_batch(ids)["v"], ids, theirs)
    for workers in (0, 2):
        fresh = StreamingDataset(delta=str(uri), batch_size=8, shuffle=True)
        got = {}
        for b in StreamingDataLoader(fresh, batch_size=8, num_workers=workers):
            for i, value in zip(np.asarray(b["id"]).tolist(), b["v"]):
                got[i] = None if value is None else np.asarray(value).tolist()
        assert got == theirs, workers


def check_lists(values: list[Any], ids: np.ndarray, theirs: dict[int, Any]) -> None:
    assert len(values) == len(ids)
    for i, value in zip(ids.tolist(), values):
        assert (value is None) == (theirs[i] is None), i
        if value is not None:
            assert value.dtype == np.float32 and value.tolist() == theirs[i], i
            assert not value.flags.writeable  # as the MDS path's views of a shard
