"""The compute/I-O thread split follows what the run's parts cost."""

import time

import numpy as np
import pytest

from flowtrace_gpu import get_backend
from flowtrace_gpu.engine import pipeline
from flowtrace_gpu.engine import thread_split as core_split
from flowtrace_gpu.engine.plan import TracePlan
from flowtrace_gpu.engine.thread_split import CoreSplit, decide, timed_cpu


@pytest.mark.parametrize("threads,workers,kernel,waited,io_cpu,ceiling,expected", [
    (4, 8, 0.3, 0.7, 7.0, None, 3),    # waiting for the writers: give one back
    (1, 8, 0.3, 0.7, 7.0, None, 1),    # never below one
    (4, 8, 0.6, 0.4, 0.0, None, 3),    # 3 threads would still keep up (0.8 s)
    (4, 8, 0.9, 0.11, 0.0, None, 4),   # waiting, but 3 could not keep up (1.2 s)
    (4, 8, 1.0, 0.0, 1.0, None, 5),    # kernel-bound, 3 cores idle: try one more
    (4, 8, 1.0, 0.0, 1.0, 4, 4),       # ... unless a try at 5 failed before
    (8, 8, 1.0, 0.0, 0.0, None, 8),    # never above the workers
    (7, 8, 1.0, 0.05, 0.6, None, 7),   # 0.4 cores idle: not enough
    (1, 2, 1.0, 0.0, 0.2, None, 2),    # two cores, cheap I/O: try both
    (1, 2, 1.0, 0.0, 0.75, None, 1),   # two cores, busy writers: stay at one
])
def test_decide(threads, workers, kernel, waited, io_cpu, ceiling, expected):
    assert decide(threads, workers, elapsed=1.0, kernel=kernel, waited=waited,
                  io_cpu=io_cpu, ceiling=ceiling) == expected


def test_decide_ignores_an_empty_interval():
    assert decide(3, 8, elapsed=0.0, kernel=0.0, waited=0.0, io_cpu=0.0) == 3


class FakeBackend:
    """The numpy backend, with pushes that take ``cost / threads`` seconds of wall time
    (``scales=False``: ``cost`` whatever the threads) and a record of every
    ``set_threads``."""

    name = "numpy"

    def __init__(self, cost=0.0, scales=True):
        self.inner = get_backend("numpy")
        self.xp = np
        self.cost, self.scales = cost, scales
        self.calls = []

    def set_threads(self, n):
        self.calls.append(n)

    def to_host(self, image):
        return image

    def projector(self, plan):
        inner = self.inner.projector(plan)
        backend = self

        class Slow:
            def push(self, frame):
                threads = backend.calls[-1] if backend.scales else 1
                time.sleep(backend.cost / threads)
                inner.push(frame)

            def project(self):
                return inner.project()

        return Slow()


class Writer:
    def __init__(self, parallel=True, cost=0.0, busy=0.0):
        self.parallel, self.cost, self.busy, self.n = parallel, cost, busy, 0

    def write(self, index, image):
        time.sleep(self.cost)  # waiting on a disk: no CPU
        end = time.thread_time() + self.busy
        while time.thread_time() < end:  # encoding: CPU
            pass
        self.n += 1

    def close(self):
        return self.n


