"""A path's opening run in a fresh process: what Numba compiles, for which signatures, how long.

For each path (an option set) and dtype, a fresh process with an empty
``NUMBA_CACHE_DIR`` (a temporary folder per path) imports flowtrace_gpu,
makes the movie (40x64x64 by default, particles from ``synthetic_movie``)
and times ``flowtrace_array(movie, F)`` twice: once compiling, once
compiled. A listener on Numba's ``numba:compile`` event
records each function compiled, its argument types and its time, inclusive
(with the callees it compiled) and exclusive (without); the compiling
run's CPU time (all threads of the process) is printed beside its wall time:
compiling runs on one thread, so on a busy machine the CPU time is the
figure that compares between runs, the wall time what a user waits. A
second fresh
process on the same, now filled, cache times the opening run again
("cached": what a user sees on every later run, or after ``flowtrace
warmup``). The load average of the machine is printed and saved beside the
figures: on a shared machine, compile times grow with it.

    python bench/bench_cold.py                                # the six target paths
    python bench/bench_cold.py --paths all                    # every path below
    python bench/bench_cold.py --paths color_series --dtypes uint8 --functions 15
    PYTHONPATH=/other/checkout python bench/bench_cold.py   # another version of the package

Prints a table per path and writes ``bench/results/cold.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save, table  # noqa: E402

#: path name -> flowtrace_array keyword arguments ('rgb' frames get a channel axis)
PATHS = {
    "default": {},
    "subtract_median": {"subtract_median": True},
    "color_series": {"color_series": True},
    "subtract_first": {"subtract_first": True},
    "invert_color": {"invert_color": True},
    "take_diff": {"take_diff": True},
    "add_first_frame": {"add_first_frame": True},
    "fade_tails": {"fade_tails": True},
    "median+color": {"subtract_median": True, "color_series": True},
    "rgb": {},
    "rgb+color": {"color_series": True},
    "global": {"normalize": "global"},
    "none": {"normalize": "none"},
}
TARGETS = ("default", "subtract_median", "color_series")


def child(path: str, dtype: str, n: int, side: int, f: int) -> dict:
    """Run in the fresh process: the two calls and the compile events, as a dict."""
    t_start = time.perf_counter()
    import numpy as np
    from numba.core import event

    import flowtrace_gpu
    from flowtrace_gpu.synthetic import synthetic_movie

    t_import = time.perf_counter() - t_start
    records = []
    stacks = threading.local()

    class Recorder(event.Listener):
        def on_start(self, ev):
            stack = stacks.__dict__.setdefault("s", [])
            stack.append([time.perf_counter(), 0.0])

        def on_end(self, ev):
            t0, child_s = stacks.s.pop()
            total = time.perf_counter() - t0
            if stacks.s:
                stacks.s[-1][1] += total
            disp = ev.data["dispatcher"]
            records.append({
                "function": f"{disp.py_func.__module__.rsplit('.', 1)[-1]}.{disp.py_func.__name__}",
                "args": ", ".join(str(a) for a in ev.data["args"]),
                "inclusive_s": total, "exclusive_s": total - child_s,
                "nested": bool(stacks.s)})

    event.register("numba:compile", Recorder())
    movie = synthetic_movie(n, (side, side), dtype=np.dtype(dtype))
    if path.startswith("rgb"):
        movie = np.stack([movie, movie[:, ::-1], movie[:, :, ::-1]], axis=-1)
    kwargs = dict(PATHS[path], backend="numba", progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    flowtrace_gpu.flowtrace_array(movie, f, **kwargs)
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    flowtrace_gpu.flowtrace_array(movie, f, **kwargs)
    second = time.perf_counter() - t0
    return {"import_s": t_import, "first_s": first, "first_cpu_s": first_cpu, "second_s": second,
            "compiled": records}


def run_path(path: str, dtype: str, args) -> dict:
    """Cold and cached fresh processes for one path; their dicts and the load."""
    cmd = [sys.executable, __file__, "--child", path, "--dtypes", dtype, "--frames", str(args.frames),
           "--side", str(args.side), "--f", str(args.f)]
    result = {"path": path, "dtype": dtype, "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "cached"):
            t0 = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode:
                raise SystemExit(f"{path} {dtype} failed:\n{done.stderr}")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            out["process_s"] = wall
            result[label] = out
    result["load_after"] = os.getloadavg()[0]
    return result


def summarize(results, top: int) -> None:
    rows = []
    for r in results:
        cold, cached = r["cold"], r["cached"]
        rows.append({"path": r["path"], "dtype": r["dtype"],
                     "first s": cold["first_s"], "first cpu s": cold["first_cpu_s"],
                     "second ms": 1e3 * cold["second_s"],
                     "cached first s": cached["first_s"],
                     "compiles": len(cold["compiled"]),
                     "compile s": sum(c["exclusive_s"] for c in cold["compiled"]),
                     "import s": cold["import_s"], "load": r["load_before"]})
    print(table(rows, list(rows[0])))
    for r in results:
        comp = sorted(r["cold"]["compiled"], key=lambda c: -c["exclusive_s"])
        if not comp or top <= 0:
            continue
        print(f"\n{r['path']} {r['dtype']}: {len(comp)} compiles, top {min(top, len(comp))} "
              "by exclusive seconds")
        print(table([{"function": c["function"], "excl s": c["exclusive_s"],
                      "incl s": c["inclusive_s"], "args": c["args"][:90]} for c in comp[:top]],
                    ["function", "excl s", "incl s", "args"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(TARGETS),
                        help=f"comma list or 'all' (of: {', '.join(PATHS)})")
    parser.add_argument("--dtypes", default="uint8,uint16")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--f", type=int, default=10, help="frames per window")
    parser.add_argument("--functions", type=int, default=8,
                        help="slowest compiles listed per path (0: none)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="cold")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.dtypes, args.frames, args.side, args.f)))
        return
    paths = list(PATHS) if args.paths == "all" else args.paths.split(",")
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
    load = os.getloadavg()
    print(f"{args.frames}x{args.side}x{args.side}, F={args.f}, numba backend, fresh process, "
          f"empty NUMBA_CACHE_DIR per path; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores", flush=True)
    results = []
    for path in paths:
        for dtype in args.dtypes.split(","):
            results.append(run_path(path, dtype, args))
            r = results[-1]
            print(f"  {path:16s} {dtype:6s} first {r['cold']['first_s']:6.2f} s "
                  f"(cpu {r['cold']['first_cpu_s']:6.2f} s)  cached first "
                  f"{r['cached']['first_s']:5.2f} s  load {r['load_before']:.2f}", flush=True)
    print()
    summarize(results, args.functions)
    end_load = os.getloadavg()
    print(f"\nload average at the end {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    out = save(args.out, {"command": "python bench/bench_cold.py " + " ".join(argv or sys.argv[1:]),
                          "shape": [args.frames, args.side, args.side], "f": args.f,
                          "loadavg_start": list(load), "loadavg_end": list(end_load),
                          "results": results})
    print(f"wrote {out}")


if __name__ == "__main__":
    machine()  # fail early if the environment cannot describe itself
    main()
