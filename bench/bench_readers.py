"""Camera-file decoding: unpack + demosaic cost per 2048x1080 frame.

    python bench/bench_readers.py [--quick]

Times, one thread each (as on the reader thread), the steps a raw Bayer
Phantom frame goes through: P10 unpack with the 10 -> 12-bit table, 12-bit
unpack (12L cine and 12-bit MRAW), bilinear demosaic, and the whole
``CineSource`` read of the real P10 Bayer file ``../shared/real/chart1.cine``
where present (file read included). Yardsticks from the same run: the
NumPy whole-array versions of the unpack and the demosaic (the first
implementation, kept here only to measure), and one copy of the frame.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from flowtrace_gpu.io.bayer import demosaic  # noqa: E402
from flowtrace_gpu.io.packed import unpack_10bit, unpack_12bit  # noqa: E402
from flowtrace_gpu.io.phantom_p10 import P10_TO_12BIT  # noqa: E402

from common import median_time, save, table  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "shared" / "real" / "chart1.cine"


def numpy_unpack_10bit(data, shape):
    b = np.frombuffer(data, np.uint8).reshape(-1, 5)
    b0, b1, b2, b3, b4 = (b[:, k].astype(np.uint16) for k in range(5))
    out = np.empty((b.shape[0], 4), np.uint16)
    out[:, 0] = (b0 << 2) | (b1 >> 6)
    out[:, 1] = ((b1 & 0x3F) << 4) | (b2 >> 4)
    out[:, 2] = ((b2 & 0x0F) << 6) | (b3 >> 2)
    out[:, 3] = ((b3 & 0x03) << 8) | b4
    return P10_TO_12BIT[out.reshape(shape)]


def numpy_demosaic(mosaic, pattern):
    """Whole-array bilinear demosaic (the same values as bayer.demosaic)."""
    h, w = mosaic.shape
    p = np.pad(mosaic, 1, mode="reflect").astype(np.uint32)
    out = np.empty((h, w, 3), mosaic.dtype)
    index = {"R": 0, "G": 1, "B": 2}
    for r in (0, 1):
        for c in (0, 1):
            def at(dy, dx, r=r, c=c):
                return p[1 + r + dy:1 + h + dy:2, 1 + c + dx:1 + w + dx:2]
            site, color = out[r::2, c::2], pattern[2 * r + c]
            site[..., index[color]] = at(0, 0)
            if color == "G":
                site[..., index[pattern[2 * r + 1 - c]]] = (at(0, -1) + at(0, 1) + 1) >> 1
                site[..., index[pattern[2 * (1 - r) + c]]] = (at(-1, 0) + at(1, 0) + 1) >> 1
            else:
                edges = at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)
                diagonals = at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)
                site[..., 1] = (edges + 2) >> 2
                site[..., index["B" if color == "R" else "R"]] = (diagonals + 2) >> 2
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5 repeats instead of 21")
    args = ap.parse_args(argv)
    repeats = 5 if args.quick else 21
    h, w = 1080, 2048
    rng = np.random.default_rng(0)
    p10 = rng.integers(0, 256, h * w * 10 // 8, dtype=np.uint8).tobytes()
    p12 = rng.integers(0, 256, h * w * 12 // 8, dtype=np.uint8).tobytes()
    mosaic = unpack_10bit(p10, (h, w), P10_TO_12BIT)
    assert np.array_equal(numpy_unpack_10bit(p10, (h, w)), mosaic)
    assert np.array_equal(numpy_demosaic(mosaic, "GBRG"), demosaic(mosaic, "GBRG"))
    demosaic(mosaic[:4, :4].copy(), "GBRG")  # compile (cached on disk after the first run)
    steps = {
        "P10 unpack + 10->12-bit table": lambda: unpack_10bit(p10, (h, w), P10_TO_12BIT),
        "12-bit unpack (12L, MRAW)": lambda: unpack_12bit(p12, (h, w)),
        "bilinear demosaic": lambda: demosaic(mosaic, "GBRG"),
        "P10 unpack + table + demosaic": lambda: demosaic(unpack_10bit(p10, (h, w), P10_TO_12BIT),
                                                         "GBRG"),
        "yardstick: NumPy P10 unpack + table": lambda: numpy_unpack_10bit(p10, (h, w)),
        "yardstick: NumPy demosaic": lambda: numpy_demosaic(mosaic, "GBRG"),
        "yardstick: copy of the RGB frame": (lambda rgb=demosaic(mosaic, "GBRG"): rgb.copy()),
    }
    if CHART.is_file():
        from flowtrace_gpu.io.formats import open_source

        source = open_source(CHART)
        steps["CineSource: chart1.cine frame (read + unpack + demosaic)"] = \
            lambda: next(source.frames([0]))
    rows = [{"step": name, "ms_per_frame": median_time(fn, repeats=repeats) * 1e3}
            for name, fn in steps.items()]
    print(f"Camera-file decoding, one {w}x{h} frame, one thread (median of {repeats})")
    print(table(rows, ["step", "ms_per_frame"]))
    print("wrote", save("readers", {"shape": [h, w], "repeats": repeats, "rows": rows}))


if __name__ == "__main__":
    main()
