"""Every batch of a write has the schema its first batch had, or is refused.

A writer's columns, encodings and logical types are fixed by its first batch (or its
declared columns). A later batch whose Arrow type differs is cast to the first batch's
type only when the cast loses nothing (every value survives the round trip: ``2.0`` into
an int64 column, whole seconds into a ``timestamp[s]`` column), and only within one logical
kind (a date never becomes an int, an instant never loses or changes its time zone).
Anything else is refused naming the column, both types and the fix, before a byte of the
batch is written.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sparkshard.errors import SchemaError

__all__ = ["conform_batch"]


def conform_batch(batch: pa.RecordBatch | pa.Table, first: pa.Schema) -> pa.RecordBatch | pa.Table:
    """``batch`` with every column of the type ``first`` gives it; SchemaError if lossy."""
    if batch.schema.equals(first, check_metadata=False):
        return batch
    columns = []
    for field in first:
        column = batch.column(field.name)
        if column.type != field.type:
            column = _cast(field.name, column, field.type)
        columns.append(column)
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(columns, schema=first)
    return pa.RecordBatch.from_arrays(columns, schema=first)


def _cast(name: str, column: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    found = column.type
    problem = _kind_change(found, target)
    cast = None
    if problem is None:
        try:
            cast = pc.cast(column, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            problem = str(exc).splitlines()[0]
    if cast is not None and not _round_trips(column, cast):
        problem = "some values would change"
    if problem is not None or cast is None:
        raise SchemaError(
            f"column '{name}' is {target} in this write's first batch but {found} in a later "
            f"one ({problem}): cast the data to {target} before writing it (losslessly), or "
            "write the batches with different types as separate datasets"
        )
    return cast


def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    for kind, test in (
        ("bool", pa.types.is_boolean),
        ("number", lambda x: pa.types.is_integer(x) or pa.types.is_floating(x)),
        ("decimal", pa.types.is_decimal),
        ("text", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
        ("binary", lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x)),
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
        ("time", pa.types.is_time),
        ("duration", pa.types.is_duration),
    ):
        if test(t):
            return kind
    return str(t)  # nested types: only the very same type conforms


def _kind_change(found: pa.DataType, target: pa.DataType) -> str | None:
    if _kind(found) != _kind(target):
        return f"a {_kind(target)} column cannot hold {_kind(found)} values"
    if pa.types.is_timestamp(found) and found.tz != target.tz:
        return f"the later batch's time zone {found.tz} is not the column's {target.tz}"
    return None


def _round_trips(original: pa.Array | pa.ChunkedArray, cast: pa.Array | pa.ChunkedArray) -> bool:
    """Whether casting ``cast`` back gives ``original`` exactly (nulls and NaNs included)."""
    if len(original) == 0:
        return True
    try:
        back = pc.cast(cast, original.type, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    if not pc.all(pc.equal(pc.is_null(original), pc.is_null(back))).as_py():
        return False
    same = pc.equal(original, back)
    if pa.types.is_floating(original.type):
        same = pc.or_kleene(same, pc.and_(pc.is_nan(original), pc.is_nan(back)))
    return bool(pc.all(pc.fill_null(same, True)).as_py())
