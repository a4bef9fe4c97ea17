"""How each I/O stage of a run scales with threads: read, PNG encode, file write.

    python bench/bench_io_threads.py [--quick] [--frames 300] [--size 1024]
                                     [--threads 1 2 4 8 16] [--profile cupy,numba]

A run's I/O floor (bench_e2e's ``io-floor``) is a reader thread decoding the
TIFF sequence and writer threads encoding and writing PNGs. Each stage is
timed here alone (and the encoder's parts: the probe that picks how to code
an image, its stored stream, the CRC, and the rows a deflated image is built
into first), over the same images, in a
thread pool of each size: the
throughput (images per second), its speedup over one thread, and how many
cores the process kept busy (process CPU time / wall time). A stage whose
speedup stalls while cores sit idle is held by something serial (the GIL, a
lock in a library, the filesystem). The images are the default option
set's pathline images of the synthetic movie, computed once with numpy.

With ``--profile``, also the calling thread of ``flowtrace_array`` on each
named backend under cProfile (the functions that take most of its time):
where a GPU run's time per frame goes on the host.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import write_movie  # noqa: E402

from flowtrace_gpu import available_backends, config, flowtrace_array  # noqa: E402
from flowtrace_gpu.io import png  # noqa: E402
from flowtrace_gpu.io.png import png_parts  # noqa: E402
from flowtrace_gpu.io.sources import ImageFolderSource  # noqa: E402
from flowtrace_gpu.io.writers import write_atomically  # noqa: E402

from common import save, table  # noqa: E402


def _timed_map(fn, n: int, threads: int, repeats: int, calls) -> tuple[float, float, float]:
    """Median wall seconds of ``n`` calls of ``fn`` in ``threads`` threads; cores busy;
    minor page faults per call (memory the kernel had to map afresh).

    ``fn`` takes a number that no other call of it got (``calls``, a shared
    counter): writers name their files by it, so no file is ever replaced
    (replacing one frees its blocks, which a run's new files never do).
    """
    walls, busy, faults = [], [], []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, itertools.islice(calls, 2 * threads)))  # threads started
        for _ in range(repeats):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in pool.map(fn, itertools.islice(calls, n)):
                pass
            wall = time.perf_counter() - t0
            walls.append(wall)
            busy.append((time.process_time() - c0) / wall)
            faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)
    return statistics.median(walls), statistics.median(busy), statistics.median(faults)


def stages(work: Path, images, frames_dir: Path):
    """(name, function of a call number) for each stage; call ``i`` works on image ``i % n``."""
    source = ImageFolderSource(frames_dir)
    encoded = [png_parts(image) for image in images]
    out = work / "png"
    out.mkdir()
    n = len(images)
    # The images as the encoder sees them: each row's bytes (8-bit: the image itself).
    pixels = [image.reshape(image.shape[0], -1) for image in images]
    streams = [png.stored_rows_zlib(p) for p in pixels]
    probe_bytes = config.get("png_probe_bytes")

    return [
        ("read tiff", lambda i: source._read(i % n)),
        ("encode png", lambda i: png_parts(images[i % n])),
        ("  png probe", lambda i: png._verdict(png._probe_rows(pixels[i % n], probe_bytes), 1)),
        ("  png stored", lambda i: png.stored_rows_zlib(pixels[i % n])),
        ("  png crc32", lambda i: png._crc32(streams[i % n])),
        ("  png rows (deflated images)", lambda i: png.png_rows(pixels[i % n])),
        ("write file", lambda i: write_atomically(out / f"w{i:06d}.png", encoded[i % n])),
        ("encode + write", lambda i: write_atomically(out / f"e{i:06d}.png",
                                                      png_parts(images[i % n]))),
    ]


def profile(movie, window: int, backend: str, top: int) -> str:
    """The calling thread of ``flowtrace_array`` under cProfile: top functions by own time."""
    flowtrace_array(movie[: window + 2], window, backend=backend)  # compile, build kernels
    flowtrace_array(movie, window, backend=backend)  # output pages faulted once
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    n = len(flowtrace_array(movie, window, backend=backend))
    prof.disable()
    wall = time.perf_counter() - t0
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    return (f"-- {backend}: flowtrace_array, {n} images, {1e3 * wall / n:.3f} ms per image "
            f"under cProfile\n" + text.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256x256 x 60 frames, 1 and 2 threads")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="pool sizes (default 1, 2, 4, ... up to the machine's cores)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", default="", help="comma list of backends to profile")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.repeats = 60, 256, 1
    cores = os.cpu_count() or 1
    threads = args.threads or sorted({min(2 ** k, cores) for k in range(8) if 2 ** (k - 1) < cores})
    if args.quick:
        threads = [t for t in threads if t <= 2]

    work = Path(tempfile.mkdtemp(prefix="flowtrace-bench-io-"))
    rows = []
    profiles = []
    try:
        _, movie = write_movie(work / "frames", args.frames, args.size)
        images = flowtrace_array(movie, args.window, backend="numpy")
        calls = itertools.count()
        for name, fn in stages(work, images, work / "frames"):
            base = None
            for n in threads:
                wall, busy, faults = _timed_map(fn, len(images), n, args.repeats, calls)
                rate = len(images) / wall
                base = base or rate
                rows.append({"stage": name, "threads": n, "images_per_s": rate,
                             "ms_per_image": 1e3 / rate, "speedup": rate / base,
                             "cores_busy": busy, "page_faults": faults})
        loaded = available_backends()
        for backend in filter(None, args.profile.split(",")):
            if backend not in loaded:
                print(f"{backend}: not available here, not profiled")
                continue
            profiles.append(profile(movie, args.window, backend, args.top))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.frames} images {args.size}x{args.size} uint8; {cores} cores; medians of "
          f"{args.repeats}")
    print(table(rows, ["stage", "threads", "images_per_s", "ms_per_image", "speedup",
                       "cores_busy", "page_faults"]))
    for text in profiles:
        print(text)
    print("wrote", save("io_threads", {"frames": args.frames,
                                       "size": args.size, "rows": rows,
                                       "profiles": profiles}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
