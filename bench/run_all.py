"""Run every benchmark: ``make bench`` (or ``make bench-quick`` for a smoke run).

Each script prints its table and writes JSON to bench/results/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_kernels.py", "bench_median.py", "bench_png.py", "bench_saturate.py",
           "bench_readers.py", "bench_e2e.py", "bench_gpu.py", "bench_host_threads.py",
           "bench_io_threads.py", "bench_dask.py", "bench_color_exit.py", "bench_controls.py"]


def main() -> int:
    extra = sys.argv[1:]
    failed = []
    for script in SCRIPTS:
        path = HERE / script
        if not path.exists():
            print(f"== {script}: missing, skipped")
            continue
        print(f"\n== {script} {' '.join(extra)}", flush=True)
        if subprocess.run([sys.executable, str(path), *extra]).returncode != 0:
            failed.append(script)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
