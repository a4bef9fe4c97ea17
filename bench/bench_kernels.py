"""Milliseconds per output frame of the projection kernels, steady state, with peers.

For each movie (``particles``: the synthetic particle movie; ``noise``:
uniform noise over the dtype's range), dtype (uint8, uint16; float32 on
request: the particle movie's 8-bit values, noise in [0, 1)) and F (10, 30,
100), every backend that loads runs max, min (``invert_color``), median
(``subtract_median``), color (``color_series``) and fade (``fade_tails``)
on a resident 1024x1024 movie. Each cell is the marginal cost of a window,
push + project, after the first window is full: ``--windows`` windows per
op (150), in ``--repeats`` rounds interleaved across the ops (a slow spell
of the machine hits them alike); the mean over all of them and the range of
the rounds are reported. ``op/method`` ops force a numba method
(``color/brute``, ``color/records``, ``fade/...``, ``median/blocked``,
``median/band``, ``median/adaptive``). Weights after a shift, on request:
``color+median``, ``color+invert``, ``fade+median``, ``color+diff`` (the
certified shifted path), and each with ``/exact`` (the float64 pass it
replaced; ``color/exact`` too, the pass float frames took before). Yardsticks
from the same run: one ``np.maximum(a, b, out=c)`` pass (memory bandwidth)
and the per-window NumPy reference
(``RingProjector``, on a few windows). The peers table (``--peers``, the
``bench`` extra) times, on the same particle movie (uint8, F = ``--peer-f``),
bottleneck's ``move_max`` and ``move_median`` and scipy's
``maximum_filter1d`` and ``median_filter`` along time, per output frame.
Prints the tables and writes ``bench/results/kernels.json``.

    python bench/bench_kernels.py             # a quarter of an hour on 2 cores
    python bench/bench_kernels.py --quick     # 256x256, F = 10 and 30, smoke run
    python bench/bench_kernels.py --data noise --ops median --fs 30,100
    python bench/bench_kernels.py --ops color/brute,color/records --fs 100,200
    python bench/bench_kernels.py --ops color+median,color+median/exact --fs 10,30,100
    python bench/bench_kernels.py --dtypes float32 --ops color,color/exact --fs 30
    python bench/bench_kernels.py --cold      # also first-call times in fresh processes
    python bench/bench_kernels.py --threads 1 2 --data particles   # scaling with threads
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flowtrace_gpu.backends import available_backends, get_backend  # noqa: E402
from flowtrace_gpu.backends.base import RingProjector  # noqa: E402
from flowtrace_gpu.engine.plan import TracePlan  # noqa: E402
from flowtrace_gpu.options import TraceOptions  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import machine, median_time  # noqa: E402

OPS = {
    "max": TraceOptions(),
    "min": TraceOptions(invert_color=True),
    "median": TraceOptions(subtract_median=True),
    "color": TraceOptions(color_series=True),
    "fade": TraceOptions(fade_tails=True),
    # weights after a shift (the certified shifted path; '/exact': the float64 pass)
    "color+median": TraceOptions(color_series=True, subtract_median=True),
    "color+invert": TraceOptions(color_series=True, invert_color=True),
    "fade+median": TraceOptions(fade_tails=True, subtract_median=True),
    "color+diff": TraceOptions(color_series=True, take_diff=True),
}
#: The ops of a run without ``--ops``.
DEFAULT_OPS = ("max", "min", "median", "color", "fade")
#: Ops that force a method of the numba backend, ``op/method`` (not in the default
#: run), and the keyword of ``make_projector`` that chooses it.
METHOD_OPS = {"color/brute": "color", "color/records": "color", "fade/brute": "color",
              "fade/records": "color", "median/blocked": "median", "median/band": "median",
              "median/adaptive": "median", "color/exact": "color", "color+median/exact": "color",
              "color+invert/exact": "color", "fade+median/exact": "color",
              "color+diff/exact": "color"}


def projector(backend, op, plan):
    """The backend's projector, or for ``op/method`` the numba projector with that method."""
    if "/" not in op:
        return backend.projector(plan)
    from flowtrace_gpu.backends.numba.projectors import make_projector

    return make_projector(plan, **{METHOD_OPS[op]: op.split("/")[1]})


