"""Which MDS encoding stores each column, and what a reader must restore.

:func:`schema_from_arrow` maps an Arrow schema to MDS columns without losing anything
Mosaic cannot express: signed bytes/shorts stay signed, bool/date/timestamp/time/
duration/decimal are stored in a Mosaic-readable encoding plus a logical type in our
index block, and a nullable column gets a ``<name>__null`` mask column (``uint8``, 1 =
null). Everything is decided, and every problem reported, before any data is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sparkshard.errors import SchemaError
from sparkshard.format.encodings import SCALAR_DTYPES, get_encoding

__all__ = ["NULL_SUFFIX", "ColumnSpec", "Schema", "schema_from_arrow"]

NULL_SUFFIX = "__null"
_TEMPORAL_ENCODING = {"date": "int32", "timestamp": "int64", "time": "int64", "duration": "int64"}


@dataclass(frozen=True)
class ColumnSpec:
    """One logical column. ``logical`` None means plain MDS semantics for ``encoding``."""

    name: str
    encoding: str
    logical: str | None = None  # bool, date, timestamp, time, duration, decimal, ndarray, json
    nullable: bool = False
    unit: str | None = None  # timestamp/time/duration unit: s, ms, us, ns
    tz: str | None = None  # timestamp time zone
    arrow_type: str | None = None

    @property
    def null_column(self) -> str:
        return self.name + NULL_SUFFIX

    def meta(self) -> dict[str, Any]:
        """What index.json records about this column under our block."""
        out: dict[str, Any] = {"encoding": self.encoding, "nullable": self.nullable}
        for key in ("logical", "unit", "tz", "arrow_type"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Schema:
    """The logical columns of a dataset, sorted by name."""

    columns: tuple[ColumnSpec, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise SchemaError(f"duplicate column names in {names}")
        for col in self.columns:
            if not isinstance(col.name, str) or not col.name:
                raise SchemaError(f"column names must be non-empty strings, got {col.name!r}")
            get_encoding(col.encoding)  # raises on unknown names
            if col.nullable and col.null_column in names:
                raise SchemaError(
                    f"column '{col.name}' is nullable, and its null mask would be named "
                    f"'{col.null_column}', which is already a column: rename that column"
                )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def stored_columns(self) -> list[tuple[str, str]]:
        """(name, encoding) of every column in the shards, masks included, sorted by name."""
        pairs = [(c.name, c.encoding) for c in self.columns]
        pairs += [(c.null_column, "uint8") for c in self.columns if c.nullable]
        return sorted(pairs)

    def meta(self) -> dict[str, Any]:
        return {c.name: c.meta() for c in self.columns}

    @classmethod
    def from_encodings(cls, encodings: Mapping[str, str]) -> Schema:
        """Plain MDS columns, as ``MDSWriter(columns=...)`` takes them."""
        return cls(tuple(ColumnSpec(n, e) for n, e in sorted(encodings.items())))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Schema:
        return cls(
            tuple(
                ColumnSpec(
                    name,
                    m["encoding"],
                    m.get("logical"),
                    bool(m.get("nullable")),
                    m.get("unit"),
                    m.get("tz"),
                    m.get("arrow_type"),
                )
                for name, m in sorted(meta.items())
            )
        )


def schema_from_arrow(
    arrow_schema: pa.Schema, overrides: Mapping[str, str] | None = None
) -> Schema:
    """Map every field of ``arrow_schema``; ``overrides`` pins encodings by column name."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(arrow_schema.names)
    if unknown:
        raise SchemaError(
            f"columns {sorted(unknown)} were given encodings but are not in the data "
            f"(its columns are {arrow_schema.names})"
        )
    specs = [_spec_for_field(f, overrides.get(f.name)) for f in arrow_schema]
    return Schema(tuple(sorted(specs, key=lambda c: c.name)))


