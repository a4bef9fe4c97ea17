"""Resident memory while a large multi-page TIFF is traced: mapped vs read pages.

    python bench/bench_reader_memory.py [--frames 1000] [--size 1024] [--window 50] [--quick]

Writes an uncompressed stack of ``--frames`` 8-bit ``--size``² frames (1000 x
1 MP: 1 GB) into a temporary folder, then traces it (numba backend, images
only measured, not written) in a fresh process per method, sampling
``/proc/self/status`` every 20 ms: the largest VmRSS (all resident memory),
RssAnon (the process's own memory: ring, queues, buffers) and RssFile (pages
of mapped files: the libraries, and a mapped stack), and the same fields
just before the run (kernels compiled, source opened). Methods:

* ``read`` — :class:`~flowtrace_gpu.io.tiff_stack.TiffStackSource`, which
  reads each frame from its offset into a new array (``readinto``);
* ``mmap`` — the yardstick: the stack memory-mapped with ``tifffile.memmap``
  and each frame copied out of the mapping, as the reader did before.

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import save, table  # noqa: E402

_FIELDS = ("VmRSS", "RssAnon", "RssFile")


def status_mib() -> dict:
    """VmRSS, RssAnon and RssFile of this process, MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in _FIELDS:
            values[key] = int(rest.split()[0]) / 1024
    return values


def write_stack(path: Path, frames: int, size: int) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (size, size), dtype=np.uint8)
    with tifffile.TiffWriter(path, bigtiff=frames * size * size > 2**31) as tif:
        for i in range(frames):
            tif.write(np.roll(frame, i, axis=1), contiguous=True, photometric="minisblack")


def child(method: str, path: str, window: int) -> dict:
    """Trace the stack once; the peaks of the status fields, sampled while it runs."""
    import tifffile

    from flowtrace_gpu import flowtrace_array, get_backend
    from flowtrace_gpu.engine import pipeline
    from flowtrace_gpu.engine.plan import TracePlan
    from flowtrace_gpu.io.formats import open_source

    from .options import TraceOptions

    backend = get_backend("numba")
    # Compile (or load) the kernels first: the samples then see only the run.
    flowtrace_array(np.zeros((window + 2, 32, 32), np.uint8), window, backend=backend,
                    progress=False)
    source = open_source(path)
    n = source.n_frames
    plan = TracePlan(window, source.frame_shape, source.dtype, TraceOptions())
    if method == "read":
        frames = source.frames(range(n))
    else:
        mapped = tifffile.memmap(path, mode="r")
        frames = (np.array(mapped[i]) for i in range(n))
    before = status_mib()
    peaks = dict(before)
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            for key, value in status_mib().items():
                peaks[key] = max(peaks[key], value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    pipeline.run(frames, plan, backend, pipeline.PeakRecorder(), n - window + 1, workers=2)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {"method": method, "seconds": round(seconds, 2),
            **{f"before_{k}_mib": round(v) for k, v in before.items()},
            **{f"peak_{k}_mib": round(v) for k, v in peaks.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="200 frames of 512x512")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.window)))
        return
    if args.quick:
        args.frames, args.size = 200, 512
    with tempfile.TemporaryDirectory(prefix="flowtrace-mem-") as work:
        path = Path(work) / "stack.tif"
        write_stack(path, args.frames, args.size)
        file_mib = path.stat().st_size / 2**20
        rows = []
        for method in ("read", "mmap"):
            out = subprocess.run(
                [sys.executable, __file__, "--window", str(args.window), "--child", method,
                 str(path)], check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    frame_mib = args.size**2 / 2**20
    print(f"{args.frames} frames of {args.size}x{args.size} uint8 ({file_mib:.0f} MiB file), "
          f"F = {args.window} (ring {args.window * frame_mib:.0f} MiB)")
    print(table(rows, ["method", "seconds"] + [f"{when}_{k}_mib" for k in _FIELDS
                                               for when in ("before", "peak")]))
    save("reader_memory", {"frames": args.frames, "size": args.size, "window": args.window,
                           "file_mib": round(file_mib), "rows": rows})


if __name__ == "__main__":
    main()
