"""End to end under host-side settings: the GIL switch interval and ``max_cores``.

    python bench/bench_host_threads.py [--quick] [--frames 300] [--size 1024]
                                       [--backends cupy,numba] [--repeats 3]
                                       [--cores 2 4 16] [--writers 2 8] [--batch 1]

For each backend that loads (or those named), and for the I/O floor (bench_e2e's
``io-floor``: the same reader, writers and encoder, no compute), a TIFF
sequence -> PNG folder through ``flowtrace`` with (a) the defaults, (b)
``sys.setswitchinterval`` at 0.5 ms instead of Python's 5 ms, (c) each
``max_cores`` of ``--cores`` (default: twice the default, capped at the
machine's cores), (d) each ``FLOWTRACE_WRITERS`` of ``--writers``, (e) for
cupy, each ``FLOWTRACE_GPU_BATCH`` of ``--batch``; then
``flowtrace_array`` in memory with (a) and (b).
Medians of ``--repeats`` interleaved runs, ms per output frame, after a
warm-up per backend (Numba's and CuPy's first compilations). Tells whether a
thread-heavy run is held up by GIL hand-offs or helped by more threads, on
the machine at hand.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import IOFloorBackend, write_movie  # noqa: E402

from flowtrace_gpu import available_backends, config, flowtrace, flowtrace_array  # noqa: E402
from flowtrace_gpu.options import RunOptions  # noqa: E402

from common import save, table  # noqa: E402

FAST_SWITCH = 0.0005


def name(backend) -> str:
    return backend if isinstance(backend, str) else backend.name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256x256 x 60 frames")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--backends", default=None, help="comma list (default: cupy and numba, "
                    "those that load)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, nargs="+", default=None,
                    help="max_cores values besides the default (default: twice it)")
    ap.add_argument("--writers", type=int, nargs="+", default=[],
                    help="FLOWTRACE_WRITERS values besides the default")
    ap.add_argument("--batch", type=int, nargs="+", default=[],
                    help="FLOWTRACE_GPU_BATCH values besides the default (cupy only)")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size = 60, 256
    f = args.window
    loaded = available_backends()
    backends = args.backends.split(",") if args.backends else \
        [b for b in ("cupy", "numba") if b in loaded]
    default_cores = RunOptions().max_cores
    cores = args.cores or [min(2 * default_cores, os.cpu_count() or 1)]
    normal_switch = sys.getswitchinterval()

    work = Path(tempfile.mkdtemp(prefix="flowtrace-bench-threads-"))
    # (label, GIL switch interval, max_cores, environment)
    variants = [("defaults", normal_switch, default_cores, {}),
                (f"switch {FAST_SWITCH * 1e3:g} ms", FAST_SWITCH, default_cores, {})]
    variants += [(f"max_cores {n}", normal_switch, n, {}) for n in cores if n != default_cores]
    variants += [(f"writers {n}", normal_switch, default_cores, {"FLOWTRACE_WRITERS": str(n)})
                 for n in args.writers if n != config.DEFAULTS["writers"]]
    variants += [(f"gpu batch {n}", normal_switch, default_cores, {"FLOWTRACE_GPU_BATCH": str(n)})
                 for n in args.batch if n != config.DEFAULTS["gpu_batch"]]
    seconds: dict = {}
    try:
        _, movie = write_movie(work, args.frames, args.size)
        runs = itertools.count()
        floor = IOFloorBackend(flowtrace_array(movie, f, backend="numpy"))
        for backend in backends:  # warm up: first compilations, kernel builds
            flowtrace_array(movie[: f + 2], f, backend=backend)
            flowtrace(work, f, work / f"warm_{backend}", backend=backend, progress=False)
        for _ in range(args.repeats):
            for backend in [*backends, floor]:
                for label, switch, cores, env in variants:
                    if "FLOWTRACE_GPU_BATCH" in env and name(backend) != "cupy":
                        continue  # batches are the cupy backend's
                    sys.setswitchinterval(switch)
                    if hasattr(os, "sync"):
                        os.sync()  # no earlier run's dirty pages flushed during this one
                    t0 = time.perf_counter()
                    with mock.patch.dict(os.environ, env):
                        n = len(flowtrace(work, f, work / f"out{next(runs)}", backend=backend,
                                          max_cores=cores, progress=False))
                    seconds.setdefault((name(backend), "flowtrace (tif -> png)", label),
                                       []).append((time.perf_counter() - t0) / n)
                if backend is floor:
                    continue
                for label, switch, _, _ in variants[:2]:
                    sys.setswitchinterval(switch)
                    t0 = time.perf_counter()
                    n = len(flowtrace_array(movie, f, backend=backend))
                    seconds.setdefault((backend, "flowtrace_array", label), []).append(
                        (time.perf_counter() - t0) / n)
    finally:
        sys.setswitchinterval(normal_switch)
        shutil.rmtree(work, ignore_errors=True)

    rows = [{"backend": b, "call": call, "setting": label,
             "ms_per_frame": 1e3 * statistics.median(times),
             "spread_ms": 1e3 * (max(times) - min(times))}
            for (b, call, label), times in seconds.items()]
    print(f"{args.frames} frames {args.size}x{args.size} uint8, F={f}; medians of "
          f"{args.repeats} interleaved runs; defaults: switch {normal_switch * 1e3:g} ms, "
          f"max_cores {default_cores}, writers {config.DEFAULTS['writers']}")
    print(table(rows, ["backend", "call", "setting", "ms_per_frame", "spread_ms"]))
    print("wrote", save("host_threads", {"frames": args.frames, "size": args.size, "window": f,
                                         "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
