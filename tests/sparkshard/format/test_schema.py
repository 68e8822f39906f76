"""Arrow types map to MDS encodings without loss; what cannot be stored is refused up front."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sparkshard.errors import SchemaError
from sparkshard.format.schema import Schema, schema_from_arrow


def _spec(arrow_type: pa.DataType, override: str | None = None, nullable: bool = True):
    schema = schema_from_arrow(
        pa.schema([pa.field("c", arrow_type, nullable)]), {"c": override} if override else None
    )
    return schema.columns[0]


@pytest.mark.parametrize(
    ("arrow_type", "encoding", "logical"),
    [
        (pa.int8(), "int8", None),  # signed, unlike Mosaic's Spark mapping
        (pa.int16(), "int16", None),
        (pa.uint64(), "uint64", None),
        (pa.float16(), "float16", None),
        (pa.bool_(), "uint8", "bool"),
        (pa.date32(), "int32", "date"),
        (pa.timestamp("ns", tz="Europe/Paris"), "int64", "timestamp"),
        (pa.time64("us"), "int64", "time"),
        (pa.duration("ms"), "int64", "duration"),
        (pa.decimal128(12, 3), "str_decimal", "decimal"),
        (pa.string(), "str", None),
        (pa.large_binary(), "bytes", None),
        (pa.list_(pa.float32()), "ndarray:float32", "ndarray"),
        (pa.list_(pa.int16(), 3), "ndarray:int16:3", "ndarray"),
        (pa.list_(pa.list_(pa.uint8(), 4), 2), "ndarray:uint8:2,4", "ndarray"),
        (pa.list_(pa.list_(pa.float64())), "ndarray:float64", "ndarray"),
        (pa.struct([("a", pa.int32()), ("b", pa.list_(pa.string()))]), "json", "json"),
        (pa.map_(pa.string(), pa.float64()), "json", "json"),
        (pa.list_(pa.string()), "json", "json"),
        (pa.dictionary(pa.int8(), pa.string()), "str", None),
    ],
)
def test_default_mapping(arrow_type: pa.DataType, encoding: str, logical: str | None) -> None:
    spec = _spec(arrow_type)
    assert (spec.encoding, spec.logical) == (encoding, logical)


def test_timestamp_keeps_unit_and_zone() -> None:
    spec = _spec(pa.timestamp("ms", tz="UTC"))
    assert (spec.unit, spec.tz) == ("ms", "UTC")


def test_nullable_fields_get_a_mask_column() -> None:
    schema = schema_from_arrow(
        pa.schema([pa.field("x", pa.int32(), True), pa.field("y", pa.string(), False)])
    )
    assert schema.stored_columns() == [("x", "int32"), ("x__null", "uint8"), ("y", "str")]


def test_overrides_are_checked_against_the_data() -> None:
    assert _spec(pa.int64(), "int32").encoding == "int32"
    assert _spec(pa.binary(), "jpeg").encoding == "jpeg"
    assert _spec(pa.list_(pa.float64()), "ndarray:float32:8").encoding == "ndarray:float32:8"
    with pytest.raises(SchemaError, match=r"column 'c' holds string.*cannot be stored as 'int64'"):
        _spec(pa.string(), "int64")
    with pytest.raises(SchemaError, match="not in the data"):
        schema_from_arrow(pa.schema([pa.field("a", pa.int8())]), {"b": "int8"})
    with pytest.raises(ValueError, match="unknown MDS encoding"):
        _spec(pa.int64(), "int99")


@pytest.mark.parametrize(
    ("arrow_type", "hint"),
    [
        (pa.null(), "cast it to a concrete type"),
        (pa.list_(pa.timestamp("us")), "cast it in Spark/Arrow first"),
        (pa.month_day_nano_interval(), "cast it in Spark/Arrow first"),
    ],
)
def test_unrepresentable_types_name_the_column_and_fix(arrow_type: pa.DataType, hint: str) -> None:
    with pytest.raises(SchemaError, match=f"column 'c'.*{hint}"):
        _spec(arrow_type)


def test_mask_name_collision_is_refused() -> None:
    with pytest.raises(SchemaError, match="rename that column"):
        schema_from_arrow(pa.schema([pa.field("x", pa.int8()), pa.field("x__null", pa.int8())]))


def test_meta_round_trip() -> None:
    schema = schema_from_arrow(
        pa.schema([pa.field("t", pa.timestamp("us", tz="UTC")), pa.field("b", pa.bool_())])
    )
    assert Schema.from_meta(schema.meta()) == schema
