"""MDS column encodings: how one value of a column becomes bytes in a sample, and back.

The names and byte layouts are MDS's (mosaicml-streaming 0.13): ``bytes``, ``str``,
``int``, the numpy scalars ``int8..uint64`` / ``float16..float64``, ``str_int``,
``str_float``, ``str_decimal``, ``ndarray[:dtype[:shape]]``, ``json``, ``pkl`` and the
image encodings in :mod:`sparkshard.format.images`. This module is the per-value path;
the vectorized Arrow path lives in :mod:`sparkshard.format.arrow_encode`.
"""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

import numpy as np

from sparkshard.errors import EncodingError

__all__ = [
    "NDARRAY_DTYPE_CODES",
    "SCALAR_DTYPES",
    "Encoding",
    "NDArray",
    "Scalar",
    "get_encoding",
    "is_encoding",
]

SCALAR_DTYPES = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
)  # fmt: skip

# The 1-byte dtype code MDS writes before a dynamic-dtype ndarray.
NDARRAY_DTYPE_CODES = {
    "uint8": 8, "int8": 9, "uint16": 16, "int16": 17, "float16": 18,
    "uint32": 32, "int32": 33, "float32": 34, "uint64": 64, "int64": 65, "float64": 66,
}  # fmt: skip
_CODE_DTYPES = {code: name for name, code in NDARRAY_DTYPE_CODES.items()}
# Low two bits of the ndim byte: the width of each stored dimension.
_SHAPE_WIDTHS: dict[int, np.dtype[Any]] = {
    0: np.dtype("<u1"),
    1: np.dtype("<u2"),
    2: np.dtype("<u4"),
    3: np.dtype("<u8"),
}


class Encoding:
    """One MDS encoding. ``size`` is the fixed encoded size in bytes, or None if variable."""

    name: str = ""
    size: int | None = None
    unsafe: bool = False  # decoding may run arbitrary code (pickle)

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes | memoryview) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<encoding {self.name}>"

    def _expect(self, value: Any, kind: type | tuple[type, ...], what: str) -> None:
        if not isinstance(value, kind):
            raise EncodingError(
                f"encoding '{self.name}' expects {what}, got {type(value).__name__}: {value!r:.80}"
            )


class Bytes(Encoding):
    name = "bytes"

    def encode(self, value: Any) -> bytes:
        self._expect(value, (bytes, bytearray, memoryview), "bytes")
        return bytes(value)

    def decode(self, data: bytes | memoryview) -> bytes:
        return bytes(data)


class Str(Encoding):
    name = "str"

    def encode(self, value: Any) -> bytes:
        self._expect(value, str, "a str")
        return str(value).encode("utf-8")

    def decode(self, data: bytes | memoryview) -> str:
        return bytes(data).decode("utf-8")


class Scalar(Encoding):
    """A numpy scalar of one dtype, little-endian; decodes to the numpy scalar type."""

    def __init__(self, dtype: str) -> None:
        self.name = dtype
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.size = self.dtype.itemsize

    def encode(self, value: Any) -> bytes:
        kind = self.dtype.kind
        if kind in "iu":
            self._expect(value, (Integral, np.bool_), "an integer")
            info = np.iinfo(self.dtype)
            if not info.min <= int(value) <= info.max:
                raise EncodingError(
                    f"value {value} does not fit encoding '{self.name}' "
                    f"(range {info.min}..{info.max}); choose a wider integer encoding"
                )
            return np.array(int(value), self.dtype).tobytes()
        self._expect(value, (Real, np.floating, np.integer), "a real number")
        return np.array(value, self.dtype).tobytes()

    def decode(self, data: bytes | memoryview) -> Any:
        return np.frombuffer(data, self.dtype, count=1)[0]


class Int(Scalar):
    """MDS ``int``: an int64 that decodes to a Python int."""

    def __init__(self) -> None:
        super().__init__("int64")
        self.name = "int"

    def decode(self, data: bytes | memoryview) -> int:
        return int(np.frombuffer(data, self.dtype, count=1)[0])


class StrInt(Encoding):
    name = "str_int"

    def encode(self, value: Any) -> bytes:
        self._expect(value, Integral, "an int")
        return str(int(value)).encode("utf-8")

    def decode(self, data: bytes | memoryview) -> int:
        return int(bytes(data).decode("utf-8"))


class StrFloat(Encoding):
    name = "str_float"

    def encode(self, value: Any) -> bytes:
        self._expect(value, float, "a float")
        return str(value).encode("utf-8")

    def decode(self, data: bytes | memoryview) -> float:
        return float(bytes(data).decode("utf-8"))


class StrDecimal(Encoding):
    name = "str_decimal"

    def encode(self, value: Any) -> bytes:
        self._expect(value, Decimal, "a decimal.Decimal")
        return str(value).encode("utf-8")

    def decode(self, data: bytes | memoryview) -> Decimal:
        return Decimal(bytes(data).decode("utf-8"))


class Json(Encoding):
    name = "json"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        try:
            return json.dumps(value).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise EncodingError(f"encoding 'json' cannot store {value!r:.80}: {exc}") from exc

    def decode(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))


