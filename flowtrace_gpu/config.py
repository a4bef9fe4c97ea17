"""Every tunable of flowtrace_gpu, its default, and the environment variable that overrides it.

Each setting is declared once in :data:`SETTINGS`; :data:`DEFAULTS` is
derived from it. Environment variables are read when a run starts (never at
import), so a script may set them late; :func:`validate` checks all of them
before any work starts, so a bad value is a :class:`FlowtraceError` naming
the variable and the allowed values, not a crash in a worker thread.
Settings without a variable are internal constants kept here so that every
knob is in one place; tests and benchmarks may pass other values explicitly.

Examples
--------
>>> from flowtrace_gpu import config
>>> config.DEFAULTS["prefetch"]
8
>>> config.ENV_VARS['FLOWTRACE_PREFETCH']
'prefetch'
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One tunable: default, meaning, and how the environment may change it."""

    default: object
    doc: str
    #: Environment variable overriding the default, or None (fixed).
    env: str | None = None
    #: Allowed values (for strings), or None.
    choices: tuple | None = None
    #: Inclusive bounds (for numbers), or None.
    minimum: float | None = None
    maximum: float | None = None

    @property
    def cast(self):
        return type(self.default)

    def allowed(self) -> str:
        """The allowed values, in words."""
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        kind = "a whole number" if self.cast is int else "a number"
        if self.maximum is None:
            return f"{kind} >= {self.minimum}"
        return f"{kind} from {self.minimum} to {self.maximum}"


