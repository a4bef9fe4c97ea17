"""The streaming engine: threads, order, memory flat in the movie's length."""

import os
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from flowtrace_gpu import flowtrace_array, get_backend
from flowtrace_gpu.engine import pipeline
from flowtrace_gpu.engine.plan import TracePlan
from flowtrace_gpu.options import TraceOptions  # noqa: E402

from conftest import BACKENDS
from naive import naive_trace


class CountingWriter:
    parallel = True

    def __init__(self):
        self.count = 0
        self.checksum = 0
        self.threads = set()
        self._lock = threading.Lock()

    def write(self, index, image):
        with self._lock:
            self.count += 1
            self.checksum += int(image[0, 0])
            self.threads.add(threading.current_thread().name)

    def close(self):
        return self.count


def _frames(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield rng.integers(0, 256, shape, dtype=np.uint8)


def _peak_bytes(n, shape=(128, 128), f=8, backend="numpy"):
    plan = TracePlan(f, shape, np.uint8, TraceOptions(subtract_median=True))
    writer = CountingWriter()
    tracemalloc.start()
    try:
        count = pipeline.run(_frames(n, shape), plan, get_backend(backend), writer, n - f + 1,
                             workers=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n - f + 1
    return peak


@pytest.mark.parametrize("backend", BACKENDS)
def test_peak_memory_is_flat_in_movie_length(backend):
    _peak_bytes(20, backend=backend)  # warm caches and compiled kernels
    short = _peak_bytes(40, backend=backend)
    long = _peak_bytes(400, backend=backend)
    frame = 128 * 128
    # Ten times the frames may not cost more than a few frames' worth of memory.
    assert long < short + 8 * frame * 8, (short, long)
    # And the whole run holds O(window + queues), far below the movie (400 frames).
    assert long < 100 * frame * 8


def test_writes_run_on_writer_threads_and_reading_on_the_reader():
    seen = []

    def frames():
        for frame in _frames(30, (4, 4)):
            seen.append(threading.current_thread().name)
            yield frame

    plan = TracePlan(5, (4, 4), np.uint8)
    writer = CountingWriter()
    pipeline.run(frames(), plan, get_backend("numpy"), writer, 26, workers=2)
    assert writer.count == 26
    assert set(seen) == {"flowtrace-reader"}
    assert all(name.startswith("flowtrace-writer") for name in writer.threads)


class SlowWriter(CountingWriter):
    """Each write takes a while, so the pool starts every thread it is allowed."""

    def write(self, index, image):
        time.sleep(0.005)
        super().write(index, image)


@pytest.mark.parametrize("limit, workers, expected", [("2", 8, 2), ("8", 3, 3), ("8", 8, 8)])
def test_writer_threads_are_at_most_the_writers_setting_and_the_workers(
        monkeypatch, limit, workers, expected):
    monkeypatch.setenv("FLOWTRACE_WRITERS", limit)
    writer = SlowWriter()
    pipeline.run(_frames(40, (4, 4)), TracePlan(3, (4, 4), np.uint8), get_backend("numpy"),
                 writer, 38, workers=workers)
    assert writer.count == 38
    assert len(writer.threads) == expected, writer.threads


@pytest.mark.parametrize("batch", [6, 12])
def test_a_batch_fits_in_the_prefetch_and_the_write_backlog(monkeypatch, batch):
    # One writer with a backlog of one image and a prefetch of two frames.
    # The first write waits until the reader has decoded frame f - 2 + 4
    # batches. With a backlog of a batch, the calling thread hands over batch
    # 1's images, pushes batch 3 and stalls handing over batch 2 (frame
    # f - 2 + 3 batches consumed); only a prefetch of a batch then lets the
    # reader get a batch further. With the backlog of one image it stalls on
    # batch 1 a batch earlier, however far the reader may run ahead.
    from flowtrace_gpu.backends.cupy.backend import CupyBackend

    monkeypatch.setenv("FLOWTRACE_WRITERS", "1")
    monkeypatch.setenv("FLOWTRACE_WRITE_QUEUE", "1")
    f, n = 3, 3 + 6 * batch
    far = threading.Event()

    def frames():
        for t, frame in enumerate(_frames(n, (4, 4))):
            if t == f - 2 + 4 * batch:
                far.set()
            yield frame

    class WaitingWriter(CountingWriter):
        def write(self, index, image):
            if index == 0:
                self.reached = far.wait(timeout=10)
            super().write(index, image)

    writer = WaitingWriter()
    pipeline.run(frames(), TracePlan(f, (4, 4), np.uint8), CupyBackend(xp=np, batch=batch),
                 writer, n - f + 1, workers=2, prefetch=2)
    assert writer.count == n - f + 1
    assert writer.reached


def test_serial_run_uses_the_calling_thread_only():
    seen = []

    def frames():
        for frame in _frames(12, (4, 4)):
            seen.append(threading.current_thread())
            yield frame

    writer = CountingWriter()
    pipeline.run(frames(), TracePlan(3, (4, 4), np.uint8), get_backend("numpy"), writer, 10,
                 workers=0)
    assert set(seen) == {threading.current_thread()}
    assert writer.threads == {threading.current_thread().name}


def test_reader_errors_reach_the_caller():
    def frames():
        yield np.zeros((2, 2), np.uint8)
        raise OSError("disk went away")

    for workers in (0, 2):
        with pytest.raises(pipeline.FrameReadError, match="disk went away") as info:
            pipeline.run(frames(), TracePlan(1, (2, 2), np.uint8), get_backend("numpy"),
                         CountingWriter(), 2, workers=workers)
        assert info.value.position == 1 and isinstance(info.value.cause, OSError)


def test_writer_errors_reach_the_caller():
    class Failing(CountingWriter):
        def write(self, index, image):
            if index == 3:
                raise OSError("no space left")

    with pytest.raises(OSError, match="no space left"):
        pipeline.run(_frames(50, (4, 4)), TracePlan(2, (4, 4), np.uint8), get_backend("numpy"),
                     Failing(), 49, workers=2)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="threads have a nice value of their own on Linux only")
@pytest.mark.parametrize("nice", [0, 7])
def test_writer_threads_take_the_writer_nice_setting(nice, monkeypatch):
    class Niceness(CountingWriter):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def write(self, index, image):
            self.seen.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    monkeypatch.setenv("FLOWTRACE_WRITER_NICE", str(nice))
    writer = Niceness()
    pipeline.run(_frames(12, (4, 4)), TracePlan(4, (4, 4), np.uint8), get_backend("numpy"),
                 writer, 9, workers=2)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert writer.seen == {min(19, base + nice)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # caller's kept


def test_ordered_writer_sees_images_in_order():
    class Ordered(CountingWriter):
        parallel = False

        def __init__(self):
            super().__init__()
            self.order = []

        def write(self, index, image):
            self.order.append(index)

    writer = Ordered()
    pipeline.run(_frames(40, (4, 4)), TracePlan(4, (4, 4), np.uint8), get_backend("numpy"),
                 writer, 37, workers=4)
    assert writer.order == list(range(37))


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_and_serial_agree(backend):
    movie = np.random.default_rng(3).integers(0, 4096, (30, 9, 11), dtype=np.uint16)
    serial = flowtrace_array(movie, 6, use_parallel=False, backend=backend, subtract_median=True)
    parallel = flowtrace_array(movie, 6, max_cores=4, backend=backend, subtract_median=True)
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(serial, naive_trace(movie, 6, subtract_median=True))


def test_progress_bar_reports_frames(capsys):
    movie = np.zeros((12, 3, 3), np.uint8)
    flowtrace_array(movie, 2, progress=True)
    err = capsys.readouterr().err
    assert "11/11" in err and "frame" in err


@pytest.mark.parametrize("size", [0, 1, 65534, 65535, 65536, 2 * 65535, 2 * 65535 + 7])
def test_stored_zlib_stream_inflates_to_the_data(size):
    import zlib

    from flowtrace_gpu.io.png import stored_zlib

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    stream = stored_zlib(data)
    assert zlib.decompress(stream.tobytes()) == data
    blocks = max(1, -(-size // 65535))  # as few stored blocks as the format allows
    assert stream.size == 2 + size + 5 * blocks + 4


@pytest.mark.parametrize("kind", ["noise", "sparse", "tiny"])
@pytest.mark.parametrize("level", [0, 1, 6])
def test_png_round_trips_whatever_the_deflate_choice(kind, level):
    import io

    from PIL import Image

    from flowtrace_gpu.io.png import encode_png

    rng = np.random.default_rng(0)
    if kind == "noise":  # incompressible: stored
        image = rng.integers(0, 256, (700, 800), dtype=np.uint8)
    elif kind == "sparse":  # mostly black: deflated
        image = np.zeros((700, 800), np.uint8)
        image[rng.integers(0, 700, 500), rng.integers(0, 800, 500)] = 255
    else:
        image = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    data = encode_png(image, level)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
    if kind == "noise":
        assert len(data) >= image.size  # stored, not deflated
    if kind == "sparse" and level:
        assert len(data) < image.size / 10


def test_repeated_calls_free_their_frames():
    # 'auto' tries the backends that cannot run here on every call; their cached
    # errors once kept every caller's frames (and images) alive through a
    # traceback chained onto them at each raise.
    import gc

    tracemalloc.start()
    try:
        sizes = []
        for seed in range(4):
            movie = np.random.default_rng(seed).integers(0, 255, (40, 128, 128), dtype=np.uint8)
            flowtrace_array(movie, 5, backend="auto", progress=False)
            del movie
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert sizes[-1] - sizes[1] < 40 * 128 * 128, f"memory grew call after call: {sizes}"
