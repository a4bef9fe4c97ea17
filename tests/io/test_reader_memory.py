"""Recording files are read frame by frame, never mapped: memory stays O(window) whatever N.

A memory-mapped file's pages count in the process's resident memory (RSS)
while the mapping lives, so a long run over a mapped stack looked as large as
the file to schedulers that count RSS (docs/guide/recordings.md, "Memory";
``bench/bench_reader_memory.py`` measures it).
"""

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import get_backend
from flowtrace_gpu.engine import pipeline
from flowtrace_gpu.engine.plan import TracePlan
from flowtrace_gpu.io.formats import open_source
from flowtrace_gpu.options import TraceOptions  # noqa: E402

from camera_writers import pack_bits

SHAPE = (128, 128)

# Each test traces a recording large enough to measure memory: seconds each.
pytestmark = pytest.mark.slow


def _stack(path, n, compression=None):
    rng = np.random.default_rng(n)
    tifffile.imwrite(path, rng.integers(0, 255, (n,) + SHAPE, dtype=np.uint8),
                     photometric="minisblack", compression=compression)
    return path


def _mraw(path, n):
    rng = np.random.default_rng(n)
    path.with_suffix(".mraw").write_bytes(pack_bits(rng.integers(0, 4096, (n,) + SHAPE), 12))
    path.with_suffix(".cih").write_text(
        "#Camera Information Header\nRecord Rate(fps) : 1000\n"
        f"Total Frame : {n}\nImage Width : {SHAPE[1]}\nImage Height : {SHAPE[0]}\n"
        "Color Type : Mono\nColor Bit : 12\nFile Format : MRaw\n")
    return path.with_suffix(".mraw")


WRITERS = {"tiff": lambda d, n: _stack(d / f"s{n}.tif", n),
           "tiff-zlib": lambda d, n: _stack(d / f"s{n}.tif", n, "zlib"),
           "mraw12": lambda d, n: _mraw(d / f"s{n}.mraw", n)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps (Linux)")
@pytest.mark.parametrize("kind", ["tiff", "mraw12"])
def test_recording_files_are_not_mapped_while_read(tmp_path, kind):
    path = WRITERS[kind](tmp_path, 12)
    source = open_source(path)
    mapped = []
    for frame in source.frames(range(source.n_frames)):
        mapped.append(str(path) in Path("/proc/self/maps").read_text())
        assert frame.flags.writeable and frame.flags.c_contiguous
    assert len(mapped) == 12 and not any(mapped)


class _Sink:
    parallel = True

    def write(self, index, image):
        pass

    def close(self):
        return None


def _peak_bytes(path, f=8):
    source = open_source(path)
    plan = TracePlan(f, source.frame_shape, source.dtype, TraceOptions(subtract_median=True))
    tracemalloc.start()
    try:
        pipeline.run(source.frames(range(source.n_frames)), plan, get_backend("numpy"), _Sink(),
                     source.n_frames - f + 1, workers=2)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_reading_a_recording_holds_the_window_not_the_file(tmp_path, kind):
    _peak_bytes(WRITERS[kind](tmp_path, 20))  # warm caches
    short = _peak_bytes(WRITERS[kind](tmp_path, 40))
    long = _peak_bytes(WRITERS[kind](tmp_path, 400))
    frame = SHAPE[0] * SHAPE[1] * 8  # one frame as float64, the widest copy the trace makes
    assert long < short + 8 * frame, (short, long)
    assert long < 100 * frame  # far below the 400-frame file
