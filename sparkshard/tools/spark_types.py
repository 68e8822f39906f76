"""Spark SQL type names for the columns of a dataset, from what its index records.

Our index block records each column's Arrow type as text (``str(pyarrow type)``, e.g.
``list<element: float>`` or ``timestamp[us, tz=UTC]``). :func:`spark_type_name` parses that
text and names the Spark type the column came from (``array<float>``, ``timestamp``), so
people who wrote the data in Spark recognise their schema. Columns of Mosaic datasets have
no Arrow type; they are named from their MDS encoding. Pure functions, no pyspark.
"""

from __future__ import annotations

import re

from sparkshard.format.schema import ColumnSpec

__all__ = ["spark_type_name"]

_PRIMITIVES = {
    "int8": "tinyint", "int16": "smallint", "int32": "int", "int64": "bigint",
    "uint8": "smallint", "uint16": "int", "uint32": "bigint", "uint64": "decimal(20,0)",
    "halffloat": "float", "float": "float", "double": "double", "bool": "boolean",
    "string": "string", "large_string": "string", "string_view": "string", "utf8": "string",
    "binary": "binary", "large_binary": "binary", "binary_view": "binary", "null": "void",
}  # fmt: skip
_ENCODINGS = {
    "int": "bigint", "str": "string", "bytes": "binary", "json": "string", "pkl": "binary",
    "str_int": "bigint", "str_float": "double", "str_decimal": "decimal", "float16": "float",
    "float32": "float", "float64": "double", "jpeg": "binary", "png": "binary", "pil": "binary",
}  # fmt: skip
_DTYPES = {"float16": "float", "float32": "float", "float64": "double"}


def spark_type_name(spec: ColumnSpec) -> str:
    """The Spark SQL type name of ``spec`` (its recorded Arrow type, else its encoding)."""
    if spec.arrow_type:
        try:
            name, rest = _parse(spec.arrow_type.strip())
        except ValueError:
            name, rest = "", "?"
        if not rest:
            return name
    return _from_encoding(spec.encoding)


def _from_encoding(encoding: str) -> str:
    if encoding in _ENCODINGS:
        return _ENCODINGS[encoding]
    if encoding in _PRIMITIVES:
        return _PRIMITIVES[encoding]
    if encoding.startswith("ndarray"):
        parts = encoding.split(":")
        dtype = parts[1] if len(parts) > 1 and parts[1] else "uint8"
        element = _DTYPES.get(dtype) or _PRIMITIVES.get(dtype, dtype)
        return f"array<{element}>"
    return "binary"


def _parse(text: str) -> tuple[str, str]:
    """Parse one Arrow type from the start of ``text``: (Spark name, the unparsed rest)."""
    match = re.match(r"[a-z_0-9]+", text)
    if match is None:
        raise ValueError(text)
    word, rest = match.group(0), text[match.end() :]
    if word in ("list", "large_list", "list_view", "large_list_view", "fixed_size_list"):
        element, rest = _field(_expect(rest, "<"))
        rest = _expect(rest, ">")
        rest = re.sub(r"^\[\d+\]", "", rest)
        return f"array<{element}>", rest
    if word == "struct":
        rest, fields = _expect(rest, "<"), []
        while not rest.startswith(">"):
            name, rest = rest.split(": ", 1)
            value, rest = _parse(rest)
            rest = rest.removeprefix(" not null")
            fields.append(f"{name}:{value}")
            rest = rest.removeprefix(", ")
        return f"struct<{','.join(fields)}>", rest[1:]
    if word == "map":
        key, rest = _parse(_expect(rest, "<"))
        value, rest = _parse(_expect(rest, ", "))
        rest = rest.removeprefix(", keys_sorted")
        return f"map<{key},{value}>", _expect(rest, ">")
    if word == "dictionary":
        inner = re.match(r"<values=(.*), indices=[a-z0-9]+, ordered=\d>", rest)
        if inner is None:
            raise ValueError(text)
        value, left = _parse(inner.group(1))
        return value, left + rest[inner.end() :]
    return _scalar(word, rest)


def _scalar(word: str, rest: str) -> tuple[str, str]:
    bracket = re.match(r"\[[^\]]*\]|\([^)]*\)", rest)
    args = bracket.group(0)[1:-1] if bracket else ""
    rest = rest[bracket.end() :] if bracket else rest
    if word.startswith("decimal"):
        precision, scale = (a.strip() for a in args.split(","))
        return f"decimal({precision},{scale})", rest
    if word == "timestamp":
        return ("timestamp" if "tz=" in args else "timestamp_ntz"), rest
    if word.startswith("date"):
        return "date", rest
    if word.startswith("duration"):
        return "interval day to second", rest
    if word.startswith("time"):
        return "time", rest
    if word == "fixed_size_binary":
        return "binary", rest
    if word in _PRIMITIVES:
        return _PRIMITIVES[word], rest
    raise ValueError(word)


def _field(text: str) -> tuple[str, str]:
    """A list's element field: ``item: float`` or ``element: float not null``."""
    _, rest = text.split(": ", 1)
    value, rest = _parse(rest)
    return value, rest.removeprefix(" not null")


def _expect(text: str, prefix: str) -> str:
    if not text.startswith(prefix):
        raise ValueError(text)
    return text[len(prefix) :]
