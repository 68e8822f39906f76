"""Vectorized encoding: one Arrow column -> one MDS payload per sample, as an Arrow array.

Numbers, strings, binaries and numeric lists are encoded with numpy and Arrow kernels
over the column's buffers, never a Python loop per row (JSON is the one exception: it
goes through Python objects by nature). Each encoder returns a ``large_binary`` array
with no nulls; nulls become placeholders and are reported in a separate mask.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkshard.errors import EncodingError
from sparkshard.format.encodings import (
    NDARRAY_DTYPE_CODES,
    SCALAR_DTYPES,
    NDArray,
    get_encoding,
    shape_width_code,
)
from sparkshard.format.schema import ColumnSpec
from sparkshard.format.values import placeholder_bytes

__all__ = ["encode_column", "fixed_payloads", "null_mask", "numeric_values", "plain_array"]

_BINARY = pa.large_binary()
_EMPTY = pa.scalar(b"", _BINARY)  # the separator when joining payloads


def encode_column(
    spec: ColumnSpec, column: pa.Array | pa.ChunkedArray
) -> tuple[pa.Array, np.ndarray | None]:
    """(payloads, null mask as uint8 or None) for every row of ``column``."""
    array = plain_array(column)
    mask = null_mask(spec, array)
    if len(array) == 0:
        return pa.array([], _BINARY), mask
    try:
        payloads = _encode(spec, array, mask)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise EncodingError(
            f"column '{spec.name}' cannot be encoded as '{spec.encoding}': {exc}"
        ) from None
    return payloads, mask


def plain_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``column`` as one array, dictionary-decoded; a column of one chunk is that chunk, not
    a copy (``combine_chunks`` copies even then)."""
    array = column
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def null_mask(spec: ColumnSpec, array: pa.Array) -> np.ndarray | None:
    """The null mask of ``array`` as uint8 (1 = null) for a nullable column, None for a
    non-nullable one, whose nulls are refused."""
    if array.null_count and not spec.nullable:
        raise EncodingError(
            f"column '{spec.name}' is declared non-nullable but holds {array.null_count} "
            "null(s): declare the field nullable or fill the nulls first"
        )
    if not spec.nullable:
        return None
    if not array.null_count:
        return np.zeros(len(array), np.uint8)
    return np.asarray(array.is_null()).astype(np.uint8)


def numeric_values(spec: ColumnSpec, array: pa.Array) -> np.ndarray | None:
    """A scalar-encoded column's values as the little-endian numbers its payloads hold
    (nulls as 0), None for any other encoding."""
    encoding = spec.encoding
    if encoding not in SCALAR_DTYPES and encoding != "int":
        return None
    dtype = np.dtype("int64" if encoding == "int" else encoding).newbyteorder("<")
    try:
        return _numeric(spec, array, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise EncodingError(
            f"column '{spec.name}' cannot be encoded as '{spec.encoding}': {exc}"
        ) from None


def fixed_payloads(matrix: np.ndarray) -> pa.Array:
    """An (N, size) uint8 matrix as N payloads of ``size`` bytes each."""
    n, size = matrix.shape
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(size), n, [None, pa.py_buffer(np.ascontiguousarray(matrix))]
    )
    return fixed.cast(_BINARY)


def _encode(spec: ColumnSpec, array: pa.Array, mask: np.ndarray | None) -> pa.Array:
    encoding = spec.encoding
    t = array.type
    values = numeric_values(spec, array)
    if values is not None:
        return fixed_payloads(values.view(np.uint8).reshape(len(array), values.dtype.itemsize))
    if encoding.startswith("ndarray"):
        return _ndarray(spec, array, get_encoding(encoding), mask)  # type: ignore[arg-type]
    if encoding == "json" and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return pa.array(
            [json.dumps(_jsonable(v, t)).encode("utf-8") for v in array.to_pylist()], _BINARY
        )
    if encoding in ("str_int", "str_float", "str_decimal") and not _is_text(t):
        array = pc.cast(array, pa.string())
    elif _is_text(t) and encoding != "bytes":
        _check_utf8(spec, array)
    # Text and binaries pass through: str, bytes, json text, and pre-encoded images/pickles.
    if pa.types.is_fixed_size_binary(t):
        array = array.cast(pa.binary())
    array = array.cast(_BINARY)
    if array.null_count:
        array = pc.fill_null(array, pa.scalar(placeholder_bytes(encoding), _BINARY))
    return array


def _check_utf8(spec: ColumnSpec, array: pa.Array) -> None:
    """Text that is not valid UTF-8 would be written and then fail every read: refuse it."""
    try:
        array.validate(full=True)
    except pa.ArrowInvalid as exc:
        found = re.search(r"index (\d+)", str(exc))
        where = f"row {found.group(1)} of the batch" if found else "a row"
        raise EncodingError(
            f"column '{spec.name}' holds text that is not valid UTF-8 ({where}: {exc}); "
            "readers could not decode it. Fix the data (e.g. decode it with the right charset "
            f"in Spark), or keep the raw bytes with columns={{'{spec.name}': 'bytes'}}"
        ) from None


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _numeric(spec: ColumnSpec, array: pa.Array, dtype: np.dtype) -> np.ndarray:
    """The column as a numpy array of ``dtype``; temporal types as their integer counts."""
    t = array.type
    if pa.types.is_date64(t):
        array, t = array.cast(pa.date32()), pa.date32()
    if pa.types.is_boolean(t):
        array = array.cast(pa.uint8())
    elif pa.types.is_date32(t) or pa.types.is_time32(t):
        array = array.cast(pa.int32())
    elif pa.types.is_temporal(t):
        array = array.cast(pa.int64())
    elif pa.types.is_decimal(t):
        array = array.cast(pa.float64())
    if array.null_count:
        array = pc.fill_null(array, pa.scalar(0, array.type))
    values = array.to_numpy(zero_copy_only=False)
    return _checked_cast(spec.name, values, dtype)


