"""Drive the REAL mosaicml-streaming 0.13.0. Runs ONLY under the peer venv's python.

Subcommands (results are pickles readable from the main venv):

- ``write-suite OUT``: write Mosaic datasets under ``OUT/<name>`` covering every MDS
  encoding under every compression and several hash algorithms, a merged index of two
  sub-directories (``merge_index``), a dataset whose first shard is empty, and one with no
  shards at all; then dump Mosaic's own view of each to ``OUT/mosaic_view.pkl``.
- ``dump OUT_PICKLE DIR [DIR ...] [--validate-hash ALGO]``: read each dataset with
  ``StreamingDataset(local=..., shuffle=False, batch_size=1)`` and pickle every sample.

A dump maps each dataset directory to ``{"ok": True, "samples": [...], "index": {...}}`` or
``{"ok": False, "error": "..."}``. Datasets are read from a copy, because Mosaic writes
decompressed shards next to the compressed ones.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import shutil
import sys
import tempfile
import traceback
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# `streaming` is imported inside the functions that need it, so that the main venv can
# import this module for `COLUMNS` and `make_sample` (it must never import `streaming`).

COMPRESSIONS: list[str | None] = [None, "zstd", "zstd:7", "br", "bz2", "gz", "snappy"]
HASH_SETS: list[list[str]] = [
    ["xxh64"],
    ["sha1", "xxh3_64"],
    ["md5", "xxh128"],
    ["xxh32"],
    ["xxh3_128"],
    [],
    ["blake2b", "sha256", "xxh64"],
]

# Every encoding Mosaic 0.13.0 registers, some several times with different parameters.
COLUMNS: dict[str, str] = {
    "bytes": "bytes",
    "str": "str",
    "int": "int",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "f16": "float16",
    "f32": "float32",
    "f64": "float64",
    "str_int": "str_int",
    "str_float": "str_float",
    "str_decimal": "str_decimal",
    "nd_any": "ndarray",
    "nd_i16": "ndarray:int16",
    "nd_u8": "ndarray:uint8",
    "nd_f32_3x4": "ndarray:float32:3,4",
    "nd_u64_5": "ndarray:uint64:5",
    "nd_f16_2x2x2": "ndarray:float16:2,2,2",
    "json": "json",
    "pkl": "pkl",
    "pil": "pil",
    "jpeg": "jpeg",
    "png": "png",
    "jpeg_array": "jpeg_array",
    "jpegarray": "jpegarray",
    "list_pil": "list[pil]",
    "list_jpeg": "list[jpeg]",
    "list_png": "list[png]",
}

SCALAR_ENCODINGS = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"}
SCALAR_ENCODINGS |= {"float16", "float32", "float64"}
ND_DTYPES = ["uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32"]
ND_DTYPES += ["uint64", "int64", "float64"]
SPECIAL_FLOATS = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-8, -3.5, 65504.0]
PIL_MODES = ["L", "RGB", "RGBA", "1", "I", "F", "LA"]
PNG_MODES = ["L", "RGB", "RGBA", "I;16", "1"]
JPEG_MODES = ["L", "RGB", "CMYK"]


def _image(rng: np.random.Generator, mode: str) -> Image.Image:
    width, height = int(rng.integers(1, 12)), int(rng.integers(1, 10))
    base = Image.new("RGBA", (width, height))
    base.putdata([tuple(int(v) for v in rng.integers(0, 256, 4)) for _ in range(width * height)])
    if mode == "I;16":
        pixels = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        return Image.frombytes("I;16", (width, height), pixels.astype("<u2").tobytes())
    if mode in ("I", "F"):
        return base.convert("L").convert(mode)
    return base.convert(mode)


def _jpeg_bytes(img: Image.Image) -> bytes:
    out = BytesIO()
    img.save(out, format="JPEG")
    return out.getvalue()


def _ndarray(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype.startswith("float"):
        arr = rng.standard_normal(shape).astype(dtype)
        flat = arr.reshape(-1)
        flat[0] = SPECIAL_FLOATS[int(rng.integers(len(SPECIAL_FLOATS)))]
        return arr
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _shape(rng: np.random.Generator, i: int) -> tuple[int, ...]:
    if i == 3:
        return (300,)  # uint16 shape header
    if i == 5:
        return (1, 70_000)  # uint32 shape header
    ndim = int(rng.integers(1, 4))
    return tuple(int(d) for d in rng.integers(1, 5, ndim))


def make_sample(i: int, seed: int = 0) -> dict[str, Any]:
    """Sample ``i`` of the suite: deterministic, with edge values at the small indices."""
    rng = np.random.default_rng([seed, i])
    flt = SPECIAL_FLOATS[i % len(SPECIAL_FLOATS)]
    u64 = [0, 2**64 - 1, 2**63][i % 3]
    i64 = [-(2**63), 2**63 - 1, 0, -1][i % 4]
    text = ["", "héllo wörld", "日本語 ☃", "x" * (i * 13)][i % 4]
    return {
        "bytes": [b"", b"\x00\xff" * i, rng.bytes(int(rng.integers(0, 64)))][i % 3],
        "str": text,
        "int": i64,
        "u8": np.uint8([0, 255, i][i % 3]),
        "u16": np.uint16([0, 65535, i][i % 3]),
        "u32": np.uint32([0, 2**32 - 1, i][i % 3]),
        "u64": np.uint64(u64),
        "i8": np.int8([-128, 127, -i % 128][i % 3]),
        "i16": np.int16([-32768, 32767, -i][i % 3]),
        "i32": np.int32([-(2**31), 2**31 - 1, -i][i % 3]),
        "i64": np.int64(i64),
        "f16": np.float16(flt),
        "f32": np.float32(flt if i % 2 else rng.standard_normal()),
        "f64": np.float64(flt if i % 2 else rng.standard_normal()),
        "str_int": [0, -(10**30), 10**40 + i, -7][i % 4],
        "str_float": [1.5, -0.0, math.inf, math.nan, 1e300, float(rng.standard_normal())][i % 6],
        "str_decimal": Decimal(
            ["0", "-1.50", "3.14159265358979323846264338327950288", "1E+5"][i % 4]
        ),
        "nd_any": _ndarray(rng, ND_DTYPES[i % len(ND_DTYPES)], _shape(rng, i)),
        "nd_i16": _ndarray(rng, "int16", _shape(rng, i + 1)),
        "nd_u8": _ndarray(rng, "uint8", (int(rng.integers(1, 40)),)),
        "nd_f32_3x4": _ndarray(rng, "float32", (3, 4)),
        "nd_u64_5": _ndarray(rng, "uint64", (5,)),
        "nd_f16_2x2x2": _ndarray(rng, "float16", (2, 2, 2)),
        "json": [None, {"a": [1, 2.5, "x"], "b": {"c": None}}, [i, "ü", True], "s", 3.25][i % 5],
        "pkl": [{"k": (1, 2)}, {3, 4}, Decimal("2.5"), None, bytearray(b"raw")][i % 5],
        "pil": _image(rng, PIL_MODES[i % len(PIL_MODES)]),
        "jpeg": _image(rng, JPEG_MODES[i % len(JPEG_MODES)]),
        "png": _image(rng, PNG_MODES[i % len(PNG_MODES)]),
        "jpeg_array": [_jpeg_bytes(_image(rng, "RGB")) for _ in range(1 + i % 3)],
        "jpegarray": [_jpeg_bytes(_image(rng, "L"))],
        "list_pil": [_image(rng, PIL_MODES[(i + k) % len(PIL_MODES)]) for k in range(i % 3)],
        "list_jpeg": [_image(rng, "RGB") for _ in range(1 + i % 2)],
        "list_png": [_image(rng, PNG_MODES[(i + k) % len(PNG_MODES)]) for k in range(i % 4)],
    }


def _write(out: Path, n: int, start: int = 0, **kwargs: Any) -> None:
    from streaming import MDSWriter

    with MDSWriter(out=str(out), columns=COLUMNS, **kwargs) as writer:
        for i in range(start, start + n):
            writer.write(make_sample(i))


def write_suite(out: Path) -> list[Path]:
    """Write every dataset of the suite under ``out``; return their directories."""
    from streaming.base.util import merge_index

    dirs = []
    for compression, hashes in zip(COMPRESSIONS, HASH_SETS, strict=True):
        name = f"enc-{compression or 'none'}".replace(":", "-")
        _write(out / name, 24, compression=compression, hashes=hashes, size_limit=1 << 14)
        dirs.append(out / name)
    merged = out / "merged"
    _write(merged / "part0", 9, compression="zstd", hashes=["xxh64"], size_limit=1 << 13)
    _write(merged / "part1", 7, start=9, compression="gz", hashes=["sha1"], size_limit=None)
    merge_index(str(merged))
    dirs.append(merged)
    # A shard limit below the first sample makes Mosaic flush an empty shard 0 first.
    _write(out / "empty-first-shard", 5, compression=None, hashes=["xxh64"], size_limit=1 << 10)
    dirs.append(out / "empty-first-shard")
    _write(out / "no-shards", 0, compression="zstd", hashes=["xxh64"])
    dirs.append(out / "no-shards")
    return dirs


def _portable(value: Any) -> Any:
    """Make a decoded value picklable and loadable in the main venv."""
    if isinstance(value, Image.Image):
        value.load()
        copy = value.copy()
        copy.info = {}
        return copy
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def read_with_mosaic(path: Path, validate_hash: str | None) -> dict[str, Any]:
    """Every sample of the dataset at ``path`` as Mosaic's StreamingDataset decodes it."""
    from streaming import StreamingDataset

    try:
        with tempfile.TemporaryDirectory(prefix="mosaic-read-") as tmp:
            local = Path(tmp) / "ds"
            shutil.copytree(path, local)
            dataset = StreamingDataset(
                local=str(local),
                shuffle=False,
                batch_size=1,
                validate_hash=validate_hash,
                allow_unsafe_types=True,
            )
            samples = [
                {k: _portable(v) for k, v in dataset[i].items()} for i in range(len(dataset))
            ]
            index = json.loads((local / "index.json").read_text())
            del dataset
        return {"ok": True, "samples": samples, "index": index}
    except Exception:
        return {"ok": False, "error": traceback.format_exc()}


def dump(out_pickle: Path, dirs: list[Path], validate_hash: str | None) -> None:
    result = {str(d): read_with_mosaic(d, validate_hash) for d in dirs}
    with open(out_pickle, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mosaic_tool")
    sub = parser.add_subparsers(dest="command", required=True)
    suite = sub.add_parser("write-suite")
    suite.add_argument("out", type=Path)
    dumper = sub.add_parser("dump")
    dumper.add_argument("out_pickle", type=Path)
    dumper.add_argument("dirs", type=Path, nargs="+")
    dumper.add_argument("--validate-hash", default=None)
    args = parser.parse_args(argv)
    if args.command == "write-suite":
        dirs = write_suite(args.out)
        dump(args.out / "mosaic_view.pkl", dirs, validate_hash=None)
        print(json.dumps([str(d) for d in dirs]))
    else:
        dump(args.out_pickle, args.dirs, args.validate_hash)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
