"""End to end: a TIFF sequence on disk -> pathline PNGs, output frames per second.

    python bench/bench_e2e.py [--quick] [--frames 300] [--size 1024]

For each option set, in one run: flowtrace_gpu on every backend that loads;
(a) the I/O floor -- the same reader thread, writer threads and PNG encoder
writing the very same images, computed beforehand and handed out by a
backend that computes nothing; (b) the
original's algorithm (bench/baseline_original.py), serial, in steady state: timed
on its first N and first 2N outputs (N = ``--baseline-frames``), the difference
divided by N, so that filling its first window (F frame reads and a fresh
float64 stack) is not charged to the outputs. Also the original's 62-frame sample, if
../shared/reference is present. With ``--split``, numba also with its compute
threads fixed at half the cores (``FLOWTRACE_COMPUTE_THREADS``, the split before
the measured one) in the same interleaved runs; with ``--nice``, numba also with
its writer threads at nice 19 (``FLOWTRACE_WRITER_NICE``). ``--options`` picks
the option sets (default, subtract_median, color_series).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_original import run_original  # noqa: E402

from flowtrace_gpu import available_backends, flowtrace, flowtrace_array, get_backend  # noqa: E402
from flowtrace_gpu.backends.base import Backend  # noqa: E402
from flowtrace_gpu.backends.cupy.backend import CupyBackend  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import save, table  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sample_data"


class _Replay:
    def __init__(self, images):
        self.images = iter(images)

    def push(self, frame):
        pass

    def project(self):
        return next(self.images)


class IOFloorBackend(Backend):
    """Computes nothing: hands out images computed beforehand. Times reading + writing alone."""

    name = "io-floor"

    def __init__(self, images):
        self.images = images

    def projector(self, plan):
        return _Replay(self.images)


def write_movie(directory: Path, frames: int, size: int):
    """The synthetic movie as a TIFF sequence; returns the paths and the movie."""
    import tifffile

    movie = synthetic_movie(frames, (size, size), seed=0)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(movie):
        path = directory / f"frame{i:05d}.tif"
        tifffile.imwrite(path, frame)
        paths.append(path)
    return paths, movie


def timed(fn) -> float:
    """Seconds ``fn`` takes, started with no dirty pages left by the runs before.

    Each run writes ~300 MB to 1 GB of PNGs; without the sync the kernel
    flushes the previous run's output during the next one, and which method
    pays for it depends on the order of the runs.
    """
    if hasattr(os, "sync"):
        os.sync()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def original_steady_state(files, f, out, k, options) -> float:
    """Seconds per output of the original's algorithm once its first window is full.

    Timed on k and on 2k outputs: the difference holds k outputs' work and no
    window fill, which would otherwise dominate a short run.
    """
    seconds = {}
    for n in (k, 2 * k):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        seconds[n] = timed(lambda: run_original(files, f, out, max_outputs=n, **options))
    difference = seconds[2 * k] - seconds[k]
    if difference <= 0:  # noise larger than k outputs' work: no figure rather than a wrong one
        print(f"original: {2 * k} outputs took no longer than {k}; raise --baseline-frames",
              file=sys.stderr)
        return math.nan
    return difference / k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="256x256 x 120 frames")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--backends", default=None,
                    help="comma-separated backends to time (default: every one that loads, "
                         "numpy only with --quick since it is O(F) per frame)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="runs of each method, interleaved; the median is reported")
    ap.add_argument("--baseline-frames", type=int, default=10,
                    help="N: the (slow) original's algorithm is timed on N and on 2N outputs; "
                         "its steady-state time per output is the difference / N")
    ap.add_argument("--options", default="default,subtract_median,color_series",
                    help="comma-separated option sets to time (also: median_color, "
                         "subtract_median with color_series)")
    ap.add_argument("--nice", action="store_true",
                    help="also numba with FLOWTRACE_WRITER_NICE=19 (writers yield to compute)")
    ap.add_argument("--split", action="store_true",
                    help="also numba with compute fixed at half the cores")
    ap.add_argument("--gpu-batch", type=int, nargs="+", default=[],
                    help="also cupy with these FLOWTRACE_GPU_BATCH values (frames per upload)")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size = 120, 256
    f = args.window
    work = Path(tempfile.mkdtemp(prefix="flowtrace-bench-"))
    rows = []
    try:
        files, movie = write_movie(work / "movie", args.frames, args.size)
        n_out = args.frames - f
        option_sets = {"default": {}, "subtract_median": {"subtract_median": True},
                       "color_series": {"color_series": True},
                       # the original's own sample case median_color (on request)
                       "median_color": {"subtract_median": True, "color_series": True}}
        option_sets = {k: option_sets[k] for k in args.options.split(",")}
        for label, options in option_sets.items():
            out = work / "out"
            engines = args.backends.split(",") if args.backends else [
                b for b in available_backends() if args.quick or b != "numpy"]
            outputs = flowtrace_array(movie, f, **options)  # what the floor writes
            methods = {name: get_backend(name) for name in engines}
            envs = {}  # environment variables of a method's runs
            if args.split and "numba" in methods:
                half = str(max(1, (os.cpu_count() or 1) // 2))
                methods["numba, half fixed"] = methods["numba"]
                envs["numba, half fixed"] = {"FLOWTRACE_COMPUTE_THREADS": half}
            if args.nice and "numba" in methods:
                methods["numba, writers nice 19"] = methods["numba"]
                envs["numba, writers nice 19"] = {"FLOWTRACE_WRITER_NICE": "19"}
            if "cupy" in methods:
                for n in args.gpu_batch:
                    methods[f"cupy, batch {n}"] = CupyBackend(batch=n)
            methods["io-floor"] = IOFloorBackend(outputs)
            for name, backend in methods.items():
                if name != "io-floor":  # compile kernels before timing
                    flowtrace_array(np.zeros((f + 2, 32, 32), np.uint8), f, backend=backend,
                                    **options)
            times = {name: [] for name in methods}
            # Interleaved, so that the machine's slow spells hit every method alike.
            for _ in range(args.repeats):
                for name, backend in methods.items():
                    shutil.rmtree(out, ignore_errors=True)
                    with mock.patch.dict(os.environ, envs.get(name, {})):
                        times[name].append(timed(lambda: flowtrace(
                            work / "movie", f, out, backend=backend, progress=False,
                            **options)))
            for name, runs in times.items():
                seconds = statistics.median(runs)
                rows.append({"options": label, "method": name, "outputs": n_out,
                             "ms_per_frame": seconds / n_out * 1e3, "fps": n_out / seconds,
                             "spread_ms": (max(runs) - min(runs)) / n_out * 1e3})
            k = max(1, min(args.baseline_frames, n_out // 2))
            per_output = original_steady_state(files, f, out, k, options)
            rows.append({"options": label, "method": "original (serial)", "outputs": k,
                         "ms_per_frame": per_output * 1e3, "fps": 1 / per_output})
        for label in option_sets:
            group = [r for r in rows if r["options"] == label]
            base = next(r for r in group if r["method"] == "original (serial)")["ms_per_frame"]
            floor = next(r for r in group if r["method"] == "io-floor")["ms_per_frame"]
            for r in group:
                r["x_original"] = base / r["ms_per_frame"]
                r["x_io_floor"] = r["ms_per_frame"] / floor
        if REFERENCE.is_dir():
            for name in available_backends():
                out = work / f"sample-{name}"
                flowtrace(REFERENCE, 10, out, backend=name, progress=False)  # warm
                seconds = timed(lambda: flowtrace(REFERENCE, 10, out, backend=name, progress=False))
                rows.append({"options": "sample_data F=10", "method": name, "outputs": 52,
                             "ms_per_frame": seconds / 52 * 1e3, "fps": 52 / seconds})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"End to end: {args.frames} TIFF frames {args.size}x{args.size} uint8 -> PNGs, "
          f"F={f}; median of {args.repeats} interleaved runs (spread: max - min); "
          "x_original = speedup over the original's algorithm, "
          f"x_io_floor = time / (read + write only)")
    print(table(rows, ["options", "method", "outputs", "ms_per_frame", "spread_ms", "fps",
                       "x_original", "x_io_floor"]))
    print("wrote", save("e2e", {"frames": args.frames, "size": args.size, "window": f,
                                "repeats": args.repeats, "baseline_frames": args.baseline_frames,
                                "rows": rows}))


if __name__ == "__main__":
    main()
