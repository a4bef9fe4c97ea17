"""Milliseconds per output frame of the projection kernels, per backend.

Measures max, min (invert_color), median (subtract_median) and color
(color_series) at F = 10, 30, 100 on uint8 and uint16 frames, for every
backend that loads, next to two yardsticks taken in the same run: one
``np.maximum(a, b, out=c)`` pass over a frame (memory bandwidth) and the
per-window NumPy oracle (``RingProjector``; also ``np.median`` over a
window for the median). Prints a table and writes
``bench/results/kernels.json``.

    python bench/bench_kernels.py            # 1024x1024, a few minutes on 2 cores
    python bench/bench_kernels.py --quick    # 256x256, smoke run
    python bench/bench_kernels.py --cold     # also first-call times in fresh processes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flowtrace_gpu.backends import available_backends, get_backend
from flowtrace_gpu.backends.base import RingProjector
from flowtrace_gpu.plan import TraceOptions, TracePlan

from common import median_time  # noqa: E402

OPS = {
    "max": TraceOptions(),
    "min": TraceOptions(invert_color=True),
    "median": TraceOptions(subtract_median=True),
    "color": TraceOptions(color_series=True),
}


def particle_frames(n, shape, dtype, seed=0):
    """A dim noisy background with bright moving particles (a flow movie)."""
    rng = np.random.default_rng(seed)
    top = 255 if np.dtype(dtype).itemsize == 1 else 4095
    h, w = shape
    frames = rng.normal(0.1 * top, 0.02 * top, (n, h, w))
    npart = h * w // 2000
    ys = rng.uniform(0, h, npart)
    xs = rng.uniform(0, w, npart)
    for i in range(n):
        yi = (ys + 1.5 * i).astype(int) % h
        xi = (xs + 0.7 * i).astype(int) % w
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                frames[i, (yi + dy) % h, (xi + dx) % w] = 0.9 * top
    return np.clip(frames, 0, top).astype(dtype)


def time_calls(fn, repeats):
    """Median seconds of ``repeats`` calls, no warm-up call."""
    return median_time(fn, repeats=repeats, warmup=0)


def bench_projector(make, frames, f, per_run, repeats, project=True):
    """Median over ``repeats`` of the mean time of push+project over ``per_run`` frames.

    With ``project=False`` only ``push`` is timed: the sliding-state update
    that is all a max/min costs before the image is combined and stretched.
    """
    proj = make()
    pool = len(frames)
    for i in range(f):
        proj.push(frames[i % pool])
    proj.project()  # compiles, and fills the state
    state = {"i": f}

    def run():
        for _ in range(per_run):
            proj.push(frames[state["i"] % pool])
            if project:
                proj.project()
            state["i"] += 1

    return time_calls(run, repeats) / per_run * 1e3


def yardsticks(frames, fs, repeats):
    a, b = frames[0], frames[1]
    c = np.empty_like(a)
    out = {"np_maximum_ms": time_calls(lambda: np.maximum(a, b, out=c), 20 * repeats) * 1e3}
    for f in fs:
        if f == 30:
            window = np.stack([frames[i % len(frames)] for i in range(f)])
            out[f"np_median_F{f}_ms"] = time_calls(lambda: np.median(window, axis=0), 2) * 1e3
    return out


def cold_starts(shape, f):
    """First push+project in fresh processes: empty Numba cache, then warm cache."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np\n"
        "from flowtrace_gpu.backends import get_backend\n"
        "from flowtrace_gpu.plan import TracePlan, TraceOptions\n"
        "b = get_backend('numba'); t1 = time.perf_counter()\n"
        f"res = {{}}\n"
        f"for name, o in [('max', TraceOptions()), ('median', TraceOptions(subtract_median=True)),"
        f" ('color', TraceOptions(color_series=True))]:\n"
        f"    p = b.projector(TracePlan({f}, {shape!r}, np.uint8, o))\n"
        f"    fr = np.zeros({shape!r}, np.uint8)\n"
        f"    t = time.perf_counter()\n"
        f"    for i in range({f}): p.push(fr)\n"
        f"    p.project()\n"
        f"    t2 = time.perf_counter(); p.push(fr); p.project()\n"
        f"    res[name] = [t2 - t, time.perf_counter() - t2]\n"
        "print(t1 - t0, res)\n"
    )
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("no_cache", "cached"):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t
            import_s, per_op = done.stdout.strip().split(" ", 1)
            results[label] = {"process_s": wall, "import_s": float(import_s),
                              "first_window_s": {k: v[0] for k, v in eval(per_op).items()},
                              "warm_frame_s": {k: v[1] for k, v in eval(per_op).items()}}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256, fewer repeats")
    parser.add_argument("--size", type=int, default=None, help="frame side (default 1024)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads")
    parser.add_argument("--backends", default=None, help="comma list (default: all that load)")
    parser.add_argument("--cold", action="store_true", help="also time first calls")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels.json"))
    args = parser.parse_args(argv)

    side = args.size or (256 if args.quick else 1024)
    shape = (side, side)
    fs = (10, 30) if args.quick else (10, 30, 100)
    repeats = 2 if args.quick else 3
    names = args.backends.split(",") if args.backends else available_backends()
    backends = {n: get_backend(n) for n in names}
    if args.threads:
        for b in backends.values():
            b.set_threads(args.threads)

    report = {"shape": shape, "frames_to_merge": fs, "machine": platform.machine(),
              "cpus": os.cpu_count(), "threads": args.threads, "results": {}, "yardsticks": {}}
    print(f"{side}x{side}, ms per output frame (median of {repeats}); backends: {names}")
    for dtype in (np.uint8, np.uint16):
        dname = np.dtype(dtype).name
        frames = particle_frames(24, shape, dtype)
        yard = yardsticks(frames, fs, repeats)
        report["yardsticks"][dname] = yard
        print(f"\n{dname}: np.maximum pass {yard['np_maximum_ms']:.3f} ms"
              + "".join(f", {k} {v:.1f} ms" for k, v in yard.items() if "median" in k))
        print(f"{'op':7s} {'F':>4s} " + " ".join(f"{n:>10s}" for n in names)
              + f" {'oracle':>10s} {'x oracle':>9s} {'x maxpass':>9s}")
        for op, opts in OPS.items():
            for f in fs:
                plan = TracePlan(f, shape, dtype, opts)
                row = {}
                for n, b in backends.items():
                    if n == "numpy":
                        continue  # its projector is the oracle, timed below
                    if op == "color":  # O(F) per frame by nature: a few frames suffice
                        per_run, reps = 2, 2
                    else:  # whole blocks, so that the suffix scan amortizes
                        per_run, reps = f * max(1, -(-12 // f)), repeats
                    row[n] = bench_projector(lambda: b.projector(plan), frames, f,
                                             per_run, reps)
                    if n == "numba" and op in ("max", "min"):
                        row["numba_update"] = bench_projector(
                            lambda: b.projector(plan), frames, f, per_run, reps, project=False)
                # The oracle is O(F) per frame: time only a few frames of it.
                row["oracle"] = bench_projector(lambda: RingProjector(plan, np), frames, f,
                                                1 if f >= 100 else 2, 2 if f >= 100 else repeats)
                report["results"][f"{dname}/{op}/F{f}"] = row
                fast = min((v for k, v in row.items() if k not in ("oracle", "numba_update")),
                           default=row["oracle"])
                cells = " ".join(f"{row.get(n, row['oracle'] if n == 'numpy' else float('nan')):10.2f}"
                                 for n in names)
                update = row.get("numba_update")
                extra = (f"   update {update:.3f} ms = {update / yard['np_maximum_ms']:.1f} passes"
                         if update is not None else "")
                print(f"{op:7s} {f:4d} {cells} {row['oracle']:10.1f} "
                      f"{row['oracle'] / fast:9.1f} {fast / yard['np_maximum_ms']:9.1f}{extra}")
    if args.cold and "numba" in backends:
        report["cold"] = cold_starts(shape, 10)
        print("\ncold start (numba, F=10, seconds):", json.dumps(report["cold"], indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
