"""A row group's Arrow columns as the MDS path stores and restores them.

The values a table reader yields must be exactly those the MDS path yields for the same
rows after ``delta_to_shards``: same numpy dtypes, masked arrays for nullable fixed-size
columns, ``None`` for null variable-size values, memoryviews for bytes in batches. So a row
group is encoded the way the shard writer encodes it (:func:`sparkshard.format.arrow_encode.
encode_column`) into *stored* columns (see ``Stored``; plus ``<name>__null`` masks where a
row group has nulls), and batches are restored by the readers' one restoring function
(:func:`loader.read.restore.restore_column`).

:func:`logical_table` first turns a file's raw row group into the table's logical columns:
physical names mapped back (column mapping), partition values typed from the schema,
columns the file predates as nulls, every column cast to the schema's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loader.read.mapped import _from_matrix
from sparkshard.errors import SchemaError
from sparkshard.format.arrow_encode import encode_column, null_mask, numeric_values, plain_array
from sparkshard.format.encodings import NDArray, get_encoding
from sparkshard.format.schema import ColumnSpec

__all__ = [
    "ByteValues",
    "Stored",
    "logical_table",
    "merged",
    "partition_array",
    "stored_columns",
    "stored_pieces",
]


@dataclass(frozen=True)
class ByteValues:
    """A row group's bytes column: value ``i`` is ``buffers[part[i]][bounds[i, 0]:bounds[i, 1]]``
    (a row group decoded piece by piece has one buffer per piece). No object per row is made
    when the row group is decoded; a batch cuts its own views."""

    buffers: tuple[memoryview, ...]  # read-only
    part: np.ndarray  # (rows,) int32: the buffer of each value
    bounds: np.ndarray  # (rows, 2) int64: start and end of each value in its buffer

    @classmethod
    def of(cls, buffer: memoryview, bounds: np.ndarray) -> ByteValues:
        """Values that all lie in one buffer."""
        return cls((buffer,), np.zeros(len(bounds), np.int32), bounds)

    @classmethod
    def concat(cls, pieces: list[ByteValues]) -> ByteValues:
        """The values of ``pieces`` one after the other (their buffers are not copied)."""
        firsts = np.cumsum([0] + [len(p.buffers) for p in pieces[:-1]])
        return cls(
            tuple(buffer for p in pieces for buffer in p.buffers),
            np.concatenate([p.part + first for p, first in zip(pieces, firsts)]).astype(np.int32),
            np.concatenate([p.bounds for p in pieces]),
        )

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, j: int) -> memoryview:
        start, end = self.bounds[j].tolist()
        return self.buffers[int(self.part[j])][start:end]


# Stored column name -> numbers (rows, ...) for fixed-size values; for variable-size ones a
# ByteValues (bytes), a (rows, length) matrix when a list column's rows all have one length,
# or an object array of per-row values. A batch gathers each by one fancy index per group.
Stored = dict[str, np.ndarray | ByteValues]


def stored_columns(specs: list[ColumnSpec], table: pa.Table) -> Stored:
    """The stored columns of ``table``'s rows in one piece (see :func:`stored_pieces`)."""
    return merged(stored_pieces(specs, table))


def stored_pieces(specs: list[ColumnSpec], table: pa.Table) -> list[tuple[int, Stored]]:
    """``(rows, stored columns)`` of each record batch of ``table``, in order: values as the
    MDS reader holds them after decoding a shard, and a null mask for each nullable column
    that has nulls in that batch. A row group read in batches stays in those pieces, so no
    column is copied into one buffer (fresh memory is what a first read waits for)."""
    pieces = [(batch.num_rows, _stored(specs, batch)) for batch in table.to_batches()]
    return pieces or [(0, _stored(specs, table))]


