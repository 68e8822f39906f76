"""Direction (b): datasets written by our ``ShardWriter`` read by the REAL Mosaic.

Two kinds of datasets, each under every compression, are read by Mosaic's
``StreamingDataset(validate_hash="xxh64")`` in one peer process:

- ``arrow-*``: ``write_batch`` of an Arrow table with every type we map, nulls included.
  Mosaic must see the documented raw values (bool as uint8 0/1, dates as int32 days,
  timestamps as int64 counts, ``<name>__null`` masks, placeholders in null slots).
- ``rows-*``: ``write`` of the same sample dicts the Mosaic suite uses, one column per
  Mosaic encoding: Mosaic must decode exactly what was written (pixels for images).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import mosaic_tool  # tests/compat; imports `streaming` lazily, never here
import numpy as np
import pyarrow as pa
import pytest

pytestmark = pytest.mark.mosaic

SameValue = Callable[[Any, Any, str], None]
COMPRESSIONS = mosaic_tool.COMPRESSIONS
EXTRA_HASHES = [(), ("sha1",), ("xxh3_64",), ("md5",), ("xxh128",), ("xxh32",), ("xxh3_128",)]
ROWS = 40
LOSSY = {"jpeg", "jpeg_array", "jpegarray", "list_jpeg"}


def _name(kind: str, compression: str | None) -> str:
    return f"{kind}-{compression or 'none'}".replace(":", "-")


def arrow_table(n: int = ROWS) -> pa.Table:
    """Every Arrow type we map, most of them nullable with a null every few rows."""
    rng = np.random.default_rng(5)

    def nulls(values: list[Any], every: int = 3, offset: int = 0) -> list[Any]:
        return [None if (i + offset) % every == 0 else v for i, v in enumerate(values)]

    ints = rng.integers(-(2**62), 2**62, n).tolist()
    ts = [
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_999) + dt.timedelta(days=i * 97) for i in range(n)
    ]
    rec_type = pa.struct([("a", pa.int64()), ("b", pa.list_(pa.string())), ("c", pa.float64())])
    columns: dict[str, pa.Array] = {
        "id": pa.array(range(n), pa.int64()),
        "flag": pa.array(nulls([bool(i % 2) for i in range(n)]), pa.bool_()),
        "i8": pa.array(nulls([(-128, 127, -1)[i % 3] for i in range(n)], 4), pa.int8()),
        "i16": pa.array([(-32768, 32767, -2)[i % 3] for i in range(n)], pa.int16()),
        "i32": pa.array(nulls([-(2**31) + i for i in range(n)], 5), pa.int32()),
        "i64": pa.array(nulls(ints, 2), pa.int64()),
        "u8": pa.array([255 - i for i in range(n)], pa.uint8()),
        "u16": pa.array([65535 - i for i in range(n)], pa.uint16()),
        "u32": pa.array(nulls([2**32 - 1 - i for i in range(n)]), pa.uint32()),
        "u64": pa.array([2**64 - 1 - i for i in range(n)], pa.uint64()),
        "f16": pa.array(np.array([0.5, -0.0, np.inf, np.nan] * (n // 4), np.float16)),
        "f32": pa.array(nulls(rng.standard_normal(n).astype(np.float32).tolist()), pa.float32()),
        "f64": pa.array([float("nan"), -0.0, 1e308, -5e-324] * (n // 4), pa.float64()),
        "day": pa.array(nulls([dt.date(1969, 12, 31) + dt.timedelta(i * 400) for i in range(n)])),
        "ts_s": pa.array(nulls(ts), pa.timestamp("s")),
        "ts_ms_utc": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "ts_us_tz": pa.array(nulls(ts, 4), pa.timestamp("us", tz="Europe/Berlin")),
        "ts_ns": pa.array(ts, pa.timestamp("ns")),
        "dec": pa.array([Decimal(f"-{i}.5") for i in range(n)], pa.decimal128(20, 1)),
        "text": pa.array(nulls(["", "ünï", "日本", "x" * 50] * (n // 4), 5), pa.string()),
        "blob": pa.array(nulls([rng.bytes(i % 9) for i in range(n)], 6), pa.binary()),
        "vec": pa.array(
            nulls([rng.standard_normal(1 + i % 5).astype(np.float32) for i in range(n)]),
            pa.list_(pa.float32()),
        ),
        "fixed3": pa.array(nulls([[i, -i, 7] for i in range(n)]), pa.list_(pa.int16(), 3)),
        "grid": pa.array(
            [[[i * 1.0, 2, 3], [4, 5, -i * 1.0]] for i in range(n)],
            pa.list_(pa.list_(pa.float64(), 3), 2),
        ),
        "rec": pa.array(nulls([{"a": i, "b": [f"s{i}"], "c": None} for i in range(n)]), rec_type),
        "tags": pa.array(
            nulls([[f"t{k}" for k in range(i % 3)] for i in range(n)], 7), pa.list_(pa.string())
        ),
        "attrs": pa.array(
            nulls([[("k", i), ("z", -i)] for i in range(n)], 4), pa.map_(pa.string(), pa.int32())
        ),
        "all_null": pa.array([None] * n, pa.int32()),
    }
    return _table(columns)


def _table(columns: dict[str, pa.Array]) -> pa.Table:
    """A table whose fields are nullable exactly where the data holds nulls."""
    fields = [pa.field(k, v.type, nullable=v.null_count > 0) for k, v in columns.items()]
    return pa.table(columns, schema=pa.schema(fields))


def null_decimal_table(n: int = 12) -> pa.Table:
    values = [None if i % 3 == 0 else Decimal(f"{i * 7 - 50}.{i:02d}") for i in range(n)]
    return _table({"id": pa.array(range(n)), "dec": pa.array(values, pa.decimal128(12, 2))})


# Column -> the MDS encoding Mosaic sees.
EXPECTED_ENCODINGS = {
    "id": "int64", "flag": "uint8", "i8": "int8", "i16": "int16", "i32": "int32",
    "i64": "int64", "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
    "f16": "float16", "f32": "float32", "f64": "float64", "day": "int32", "ts_s": "int64",
    "ts_ms_utc": "int64", "ts_us_tz": "int64", "ts_ns": "int64", "dec": "str_decimal", "text": "str", "blob": "bytes", "vec": "ndarray:float32",
    "fixed3": "ndarray:int16:3", "grid": "ndarray:float64:2,3", "rec": "json", "tags": "json",
    "attrs": "json", "all_null": "int32",
}  # fmt: skip


def expected_raw(table: pa.Table) -> list[dict[str, Any]]:
    """What Mosaic must decode from our dataset of ``table``, sample by sample."""
    rows: list[dict[str, Any]] = [{} for _ in range(table.num_rows)]
    for field in table.schema:
        enc = EXPECTED_ENCODINGS[field.name]
        column = table.column(field.name).combine_chunks()
        t = field.type
        if pa.types.is_boolean(t):
            column = column.cast(pa.uint8())
        elif pa.types.is_date32(t):
            column = column.cast(pa.int32())
        elif pa.types.is_timestamp(t):
            column = column.cast(pa.int64())
        for i, value in enumerate(column.to_pylist()):
            rows[i][field.name] = _raw_value(enc, t, value)
            if field.nullable:
                rows[i][field.name + "__null"] = np.uint8(value is None)
    return rows


def _raw_value(enc: str, t: pa.DataType, value: Any) -> Any:
    if enc in mosaic_tool.SCALAR_ENCODINGS:
        return np.dtype(enc).type(0 if value is None else value)
    if enc == "str_decimal":
        return Decimal("0") if value is None else Decimal(str(value))
    if enc in ("str", "bytes"):
        return ("" if enc == "str" else b"") if value is None else value
    if enc == "json":
        if pa.types.is_map(t) and value is not None:
            return dict(value)
        return value
    dtype, _, shape = enc.removeprefix("ndarray:").partition(":")
    if value is None:
        return np.zeros(tuple(int(d) for d in shape.split(",")) if shape else (0,), dtype)
    return np.asarray(value, dtype)


def _write_arrow(path: Path, table: pa.Table, compression: str | None, hashes: Any) -> None:
    import sparkshard

    cut = table.num_rows // 2
    with sparkshard.ShardWriter(path, None, compression, hashes, size_limit=2048) as w:
        w.write_batch(table.slice(0, cut))  # a Table, then RecordBatches
        for batch in table.slice(cut).to_batches(max_chunksize=6):
            w.write_batch(batch)


def rows_sample(i: int) -> dict[str, Any]:
    """The Mosaic suite's sample ``i`` without the edge values ``test_json_and_pkl_edges`` has."""
    sample = mosaic_tool.make_sample(i)
    for key in ("json", "pkl"):
        if sample[key] is None or isinstance(sample[key], bytearray):
            sample[key] = [key, i]
    return sample


