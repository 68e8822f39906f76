"""Every MDS encoding honours one contract: decode(encode(v)) == v, fixed sizes are exact."""

from __future__ import annotations

import io
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparkshard.errors import EncodingError
from sparkshard.format.encodings import SCALAR_DTYPES, get_encoding, is_encoding


def _image(mode: str = "RGB", size: tuple[int, int] = (5, 3)) -> Image.Image:
    pixels = np.arange(size[0] * size[1] * len(mode), dtype=np.uint8) * 7
    return Image.frombytes(mode, size, pixels.tobytes())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Image.Image):
        return (
            a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
        )
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b) and type(a) is type(b)


CASES: list[tuple[str, Any]] = [
    ("bytes", b"\x00\xffabc"),
    ("bytes", b""),
    ("str", "héllo ✓"),
    ("str", ""),
    ("int", -(2**63)),
    ("int", 2**63 - 1),
    ("str_int", 10**30),
    ("str_float", 1.0e-300),
    ("str_float", float("nan")),
    ("str_decimal", Decimal("-123.4500")),
    ("json", {"a": [1, 2.5, None, "x"], "b": {"c": True}}),
    ("pkl", {"set": {1, 2}, "tuple": (1, "a")}),
    ("ndarray", np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
    ("ndarray", np.zeros((0,), np.float32)),
    ("ndarray:float64", np.array([[np.nan, 1.0], [2.0, -0.0]])),
    ("ndarray:uint8:4", np.array([1, 2, 3, 255], np.uint8)),
    ("ndarray::2,2", np.eye(2, dtype=np.float16)),
    ("ndarray:int64", np.arange(70000, dtype=np.int64)),  # 3-byte dims: uint32 width
    ("pil", _image("RGB")),
    ("pil", _image("L", (300, 2))),
    ("png", _image("RGBA")),
    ("list[pil]", [_image("RGB"), _image("L")]),
    ("list[png]", [_image("RGB")]),
    *[(dtype, np.dtype(dtype).type(7)) for dtype in SCALAR_DTYPES],
    ("int8", np.int8(-128)),
    ("uint64", np.uint64(2**64 - 1)),
    ("float32", np.float32("inf")),
]


@pytest.mark.parametrize(
    ("name", "value"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_round_trip(name: str, value: Any) -> None:
    encoding = get_encoding(name)
    data = encoding.encode(value)
    if encoding.size is not None:
        assert len(data) == encoding.size
    assert _same(value, encoding.decode(data))


def test_jpeg_round_trips_within_lossy_tolerance() -> None:
    image = _image("RGB", (16, 16))
    for name in ("jpeg", "list[jpeg]", "jpeg_array"):
        encoding = get_encoding(name)
        value = [image, image] if name != "jpeg" else image
        decoded = encoding.decode(encoding.encode(value))
        decoded = decoded if isinstance(decoded, list) else [decoded]
        for out in decoded:
            assert out.size == image.size
            diff = np.abs(np.asarray(out, np.int16) - np.asarray(image, np.int16))
            assert diff.mean() < 16


def test_jpeg_keeps_the_original_file_bytes() -> None:
    out = io.BytesIO()
    _image("RGB", (8, 8)).save(out, format="JPEG", quality=50)
    opened = Image.open(io.BytesIO(out.getvalue()))
    assert get_encoding("png").decode(get_encoding("png").encode(opened)).size == (8, 8)


def test_ndarray_layout_matches_mds() -> None:
    # dtype code 34 (float32), then (ndim 1 << 2 | width uint8), dim 3, then the values.
    data = get_encoding("ndarray").encode(np.array([1, 2, 3], np.float32))
    assert data[:3] == bytes([34, (1 << 2) | 0, 3])
    assert data[3:] == np.array([1, 2, 3], "<f4").tobytes()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("int8", 128, "does not fit"),
        ("uint8", -1, "does not fit"),
        ("int32", 1.5, "expects an integer"),
        ("str", 5, "expects a str"),
        ("ndarray:float32", np.zeros(3, np.float64), "expects dtype float32"),
        ("ndarray:int8:3", np.zeros(2, np.int8), "expects shape"),
        ("ndarray", np.array(["a"]), "cannot store dtype"),
        ("json", {1, 2}, "cannot store"),
        ("str_decimal", 1.5, "decimal.Decimal"),
    ],
)
def test_bad_values_name_the_encoding(name: str, value: Any, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        get_encoding(name).encode(value)


def test_unknown_encoding_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown MDS encoding 'float128'.*str_decimal"):
        get_encoding("float128")
    assert not is_encoding("ndarray:complex64")
    assert is_encoding("list[jpeg]") and is_encoding("jpegarray")
