"""How many rows an early exit would spare color brute force: a measurement, not a timing.

Brute force folds every row of the window into each pixel's weighted
maximum. An exit that stays exact: take the rows in falling order of the
weight still to come (newest first for a rising weight, oldest first for a
falling one) and stop a block of pixels once every pixel's running maximum
is at least the largest weight left times the window's maximum (the plain
sliding max, cheap to keep); rounding is monotone, so float32 would stop
where float64 does. This counts, per channel of the original's ramp, the
rows a block would still fold (mean over blocks, as a fraction of F), on
one window of the synthetic particle movie and of uniform noise. NumPy
only; the kernel was not built, because the fractions below stay high on
the particle movie.

    python bench/bench_color_exit.py
    python bench/bench_color_exit.py --size 1024 --blocks 1,32,256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flowtrace_gpu.kernels.colors import ramp_colors  # noqa: E402

from bench_kernels import movie  # noqa: E402
from common import save, table  # noqa: E402


def rows_needed(window: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per pixel, the rows folded before the exit (``window`` (F, P), ``weights`` (F,))."""
    f = len(weights)
    order = np.arange(f)[::-1] if weights[-1] >= weights[0] else np.arange(f)
    w = weights[order]
    left = np.maximum.accumulate(w[::-1])[::-1]  # left[r]: largest weight of rows r..F-1
    top = window.max(axis=0)
    best = np.full(window.shape[1], -np.inf)
    need = np.full(window.shape[1], f)
    done = np.zeros(window.shape[1], bool)
    for r in range(f - 1):
        best = np.maximum(best, w[r] * window[order[r]])
        now = (best >= left[r + 1] * top) & ~done
        need[now] = r + 1
        done |= now
    return need


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256x256, F = 10 and 30")
    ap.add_argument("--size", type=int, default=512, help="frame side")
    ap.add_argument("--fs", default="10,30,100", help="window lengths")
    ap.add_argument("--blocks", default="1,32,256", help="pixels per block")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.fs = 256, "10,30"
    fs = [int(v) for v in args.fs.split(",")]
    blocks = [int(v) for v in args.blocks.split(",")]
    shape = (args.size, args.size)
    rows = []
    for data in ("particles", "noise"):
        for f in fs:
            window = movie(data, f + 8, shape, np.dtype(np.uint8))[8:].reshape(f, -1)
            window = window.astype(np.float64)
            weights = ramp_colors(f)
            for c, name in enumerate("RGB"):
                need = rows_needed(window, weights[:, c])
                row = {"data": data, "F": f, "channel": name}
                for b in blocks:
                    n = need.size // b * b
                    row[f"block {b}"] = float(need[:n].reshape(-1, b).max(axis=1).mean() / f)
                rows.append(row)
    print(f"{args.size}x{args.size} uint8, the original's ramp: rows folded before an exact "
          "early exit, as a fraction of F (mean over blocks of pixels)")
    print(table(rows, ["data", "F", "channel"] + [f"block {b}" for b in blocks]))
    print("wrote", save("color_exit", {"size": args.size, "rows": rows}))


if __name__ == "__main__":
    main()