def merged(pieces: list[tuple[int, Stored]]) -> Stored:
    """Pieces of stored columns as one (bytes keep their buffers; a mask a piece lacks
    reads as zeros there)."""
    if len(pieces) == 1:
        return pieces[0][1]
    names = list(dict.fromkeys(name for _, stored in pieces for name in stored))
    out: Stored = {}
    for name in names:
        parts = [stored.get(name) for _, stored in pieces]
        if isinstance(parts[0], ByteValues):
            out[name] = ByteValues.concat(parts)  # type: ignore[arg-type]
            continue
        arrays = [part for part in parts if isinstance(part, np.ndarray)]
        like = arrays[0]
        if len(arrays) < len(parts):  # a mask some pieces lack: no nulls there
            arrays = [
                part if isinstance(part, np.ndarray) else np.zeros(rows, like.dtype)
                for (rows, _), part in zip(pieces, parts)
            ]
        if len({(a.dtype, a.shape[1:]) for a in arrays}) > 1:  # matrices and per-row arrays
            arrays = [_objects(list(a)) if a.dtype != object else a for a in arrays]
        whole = np.concatenate(arrays)
        whole.flags.writeable = like.flags.writeable
        out[name] = whole
    return out


def _stored(specs: list[ColumnSpec], table: pa.Table | pa.RecordBatch) -> Stored:
    out: Stored = {}
    for spec in specs:
        array = plain_array(table.column(spec.name))
        decoded = _direct(spec, array)
        if decoded is not None:
            mask = null_mask(spec, array)
        else:
            payloads, mask = encode_column(spec, array)
            decoded = _decoded(spec, payloads, array)
        out[spec.name] = (
            decoded if isinstance(decoded, (np.ndarray, ByteValues)) else _objects(decoded)
        )
        if spec.nullable and mask is not None and mask.any():
            out[spec.null_column] = mask  # absent where the piece has no nulls
    return out


def _direct(spec: ColumnSpec, array: pa.Array) -> Any:
    """The stored values of the kinds that need no payloads: numbers straight from Arrow's
    buffers, binaries as views of Arrow's data buffer, lists of numbers as their flattened
    values; None for the rest, which go through :func:`encode_column` (the writer's
    encoding, with its checks)."""
    encoding = get_encoding(spec.encoding)
    values = numeric_values(spec, array)
    if values is not None:
        # (rows, bytes per value): the numbers' bytes, as a fixed-size column's payloads.
        return _from_matrix(
            encoding, values.view(np.uint8).reshape(len(array), values.dtype.itemsize)
        )
    if encoding.name == "bytes" and (
        pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)
    ):
        return _binary_views(array)
    return _vectors(encoding, array)


def _binary_views(array: pa.Array) -> ByteValues:
    """A binary array's values as bounds into its own data buffer (null rows' bounds are
    whatever Arrow holds there: the null mask decides)."""
    width = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _, offsets, data = array.buffers()
    n = len(array)
    ends = np.frombuffer(offsets, width)[array.offset : array.offset + n + 1]
    bounds = np.stack([ends[:-1], ends[1:]], axis=1).astype(np.int64)  # (rows, 2)
    body = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return ByteValues.of(memoryview(body.data).toreadonly(), bounds)


