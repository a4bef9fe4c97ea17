#!/usr/bin/env bash
# Every check that needs a CUDA device, in one run:
#   1. which card, driver, CuPy, Numba, NumPy;
#   2. pytest -m gpu (the CuPy backend on the device against the NumPy backend
#      and the original's outputs) and the parity cases on cupy;
#   3. python bench/bench_gpu.py (kernels, transfers, end to end);
#   4. with E2E=1, bench/bench_e2e.py for cupy (batches of 8, the default,
#      and one frame at a time) and numba (TIFF -> PNG, the I/O floor and the
#      original's algorithm in steady state, timed on N and 2N outputs), for
#      the option sets in $E2E_OPTIONS (default: default, subtract_median,
#      color_series and the original's sample case median_color; its time
#      limit is the bench seconds + 60);
#   5. with HOST=1, bench/bench_host_threads.py (writers 2 / 4 / 8, max_cores
#      4 / 8 / 16, cupy one frame at a time) and bench/bench_io_threads.py
#      (each I/O stage in 1..16 threads, cProfile of cupy and numba).
#
#   bash bench/device_check.sh [pytest seconds] [bench seconds]
#
# Run it from the repository root with flowtrace-gpu installed (not from the
# source tree: python -P keeps the checkout's flowtrace_gpu/ off sys.path).
# The original's outputs are looked for at ../shared/reference, as by the
# tests. Logs and JSON go to $LOGS (default /tmp/flowtrace_device_check);
# where $OUT is set, they also go there as one archive, device_check.tgz.
# Publish a table with bench/report.py --publish (docs/contributing.md).
set -uo pipefail
LOGS=${LOGS:-/tmp/flowtrace_device_check}
mkdir -p "$LOGS"
PYTEST_S=${1:-240}
BENCH_S=${2:-180}
export PYTHONUNBUFFERED=1

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -P -c "import cupy, numba, numpy, sys; print('python', sys.version.split()[0], '| cupy', \
cupy.__version__, '| numba', numba.__version__, '| numpy', numpy.__version__); \
import flowtrace_gpu; print('flowtrace_gpu from', flowtrace_gpu.__file__)"
} 2>&1 | tee "$LOGS/device.txt"

status=0
# pytest-xdist, where installed, runs the GPU tests in 8 processes.
parallel=()
python3 -P -c "import xdist" 2>/dev/null && parallel=(-n 8)
timeout "$PYTEST_S" python3 -P -m pytest -m gpu tests -q -p no:cacheprovider --no-header \
  "${parallel[@]}" --durations=10 --junitxml="$LOGS/pytest_gpu.xml" 2>&1 \
  | tee "$LOGS/pytest_gpu.log" | tail -40 || status=1
timeout 120 python3 -P -m pytest tests/test_parity.py -q -p no:cacheprovider --no-header -k cupy \
  2>&1 | tee "$LOGS/pytest_parity.log" | tail -8 || status=1
timeout "$BENCH_S" python3 bench/bench_gpu.py 2>&1 | tee "$LOGS/bench_gpu.log" || status=1
cp bench/results/gpu.json "$LOGS/" 2>/dev/null
if [ "${E2E:-0}" = 1 ]; then
  timeout $((BENCH_S + 60)) python3 bench/bench_e2e.py --backends cupy,numba --gpu-batch 1 \
    --options "${E2E_OPTIONS:-default,subtract_median,color_series,median_color}" \
    --repeats 3 --baseline-frames "${BASELINE_FRAMES:-10}" 2>&1 \
    | tee "$LOGS/bench_e2e.log" | tail -32 || status=1
  cp bench/results/e2e.json "$LOGS/" 2>/dev/null
fi
if [ "${HOST:-0}" = 1 ]; then
  timeout "$BENCH_S" python3 bench/bench_host_threads.py \
    --backends cupy,numba --cores 4 16 --writers 2 8 --batch 1 --repeats 3 2>&1 \
    | tee "$LOGS/bench_host_threads.log" | tail -24 || status=1
  cp bench/results/host_threads.json "$LOGS/" 2>/dev/null
  timeout "$BENCH_S" python3 bench/bench_io_threads.py --profile cupy,numba --top 25 2>&1 \
    | tee "$LOGS/bench_io_threads.log" | tail -40 || status=1
  cp bench/results/io_threads.json "$LOGS/" 2>/dev/null
fi
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/device_check.tgz" -C "$LOGS" . || status=1
fi
exit $status
