"""Fixtures that drive the real mosaicml-streaming 0.13.0 in its own venv.

Mosaic pins numpy<2.2 and imports torchvision, so it never runs in this interpreter:
``mosaic_tool.py`` runs under ``.venv-mosaic/bin/python`` and hands values back as pickles.
Tests marked ``mosaic`` fail (``SPARKSHARD_REQUIRE_MOSAIC=1``, as ``make pytest`` sets) or
skip (otherwise) when that interpreter is missing.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = REPO_ROOT / ".venv-mosaic" / "bin" / "python"
TOOL = Path(__file__).resolve().parent / "mosaic_tool.py"
REQUIRE_ENV = "SPARKSHARD_REQUIRE_MOSAIC"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("mosaic") is None or PEER_PYTHON.exists():
        return
    reason = (
        f"the mosaicml-streaming peer interpreter {PEER_PYTHON} is missing; "
        "build it with `make setup`"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires the compatibility tests)")
    pytest.skip(reason)


def run_mosaic_tool(*args: str | os.PathLike[str], timeout: float = 300) -> str:
    """Run ``mosaic_tool.py`` under the peer python; return stdout, fail with its stderr."""
    proc = subprocess.run(
        [str(PEER_PYTHON), str(TOOL), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"mosaic_tool {args} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc.stdout


def load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)  # our own tool's output, never untrusted data


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
    if not PEER_PYTHON.exists():
        pytest.skip("mosaic peer interpreter missing")  # pytest_runtest_setup decides first
    root = tmp_path_factory.mktemp("mosaic-suite")
    run_mosaic_tool("write-suite", root)
    return MosaicSuite(root, load_pickle(root / "mosaic_view.pkl"))


MosaicDump = Callable[..., dict[str, dict[str, Any]]]


@pytest.fixture(scope="session")
def mosaic_dump(tmp_path_factory: pytest.TempPathFactory) -> MosaicDump:
    """``mosaic_dump(dirs, validate_hash=None)`` -> {str(dir): Mosaic's reading of it}."""

    def dump(dirs: list[Path], validate_hash: str | None = None) -> dict[str, dict[str, Any]]:
        out = tmp_path_factory.mktemp("mosaic-dump") / "dump.pkl"
        extra = ["--validate-hash", validate_hash] if validate_hash else []
        run_mosaic_tool("dump", out, *dirs, *extra)
        return load_pickle(out)

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