SETTINGS: dict[str, Setting] = {
    "backend": Setting(
        "auto", "backend used when ``backend='auto'`` is passed",
        env="FLOWTRACE_BACKEND", choices=("auto", "cupy", "numba", "numpy")),
    "device": Setting(
        0, "CUDA device ordinal of the cupy backend (``device=`` overrides it)",
        env="FLOWTRACE_DEVICE", minimum=0, maximum=1023),
    # Eight 1 MP 8-bit frames are 8 MB: enough to ride out a slow file
    # without making memory O(movie).
    "prefetch": Setting(
        8, "frames the reader thread decodes ahead",
        env="FLOWTRACE_PREFETCH", minimum=1, maximum=4096),
    # Level 1: slightly larger files, much faster writes than zlib's 6 (bench/bench_png.py).
    "png_level": Setting(
        1, "deflate level of written PNGs; size and speed only, never pixels",
        env="FLOWTRACE_PNG_LEVEL", minimum=0, maximum=9),
    # Encoding and writing stop scaling at 2-4 threads on a 16-core host; more
    # only contend (bench/bench_io_threads.py, bench/bench_host_threads.py).
    "writers": Setting(
        4, "most writer threads of a run (encoding and writing images; never more than "
           "``max_cores``); more may pay where each file's latency dominates (a network share)",
        env="FLOWTRACE_WRITERS", minimum=1, maximum=1024),
    "write_queue_per_writer": Setting(
        2, "images waiting for each writer thread",
        env="FLOWTRACE_WRITE_QUEUE", minimum=1, maximum=1024),
    # Off by default: nice writers also yield to every other process in the
    # scheduling group, and on a busy shared machine they would starve.
    "writer_nice": Setting(
        0, "added to the writer threads' nice value (Linux): 19 lets compute, when it is "
           "the bottleneck, run first on a machine of its own",
        env="FLOWTRACE_WRITER_NICE", minimum=0, maximum=19),
    # See flowtrace_gpu/engine/thread_split.py: 0 lets the run move one thread at a
    # time between compute and I/O, following what each costs.
    "compute_threads": Setting(
        0, "kernel threads of a run; 0: start at half the cores and follow the measured "
        "compute and I/O cost", env="FLOWTRACE_COMPUTE_THREADS", minimum=0, maximum=4096),
    "split_interval": Setting(
        16, "frames between reviews of the compute/I-O thread split",
        env="FLOWTRACE_SPLIT_INTERVAL", minimum=1, maximum=2**20),
    "probe_workers": Setting(
        8, "most threads reading a folder's image headers before a run",
        env="FLOWTRACE_PROBE_WORKERS", minimum=1, maximum=256),
    "numba_chunk": Setting(
        8192, "values per parallel task of the numba kernels",
        env="FLOWTRACE_NUMBA_CHUNK", minimum=1, maximum=2**30),
    # State in blocks small enough to stay in L2 per frame, with rows of the
    # ring long enough for the prefetcher (bench/bench_kernels.py --ops median).
    "median_block": Setting(
        4096, "pixels per cache block of the numba sliding median",
        env="FLOWTRACE_MEDIAN_BLOCK", minimum=1, maximum=2**20),
    # Long sorted windows (uint16, large F) fall out of the cache in big
    # blocks: a block is capped so that its sorted values fit in this many bytes.
    "median_sorted_bytes": Setting(
        2**18, "most bytes of sorted window per block of the numba sliding median "
        "(F x itemsize per pixel; long windows get smaller blocks, down to 1024 pixels)",
        env="FLOWTRACE_MEDIAN_SORTED_BYTES", minimum=1, maximum=2**30),
    # Where the band histogram overtakes the sorted window (bench/bench_median.py).
    "median_band_min_f": Setting(
        40, "shortest window for which 'auto' takes the band-histogram median (uint8)",
        env="FLOWTRACE_MEDIAN_BAND_MIN_F", minimum=1, maximum=65535),
    "band_bins": Setting(
        16, "bins per pixel around the median in the band histogram",
        env="FLOWTRACE_BAND_BINS", minimum=1, maximum=256),
    # The adaptive median switches a block of pixels to the other method
    # when its cost model says that one is cheaper by more than this factor.
    "median_switch": Setting(
        1.3, "factor by which the other sliding-median method must be cheaper for a block of "
        "pixels to switch to it (uint8, 'auto')", env="FLOWTRACE_MEDIAN_SWITCH",
        minimum=1.0, maximum=100.0),
    # Where the records color path, about flat in F, overtakes brute force,
    # O(F) (bench/bench_kernels.py --ops color/brute,color/records).
    "color_records_min_f": Setting(
        128, "shortest window for which 'auto' takes the records color path (color_series, "
        "fade_tails)", env="FLOWTRACE_COLOR_RECORDS_MIN_F", minimum=1, maximum=65535),
    # 3 accumulators and one row of float64 per pixel in 32 KiB of L1 cache.
    "numba_weight_block": Setting(
        1024, "pixels per cache block of the numba weighted pass (color_series, fade_tails) "
        "and of the records color path", env="FLOWTRACE_WEIGHT_BLOCK", minimum=1,
        maximum=2**20),
    # Brute force reads F rows of the ring per block: long rows suit the
    # prefetcher (bench/bench_kernels.py --ops color/brute,fade/brute).
    "numba_brute_block": Setting(
        8192, "pixels per block of the numba brute-force color paths (color_series, "
        "fade_tails on integer and float32 frames; at most numba_chunk)", env="FLOWTRACE_BRUTE_BLOCK",
        minimum=1, maximum=2**20),
    # Fewer CuPy calls per frame: one upload, launch and download per batch
    # (bench/bench_e2e.py --gpu-batch 1 8 32).
    "gpu_batch": Setting(
        8, "frames the cupy backend uploads, and images it downloads, per round trip (1: one "
           "frame at a time; the ring then holds F frames, not 2 (F + batch - 1))",
        env="FLOWTRACE_GPU_BATCH", minimum=1, maximum=1024),
    "gpu_headroom_mib": Setting(
        64, "device memory (MiB) left free beyond the cupy backend's planned buffers",
        env="FLOWTRACE_GPU_HEADROOM_MIB", minimum=0, maximum=2**20),
    # flowtrace_dask: each block also reads the F-1 frames after it, so a
    # block of at least 4 (F-1) images re-reads at most a quarter more.
    "dask_block_halos": Setting(
        4, "flowtrace_dask's default block holds at least this many times F-1 images",
        minimum=1, maximum=2**20),
    # Worker processes started by flowtrace_batch and the benchmarks: glibc's
    # adaptive limits at their ceiling (32 MiB mmap, twice that trim), fixed,
    # instead of distributed's MALLOC_TRIM_THRESHOLD_=65536 (see
    # batch.worker_environ; bench/bench_dask.py measures both).
    "dask_malloc_mmap": Setting(
        32 * 2**20, "MALLOC_MMAP_THRESHOLD_ of the dask workers this package starts",
        minimum=0, maximum=2**31),
    "dask_malloc_trim": Setting(
        64 * 2**20, "MALLOC_TRIM_THRESHOLD_ of the dask workers this package starts",
        minimum=0, maximum=2**31),
    # A kill loses at most this much record (those images are recomputed on
    # resume); rewriting a few hundred bytes once a second costs nothing.
    "manifest_interval_s": Setting(
        1.0, "most seconds between updates of an output's manifest while images complete",
        env="FLOWTRACE_MANIFEST_INTERVAL", minimum=0.0, maximum=3600.0),
    # Scrubbing back and forth and sliding the preview's window by one frame
    # reread nothing within this; a 1 MP 16-bit frame is 2 MiB.
    "napari_cache_mib": Setting(
        256, "MiB of recently read frames each recording opened in napari keeps (the "
             "flowtrace-gpu plugin's reader); 0 keeps one", minimum=0, maximum=2**20),
    # Noisy images barely shrink, and deflating them costs several times
    # storing them (bench/bench_png.py).
    "png_probe_bytes": Setting(
        64 * 1024, "bytes of an image (four pieces) coded first, to see whether deflate pays"),
    "png_store_above": Setting(
        0.9, "images whose probe deflates to more than this fraction are stored",
        minimum=0.0, maximum=1.0),
    # color_series of a noisy movie: a Huffman code of the bytes alone ends
    # within 1-3 % of ISA-L's size in 60-75 % of its time (bench/bench_png.py).
    "png_literal_within": Setting(
        0.02, "images whose probe a Huffman code alone shortens to within this fraction "
              "of its deflated size are coded so (no LZ77)",
        minimum=0.0, maximum=10.0),
}

