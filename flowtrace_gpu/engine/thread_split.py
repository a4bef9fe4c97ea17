"""How a run's cores are shared between compute and I/O: measured as it goes.

The pipeline has three kinds of work: the reader thread decodes frames, the
calling thread pushes them through the backend's kernels (``set_threads``
of them), and the writer pool encodes images. A parallel Numba region waits
at its barrier whenever one of its threads is descheduled, so compute must
not be given cores the reader and writers are busy on; on a 16-core
workstation, though, a fixed share leaves cores idle when the I/O is cheap
(a fast disk, raw output) and the kernel is not (a long median).

:class:`CoreSplit` starts compute on half the cores and, every
``FLOWTRACE_SPLIT_INTERVAL`` frames once the first window is full, looks at
what the last interval cost: the calling thread's time in the kernels and
waiting (for the reader's next frame or a free writer), and the CPU time
(``time.thread_time``) of the reader and the writers. Then (:func:`decide`):

- the calling thread waited, and fewer threads would still keep up (at
  best, kernel time grows by ``T / (T - 1)``): give a thread to the I/O;
- it did not wait and at least half a core sat idle: try one more thread,
  and keep it only if the next interval's wall time per frame fell by
  :data:`MIN_GAIN` (threads descheduled at the barrier gain nothing, and
  a thread that speeds the kernels up by taking the writers' CPU makes the
  calling thread wait for them instead); a failed try is not repeated.

One step per interval keeps the split from chasing the noise of a shared
machine. A run given a ``key`` (the pipeline passes its backend, options,
frame shape, window and writer) starts where the last run of the same key
in this process settled, failed tries included: a batch of like recordings,
or a script looping over files, measures once. With
``FLOWTRACE_COMPUTE_THREADS`` set the split is fixed and nothing is measured.
"""

from __future__ import annotations

import logging
import threading
import time

from .. import config

log = logging.getLogger(__name__)

#: Waiting more than this share of an interval means the I/O is the bottleneck.
WAIT_SHARE = 0.10
#: Idle cores (of the interval's capacity) needed to try one more compute thread.
IDLE_CORES = 0.5
#: Share by which one more thread must cut the wall time per frame to stay.
MIN_GAIN = 0.10

#: Where the split of each ``key`` settled in this process: (threads, ceiling).
_SETTLED: dict = {}


def decide(threads: int, workers: int, *, elapsed: float, kernel: float, waited: float,
           io_cpu: float, ceiling: int | None = None) -> int:
    """The compute threads for the next interval.

    Parameters
    ----------
    threads : int
        Compute threads during the interval.
    workers : int
        Cores the run may use.
    elapsed : float
        The interval's wall time (seconds).
    kernel : float
        Wall time the calling thread spent in the kernels.
    waited : float
        Wall time it spent waiting for the reader or the writers.
    io_cpu : float
        CPU seconds of the reader and writer threads.
    ceiling : int, optional
        Most threads to go to (default ``workers``).

    Examples
    --------
    The writers are the bottleneck and 3 threads would keep up: give one back.

    >>> decide(4, 8, elapsed=1.0, kernel=0.3, waited=0.7, io_cpu=7.0)
    3

    The kernels are, and cores are idle: try one more.

    >>> decide(4, 8, elapsed=1.0, kernel=1.0, waited=0.0, io_cpu=1.0)
    5
    """
    if elapsed <= 0:
        return threads
    ceiling = workers if ceiling is None else min(ceiling, workers)
    if waited > WAIT_SHARE * elapsed:
        fewer = kernel * threads / (threads - 1) if threads > 1 else float("inf")
        return threads - 1 if fewer <= (1 - MIN_GAIN) * (kernel + waited) else threads
    idle = workers * elapsed - (kernel * threads + io_cpu)
    if threads < ceiling and idle >= IDLE_CORES * elapsed:
        return threads + 1
    return threads