def _checked_cast(name: str, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu" and values.dtype.kind in "iub" and len(values):
        info = np.iinfo(dtype)
        low, high = int(values.min()), int(values.max())
        if low < info.min or high > info.max:
            raise EncodingError(
                f"column '{name}' holds values {low}..{high}, outside {dtype.name} "
                f"({info.min}..{info.max}): choose a wider encoding"
            )
    return values.astype(dtype, copy=False)


def _jsonable(value: Any, t: pa.DataType) -> Any:
    """A Python value from Arrow's to_pylist as JSON sees it, guided by its Arrow type."""
    if value is None:
        return None
    if pa.types.is_map(t):
        pairs = [(k, _jsonable(v, t.item_type)) for k, v in value]
        return (
            dict(pairs)
            if pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type)
            else [list(p) for p in pairs]
        )
    if pa.types.is_struct(t):
        return {
            t.field(i).name: _jsonable(value[t.field(i).name], t.field(i).type)
            for i in range(t.num_fields)
        }
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [_jsonable(v, t.value_type) for v in value]
    return value


def _ndarray(spec: ColumnSpec, array: pa.Array, enc: NDArray, mask: np.ndarray | None) -> pa.Array:
    n = len(array)
    lengths: list[np.ndarray] = []
    values: pa.Array = array
    while (
        pa.types.is_list(values.type)
        or pa.types.is_large_list(values.type)
        or pa.types.is_fixed_size_list(values.type)
    ):
        lengths.append(pc.fill_null(pc.list_value_length(values), 0).to_numpy().astype(np.int64))
        values = values.flatten()
    if values.null_count:
        raise EncodingError(
            f"column '{spec.name}' has null elements inside its arrays, which ndarray cannot "
            "store: fill them (e.g. with NaN or 0) or store the column as 'json'"
        )
    dtype = enc.dtype if enc.dtype is not None else np.dtype(values.type.to_pandas_dtype())
    leaf = _checked_cast(spec.name, values.to_numpy(zero_copy_only=False), dtype.newbyteorder("<"))
    shapes = _sample_shapes(spec.name, lengths, n)  # (n, ndim)
    if enc.shape is not None:
        return _fixed_ndarray(spec, enc.shape, shapes, leaf, mask)
    counts = shapes.prod(axis=1)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts * leaf.itemsize, out=offsets[1:])
    body = pa.LargeBinaryArray.from_buffers(
        _BINARY, n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(leaf))]
    )
    width = shape_width_code(int(shapes.max()) if shapes.size else 0)
    width_dtype = np.dtype(f"<u{1 << width}")
    head = [np.full((n, 1), (shapes.shape[1] << 2) | width, np.uint8)]
    head.append(shapes.astype(width_dtype).view(np.uint8).reshape(n, -1))
    if enc.dtype is None:
        head.insert(0, np.full((n, 1), NDARRAY_DTYPE_CODES[dtype.name], np.uint8))
    return pc.binary_join_element_wise(fixed_payloads(np.hstack(head)), body, _EMPTY)


def _fixed_ndarray(
    spec: ColumnSpec,
    shape: tuple[int, ...],
    shapes: np.ndarray,
    leaf: np.ndarray,
    mask: np.ndarray | None,
) -> pa.Array:
    n = len(shapes)
    valid = np.ones(n, np.bool_) if mask is None else ~mask.astype(np.bool_)
    if shapes.shape[1] != len(shape) or not (shapes[valid] == np.asarray(shape)).all():
        bad = (
            np.flatnonzero(valid & (shapes != np.asarray(shape)).any(axis=1))
            if shapes.shape[1] == len(shape)
            else [0]
        )
        raise EncodingError(
            f"column '{spec.name}' is stored as '{spec.encoding}' but row {int(bad[0])} has "
            f"shape {tuple(shapes[bad[0]])}: every array must have shape {shape}"
        )
    size = int(np.prod(shape))
    matrix = np.zeros((n, size), leaf.dtype)  # nulls keep the zero placeholder
    matrix[valid] = leaf.reshape(-1, size)
    return fixed_payloads(matrix.view(np.uint8))


def _sample_shapes(name: str, lengths: list[np.ndarray], n: int) -> np.ndarray:
    """(n, ndim) shape of every sample from per-level list lengths; refuses ragged arrays."""
    shapes = np.zeros((n, len(lengths)), np.int64)
    owned = np.ones(n, np.int64)  # elements of the current level that belong to each sample
    for level, level_lengths in enumerate(lengths):
        firsts = np.cumsum(owned) - owned
        has = owned > 0
        dims = np.zeros(n, np.int64)
        dims[has] = level_lengths[firsts[has]]
        if not np.array_equal(np.repeat(dims, owned), level_lengths):
            raise EncodingError(
                f"column '{name}' holds ragged nested arrays (inner lists of different "
                "lengths in one row), which ndarray cannot store: pad them or use 'json'"
            )
        shapes[:, level] = dims
        owned = owned * dims
    return shapes
