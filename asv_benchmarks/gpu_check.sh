#!/usr/bin/env bash
# Every CUDA measurement and the real-GPU tests in one call, for a lent GPU
# machine (see asv_benchmarks/README.md, "On a lent GPU").
#
#   bash asv_benchmarks/gpu_check.sh [LOG_DIR]
#
# Writes env.txt, strategies.log, compare_<cell>.log, profile.log and
# test_cuda.log (7 files: the device tool brings back at most 8) to LOG_DIR
# (default: $OUT, else ./gpu_logs) and prints the tables. Each step has its
# own time limit, so one slow step cannot eat the lease: the limits add up to
# 8 minutes; on an H200 the same steps took about 5 (2026-11-29). If a wheel
# folder .whl/ holds a numpy wheel for this Python, it is installed first
# under /tmp/site (numba-cuda 0.30 cannot run under NumPy 2.5, which some GPU
# images carry).
set -u
cd "$(dirname "$0")/.."
logs=${1:-${OUT:-gpu_logs}}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD:$PWD/asv_benchmarks:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}
python=${PYTHON:-python3}
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*"; }
quiet() { grep -v -e "NumbaPerformanceWarning" -e "warn(errors"; }

if ls .whl/numpy-*.whl >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/numpy-*.whl 2>/dev/null \
        && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
{
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu \
        --format=csv 2>&1
    uptime
    "$python" -c "import numpy, numba; from rnntools.kernels import cuda; \
print('numpy', numpy.__version__, 'numba', numba.__version__, '|', cuda.products_library())" 2>&1
} | tee "$logs/env.txt"

rm -f "$logs/strategies.log"
shapes=4x100x256x256,32x100x256x256,128x100x512x512,256x50x64x1024
for cell in lstm gru rnn; do
    stamp "time-loop strategies, $cell"
    timeout 50 "$python" asv_benchmarks/profile_cuda.py --strategies --cell "$cell" \
        --repeats 3 --shapes "$shapes" 2>&1 | quiet | tee -a "$logs/strategies.log"
done
for cell in lstm gru rnn; do
    stamp "compare_cuda, $cell"
    timeout 60 "$python" asv_benchmarks/compare_cuda.py --cells "$cell" --markdown 2>&1 \
        | quiet | tee "$logs/compare_$cell.log" | grep -e "^|" -e "first call" -e "total"
done
stamp "profile_cuda, lstm"
timeout 30 "$python" asv_benchmarks/profile_cuda.py --cell lstm 2>&1 | quiet | tee "$logs/profile.log"
stamp "tests on the GPU"
timeout 110 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    tests/test_cuda_library.py 2>&1 | tee "$logs/test_cuda.log" | tail -4
stamp "done"
