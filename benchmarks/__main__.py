"""``python -m benchmarks [names...] [-- module args]``: run the side-by-side benchmarks.

Every ``benchmarks/bench_<name>.py`` module exposes ``run(args: list[str]) -> None``.
With no names, all of them run in name order; ``format`` or ``bench_format`` selects one.
Arguments after ``--`` are passed to every selected module's ``run``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the benchmark modules (``bench_*.py``), without the prefix."""
    return sorted(p.stem.removeprefix("bench_") for p in _PACKAGE_DIR.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names, rest = argv, []
    if "--" in argv:
        cut = argv.index("--")
        names, rest = argv[:cut], argv[cut + 1 :]
    known = available()
    selected = [n.removeprefix("bench_").removesuffix(".py") for n in names] or known
    unknown = [n for n in selected if n not in known]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {known}", file=sys.stderr)
        return 2
    for name in selected:
        print(f"\n##### benchmark: {name}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.run(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