class Pickle(Encoding):
    name = "pkl"
    unsafe = True

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value)

    def decode(self, data: bytes | memoryview) -> Any:
        return pickle.loads(bytes(data))


class NDArray(Encoding):
    """``ndarray[:dtype[:shape]]``. Layout: ``[dtype code: 1]`` when the dtype is not in the
    name, ``[(ndim << 2) | width code: 1][shape: ndim x width]`` when the shape is not,
    then the values in C order, little-endian."""

    def __init__(self, dtype: str | None = None, shape: tuple[int, ...] | None = None) -> None:
        if dtype is not None and dtype not in NDARRAY_DTYPE_CODES:
            raise ValueError(
                f"ndarray dtype {dtype!r} is not storable: expected one of {SCALAR_DTYPES}"
            )
        if shape is not None and (not shape or min(shape) < 1):
            raise ValueError(f"ndarray shape {shape} must have positive dimensions")
        self.dtype = None if dtype is None else np.dtype(dtype).newbyteorder("<")
        self.shape = shape
        parts = (
            ["ndarray"]
            + ([dtype] if dtype else [])
            + ([",".join(map(str, shape))] if shape else [])
        )
        self.name = ":".join(parts)
        if self.dtype is not None and shape is not None:
            self.size = int(np.prod(shape)) * self.dtype.itemsize

    @classmethod
    def parse(cls, args: str) -> NDArray:
        dtype, _, shape_text = args.partition(":")
        shape = tuple(int(d) for d in shape_text.split(",")) if shape_text else None
        return cls(dtype or None, shape)

    def encode(self, value: Any) -> bytes:
        self._expect(value, np.ndarray, "a numpy.ndarray")
        array: np.ndarray = value
        if array.dtype.name not in NDARRAY_DTYPE_CODES:
            raise EncodingError(
                f"encoding '{self.name}' cannot store dtype {array.dtype}: use one of "
                f"{SCALAR_DTYPES}"
            )
        parts: list[bytes] = []
        if self.dtype is None:
            parts.append(bytes([NDARRAY_DTYPE_CODES[array.dtype.name]]))
        elif array.dtype != self.dtype:
            raise EncodingError(
                f"encoding '{self.name}' expects dtype {self.dtype.name}, got {array.dtype}"
            )
        if self.shape is None:
            parts.append(shape_header(array.shape))
        elif array.shape != self.shape:
            raise EncodingError(
                f"encoding '{self.name}' expects shape {self.shape}, got {array.shape}"
            )
        parts.append(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())
        return b"".join(parts)

    def decode(self, data: bytes | memoryview) -> np.ndarray:
        view = memoryview(data)
        pos = 0
        dtype = self.dtype
        if dtype is None:
            dtype = np.dtype(_CODE_DTYPES[view[0]]).newbyteorder("<")
            pos = 1
        shape = self.shape
        if shape is None:
            ndim, width = view[pos] >> 2, _SHAPE_WIDTHS[view[pos] & 3]
            dims = np.frombuffer(view, width, count=ndim, offset=pos + 1)
            shape = tuple(int(d) for d in dims)
            pos += 1 + ndim * width.itemsize
        return np.frombuffer(view[pos:], dtype).reshape(shape)


def shape_header(shape: tuple[int, ...]) -> bytes:
    """The ndim/width byte and the dims of a dynamic-shape ndarray (narrowest width)."""
    if not 1 <= len(shape) < 64:
        raise EncodingError(f"ndarray encodings store 1 to 63 dimensions, got shape {shape}")
    code = shape_width_code(max(shape))
    return bytes([(len(shape) << 2) | code]) + np.asarray(shape, _SHAPE_WIDTHS[code]).tobytes()


def shape_width_code(largest_dim: int) -> int:
    """The MDS width code (0..3 = 1, 2, 4, 8 bytes) that holds ``largest_dim``."""
    for code, width in _SHAPE_WIDTHS.items():
        if largest_dim < 1 << (8 * width.itemsize):
            return code
    raise EncodingError(f"ndarray dimension {largest_dim} is too large")


def get_encoding(name: str) -> Encoding:
    """The encoding named ``name``; ``ValueError`` listing the valid names otherwise."""
    from sparkshard.format import images

    head, _, args = name.partition(":")
    if head == "ndarray":
        return NDArray.parse(args)
    simple: dict[str, type[Encoding]] = {
        "bytes": Bytes, "str": Str, "int": Int, "str_int": StrInt, "str_float": StrFloat,
        "str_decimal": StrDecimal, "json": Json, "pkl": Pickle,
    }  # fmt: skip
    if not args and head in simple:
        return simple[head]()
    if not args and head in SCALAR_DTYPES:
        return Scalar(head)
    image = images.image_encoding(name)
    if image is not None:
        return image
    raise ValueError(
        f"unknown MDS encoding {name!r}: expected one of bytes, str, int, "
        f"{', '.join(SCALAR_DTYPES)}, str_int, str_float, str_decimal, "
        "ndarray[:dtype[:shape]], json, pkl, pil, jpeg, png, jpeg_array, list[pil|jpeg|png]"
    )


def is_encoding(name: str) -> bool:
    try:
        get_encoding(name)
    except ValueError:
        return False
    return True
