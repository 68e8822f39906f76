#!/usr/bin/env bash
# One prepared run for the GPU machine (device tool), sized to a few minutes:
#   bash benchmarks/gpu_check.sh [PYTHON]
# 1. the GPU tests (pytest -m gpu), 2. ResNet-18 data-wait share and host-to-device GB/s
# (benchmarks/bench_gpu.py), 3. the worker scaling curve 0/1/2/4/8/16 on W2, W3 and JPEG
# (ours only: the peers' curves are not the question on the device machine).
# PYTHON must have a CUDA build of torch and this project installed (pip install -e '.[dev]').
set -euo pipefail
PY="${1:-python3}"
cd "$(dirname "$0")/.."
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA in this torch')"
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
timeout 150 "$PY" -m pytest -q -m gpu tests || echo "gpu tests failed: rc=$?"
timeout 150 "$PY" -m benchmarks gpu -- --device cuda --workers 0,2,8 --steps 40 --batch 256
timeout 240 "$PY" -m benchmarks workers -- --workers 0,1,2,4,8,16 --workloads w2,w3,jpeg \
    --scale 0.5 --skip-peers
