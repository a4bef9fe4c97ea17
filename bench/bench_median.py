"""Sliding-median methods of the Numba backend, per frame, across window lengths.

For each F and method, the Numba projector with ``subtract_median`` pushes F
frames of a synthetic 8-bit particle movie (or uniform noise, ``--data
noise``) and one more (``start_s``: the one-time cost of filling the window
and of the first frame after it, where the adaptive median settles on each
block's method), then times ``push`` (median update and what else the state
needs) and ``project`` (the image) over 30 more; each cell is the median
over ``--repeats`` runs of the mean per frame. Yardstick from the same run:
one ``np.maximum`` pass over a frame. Prints a table and writes
``bench/results/median_<data>.json``.

    python bench/bench_median.py                      # F = 10, 30, 100, 300; all methods
    python bench/bench_median.py --data noise --windows 30,100
    python bench/bench_median.py --windows 30 --methods band --size 512
    python bench/bench_median.py --quick              # 256x256, F = 10, 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flowtrace_gpu.backends.numba.projectors import make_projector  # noqa: E402
from flowtrace_gpu.engine.plan import TracePlan  # noqa: E402
from flowtrace_gpu.options import TraceOptions  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import median_time, save, table  # noqa: E402

TIMED = 30  # frames timed after the first window


def run(movie, f, method, repeats):
    """(push ms, project ms, band rebuilds per pixel per frame) for one cell."""
    kw = {"median": method}
    shape = movie.shape[1:]
    # compile this method's kernels on a tiny frame first
    tiny = make_projector(TracePlan(f, (8, 8), movie.dtype, TraceOptions(subtract_median=True)),
                          **kw)
    for i in range(f + 2):
        tiny.push(movie[i, :8, :8])
    tiny.project()
    plan = TracePlan(f, shape, movie.dtype, TraceOptions(subtract_median=True))
    pushes, projects, starts = [], [], []
    for _ in range(repeats):
        proj = make_projector(plan, **kw)
        t0 = time.perf_counter()
        for i in range(f):
            proj.push(movie[i])
        proj.project()
        proj.push(movie[f])  # methods settle on the first frame after the window
        proj.project()
        starts.append(time.perf_counter() - t0)
        t_push = t_proj = 0.0
        for i in range(f + 1, f + 1 + TIMED):
            t0 = time.perf_counter()
            proj.push(movie[i])
            t1 = time.perf_counter()
            proj.project()
            t2 = time.perf_counter()
            t_push += t1 - t0
            t_proj += t2 - t1
        pushes.append(t_push / TIMED * 1e3)
        projects.append(t_proj / TIMED * 1e3)
        # the fused adaptive path keeps its median as median_state
        median = proj.median if proj.median is not None else proj.median_state
        rebuilt = median.rebuilt / TIMED / proj.npix
    return (statistics.median(pushes), statistics.median(projects), rebuilt,
            statistics.median(starts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256x256, F = 10 and 30, one repeat")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--windows", default="10,30,100,300", help="comma-separated F")
    ap.add_argument("--methods", default="blocked,band,adaptive",
                    help="comma-separated: blocked, band, adaptive")
    ap.add_argument("--data", default="particles",
                    help="particles (the synthetic movie) or noise (uniform)")
    ap.add_argument("--threads", type=int, default=1,
                    help="kernel threads (default 1: what the pipeline gives compute on 2 cores)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.windows, args.repeats = 256, "10,30", 1
    windows = [int(f) for f in args.windows.split(",")]
    methods = args.methods.split(",")

    import numba

    numba.set_num_threads(max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS)))
    n = max(windows) + TIMED + 1
    if args.data == "noise":
        movie = np.random.default_rng(0).integers(0, 256, (n, args.size, args.size),
                                                  dtype=np.uint8)
    else:
        movie = synthetic_movie(n, (args.size, args.size), seed=0)
    a, b = movie[0].copy(), movie[1].copy()
    maxpass = median_time(lambda: np.maximum(a, b, out=a), repeats=20) * 1e3
    rows = []
    for f in windows:
        for method in methods:
            push, project, rebuilt, start = run(movie, f, method, args.repeats)
            row = {"F": f, "method": method, "push_ms": push, "project_ms": project,
                   "total_ms": push + project, "start_s": start}
            if method in ("band", "adaptive"):  # adaptive: recounted or would-be
                row["band_rebuilt_pct"] = 100 * rebuilt
            rows.append(row)
            print(f"F={f} {method}: {push + project:.2f} ms", file=sys.stderr, flush=True)
    print(f"{args.size}x{args.size} uint8 {args.data}, subtract_median, {args.threads} thread(s), ms per "
          f"frame (median of {args.repeats}); one np.maximum pass {maxpass:.3f} ms")
    print(table(rows, ["F", "method", "push_ms", "project_ms", "total_ms", "band_rebuilt_pct",
                       "start_s"]))
    print("wrote", save(f"median_{args.data}", {"size": args.size, "threads": args.threads,
                                   "np_maximum_pass_ms": maxpass, "rows": rows}))


if __name__ == "__main__":
    main()
