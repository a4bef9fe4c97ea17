"""The saturating stretch (``saturate=P``): its level and its cost per image.

    python bench/bench_saturate.py [--quick] [--size N]

Per 1 MP float64 projection: the level from a histogram (NumPy reference
and Numba kernel), the exact percentile by ``np.partition`` (the yardstick
a sort-based method would pay), and the stretch that follows; then the
marginal cost of ``saturate=0.5`` end to end on a resident window
(``flowtrace_array``, numba, F=30) against the plain stretch.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from flowtrace_gpu import (
    flowtrace_array,  # noqa: E402
    get_backend,  # noqa: E402
)
from flowtrace_gpu.kernels import saturate as ks  # noqa: E402
from flowtrace_gpu.kernels.stretch import scale_to_uint8  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import median_time, save, table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="256x256, fewer frames")
    ap.add_argument("--size", type=int, default=None, help="frame side (default 1024)")
    args = ap.parse_args(argv)
    size = args.size or (256 if args.quick else 1024)
    movie = synthetic_movie(60, (size, size), seed=3)
    proj = flowtrace_array(movie[:30], 30, normalize="global", backend="numba",
                           progress=False)  # warm up the kernels
    proj = movie[:30].max(axis=0).astype(np.float64)
    top = float(proj.max())
    numba_hist = get_backend("numba").histogram
    rows = []

    def add(name, fn, **extra):
        rows.append({"step": name, "ms": 1e3 * median_time(fn, repeats=15), **extra})

    add("np.max (a pass over the image, yardstick)", lambda: proj.max())
    add("level: histogram, NumPy reference",
        lambda: ks.level(ks.histogram(proj.copy(), top, ks.FRAME_BINS, np), top, 0.5))
    add("level: histogram, Numba kernel",
        lambda: ks.level(numba_hist(proj, top, ks.FRAME_BINS), top, 0.5))
    k = int(np.ceil(0.995 * proj.size)) - 1
    add("level: exact, np.partition", lambda: np.partition(proj.reshape(-1), k)[k])
    add("stretch by the level (NumPy reference)", lambda: scale_to_uint8(proj, top * 0.9, np))

    n_out = len(movie) - 30 + 1
    for percent in (0.0, 0.5):
        seconds = median_time(lambda p=percent: flowtrace_array(
            movie, 30, saturate=p, backend="numba", progress=False), repeats=3)
        rows.append({"step": f"flowtrace_array numba F=30, saturate={percent}",
                     "ms": 1e3 * seconds / n_out, "per": "output frame"})
    print(f"saturate: {size}x{size} float64 projection, 4096-bin level, ms (median)")
    print(table(rows, ["step", "ms", "per"]))
    print("saved", save("saturate", {"size": size, "rows": rows}))


if __name__ == "__main__":
    main()