def _write_rows(path: Path, compression: str | None, hashes: Any) -> None:
    import sparkshard

    columns = mosaic_tool.COLUMNS
    with sparkshard.ShardWriter(path, columns, compression, hashes, size_limit=1 << 14) as w:
        for i in range(24):
            w.write(rows_sample(i))


def _write_json_pkl_edges(path: Path, compression: str | None, hashes: Any) -> None:
    import sparkshard

    with sparkshard.ShardWriter(path, EDGE_COLUMNS, compression, hashes) as w:
        for i in range(len(EDGE_PKL)):
            w.write(edge_sample(i))


EDGE_COLUMNS = {"id": "int", "json": "json", "pkl": "pkl"}
EDGE_PKL = [None, bytearray(b"raw"), {1, 2}, memoryview(b"mv").tobytes().decode()]


def edge_sample(i: int) -> dict[str, Any]:
    """None in json/pkl and a bytearray in pkl: Mosaic's MDSWriter pickles them, not raw."""
    return {"id": i, "json": None if i % 2 else [i], "pkl": EDGE_PKL[i]}


def _writers() -> list[tuple[str, Callable[..., None], str | None]]:
    """(dataset name, write(path, compression=, hashes=), compression) of every dataset."""
    table = arrow_table()
    out: list[tuple[str, Callable[..., None], str | None]] = []
    for compression in COMPRESSIONS:
        out.append((_name("arrow", compression), partial(_write_arrow, table=table), compression))
        out.append((_name("rows", compression), _write_rows, compression))
    out.append(("null-decimal", partial(_write_arrow, table=null_decimal_table()), "zstd"))
    out.append(("json-pkl-edges", _write_json_pkl_edges, "zstd"))
    return out


