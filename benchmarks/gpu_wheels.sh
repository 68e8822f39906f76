#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh needs on the GPU machine, whose image lacks them and
# which reaches no package registry: downloaded here into .whl/ (git-ignored).
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12, the device image's
# Of the project's dependencies only zstandard is missing there (the image has numpy,
# pyarrow and xxhash); it is pinned to the version the main venv runs, where there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
pin=""
if [ -x .venv/bin/python ]; then
    pin="==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("zstandard"))')"
fi
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "zstandard$pin"
ls .whl
