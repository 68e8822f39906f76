"""Fixtures that drive the real mosaicml-streaming 0.13.0 in its own venv.

The peer and the rule for tests that need it live in ``tests/mosaic_peer.py``: tests marked
``mosaic`` fail (``SPARKSHARD_REQUIRE_MOSAIC=1``, as ``make pytest`` sets) or skip (otherwise)
when its interpreter is missing.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mosaic_peer import load_pickle, mosaic_view, require_mosaic_peer, run_mosaic_tool


@dataclass(frozen=True)
class MosaicSuite:
    """Datasets written by Mosaic's MDSWriter, and every sample as Mosaic decodes it."""

    root: Path
    view: dict[str, dict[str, Any]]

    def samples(self, name: str) -> list[dict[str, Any]]:
        entry = self.view[str(self.root / name)]
        assert entry["ok"], entry.get("error")
        return entry["samples"]


@pytest.fixture(scope="session")
def mosaic_suite(tmp_path_factory: pytest.TempPathFactory) -> MosaicSuite:
    require_mosaic_peer()
    root = tmp_path_factory.mktemp("mosaic-suite")
    run_mosaic_tool("write-suite", root)
    return MosaicSuite(root, load_pickle(root / "mosaic_view.pkl"))


MosaicDump = Callable[..., dict[str, dict[str, Any]]]


@pytest.fixture(scope="session")
def mosaic_dump(tmp_path_factory: pytest.TempPathFactory) -> MosaicDump:
    """``mosaic_dump(dirs, validate_hash=None)`` -> {str(dir): Mosaic's reading of it}."""

    def dump(dirs: list[Path], validate_hash: str | None = None) -> dict[str, dict[str, Any]]:
        out = tmp_path_factory.mktemp("mosaic-dump") / "dump.pkl"
        return mosaic_view(out, dirs, validate_hash)

    return dump


def canon(value: Any) -> Any:
    """A comparable form of a decoded value: type-strict, bitwise for floats and arrays.

    Images compare by mode, size and pixels; Decimals by their exact text; NaNs by bits.
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        return ("image", value.mode, value.size, np.asarray(value).tobytes())
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str, value.tobytes())
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [canon(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: canon(v) for k, v in value.items()})
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(v) for v in value))
    return (type(value).__name__, value)


def assert_same_value(ours: Any, theirs: Any, where: str) -> None:
    """Fail with a readable message unless ``ours`` and ``theirs`` are the same value."""
    if canon(ours) != canon(theirs):
        pytest.fail(f"{where}: ours {_show(ours)} != Mosaic's {_show(theirs)}")


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return f"float nan (bits {struct.pack('<d', value).hex()})"
    if isinstance(value, np.ndarray):
        return f"ndarray(dtype={value.dtype}, shape={value.shape}, {value.tolist()!r:.200})"
    return f"{type(value).__module__}.{type(value).__qualname__} {value!r:.300}"


@pytest.fixture(scope="session")
def same_value() -> Callable[[Any, Any, str], None]:
    """``same_value(ours, theirs, where)``: see ``assert_same_value``."""
    return assert_same_value
