"""The Databricks-style notebook runs headless, top to bottom, and trains a good model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "digits_end_to_end.ipynb"
KERNEL = "sparkshard"  # `make setup` registers it: this venv's interpreter, by absolute path


def _ensure_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return
    except NoSuchKernel:
        pass
    install = [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL]
    subprocess.run(install, check=True, capture_output=True)


def _text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.mark.spark
@pytest.mark.slow
def test_notebook_runs_and_reaches_95_percent(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    _ensure_kernel()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(o.get("output_type") != "error" for c in code for o in c.get("outputs", []))
    text = "\n".join(_text(c) for c in code)
    assert (tmp_path / "notebook-output" / "digits" / "train" / "index.json").exists()
    assert any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
    single = re.search(r"held-out accuracy: ([\d.]+)%", text)
    spread = re.search(r"after distributed training: ([\d.]+)%", text)
    assert single and spread, text[-3000:]
    assert float(single.group(1)) >= 95.0
    assert float(spread.group(1)) >= 95.0