#: Every default, by name.
DEFAULTS: dict[str, object] = {name: s.default for name, s in SETTINGS.items()}

#: Environment variable -> setting name.
ENV_VARS: dict[str, str] = {s.env: name for name, s in SETTINGS.items() if s.env}


def _error(message: str):
    from .errors import FlowtraceError

    return FlowtraceError(message)


def _parse(name: str, setting: Setting, raw: str):
    var = setting.env
    fix = f"unset {var} or give {setting.allowed()} (default {setting.default!r})"
    if setting.choices is not None:
        value = raw.strip().lower()
        if value not in setting.choices:
            raise _error(f"environment variable {var}={raw!r} is not {setting.allowed()}; {fix}")
        return value
    try:
        value = setting.cast(raw.strip())
    except ValueError:
        raise _error(
            f"environment variable {var}={raw!r} is not a valid {setting.cast.__name__}; {fix}"
        ) from None
    if value != value or (setting.minimum is not None and value < setting.minimum) or (
            setting.maximum is not None and value > setting.maximum):
        raise _error(f"environment variable {var}={raw!r} is out of range; {fix}")
    return value


def get(key: str):
    """Return the setting ``key``: its environment variable if set, else the default.

    Raises
    ------
    FlowtraceError
        When the variable is set to a value outside the setting's range.
    """
    setting = SETTINGS[key]
    if setting.env is not None:
        raw = os.environ.get(setting.env)
        if raw not in (None, ""):
            return _parse(key, setting, raw)
    return setting.default


def validate() -> None:
    """Check every environment variable of :data:`SETTINGS` (called as a run starts)."""
    for key in SETTINGS:
        get(key)


def table() -> str:
    """The settings with a variable, as the Markdown table the docs show (docs/guide/options.md)."""
    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS.values():
        if setting.env:
            doc = setting.doc.replace("``", "`")
            lines.append(f"| `{setting.env}` | `{setting.default}` | {doc} |")
    return "\n".join(lines)
