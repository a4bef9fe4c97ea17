"""The CuPy backend on a CUDA device: kernels, transfers, end to end.

    python bench/bench_gpu.py [--quick] [--size 1024] [--frames 300] [--batch 8 16] [--standin]

* kernel ms per output frame (``project()`` until the device is idle) for
  max / median / color at F = 10, 30, 100 on ``size``x``size`` uint8 frames,
  and the whole step (push + project + download) for comparison;
* the median of F integer frames: the selection kernel against ``cupy.median``;
* host <-> device throughput from pinned and from pageable memory;
* end-to-end output frames per second through ``flowtrace_array`` (with
  and without reader and writer threads) and through ``flowtrace`` (TIFF
  folder -> PNG folder), medians of three interleaved runs, on the GPU one
  frame at a time (batch 1, as the kernel rows) and in batches (``--batch``,
  default 8 as ``FLOWTRACE_GPU_BATCH``) and,
  as the yardstick, on the numba backend of the same machine.

Where no device is found it prints why and writes JSON saying so.
``--standin`` runs the same measurements on the NumPy stand-in
(``CupyBackend(xp=numpy)``) to check this script, into ``gpu_standin.json``.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import write_movie  # noqa: E402

from flowtrace_gpu import flowtrace, flowtrace_array  # noqa: E402
from flowtrace_gpu.backends import BackendUnavailable  # noqa: E402
from flowtrace_gpu.backends.cupy import backend as cb  # noqa: E402
from flowtrace_gpu.backends.cupy.device import probe  # noqa: E402
from flowtrace_gpu.engine.plan import TracePlan  # noqa: E402
from flowtrace_gpu.options import TraceOptions  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import save, table  # noqa: E402

MODES = {"max": {}, "median": {"subtract_median": True}, "color": {"color_series": True}}


def _sync(backend) -> None:
    compute, copy = backend.streams()
    copy.synchronize()
    compute.synchronize()


def kernel_times(backend, size: int, windows, repeats: int) -> list[dict]:
    """ms per output frame of project() alone, and of a whole pipeline step."""
    rows = []
    frames = synthetic_movie(max(windows) + 8, (size, size), seed=1)
    for mode, options in MODES.items():
        for f in windows:
            plan = TracePlan(f, (size, size), np.uint8, TraceOptions(**options))
            proj = backend.projector(plan)
            for frame in frames[:f]:
                proj.push(frame)
            backend.to_host(proj.project())  # compile and warm the pool
            _sync(backend)
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                image = proj.project()
                _sync(backend)
                samples.append(time.perf_counter() - t0)
                del image
            step = []
            for t in range(repeats):
                t0 = time.perf_counter()
                proj.push(frames[f + t % 8])
                backend.to_host(proj.project())
                step.append(time.perf_counter() - t0)
            rows.append({"mode": mode, "F": f, "size": size,
                         "kernel_ms": 1e3 * statistics.median(samples),
                         "step_ms": 1e3 * statistics.median(step)})
            del proj
    return rows


def median_peers(backend, size: int, windows, repeats: int) -> list[dict]:
    """ms of the median of F frames: the selection kernel against cupy.median.

    The kernel reads the integer ring; ``cupy.median`` (the path float
    frames take) sorts the window cast to float64, as ``prepare_stack`` did
    before the kernel. Both results are compared, so a wrong kernel fails here.
    """
    xp, k = backend.xp, backend.runtime.kernels
    rows = []
    rng = np.random.default_rng(3)
    with backend.runtime.activate():
        for dtype in (np.uint8, np.uint16):
            for f in windows:
                ring = xp.asarray(rng.integers(0, 2 ** (8 * np.dtype(dtype).itemsize),
                                               (f, size, size), dtype=dtype))
                out = xp.empty((size, size), np.float64)
                times = {}
                for name, fn in (("select", lambda: k.median(ring, f, out)),
                                 ("cupy.median", lambda: xp.median(ring.astype(np.float64),
                                                                   axis=0))):
                    fn()
                    backend.runtime.current_stream().synchronize()
                    samples = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        result = fn()
                        backend.runtime.current_stream().synchronize()
                        samples.append(time.perf_counter() - t0)
                    times[name] = (statistics.median(samples), result)
                if not bool((times["select"][1] == times["cupy.median"][1]).all()):
                    raise AssertionError(f"median kernel differs from cupy.median ({dtype}, F={f})")
                rows.append({"dtype": np.dtype(dtype).name, "F": f, "size": size,
                             "select_ms": 1e3 * times["select"][0],
                             "cupy_median_ms": 1e3 * times["cupy.median"][0],
                             "speedup": times["cupy.median"][0] / times["select"][0]})
    return rows


def transfer_rates(backend, mib: int, repeats: int) -> list[dict]:
    """GB/s host -> device and back, pinned and pageable."""
    rt, xp = backend.runtime, backend.xp
    compute, _ = backend.streams()
    n = mib * 2**20
    rows = []
    with rt.activate():
        device = xp.empty(n, dtype=xp.uint8)
        for kind, host in (("pinned", rt.empty_pinned(n, np.uint8)),
                           ("pageable", np.empty(n, np.uint8))):
            host[...] = 1
            for direction in ("h2d", "d2h"):
                samples = []
                for _ in range(repeats + 1):
                    t0 = time.perf_counter()
                    if direction == "h2d":
                        rt.upload(device, host, compute)
                        compute.synchronize()
                    else:
                        rt.download(device, host, compute)
                    samples.append(time.perf_counter() - t0)
                rows.append({"memory": kind, "direction": direction, "MiB": mib,
                             "GB_per_s": n / statistics.median(samples[1:]) / 1e9})
    return rows


def end_to_end(backends, size: int, n_frames: int, f: int, repeats: int = 3) -> list[dict]:
    """Output frames per second through the public calls: medians of ``repeats`` runs.

    Each backend is warmed up first on a short movie, so Numba's first
    compilations (the CPU backend, the PNG coder) and CuPy's kernel builds
    are not timed; the runs of the calls are interleaved, and the median
    also drops the first touch of a fresh output array (page faults: 4 ms
    per MiB on a virtual machine, seen here). The numba backend on the same
    machine is the yardstick.
    """
    rows = []
    work = Path(tempfile.mkdtemp(prefix="flowtrace_bench_gpu_"))
    try:
        paths, movie = write_movie(work, n_frames, size)
        short = work / "short"
        short.mkdir()
        for path in paths[: f + 2]:
            shutil.copy(path, short / path.name)
        for backend in backends:
            label = getattr(backend, "name", backend)
            if getattr(backend, "batch", None):
                label = f"{label}, batch {backend.batch}"
            flowtrace_array(movie[: f + 2], f, backend=backend)  # warm up
            flowtrace(short, f, work / f"warm_{label}", backend=backend, progress=False)
            calls = {  # reader + writer threads, or all in the calling thread
                "flowtrace_array": lambda: len(flowtrace_array(movie, f, backend=backend)),
                "flowtrace_array (serial)": lambda: len(flowtrace_array(
                    movie, f, backend=backend, use_parallel=False)),
                "flowtrace (tif -> png)": lambda: len(flowtrace(
                    work, f, work / f"out_{label}_{next(runs)}", backend=backend,
                    progress=False)),
            }
            runs = itertools.count()
            seconds = {name: [] for name in calls}
            for _ in range(repeats):
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    outputs = call()
                    seconds[name].append(time.perf_counter() - t0)
            for name, times in seconds.items():
                rows.append({"backend": label, "call": name, "F": f, "size": size,
                             "outputs": outputs, "fps": outputs / statistics.median(times)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and frames")
    parser.add_argument("--size", type=int, default=None, help="frame side (default 1024)")
    parser.add_argument("--frames", type=int, default=None, help="frames end to end (default 300)")
    parser.add_argument("--batch", type=int, nargs="*", default=[8],
                        help="gpu_batch values timed end to end besides 1 (default 8, "
                             "the setting's default)")
    parser.add_argument("--standin", action="store_true",
                        help="run on the NumPy stand-in (checks this script; no GPU figures)")
    args = parser.parse_args(argv)

    name = "gpu_standin" if args.standin else "gpu"
    if args.standin:
        backend = cb.CupyBackend(xp=np, batch=1)
    else:
        try:
            probe()
        except BackendUnavailable as exc:
            reason = str(exc)
            print(f"bench_gpu: skipped, no CUDA device: {reason}")
            path = save(name, {"skipped": True, "reason": reason})
            print(f"wrote {path}")
            return 0
        backend = cb.CupyBackend(batch=1)  # the kernel rows: one frame at a time

    quick = args.quick or args.standin
    size = args.size or (256 if args.standin else 1024)
    n_frames = args.frames or (60 if quick else 300)
    windows = (10, 30) if args.standin else (10, 30, 100)
    repeats = 5 if quick else 30

    print(f"device: {backend.device_name}")
    kernels = kernel_times(backend, size, windows, repeats)
    print(table(kernels, ["mode", "F", "size", "kernel_ms", "step_ms"]))
    medians = median_peers(backend, size, windows, repeats)
    print(table(medians, ["dtype", "F", "size", "select_ms", "cupy_median_ms", "speedup"]))
    transfers = transfer_rates(backend, 16 if quick else 256, 3 if quick else 10)
    print(table(transfers, ["memory", "direction", "MiB", "GB_per_s"]))
    batched = [cb.CupyBackend(xp=np, batch=b) if args.standin else cb.CupyBackend(batch=b)
               for b in args.batch if b > 1]
    e2e = end_to_end([backend, *batched, "numba"], size, n_frames, 30 if n_frames > 30 else 10)
    print(table(e2e, ["backend", "call", "F", "size", "outputs", "fps"]))

    path = save(name, {"skipped": False, "device": backend.device_name, "standin": args.standin,
                       "size": size, "kernels": kernels, "medians": medians, "transfers": transfers,
                       "end_to_end": e2e})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
