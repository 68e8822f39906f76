"""The shape of the house: public APIs, what ``import loader`` loads, which way imports go."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import loader
import sparkshard
from sparkshard import errors

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    name
    for root in (sparkshard, loader)
    for name in [root.__name__]
    + [m.name for m in pkgutil.walk_packages(root.__path__, f"{root.__name__}.") if m.ispkg]
)
WRITING_SIDE = ("sparkshard.write", "sparkshard.spark", "sparkshard.delta", "sparkshard.tools")


def _isort_style(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then everything else (ruff's RUF022 order)."""
    if name.isupper():
        return 0, name
    return (1 if name[:1].isupper() else 2), name


def test_every_package_has_a_sorted_public_api() -> None:
    assert "sparkshard.storage" in PACKAGES and "loader.order.mix" in PACKAGES
    for name in PACKAGES:
        package = importlib.import_module(name)
        public = getattr(package, "__all__", None)
        assert isinstance(public, list), f"{name} has no __all__ list"
        assert public == sorted(public, key=_isort_style), f"{name}.__all__ is not sorted"
        for item in public:
            assert hasattr(package, item), f"{name}.__all__ names {item!r}, which it lacks"


def test_import_loader_loads_nothing_of_the_writing_side() -> None:
    code = (
        "import json, sys, loader; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sparkshard', 'pyspark', 'deltalake', 'pyarrow', 'torch'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
    )
    loaded = json.loads(out.stdout)
    assert "sparkshard.format.index" in loaded and "sparkshard.dataset.versions" in loaded
    wrong = [m for m in loaded if m.startswith(WRITING_SIDE)]
    wrong += [m for m in loaded if m.split(".")[0] in ("pyspark", "deltalake", "torch")]
    wrong += [m for m in loaded if m == "pyarrow.parquet"]
    assert not wrong, f"import loader loaded {wrong}"


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:  # module level only: imports inside functions are lazy by design
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks do not run
            continue
    return names


def test_the_writing_side_never_imports_the_training_side_at_module_level() -> None:
    offenders = {}
    for path in (REPO / "sparkshard").rglob("*.py"):
        found = sorted(n for n in _module_level_imports(path) if n.split(".")[0] == "loader")
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert not offenders


def test_only_the_spark_package_imports_pyspark() -> None:
    for path in [*(REPO / "sparkshard").rglob("*.py"), *(REPO / "loader").rglob("*.py")]:
        text = path.read_text()
        if "import pyspark" in text or "from pyspark" in text:
            assert path.is_relative_to(REPO / "sparkshard" / "spark"), path


def test_the_error_tree_is_drawn_with_every_error() -> None:
    doc = errors.__doc__ or ""
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.SparkshardError) and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 15
    for cls in classes:
        assert cls.__name__ in errors.__all__
        assert re.search(rf"[─ ]{cls.__name__}\b", doc), f"{cls.__name__} is not in the tree"
        for base in cls.__bases__ if cls is not errors.SparkshardError else ():
            if base is not errors.SparkshardError and base.__module__ == "builtins":
                assert f"{cls.__name__}({base.__name__})" in doc, (cls, base)


@pytest.mark.parametrize("name", sorted(sparkshard.__all__))
def test_every_top_level_name_resolves(name: str) -> None:
    assert getattr(sparkshard, name) is not None


def test_loader_tables_load_delta_and_parquet_readers_only_when_a_table_is_opened() -> None:
    # loader.tables reads Delta tables and Parquet in place; importing it (what a dataset
    # with delta=/parquet= does first) must not load deltalake, pyarrow.parquet, pyspark
    # or torch, nor the writing side (sparkshard.delta's RowFilter loads with a filter=).
    code = (
        "import json, sys, loader.tables, loader.tables.source, loader.tables.remote; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
    )
    loaded = json.loads(out.stdout)
    wrong = [m for m in loaded if m.startswith(WRITING_SIDE)]
    wrong += [m for m in loaded if m.split(".")[0] in ("pyspark", "deltalake", "torch")]
    wrong += [m for m in loaded if m == "pyarrow.parquet"]
    assert not wrong, f"import loader.tables loaded {wrong}"
