"""The migration suite: Mosaic's documented examples, run under the REAL Mosaic 0.13.0 and
under sparkshard with only the import changed, over the same Mosaic-written files.

The examples live once, as source text, in ``migration_examples.py``; ``migration_tool.py``
runs them in ``.venv-mosaic`` and this module runs them here. The two must agree on what
each example returns: samples with transforms applied, epoch sizes, resumed sequences (sets
where shuffle orders differ by design).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import migration_examples
import pytest
from mosaic_peer import load_pickle, run_mosaic_tool

pytestmark = pytest.mark.mosaic

TOOL = Path(__file__).resolve().parent / "migration_tool.py"
# Mosaic's samples are read-only views too (its ndarray decoding is np.frombuffer), so torch's
# default collate warns for both; the README says so and points at loader.collate_samples.
READ_ONLY_SAMPLES = {"torch_dataloader"}
NAMES = list(migration_examples.EXAMPLES)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Mosaic-written datasets (by Mosaic's MDSWriter) and Mosaic's result of every example."""
    root = tmp_path_factory.mktemp("migration")
    out = root / "mosaic.pkl"
    run_mosaic_tool(root / "data", out, *NAMES, tool=TOOL, timeout=900)
    return root / "data", load_pickle(out)


def test_mosaic_runs_every_example(suite: tuple[Path, dict[str, Any]]) -> None:
    _, mosaic = suite
    failed = {name: r["error"][-800:] for name, r in mosaic.items() if not r["ok"]}
    assert not failed, failed


def _case(name: str) -> Any:
    if name in READ_ONLY_SAMPLES:
        allow = pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
        return pytest.param(name, marks=allow)
    return name


@pytest.mark.parametrize("name", [_case(n) for n in NAMES])
def test_ours_agrees_with_mosaic(suite: tuple[Path, dict[str, Any]], name: str) -> None:
    root, mosaic = suite
    theirs = mosaic[name]
    if not theirs["ok"]:
        pytest.fail(f"Mosaic failed {name} (see test_mosaic_runs_every_example)")
    ours = migration_examples.run_example("ours", migration_examples.EXAMPLES[name], root)
    assert ours["ok"], ours["error"]
    assert ours["value"] == theirs["value"]
