"""Mosaic's side of ``test_migration.py``. Runs ONLY under the peer venv's python.

    migration_tool.py ROOT OUT_PICKLE NAME [NAME ...]

Writes the examples' datasets into ``ROOT`` with Mosaic's own ``MDSWriter``, then runs each
named example of :mod:`migration_examples` under Mosaic's import and pickles the results.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import migration_examples


def _fresh() -> None:
    """Before each example: no dataset of the previous one holds Mosaic's shared memory."""
    from streaming.base.util import clean_stale_shared_memory

    gc.collect()
    clean_stale_shared_memory()


def main(argv: list[str]) -> None:
    root, out, names = Path(argv[0]), Path(argv[1]), argv[2:]
    migration_examples.write_data("mosaic", root)
    migration_examples.run_all("mosaic", root, names, out, before=_fresh)


if __name__ == "__main__":
    main(sys.argv[1:])