class CoreSplit:
    """Measures a run's compute and I/O and sets the backend's compute threads.

    Parameters
    ----------
    backend : Backend
        Its ``set_threads`` is called when the split changes.
    workers : int
        Cores the run may use (at least 1).
    warmup : int
        Frames not measured (the first window fills, kernels compile).
    clock : callable, optional
        Wall time in seconds (default ``time.perf_counter``; tests pass a
        simulated one).
    key : hashable, optional
        The workload: a run with the key of an earlier one starts with the
        threads it settled on, and tries no thread that one gave back.

    Notes
    -----
    The calling thread calls :meth:`frame` once per frame and :meth:`waited`
    whenever it waits for a writer; the reader calls :meth:`reader_cpu` and
    each writer :meth:`writer_cpu` (wrap them with :func:`timed_cpu`).
    """

    def __init__(self, backend, workers: int, warmup: int = 0, clock=time.perf_counter,
                 key=None):
        self.backend = backend
        self._clock = clock
        self.workers = max(1, int(workers))
        fixed = int(config.get("compute_threads"))
        self.adaptive = fixed == 0
        self.threads = min(fixed, self.workers) if fixed else max(1, self.workers // 2)
        self.interval = int(config.get("split_interval"))
        self.warmup = int(warmup)
        self.ceiling = self.workers
        self.key = (key, self.workers) if key is not None and self.adaptive else None
        if self.key in _SETTLED:
            self.threads, self.ceiling = _SETTLED[self.key]
        self._trial = None  # wall seconds per frame before one more thread was tried
        backend.set_threads(self.threads)
        self._lock = threading.Lock()
        self._frames = 0
        self._io = 0.0
        self._reset()

    def _reset(self) -> None:
        self._start = self._clock()
        self._kernel = self._waited = self._in_step = 0.0
        self._count = 0
        with self._lock:
            self._io = 0.0

    def waited(self, seconds: float) -> None:
        """The calling thread waited ``seconds`` for a writer (within a step)."""
        self._in_step += seconds

    def reader_cpu(self, seconds: float) -> None:
        """The reader (or a writer: :attr:`writer_cpu`) used ``seconds`` of CPU."""
        with self._lock:
            self._io += seconds

    writer_cpu = reader_cpu

    def frame(self, read_wait: float, step: float) -> None:
        """One more frame: ``read_wait`` seconds waiting for it, then ``step`` seconds
        pushing it (and projecting, handing an image over); at the end of an
        interval, maybe change the split."""
        self._frames += 1
        self._waited += read_wait + self._in_step
        self._kernel += step - self._in_step
        self._in_step = 0.0
        if not self.adaptive:
            return
        if self._frames <= self.warmup:
            self._reset()
            return
        self._count += 1
        if self._count < self.interval:
            return
        with self._lock:
            io = self._io
        elapsed = self._clock() - self._start
        per_frame = elapsed / self._count
        if self._trial is not None:
            # Keep the thread just added only if frames came faster.
            threads = self.threads
            if per_frame > (1 - MIN_GAIN) * self._trial:
                threads = self.threads - 1
                self.ceiling = threads
            self._trial = None
        else:
            threads = decide(self.threads, self.workers, elapsed=elapsed,
                             kernel=self._kernel, waited=self._waited, io_cpu=io,
                             ceiling=self.ceiling)
            if threads > self.threads:
                self._trial = per_frame
        if threads != self.threads:
            log.debug("compute threads %d -> %d after frame %d", self.threads, threads,
                      self._frames)
            self.threads = threads
            self.backend.set_threads(threads)
        if self.key is not None and self._trial is None:  # a try in progress is not settled
            _SETTLED[self.key] = (self.threads, self.ceiling)
        self._reset()


def timed_cpu(fn, record):
    """``fn`` wrapped so that each call's CPU time (of the thread running it) goes to
    ``record``."""
    def call(*args):
        start = time.thread_time()
        try:
            return fn(*args)
        finally:
            record(time.thread_time() - start)
    return call
