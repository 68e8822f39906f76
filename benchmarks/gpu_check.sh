#!/usr/bin/env bash
# One prepared run for the GPU machine (the device tool), sized to fit its small budget:
#   bash benchmarks/gpu_check.sh [PYTHON]
# 1. the GPU tests (pytest -m gpu), 2. ResNet-18 data-wait share and host-to-device GB/s
# (benchmarks/bench_gpu.py), 3. our worker scaling curve 0/1/2/4/8/16 on W2, W3 and JPEG,
# 4. ours against Mosaic at 2 and 16 workers on the same three (where its wheels came along;
# LitData's environment is too large to carry). The machine's CPUs, memory and /dev/shm come
# first: the numbers mean little without them.
#
# The device machine's image has a CUDA torch, numpy, pyarrow, xxhash, Pillow, pytest and
# hypothesis, and reaches no package registry. What it lacks travels as wheels: here, first
#   bash benchmarks/gpu_wheels.sh
# then the device tool's run with command "bash benchmarks/gpu_check.sh", carry [".whl"]
# and a timeout_s of about 560. The wheels go into a scratch folder there, and the project
# is read from the checkout (PYTHONPATH): nothing is built on that machine.
#
# GPU_CHECK_STEPS picks steps by name (default: "tests gpu curve peers"), for a rerun that
# must fit what is left of the device budget.
# GPU_CHECK_CPU=1 runs the same steps on the CPU with small sizes: a check of this script
# (imports, arguments, the wheels) on a machine without CUDA, not of the numbers.
set -euo pipefail
PY="${1:-python3}"
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    site="${TMPDIR:-/tmp}/gpu-check-site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
mosaic_site=""
if compgen -G ".whl/mosaic/*.whl" >/dev/null; then
    mosaic_site="${TMPDIR:-/tmp}/gpu-check-mosaic"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$mosaic_site" .whl/mosaic/*.whl
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
    gpu=(--device cpu --workers 0,2 --steps 1 --batch 4)
    curve=(--workers 0,2 --scale 0.02)
    peers=(--workers 2 --scale 0.02)
else
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA in this torch')"
    "$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
    gpu=(--device cuda --workers 0,2,8 --steps 40 --batch 256)
    curve=(--workers 0,1,2,4,8,16 --scale 0.5)
    peers=(--workers 2,16 --scale 0.5)
fi
{ nproc; free -g; df -h /dev/shm; nvidia-smi -L; } || true
"$PY" -c "import loader, sparkshard, zstandard, xxhash, pyarrow, hypothesis; print('imports ok')"
# Each step runs whatever the one before did: device time is too scarce to lose the rest to
# one failure. The exit status says whether all passed.
failed=0
steps=" ${GPU_CHECK_STEPS:-tests gpu curve peers} "
step() { [[ "$steps" == *" $1 "* ]]; }
# Only the modules with GPU tests: the others import Spark, deltalake and the cloud servers,
# which that machine does not have.
if step tests; then
    timeout 100 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/loader/test_device.py \
        tests/loader/test_transport.py || { echo "gpu tests failed: rc=$?"; failed=1; }
fi
if step gpu; then
    timeout 120 "$PY" -m benchmarks gpu -- "${gpu[@]}" ||
        { echo "gpu benchmark failed: rc=$?"; failed=1; }
fi
if step curve; then
    timeout 200 "$PY" -m benchmarks workers -- "${curve[@]}" --workloads w2,w3,jpeg --skip-peers ||
        { echo "workers curve failed: rc=$?"; failed=1; }
fi
if [ -n "$mosaic_site" ] && step peers; then
    PYTHONPATH="$mosaic_site:$PYTHONPATH" timeout 150 "$PY" -m benchmarks workers -- \
        "${peers[@]}" --workloads w2,w3,jpeg --peer-seconds 10 --mosaic-python "$(command -v "$PY")" ||
        { echo "workers against Mosaic failed: rc=$?"; failed=1; }
fi
exit "$failed"