def frames(n, shape=(8, 8)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def run(backend, writer, workers, n=120, f=3):
    """Trace ``n`` 8x8 frames with the pipeline; returns the images written."""
    plan = TracePlan(f, (8, 8), np.uint8)
    return pipeline.run(iter(frames(n)), plan, backend, writer, n - f + 1, workers=workers)


def test_slow_writer_takes_compute_threads_back(monkeypatch):
    monkeypatch.setenv("FLOWTRACE_SPLIT_INTERVAL", "8")
    backend = FakeBackend()
    assert run(backend, Writer(parallel=False, cost=0.004), workers=8) == 118
    assert backend.calls[0] == 4 and backend.calls[-1] == 1
    assert all(b == a - 1 for a, b in zip(backend.calls, backend.calls[1:]))


class Simulated:
    """A run on a simulated clock: each frame waits ``read`` s for the reader, then
    its kernels take ``cost / threads`` s (``cost`` with ``scales=False``)."""

    def __init__(self, monkeypatch, workers=8, interval=6, key=None):
        monkeypatch.setenv("FLOWTRACE_SPLIT_INTERVAL", str(interval))
        self.now = 0.0
        self.backend = FakeBackend()
        self.split = CoreSplit(self.backend, workers, warmup=3, clock=lambda: self.now, key=key)

    def writer_bound_frames(self, n):
        """Two cores' case: kernels of 10 ms / threads, and each frame waits for a writer
        until 10 ms have passed (the writers hold the frame period)."""
        for _ in range(n):
            kernel = 0.01 / self.split.threads
            wait = 0.01 - kernel
            self.now += kernel + wait
            self.split.reader_cpu(0.002)
            self.split.waited(wait)
            self.split.frame(read_wait=0.0, step=kernel + wait)
        return self.backend.calls

    def frames(self, n, cost, read=0.0, scales=True, io_cpu=0.0):
        for _ in range(n):
            step = cost / self.split.threads if scales else cost
            self.now += read + step
            self.split.reader_cpu(io_cpu)
            self.split.frame(read_wait=read, step=step)
        return self.backend.calls


def test_costly_kernels_take_idle_cores(monkeypatch):
    calls = Simulated(monkeypatch).frames(200, cost=0.03)
    # tries 5 (kept: 20 % faster), 6, 7, 8; each try kept, one step per two intervals
    assert calls == [4, 5, 6, 7, 8]


def test_a_thread_that_does_not_help_is_given_back(monkeypatch):
    """Kernels that do not scale: one more thread is tried once, then given back."""
    calls = Simulated(monkeypatch).frames(200, cost=0.004, scales=False)
    assert calls == [4, 5, 4]


def test_a_thread_that_moves_the_time_to_the_writers_is_given_back(monkeypatch):
    """Two cores: a second compute thread halves the kernels' time but takes the
    writers' CPU, so each frame then waits as long for a writer: frames come no
    faster, and the thread goes back (the kernels alone would have kept it)."""
    assert Simulated(monkeypatch, workers=2).writer_bound_frames(200) == [1, 2, 1]


def test_busy_io_leaves_compute_alone(monkeypatch):
    """The reader and writers keep 3.6 of 4 cores busy: no thread is tried."""
    sim = Simulated(monkeypatch, workers=4)
    calls = sim.frames(100, cost=0.01, io_cpu=0.0085)  # 2 x 5 ms + 8.5 ms per 5 ms frame
    assert calls == [2]


def test_waiting_for_frames_gives_threads_back(monkeypatch):
    sim = Simulated(monkeypatch)
    calls = sim.frames(200, cost=0.004, read=0.01)
    assert calls == [4, 3, 2, 1]


def test_fixed_split_is_never_changed(monkeypatch):
    monkeypatch.setenv("FLOWTRACE_SPLIT_INTERVAL", "8")
    monkeypatch.setenv("FLOWTRACE_COMPUTE_THREADS", "3")
    backend = FakeBackend(cost=0.002)
    run(backend, Writer(), workers=8)
    assert backend.calls == [3]
    monkeypatch.setenv("FLOWTRACE_COMPUTE_THREADS", "64")
    backend = FakeBackend()
    run(backend, Writer(), workers=8)
    assert backend.calls == [8]  # at most the run's cores


def test_serial_run_uses_one_thread():
    backend = FakeBackend()
    run(backend, Writer(), workers=0)
    assert backend.calls == [1]


def test_io_cpu_is_measured_per_thread(monkeypatch):
    """The writers' and reader's CPU seconds reach the split; their sleeps do not."""
    split = CoreSplit(FakeBackend(), 4)
    write = timed_cpu(Writer(cost=0.05, busy=0.02).write, split.writer_cpu)
    write(0, None)
    assert 0.015 < split._io < 0.045


def test_a_run_of_the_same_workload_starts_where_the_last_settled(monkeypatch):
    """Two cores, the case above: the second run of the key starts at one thread and
    never tries the second again; another key, or no key, measures afresh."""
    def writer_bound_run(key):
        return Simulated(monkeypatch, workers=2, key=key).writer_bound_frames(200)

    assert writer_bound_run("color") == [1, 2, 1]
    assert writer_bound_run("color") == [1]
    assert writer_bound_run("median") == [1, 2, 1]
    assert writer_bound_run(None) == [1, 2, 1]
    # A different number of cores is another workload.
    sim = Simulated(monkeypatch, workers=4, key="color")
    assert sim.split.threads == 2 and sim.split.ceiling == 4
    assert len(core_split._SETTLED) == 2  # (color, 2 cores) and (median, 2 cores)


def test_pipeline_runs_remember_their_split(monkeypatch):
    monkeypatch.setenv("FLOWTRACE_SPLIT_INTERVAL", "8")
    backend = FakeBackend()
    run(backend, Writer(parallel=False, cost=0.004), workers=8)
    assert backend.calls[-1] == 1
    again = FakeBackend()
    run(again, Writer(parallel=False, cost=0.004), workers=8)
    assert again.calls == [1]