def _spec_for_field(field: pa.Field, override: str | None) -> ColumnSpec:
    arrow_type = field.type
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    logical, default, allowed = _classify(field.name, arrow_type)
    encoding = override or default
    if override is not None:
        get_encoding(override)
        if not any(
            encoding == a or (a.endswith("*") and encoding.startswith(a[:-1])) for a in allowed
        ):
            raise SchemaError(
                f"column '{field.name}' holds {arrow_type}, which cannot be stored as "
                f"'{override}': use one of {allowed} (or cast the column first)"
            )
    unit = getattr(arrow_type, "unit", None) if logical in _TEMPORAL_ENCODING else None
    if pa.types.is_date(arrow_type):
        unit = "D"
    return ColumnSpec(
        name=field.name,
        encoding=encoding,
        # An override keeps the logical type only where it still applies (bool as any int).
        logical=logical if encoding == default or logical == "bool" else None,
        nullable=field.nullable,
        unit=unit,
        tz=getattr(arrow_type, "tz", None) if pa.types.is_timestamp(arrow_type) else None,
        arrow_type=str(field.type),
    )


def _classify(name: str, t: pa.DataType) -> tuple[str | None, str, list[str]]:
    """(logical type, default encoding, encodings a user may choose instead)."""
    ints = [*SCALAR_DTYPES, "int", "str_int"]
    if pa.types.is_null(t):
        raise SchemaError(
            f"column '{name}' has Arrow type null (no values, so no type to store): "
            "cast it to a concrete type, e.g. F.lit(None).cast('int') in Spark"
        )
    if pa.types.is_boolean(t):
        return "bool", "uint8", ["uint8", "int8", "int16", "int32", "int64", "int"]
    if pa.types.is_integer(t):
        return None, str(t.to_pandas_dtype().__name__), ints
    if pa.types.is_floating(t):
        return None, {16: "float16", 32: "float32", 64: "float64"}[t.bit_width], [
            "float16", "float32", "float64", "str_float",
        ]  # fmt: skip
    if pa.types.is_decimal(t):
        return "decimal", "str_decimal", ["str_decimal", "float32", "float64"]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return None, "str", ["str", "bytes", "json", "str_int", "str_float", "str_decimal"]
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return None, "bytes", ["bytes", "jpeg", "png", "pil", "pkl", "jpeg_array", "list[*"]
    for logical, test in (
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
        ("time", pa.types.is_time),
        ("duration", pa.types.is_duration),
    ):
        if test(t):
            return logical, _TEMPORAL_ENCODING[logical], [_TEMPORAL_ENCODING[logical]]
    if _is_list(t):
        element, shape = _list_shape(t)
        if element is not None:
            dtype = str(element.to_pandas_dtype().__name__)
            default = f"ndarray:{dtype}" + (":" + ",".join(map(str, shape)) if shape else "")
            return "ndarray", default, ["ndarray*", "json"]
    if _json_friendly(t):
        return "json", "json", ["json"]
    raise SchemaError(
        f"column '{name}' has Arrow type {t}, which has no lossless MDS encoding; "
        "cast it in Spark/Arrow first (numbers, strings, binary, dates, timestamps, "
        "lists of numbers, and structs/maps/lists of JSON-like values are supported)"
    )


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _list_shape(t: pa.DataType) -> tuple[pa.DataType | None, tuple[int, ...] | None]:
    """(numeric element type, fixed shape or None) for nested numeric lists, else (None, None)."""
    dims: list[int | None] = []
    while _is_list(t):
        dims.append(t.list_size if pa.types.is_fixed_size_list(t) else None)
        t = t.value_type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return None, None
    fixed = all(d is not None and d > 0 for d in dims)
    return t, tuple(d for d in dims if d is not None) if fixed else None


def _json_friendly(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return all(_json_friendly(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _json_friendly(t.key_type) and _json_friendly(t.item_type)
    if _is_list(t):
        return _json_friendly(t.value_type)
    return bool(
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_null(t)
    )


def check_columns(schema: Schema, data_columns: Iterable[str]) -> None:
    """Raise if rows lack a declared column or carry an undeclared one."""
    got, want = set(data_columns), set(schema.names)
    if got != want:
        raise SchemaError(
            f"sample columns {sorted(got)} differ from the dataset's {sorted(want)}: "
            f"missing {sorted(want - got)}, unexpected {sorted(got - want)}"
        )
