#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh needs on the GPU machine, whose image lacks them and
# which reaches no package registry: downloaded here into .whl/ (git-ignored).
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12, the device image's
# Of the project's dependencies only zstandard is missing there (the image has numpy,
# pyarrow and xxhash). The Mosaic peer goes into .whl/mosaic/: mosaicml-streaming and the
# few of its imports the image lacks (it has torch, torchvision and transformers).
# zstandard and mosaicml-streaming are pinned to the versions the venvs here run, where they
# are built; the peer's compression libraries take the newest wheel for that Python (the
# versions here have none for every Python).
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
pinned() {  # NAME VENV: NAME==the version VENV holds, or plain NAME without that venv
    if [ -x "$2/bin/python" ]; then
        echo "$1==$("$2/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))")"
    else
        echo "$1"
    fi
}
download() {  # FOLDER REQUIREMENT...
    local into="$1"
    shift
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$into" "$@"
}
rm -rf .whl && mkdir -p .whl/mosaic
download .whl "$(pinned zstandard .venv)"
download .whl/mosaic "$(pinned mosaicml-streaming .venv-mosaic)" brotli python-snappy \
    cramjam zstd catalogue
ls -R .whl
