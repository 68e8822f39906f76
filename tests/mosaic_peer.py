"""The real mosaicml-streaming 0.13.0, run as a peer in its own venv (``.venv-mosaic``).

Mosaic pins numpy<2.2 and imports torchvision, so it never runs in the test interpreter:
``tests/compat/mosaic_tool.py`` runs under :data:`PEER_PYTHON` and hands values back as
pickles. Every test that needs the peer is marked ``mosaic``; ``tests/conftest.py`` sends
each of them through :func:`require_mosaic_peer`, which fails the test when
``SPARKSHARD_REQUIRE_MOSAIC=1`` (as ``make pytest`` sets) and skips it otherwise.
"""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = REPO_ROOT / ".venv-mosaic" / "bin" / "python"
MOSAIC_TOOL = REPO_ROOT / "tests" / "compat" / "mosaic_tool.py"
REQUIRE_MOSAIC_ENV = "SPARKSHARD_REQUIRE_MOSAIC"


def require_mosaic_peer(peer: Path = PEER_PYTHON) -> None:
    """Return when ``peer`` exists; otherwise fail (``SPARKSHARD_REQUIRE_MOSAIC=1``) or skip."""
    if peer.exists():
        return
    reason = (
        f"the mosaicml-streaming peer interpreter {peer} is missing; build it with `make setup`"
    )
    if os.environ.get(REQUIRE_MOSAIC_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_MOSAIC_ENV}=1 requires the compatibility tests)")
    pytest.skip(reason)


def run_mosaic_tool(
    *args: str | os.PathLike[str], tool: Path = MOSAIC_TOOL, timeout: float = 300
) -> str:
    """Run ``tool`` (``mosaic_tool.py`` unless told) under the peer python with ``args``;
    return its stdout, or fail the test with its stderr."""
    require_mosaic_peer()
    proc = subprocess.run(
        [str(PEER_PYTHON), str(tool), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{tool.name} {args} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc.stdout


def load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)  # our own tool's output, never untrusted data


def mosaic_view(out: Path, dirs: list[Path], validate_hash: str | None = None) -> dict[str, Any]:
    """Mosaic's reading of each dataset in ``dirs``: ``{str(dir): {"ok", "samples", ...}}``.

    ``out`` is the pickle the peer writes (a path in a temporary folder).
    """
    extra = ["--validate-hash", validate_hash] if validate_hash else []
    run_mosaic_tool("dump", out, *dirs, *extra)
    view: dict[str, Any] = load_pickle(out)
    return view