@pytest.fixture(scope="module")
def ours_read_by_mosaic(tmp_path_factory: pytest.TempPathFactory, mosaic_dump: Any) -> Any:
    """(root, arrow table, {dataset dir: Mosaic's reading, or our writer's error})."""
    root = tmp_path_factory.mktemp("ours")
    dirs: list[Path] = []
    write_errors: dict[str, dict[str, Any]] = {}
    for k, (name, write, compression) in enumerate(_writers()):
        hashes = ("xxh64", *EXTRA_HASHES[k % len(EXTRA_HASHES)])
        try:
            write(root / name, compression=compression, hashes=hashes)
            dirs.append(root / name)
        except Exception as exc:  # reported by the tests that need this dataset
            write_errors[str(root / name)] = {"ok": False, "error": f"ShardWriter: {exc!r}"}
    view = mosaic_dump(dirs, validate_hash="xxh64") if dirs else {}
    return root, arrow_table(), {**view, **write_errors}


def _mosaic_samples(ours_read_by_mosaic: Any, name: str) -> tuple[Path, list[dict[str, Any]]]:
    root, _, view = ours_read_by_mosaic
    entry = view[str(root / name)]
    if not entry["ok"]:
        pytest.fail(f"{name}: {entry['error']}")
    return root / name, entry["samples"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_mosaic_reads_our_arrow_columns(
    ours_read_by_mosaic: Any, same_value: SameValue, compression: str | None
) -> None:
    path, samples = _mosaic_samples(ours_read_by_mosaic, _name("arrow", compression))
    table = ours_read_by_mosaic[1]
    shards = json.loads((path / "index.json").read_text())["shards"]
    assert len(shards) > 3, "size_limit should have produced several shards"
    want_columns = dict(EXPECTED_ENCODINGS)
    want_columns.update({f.name + "__null": "uint8" for f in table.schema if f.nullable})
    for shard in shards:
        assert (
            dict(zip(shard["column_names"], shard["column_encodings"], strict=True)) == want_columns
        )
        assert shard["column_names"] == sorted(want_columns)
    expected = expected_raw(table)
    assert len(samples) == len(expected)
    for i, (theirs, want) in enumerate(zip(samples, expected, strict=True)):
        assert sorted(theirs) == sorted(want), f"sample {i}: columns differ"
        for column, value in want.items():
            same_value(theirs[column], value, f"Mosaic's {path.name}[{i}].{column}")


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_mosaic_decodes_every_encoding_we_write(
    ours_read_by_mosaic: Any, same_value: SameValue, compression: str | None
) -> None:
    path, samples = _mosaic_samples(ours_read_by_mosaic, _name("rows", compression))
    assert len(samples) == 24
    for i, theirs in enumerate(samples):
        written = rows_sample(i)
        assert sorted(theirs) == sorted(written)
        for column, value in written.items():
            want = _as_jpeg_decoded(value) if column in LOSSY else value
            same_value(theirs[column], want, f"Mosaic's {path.name}[{i}].{column}")


@pytest.mark.parametrize("compression", [None, "zstd", "snappy"])
def test_our_reader_agrees_with_mosaic_on_our_files(
    ours_read_by_mosaic: Any, same_value: SameValue, compression: str | None
) -> None:
    from loader import DatasetReader

    path, samples = _mosaic_samples(ours_read_by_mosaic, _name("rows", compression))
    reader = DatasetReader(str(path), verify_hashes=True, allow_unsafe_pickle=True)
    assert len(reader) == len(samples)
    for i, theirs in enumerate(samples):
        ours = reader.get(i)
        assert sorted(ours) == sorted(theirs)
        for column, value in theirs.items():
            same_value(ours[column], value, f"{path.name}[{i}].{column}: ours vs Mosaic")


def _as_jpeg_decoded(written: Any) -> Any:
    """What a JPEG column holds after decoding: PIL's default JPEG save, as Mosaic does."""
    from PIL import Image

    if isinstance(written, list):
        return [_as_jpeg_decoded(v) for v in written]
    if isinstance(written, Image.Image):
        out = io.BytesIO()
        written.save(out, format="JPEG")
        written = out.getvalue()
    return Image.open(io.BytesIO(written))


def test_mosaic_reads_our_null_decimals(ours_read_by_mosaic: Any) -> None:
    """A null in a decimal column must leave a placeholder that Mosaic's ``Decimal()`` parses."""
    _, samples = _mosaic_samples(ours_read_by_mosaic, "null-decimal")
    table = null_decimal_table()
    for i, (theirs, value) in enumerate(zip(samples, table.column("dec").to_pylist(), strict=True)):
        assert theirs["dec__null"] == np.uint8(value is None), i
        assert isinstance(theirs["dec"], Decimal), i
        if value is not None:
            assert str(theirs["dec"]) == str(value), i


def test_json_and_pkl_edges(ours_read_by_mosaic: Any, same_value: SameValue) -> None:
    """Values Mosaic's MDSWriter accepts in ``json``/``pkl`` columns must round-trip."""
    _, samples = _mosaic_samples(ours_read_by_mosaic, "json-pkl-edges")
    for i, theirs in enumerate(samples):
        for column, value in edge_sample(i).items():
            same_value(theirs[column], value, f"json-pkl-edges[{i}].{column}")
