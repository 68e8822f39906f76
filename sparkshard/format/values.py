"""Logical values <-> the raw values MDS stores (row by row).

A column with a logical type is stored in a plain MDS encoding (bool as uint8, a
timestamp as int64 counts of its unit, ...). :func:`to_stored` converts one Python value
for writing; :func:`from_stored` restores one decoded value for reading.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from sparkshard.format.schema import ColumnSpec

__all__ = ["from_stored", "placeholder", "to_stored"]

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def placeholder(spec: ColumnSpec) -> Any:
    """The value written in place of a null (the mask column says it is null)."""
    encoding = spec.encoding
    if encoding == "str" or encoding.startswith("str_"):
        return b""
    if encoding in ("bytes", "json", "pkl") or encoding.startswith(("jpeg", "png", "pil", "list")):
        return b"null" if encoding == "json" else b""
    if encoding.startswith("ndarray"):
        dtype = encoding.split(":")[1] if encoding.count(":") else "uint8"
        shape = (
            tuple(int(d) for d in encoding.split(":")[2].split(","))
            if encoding.count(":") == 2
            else (0,)
        )
        return np.zeros(shape, dtype)
    return 0


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


def from_stored(spec: ColumnSpec, value: Any) -> Any:
    """The logical value for a decoded raw value (identity for plain columns)."""
    logical = spec.logical
    if logical is None or logical in ("ndarray", "json", "decimal"):
        return value
    if logical == "bool":
        return bool(value)
    count = int(value)
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
