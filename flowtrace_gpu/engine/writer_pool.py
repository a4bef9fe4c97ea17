"""The writer pool: images handed to a writer on threads, with a bounded backlog.

:func:`~flowtrace_gpu.engine.pipeline.run` computes images in the calling
thread and puts them here; ``n_writers`` threads encode and write them
while the next windows are computed. The backlog of submitted images is
bounded (memory stays O(window)); the progress bar advances as images are
written.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .. import config
from .thread_split import CoreSplit, timed_cpu


class _LazyBar:
    """A progress bar made on its first update (closing one never made does nothing)."""

    def __init__(self, make):
        self._make, self._bar = make, None

    def update(self, n: int = 1) -> None:
        if self._bar is None:
            self._bar = self._make()
        self._bar.update(n)

    @property
    def n(self) -> int:
        """Images counted so far."""
        return 0 if self._bar is None else self._bar.n

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class WriterPool:
    """Hand images to ``writer`` on ``n_writers`` threads (0: in the calling thread).

    Parameters
    ----------
    writer : object with ``write(index, image)`` and optionally ``abort()``
    n_writers : int
        Writer threads; 0 writes in the calling thread, as images come.
    max_backlog : int
        Images submitted and not yet written before :meth:`put` waits.
    split : CoreSplit, optional
        Told the writers' CPU time and the calling thread's waits.
    keep : container of int, optional
        Indices of the images to write; the others only advance the bar.
    n_outputs : int or None
        Images expected, for the progress bar.
    progress : bool
        Show a tqdm bar (frames/s, ETA) on stderr.
    desc : str
        Label of the bar.
    """

    def __init__(self, writer, n_writers: int, *, max_backlog: int = 1,
                 split: CoreSplit | None = None, keep=None, n_outputs=None,
                 progress: bool = False, desc: str = "flowtrace"):
        from tqdm.auto import tqdm

        self.writer = writer
        self.keep = keep
        self.split = split
        self.max_backlog = max(1, int(max_backlog))
        self._write = timed_cpu(writer.write, split.writer_cpu) if split is not None else writer.write
        self._pool = ThreadPoolExecutor(n_writers, thread_name_prefix="flowtrace-writer",
                                        initializer=_lower_priority,
                                        initargs=(config.get("writer_nice"),)) if n_writers else None
        self._backlog: deque = deque()
        # The bar appears with the first image: the first window may compile kernels
        # (said on a line of its own), and a bar at 0 % meanwhile reads as a hang.
        self.bar = _LazyBar(lambda: tqdm(total=n_outputs, unit="frame", desc=desc,
                                         disable=not progress, file=sys.stderr,
                                         dynamic_ncols=True, leave=True))

    def put(self, index: int, images, many: bool, to_host) -> None:
        """Write image ``index`` (``many``: images ``index, index + 1, ...``).

        ``to_host`` brings backend images to the host: once for a whole
        batch, and not at all when none of them is kept.
        """
        indices = range(index, index + len(images)) if many else (index,)
        if self.keep is not None and not any(i in self.keep for i in indices):
            self.bar.update(len(indices))
            return
        host = to_host(images)
        for i in indices:
            self.submit(i, host[i - index] if many else host)

    def submit(self, index: int, image) -> None:
        """Write ``image`` as image ``index``: now, or on a writer thread.

        Waits while the backlog is full; a writer's error is raised here
        (or by :meth:`drain`).
        """
        if self.keep is not None and index not in self.keep:
            self.bar.update()
            return
        if self._pool is None:
            self.writer.write(index, image)
            self.bar.update()
            return
        self._backlog.append(self._pool.submit(self._write, index, image))
        clock = time.perf_counter
        while len(self._backlog) > self.max_backlog or (self._backlog and self._backlog[0].done()):
            start = clock()
            self._backlog.popleft().result()
            if self.split is not None:
                self.split.waited(clock() - start)
            self.bar.update()

    def drain(self) -> None:
        """Wait until every submitted image is written (raising a writer's error)."""
        while self._backlog:
            self._backlog.popleft().result()
            self.bar.update()

    def abort(self) -> None:
        """After a failure: drop what is not written yet, stop the threads, undo the writer."""
        self._shutdown()
        abort = getattr(self.writer, "abort", None)
        if abort is not None:
            abort()

    def close(self) -> None:
        """Close the bar and stop the threads (after :meth:`drain`, or :meth:`abort`)."""
        self.bar.close()
        self._shutdown()

    def _shutdown(self) -> None:
        for future in self._backlog:
            future.cancel()
        self._backlog.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by ``nice`` (Linux: threads have their own)."""
    if nice and sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
