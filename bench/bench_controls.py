"""Recording controls: what a crop and a frame range save, end to end.

    python bench/bench_controls.py [--quick] [--frames N] [--size N]

1. ``flowtrace`` of a 1 MP uncompressed TIFF stack into a PNG folder (numba,
   F = 10): the whole frame against a quarter-area crop (half the rows, half
   the columns, in the middle). The crop is applied while reading: only its
   rows are read, a quarter of the pixels traced and written. Two stacks: the
   real PIV frames of ``../shared/real/piv_cylinder`` (1024x1024, tracers and
   camera noise) repeated to the length asked for, where that folder is, and
   the package's synthetic movie (sparse dots on black: PNG encodes it almost
   for free, so the fixed cost of each image file weighs more).
   Wall time (median) is the figure; the CPU time of all threads is shown
   beside it, as it varies less on a machine other jobs share.
2. A frame range: frames [start, stop) of the same stack, counting the frames
   the reader decodes; it should be the range's own, ``stop - start`` (the F-1
   frames before the last image's end are inside it), never the recording.

Tables on stdout, JSON in bench/results/bench_controls.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, os.path.dirname(__file__))
from flowtrace_gpu import flowtrace  # noqa: E402
from flowtrace_gpu.io import tiff_stack  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import median_time, save, table  # noqa: E402

#: Real 1 MP frames (see ../shared/real/README.md), used where present.
PIV = Path(__file__).resolve().parents[2] / "shared" / "real" / "piv_cylinder"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    ap.add_argument("--frames", type=int, default=None, help="frames of the stack (default 120)")
    ap.add_argument("--size", type=int, default=1024, help="frame side (default 1024: 1 MP)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 3)")
    args = ap.parse_args(argv)
    n = args.frames or (40 if args.quick else 120)
    repeats = args.repeats or (1 if args.quick else 3)
    size, f = args.size, 10
    work = Path(tempfile.mkdtemp(prefix="bench_controls_"))
    try:
        stacks = {"synthetic": synthetic_movie(n, (size, size), seed=5)}
        piv = sorted(PIV.glob("frame*.tif"))
        if piv and size == 1024:
            frames = np.stack([tifffile.imread(p) for p in piv])
            stacks = {"real PIV": frames[np.arange(n) % len(frames)], **stacks}
        options = dict(backend="numba", progress=False)
        quarter = (size // 4, size // 4, size // 2, size // 2)
        rows, speedups = [], {}
        for movie_name, movie in stacks.items():
            stack = work / "stack.tif"
            tifffile.imwrite(stack, movie)
            flowtrace(stack, f, work / "warm", stop=f + 2, **options)  # compile the kernels
            seconds, cpu = {}, {}
            for name, crop in (("whole frame", None), ("quarter-area crop", quarter)):
                out = work / "out"
                used = []

                def run(crop=crop, out=out, used=used):
                    shutil.rmtree(out, ignore_errors=True)
                    start = time.process_time()
                    flowtrace(stack, f, out, crop=crop, **options)
                    used.append(time.process_time() - start)

                seconds[name] = median_time(run, repeats=repeats)
                # CPU time of every thread: the work done, whatever else the machine runs.
                cpu[name] = statistics.median(used[1:] or used)
                rows.append({"stack": movie_name, "case": name, "crop": str(crop),
                             "s": seconds[name], "ms/image": 1e3 * seconds[name] / (n - f + 1),
                             "cpu s": cpu[name]})
            speedups[movie_name] = seconds["whole frame"] / seconds["quarter-area crop"]
            rows[-1]["speed-up"] = speedups[movie_name]
            rows[-1]["cpu ratio"] = cpu["whole frame"] / cpu["quarter-area crop"]
        print(f"flowtrace, {size}x{size} uint8 TIFF stack, {n} frames, F={f}, numba, PNG folder, "
              f"median of {repeats}")
        print(table(rows, ["stack", "case", "crop", "s", "ms/image", "speed-up", "cpu s",
                           "cpu ratio"]))

        # A range reads its own frames: count the frames the reader decodes.
        decoded = []
        original = tiff_stack.TiffStackSource._read_raw

        def counting(self, handle, raw, region=None):
            decoded.append(raw)
            return original(self, handle, raw, region)

        tiff_stack.TiffStackSource._read_raw = counting
        try:
            start = n // 4
            stop = min(n, start + 3 * f)
            out = work / "range"
            shutil.rmtree(out, ignore_errors=True)
            flowtrace(stack, f, out, start=start, stop=stop, **options)
        finally:
            tiff_stack.TiffStackSource._read_raw = original
        range_row = {"start": start, "stop": stop, "images": stop - start - f + 1,
                     "frames decoded": len(decoded), "first": min(decoded), "last": max(decoded),
                     "recording frames": n}
        print()
        print(table([range_row], list(range_row)))
        path = save("bench_controls", {
            "command": "python bench/bench_controls.py" + (" --quick" if args.quick else ""),
            "load_average": os.getloadavg(), "crop": rows, "crop_speedup": speedups,
            "range": range_row})
        print(f"\nload average {os.getloadavg()}; JSON: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