def options(op):
    return OPS[op.split("/")[0]]


def movie(kind, n, shape, dtype, seed=0):
    """``n`` frames: the synthetic particle movie, or uniform noise over the dtype's range
    (float frames: the 8-bit particle movie's values, or noise in [0, 1))."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        if kind == "particles":
            return synthetic_movie(n, shape, seed=seed).astype(dtype)
        return np.random.default_rng(seed).random((n,) + shape).astype(dtype)
    if kind == "particles":
        return synthetic_movie(n, shape, seed=seed, dtype=dtype)
    top = int(np.iinfo(dtype).max)
    return np.random.default_rng(seed).integers(0, top, (n,) + shape, endpoint=True,
                                                dtype=dtype)


class Stream:
    """A projector fed from a pool of frames (cycled), one window per call; with
    ``backend`` and ``threads``, its kernels run on that many threads."""

    def __init__(self, projector, frames, f, backend=None, threads=None):
        self.proj, self.frames = projector, frames
        self.backend, self.threads = backend, threads
        self._threads()
        for i in range(f):
            projector.push(frames[i % len(frames)])
        projector.project()  # compiles, and fills the state
        self.i = f

    def _threads(self):
        if self.threads:
            self.backend.set_threads(self.threads)

    def windows(self, count, project=True):
        self._threads()
        for _ in range(count):
            self.proj.push(self.frames[self.i % len(self.frames)])
            if project:
                self.proj.project()
            self.i += 1


def interleaved(streams, windows, repeats, warm=0):
    """ms per window of each stream: ``repeats`` rounds of ``windows // repeats`` windows.

    Returns {name: [ms of each round]}. ``warm`` windows run first, untimed
    (state that adapts to the data settles).
    """
    per_round = max(1, windows // repeats)
    for s in streams.values():
        s.windows(warm)
    samples = {name: [] for name in streams}
    for _ in range(repeats):
        for name, s in streams.items():
            t = time.perf_counter()
            s.windows(per_round)
            samples[name].append((time.perf_counter() - t) / per_round * 1e3)
    return samples


def summary(runs):
    """Mean over all timed windows (rounds are equal: periodic work, such as a block
    boundary every F frames, counts in full), and the slowest and fastest round."""
    return {"ms": statistics.fmean(runs), "min": min(runs), "max": max(runs)}


def reference_ms(plan, frames, windows):
    """ms per window of the per-window NumPy reference (O(F): a few windows)."""
    s = Stream(RingProjector(plan, np), frames, plan.frames_to_merge)
    t = time.perf_counter()
    s.windows(windows)
    return (time.perf_counter() - t) / windows * 1e3


def maximum_pass_ms(frames, repeats):
    a, b = frames[0], frames[1]
    c = np.empty_like(a)
    return median_time(lambda: np.maximum(a, b, out=c), repeats=20 * repeats, warmup=1) * 1e3


def peers(frames, f, ours, refs):
    """ms per output frame of the peers along time, on ``frames`` (uint8, (T, H, W)).

    ``ours`` and ``refs``: {op: ms} of this package's numba backend and of
    the per-window NumPy reference from the same run, for the ratios. Slow
    peers run on fewer windows or a band of rows (scaled to the frame), as
    each row says.
    """
    rows = []
    h = frames.shape[1]
    try:
        import bottleneck as bn
    except ImportError:
        bn = None
    try:
        from scipy import ndimage
    except ImportError:
        ndimage = None

    def per_window(fn, windows, scale=1.0):
        fn()  # warm (allocations, imports)
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) / windows * 1e3 * scale

    k = 40  # full windows in the chunk
    chunk = np.ascontiguousarray(frames[:f + k - 1])
    if bn is not None:
        rows.append(("bottleneck.move_max, axis 0 (float64 out)", "max",
                     per_window(lambda: bn.move_max(chunk, f, axis=0), k)))
        along = np.ascontiguousarray(np.moveaxis(chunk, 0, -1))
        rows.append(("bottleneck.move_max, time made contiguous", "max",
                     per_window(lambda: bn.move_max(along, f, axis=-1), k)))
        band = max(1, h // 16)  # a band of rows: move_median takes seconds per frame
        small = np.ascontiguousarray(frames[:f + 3, :band])
        rows.append((f"bottleneck.move_median, axis 0 ({band} rows, scaled)", "median",
                     per_window(lambda: bn.move_median(small, f, axis=0), 4, h / band)))
    if ndimage is not None:
        rows.append(("scipy.ndimage.maximum_filter1d, axis 0", "max",
                     per_window(lambda: ndimage.maximum_filter1d(chunk, f, axis=0),
                                len(chunk))))
        band = max(1, h // 64)
        small = np.ascontiguousarray(frames[:f + 3, :band])
        rows.append((f"scipy.ndimage.median_filter, size (F,1,1) ({band} rows, scaled)",
                     "median", per_window(lambda: ndimage.median_filter(
                         small, size=(f, 1, 1)), len(small), h / band)))
    rows += [("NumPy reference (RingProjector, per window)", op, ms) for op, ms in refs.items()]
    rows += [("flowtrace_gpu, numba", op, ms) for op, ms in ours.items()]
    return [{"peer": label, "op": op, "ms": ms, "x_ours": ms / ours[op] if op in ours else None}
            for label, op, ms in rows]


def cold_starts(shape, f):
    """First push+project in fresh processes: empty Numba cache, then warm cache."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np\n"
        "from flowtrace_gpu.backends import get_backend\n"
        "from flowtrace_gpu.engine.plan import TracePlan, TraceOptions\n"
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
    parser.add_argument("--quick", action="store_true", help="256x256, F = 10 and 30")
    parser.add_argument("--size", type=int, default=None, help="frame side (default 1024)")
    parser.add_argument("--fs", default=None, help="window lengths (default 10,30,100)")
    parser.add_argument("--data", default="particles,noise", help="movies to run")
    parser.add_argument("--dtypes", default="uint8,uint16")
    parser.add_argument("--ops", default=",".join(DEFAULT_OPS))
    parser.add_argument("--windows", type=int, default=150,
                        help="timed windows per op (after the first is full)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="kernel threads; several counts are timed side by side "
                             "(default: the backend's, all cores)")
    parser.add_argument("--backends", default=None, help="comma list (default: all that load)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the per-window NumPy reference")
    parser.add_argument("--peers", action="store_true",
                        help="also the peers table (bottleneck, scipy: pip install '.[bench]')")
    parser.add_argument("--peer-f", type=int, default=30)
    parser.add_argument("--cold", action="store_true", help="also time first calls")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "kernels.json"))
    args = parser.parse_args(argv)

    side = args.size or (256 if args.quick else 1024)
    shape = (side, side)
    fs = [int(v) for v in (args.fs or ("10,30" if args.quick else "10,30,100")).split(",")]
    if args.quick:
        args.windows, args.repeats = min(args.windows, 20), min(args.repeats, 2)
    engines = [n for n in (args.backends.split(",") if args.backends else available_backends())
               if n != "numpy"]  # numpy's projector is the reference, timed apart
    # One column per backend and thread count: "numba" or, with several counts, "numba T2".
    counts = args.threads or [None]
    backends = {n: get_backend(n) for n in engines}
    columns = {(f"{n} T{k}" if len(counts) > 1 else n): (n, backends[n], k)
               for n in engines for k in counts}
    names = list(columns)
    ops = args.ops.split(",")
    unknown = [op for op in ops if op not in OPS and op not in METHOD_OPS]
    if unknown:
        parser.error(f"unknown ops {unknown}; choose from {list(OPS) + list(METHOD_OPS)}")
    pool = max(fs) + 64

    report = {"machine": machine(), "shape": shape, "frames_to_merge": fs,
              "threads": args.threads, "windows": args.windows, "repeats": args.repeats,
              "results": {}, "yardsticks": {}}
    print(f"{side}x{side}; ms per window (push + project, steady state): mean of "
          f"{args.repeats} interleaved rounds of {args.windows // args.repeats} windows "
          f"[fastest-slowest round]; backends {names}")
    for kind in args.data.split(","):
        for dname in args.dtypes.split(","):
            dtype = np.dtype(dname)
            frames = movie(kind, pool, shape, dtype)
            mpass = maximum_pass_ms(frames, args.repeats)
            report["yardsticks"][f"{kind}/{dname}"] = {"np_maximum_ms": mpass}
            print(f"\n{kind}, {dname}: one np.maximum pass {mpass:.3f} ms")
            print(f"{'op':15s} {'F':>4s} " + " ".join(f"{n:>22s}" for n in names)
                  + f" {'x max':>7s} {'reference':>10s} {'x ref':>7s}")
            for f in fs:
                streams = {}
                for op in ops:
                    plan = TracePlan(f, shape, dtype, options(op))
                    for name, (_, b, k) in columns.items():
                        streams[(op, name)] = Stream(projector(b, op, plan), frames, f, b, k)
                # A window of warm-up lets adaptive state (the median's blocks) settle.
                runs = interleaved(streams, args.windows, args.repeats, warm=f)
                del streams
                for op in ops:
                    row = {n: summary(runs[(op, n)]) for n in names}
                    if not args.no_reference and "/" not in op:
                        plan = TracePlan(f, shape, dtype, options(op))
                        row["reference_ms"] = reference_ms(plan, frames, 1 if f >= 100 else 2)
                    report["results"][f"{kind}/{dname}/{op}/F{f}"] = row
                    cells = " ".join(f"{row[n]['ms']:7.2f} [{row[n]['min']:6.2f}-"
                                     f"{row[n]['max']:6.2f}]" for n in names)
                    first = row[names[0]]["ms"] if names else float("nan")
                    base = report["results"].get(f"{kind}/{dname}/max/F{f}", {})
                    xmax = first / base[names[0]]["ms"] if names and base else float("nan")
                    ref = row.get("reference_ms", float("nan"))
                    print(f"{op:15s} {f:4d} {cells} {xmax:7.1f} {ref:10.1f} {ref / first:7.0f}",
                          flush=True)
    if args.peers and "numba" in backends:
        f = args.peer_f
        frames = movie("particles", max(f + 64, 128), shape, np.dtype(np.uint8))
        ours, refs = {}, {}
        for op in ("max", "median"):
            plan = TracePlan(f, shape, np.uint8, OPS[op])
            key = f"particles/uint8/{op}/F{f}"
            # the numba column with the most threads
            col = [name for name, (n, _, _) in columns.items() if n == "numba"][-1]
            if key in report["results"]:
                ours[op] = report["results"][key][col]["ms"]
            else:
                s = {op: Stream(backends["numba"].projector(plan), frames, f,
                                backends["numba"], columns[col][2])}
                ours[op] = summary(interleaved(s, args.windows, args.repeats, warm=f)[op])["ms"]
            refs[op] = reference_ms(plan, frames, 2)
        report["peers"] = peers(frames, f, ours, refs)
        print(f"\npeers along time, particle movie uint8, F={f}, ms per output frame:")
        for r in report["peers"]:
            ratio = f"{r['x_ours']:8.1f}x ours" if r["x_ours"] else ""
            print(f"  {r['op']:6s} {r['peer']:58s} {r['ms']:10.1f} {ratio}")
    if args.cold and "numba" in backends:
        report["cold"] = cold_starts(shape, 10)
        print("\ncold start (numba, F=10, seconds):", json.dumps(report["cold"], indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