def _objects(values: list[Any]) -> np.ndarray:
    """``values`` as a 1-D object array, each value one element (arrays are not unpacked)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _decoded(spec: ColumnSpec, payloads: pa.Array, array: pa.Array) -> Any:
    encoding = get_encoding(spec.encoding)
    n = len(payloads)
    if encoding.size is not None:
        data = _payload_bytes(payloads)
        # (rows, bytes per value): fixed-size payloads lie back to back.
        return _from_matrix(encoding, data.reshape(n, encoding.size))
    if encoding.name == "str":
        return [v if v is not None else "" for v in array.to_pylist()]
    if encoding.name == "bytes":
        data, offsets = _payload_bytes(payloads), _offsets(payloads)
        bounds = np.stack([offsets[:-1], offsets[1:]], axis=1).astype(np.int64, copy=False)
        return ByteValues.of(memoryview(data.data).toreadonly(), bounds)
    vectors = _vectors(encoding, array)
    if vectors is not None:
        return vectors
    return [encoding.decode(v) for v in payloads.to_pylist()]


def _vectors(encoding: Any, array: pa.Array) -> list[np.ndarray] | np.ndarray | None:
    """A one-level list of numbers as the 1-D arrays its ``ndarray`` encoding decodes to,
    sliced from the flattened values (no per-value decode), or as one matrix when every row
    has the same length; None for anything else."""
    if not isinstance(encoding, NDArray) or encoding.dtype is None:
        return None
    t = array.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return None
    if not (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        return None
    flat = pc.list_flatten(array)
    if flat.null_count:
        return None  # encode_column has refused it already; keep one code path for errors
    values = np.asarray(flat.to_numpy(zero_copy_only=False)).astype(encoding.dtype, copy=False)
    values.flags.writeable = False  # as the MDS path's views of a shard
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(np.int64)
    if len(lengths) and not array.null_count and (lengths == lengths[0]).all():
        # Rows of one length (embeddings): one (rows, length) matrix; a batch's rows are cut
        # from it as views when the batch is built, not one array per row here.
        return values.reshape(len(lengths), int(lengths[0]))
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return [values[a:b] for a, b in zip(starts, ends)]


def _offsets(payloads: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(payloads.buffers()[1], np.int64)
    return offsets[payloads.offset : payloads.offset + len(payloads) + 1] - offsets[payloads.offset]


def _payload_bytes(payloads: pa.Array) -> np.ndarray:
    """The payloads' bytes, back to back, as a uint8 array (no copy)."""
    offsets = np.frombuffer(payloads.buffers()[1], np.int64)
    first, last = offsets[payloads.offset], offsets[payloads.offset + len(payloads)]
    buffer = payloads.buffers()[2]
    if buffer is None:
        return np.zeros(0, np.uint8)
    return np.frombuffer(buffer, np.uint8)[first:last]


def partition_array(value: str | None, field: pa.Field, rows: int, where: str) -> pa.Array:
    """A partition column: the add action's string value typed by the schema, ``rows`` times."""
    if value is None or (value == "" and not pa.types.is_string(field.type)):
        return pa.nulls(rows, field.type)
    t = field.type
    try:
        if pa.types.is_timestamp(t):
            naive = pa.array([value.replace("T", " ").rstrip("Z")]).cast(pa.timestamp(t.unit))
            typed = naive.cast(t)
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            typed = pa.array([value.encode("utf-8")], t)
        else:
            typed = pa.array([value]).cast(t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(
            f"{where}: partition value {value!r} of column '{field.name}' is not a {t}: {exc}"
        ) from None
    return pa.repeat(typed[0], rows)


def logical_table(
    raw: pa.Table,
    schema: pa.Schema,
    physical: Mapping[str, Any],
    partitions: Mapping[str, str | None],
    where: str,
) -> pa.Table:
    """``raw`` (a row group read with physical names) as ``schema``'s columns."""
    columns = []
    for field in schema:
        if field.name in partitions:
            columns.append(partition_array(partitions[field.name], field, raw.num_rows, where))
            continue
        name, nested = physical.get(field.name, (field.name, {}))
        if name not in raw.column_names:  # a column added after this file was written
            columns.append(pa.nulls(raw.num_rows, field.type))
            continue
        column: pa.Array | pa.ChunkedArray = raw.column(name)  # pieces stay pieces
        if nested:
            column = _renamed(plain_array(column), nested, field.type)
        try:
            columns.append(column.cast(field.type) if column.type != field.type else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(
                f"{where}: column '{field.name}' holds {column.type}, which does not cast to "
                f"the table's {field.type}: {exc}"
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def _renamed(column: pa.Array, nested: Mapping[str, Any], target: pa.DataType) -> pa.Array:
    """A struct column's physical field names replaced by the logical ones (recursively)."""
    if not pa.types.is_struct(column.type) or not pa.types.is_struct(target):
        return column
    children, fields = [], []
    for i in range(target.num_fields):
        logical = target.field(i)
        name, inner = nested.get(logical.name, (logical.name, {}))
        if column.type.get_field_index(name) < 0:
            child = pa.nulls(len(column), logical.type)
        else:
            child = _renamed(column.field(name), inner, logical.type)
        children.append(child)
        fields.append(pa.field(logical.name, child.type, logical.nullable))
    mask = column.is_null() if column.null_count else None
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)
