"""Logical values <-> the raw values MDS stores (row by row).

A column with a logical type is stored in a plain MDS encoding (bool as uint8, a
timestamp as int64 counts of its unit, ...). :func:`to_stored` converts one Python value
for writing; :func:`from_stored` restores one decoded value for reading.
"""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any

import numpy as np

from sparkshard.errors import EncodingError
from sparkshard.format.encodings import get_encoding
from sparkshard.format.schema import ColumnSpec

__all__ = ["from_stored", "placeholder", "placeholder_bytes", "to_stored"]

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def placeholder(spec: ColumnSpec) -> Any:
    """The value written in place of a null (the mask column says it is null)."""
    encoding = spec.encoding
    if encoding.startswith("ndarray"):
        parts = encoding.split(":")
        dtype = parts[1] if len(parts) > 1 and parts[1] else "uint8"
        shape = tuple(int(d) for d in parts[2].split(",")) if len(parts) > 2 else (0,)
        return np.zeros(shape, dtype)
    if get_encoding(encoding).size is not None:
        return 0
    return placeholder_bytes(encoding)


def placeholder_bytes(encoding: str) -> bytes:
    """Encoded stand-in for a null of a variable-size encoding, decodable by any MDS reader."""
    simple = {"str": b"", "bytes": b"", "str_int": b"0", "str_decimal": b"0", "str_float": b"0.0"}
    if encoding in simple:
        return simple[encoding]
    if encoding == "json":
        return b"null"
    if encoding == "pkl":
        return pickle.dumps(None)
    try:
        from PIL import Image
    except ImportError:
        return b""
    pixel = Image.new("L", (1, 1))
    if encoding.startswith("list["):
        return get_encoding(encoding).encode([])
    if encoding in ("jpeg_array", "jpegarray"):
        return get_encoding(encoding).encode([pixel])
    return get_encoding(encoding).encode(pixel)


def to_stored(spec: ColumnSpec, value: Any) -> Any:
    """The raw value to encode for a logical value (identity for plain columns)."""
    logical = spec.logical
    if logical == "bool":
        return int(bool(value))
    if logical == "date" and isinstance(value, dt.date):
        return (value - _EPOCH_DATE).days
    if logical == "timestamp" and isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        delta = aware - _EPOCH
        return _count(delta, spec.unit)
    if logical in ("duration", "time") and isinstance(value, (dt.timedelta, dt.time)):
        if isinstance(value, dt.time):
            value = dt.timedelta(
                hours=value.hour,
                minutes=value.minute,
                seconds=value.second,
                microseconds=value.microsecond,
            )
        return _count(value, spec.unit)
    return value


def _count(delta: dt.timedelta, unit: str | None) -> int:
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    per_second = _PER_SECOND[unit or "us"]
    return (
        micros * per_second // 1_000_000
        if per_second >= 1_000_000
        else micros // (1_000_000 // per_second)
    )


_AS_DECODED = (None, "ndarray", "json", "decimal")  # logical types whose values need nothing


def restores_values(spec: ColumnSpec) -> bool:
    """Whether :func:`from_stored` changes ``spec``'s decoded values (a batch of a column
    that it does not change skips the call per value)."""
    return spec.logical not in _AS_DECODED


def from_stored(spec: ColumnSpec, value: Any) -> Any:
    """The logical value for a decoded raw value (identity for plain columns)."""
    logical = spec.logical
    if logical in _AS_DECODED:
        return value
    if logical == "bool":
        return bool(value)
    try:
        return _temporal(spec, int(value))
    except (OverflowError, ValueError) as exc:
        kind = {"date": "datetime.date", "timestamp": "datetime.datetime"}.get(logical, logical)
        raise EncodingError(
            f"column '{spec.name}' holds {int(value)} ({spec.unit or 'us'}) since the epoch, "
            f"beyond what Python's {kind} can hold (years 1..9999; {exc}); read it as numpy "
            "datetime64/timedelta64 through get_batch, or cast the column to int64 when writing"
        ) from None


def _temporal(spec: ColumnSpec, count: int) -> Any:
    logical = spec.logical
    if logical == "date":
        return _EPOCH_DATE + dt.timedelta(days=count)
    per_second = _PER_SECOND[spec.unit or "us"]
    delta = dt.timedelta(
        seconds=count // per_second, microseconds=(count % per_second) * 1_000_000 // per_second
    )
    if logical == "timestamp":
        moment = _EPOCH + delta
        if spec.tz is None:
            return moment.replace(tzinfo=None)
        return moment.astimezone(_zone(spec.tz))
    if logical == "time":
        return (dt.datetime.min + delta).time()
    return delta


def _zone(name: str) -> dt.tzinfo:
    if name.upper() in ("UTC", "Z", "+00:00", "ETC/UTC"):
        return dt.timezone.utc
    if name[:1] in "+-":
        sign = 1 if name[0] == "+" else -1
        hours, _, minutes = name[1:].partition(":")
        return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes or 0)))
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
