"""flowtrace_dask on 1 and 2 worker processes, against the single-process pipeline.

    python bench/bench_dask.py [--quick] [--frames 400] [--size 1024] [--frames-to-merge 20]
                               [--block 96] [--repeats 3]

A synthetic recording is stored as a zarr array (one frame per chunk) and
traced, in one run, by:

* ``pipeline``: the single-process pipeline (reader thread, compute, writer
  threads: what ``flowtrace`` runs), the yardstick;
* ``threads``: ``flowtrace_dask`` on dask's threaded scheduler, 2 threads
  (its input: ``da.from_zarr`` with time chunks of one block);
* ``1 worker`` / ``2 workers``: ``flowtrace_dask`` on a ``LocalCluster`` of
  processes with one thread each, started with this package's worker
  environment (``flowtrace_gpu.scaleout.batch.worker_environ``);
* ``2 workers, distributed's malloc``: the same with distributed's default
  ``MALLOC_TRIM_THRESHOLD_=65536``.

Two sinks: ``discard`` (images computed and dropped where they are made:
reading + compute) and ``zarr`` (images written to a zarr array: by the
pipeline's writer threads, one image per chunk, or by the workers,
``to_zarr``, one block per chunk). Repeats are interleaved across the
set-ups, so every set-up sees the same machine load; medians are reported,
with the halo overhead (F-1)/block of the dask runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowtrace_gpu import flowtrace, flowtrace_dask, get_backend  # noqa: E402
from flowtrace_gpu.api import _plan  # noqa: E402
from flowtrace_gpu.engine.pipeline import run  # noqa: E402
from flowtrace_gpu.io.formats import open_source  # noqa: E402
from flowtrace_gpu.options import split  # noqa: E402
from flowtrace_gpu.scaleout.batch import local_cluster  # noqa: E402
from flowtrace_gpu.scaleout.dask_trace import default_block  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import save, table  # noqa: E402

MALLOC = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


class Discard:
    """A writer (and a dask store target) that drops every image."""

    parallel = True

    def write(self, index, image):
        pass

    def __setitem__(self, key, value):
        pass

    def close(self):
        return None


def write_recording(path: Path, frames: int, size: int, piece: int = 50):
    """A ``frames``-long recording: 50 synthetic frames played forth and back (memory stays small)."""
    import zarr

    movie = synthetic_movie(min(piece, frames), (size, size), seed=0)
    array = zarr.create_array(str(path), shape=(frames, size, size), chunks=(1, size, size),
                              dtype=movie.dtype)
    for start in range(0, frames, len(movie)):
        part = movie if (start // len(movie)) % 2 == 0 else movie[::-1]
        stop = min(frames, start + len(movie))
        array[start:stop] = part[:stop - start]


def pipeline_run(source_path, f, options, sink, out):
    """The single-process pipeline, as flowtrace runs it (all cores, reader and writer threads)."""
    if sink == "zarr":
        shutil.rmtree(out, ignore_errors=True)
        flowtrace(source_path, f, out, progress=False, **options)
        return
    source = open_source(source_path)
    image_options, _ = split(options)
    plan, sequence, _, n_out, _ = _plan(source, f, 1, image_options)
    run(source.frames(sequence), plan, get_backend("auto"), Discard(), n_out,
        workers=os.cpu_count() or 1)


def dask_run(source_path, f, options, block, sink, out, scheduler):
    import dask.array as da

    # Time chunks of whole blocks: each block read by one task, no rechunking.
    chunks = (block or "auto", -1, -1)
    lazy = flowtrace_dask(da.from_zarr(str(source_path), chunks=chunks), f, block=block, **options)
    if sink == "zarr":
        shutil.rmtree(out, ignore_errors=True)
        lazy.to_zarr(str(out), compute=False).compute(**scheduler)
    else:
        da.store(lazy, Discard(), lock=False, compute=True, **scheduler)


def start_clusters(quick: bool):
    """{label: (cluster, client)}; each started with its own malloc environment."""
    import distributed

    user = {k: os.environ.get(k) for k in MALLOC}
    setups = [("1 worker", 1, True), ("2 workers", 2, True)]
    if not quick:
        setups.append(("2 workers, distributed's malloc", 2, False))
    clusters = {}
    for label, n, ours in setups:
        # A nanny writes its environment into this process's os.environ, and
        # the next cluster would inherit it: start each from the user's.
        for key, value in user.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if ours:
            cluster = local_cluster(n)
        else:
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
        client = distributed.Client(cluster, set_as_default=False)
        env = client.run(lambda: {k: os.environ.get(k) for k in MALLOC})
        clusters[label] = (cluster, client, next(iter(env.values())))
    return clusters


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small run (smoke test)")
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--frames-to-merge", type=int, default=20)
    p.add_argument("--block", type=int, default=96,
                   help="images per dask block (0: flowtrace_dask's default); 96 gives 4 blocks")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.frames, args.size, args.repeats, args.block = 120, 256, 2, 32
    logging.getLogger("distributed").setLevel(logging.ERROR)
    f = args.frames_to_merge
    n_out = args.frames - f + 1
    option_sets = {"default": {}, "subtract_median": {"subtract_median": True}}
    sinks = ["discard"] if args.quick else ["discard", "zarr"]

    tmp = Path(tempfile.mkdtemp(prefix="bench_dask_"))
    try:
        source = tmp / "recording.zarr"
        write_recording(source, args.frames, args.size)
        clusters = start_clusters(args.quick)
        args.block = args.block or None
        block = args.block or default_block(f, args.size * args.size, (1,))
        setups = {"pipeline": None, "threads": {"scheduler": "threads", "num_workers": 2}}
        setups.update({label: {"scheduler": client} for label, (_, client, _) in clusters.items()})

        rows = []
        for name, options in option_sets.items():
            for sink in sinks:
                out = tmp / "out.zarr"

                def call(label):
                    if label == "pipeline":
                        pipeline_run(source, f, options, sink, out)
                    else:
                        dask_run(source, f, options, args.block, sink, out, setups[label])

                times = {label: [] for label in setups}
                for label in setups:  # warm-up: kernels compiled or loaded in every process
                    call(label)
                for _ in range(args.repeats):
                    for label in setups:
                        t0 = time.perf_counter()
                        call(label)
                        times[label].append(time.perf_counter() - t0)
                base = statistics.median(times["pipeline"])
                for label, ts in times.items():
                    med = statistics.median(ts)
                    env = clusters[label][2] if label in clusters else {}
                    rows.append({
                        "options": name, "sink": sink, "set-up": label,
                        "frames/s": n_out / med, "ms/frame": med / n_out * 1e3,
                        "x pipeline": base / med, "spread %": 100 * (max(ts) - min(ts)) / med,
                        "halo (F-1)/block": "" if label == "pipeline" else f"{(f - 1) / block:.2f}",
                        "MALLOC_TRIM_THRESHOLD_": env.get("MALLOC_TRIM_THRESHOLD_") or "",
                    })
                print(table(rows[-len(setups):], list(rows[-1])), flush=True)
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{args.frames} frames of {args.size}x{args.size} uint8 (zarr, one frame per chunk), "
          f"F = {f}, {n_out} images, dask block {block} images; medians of {args.repeats} "
          "interleaved repeats")
    path = save("bench_dask", {"frames": args.frames, "size": args.size, "frames_to_merge": f,
                               "block": block, "repeats": args.repeats, "rows": rows})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
