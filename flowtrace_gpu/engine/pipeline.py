"""The streaming engine: reader thread -> resident ring -> writer threads.

::

    reader thread         compute (calling thread)          writer pool
    decode frame t+k  ->  projector.push(frame t)       ->  encode + write image i
      (Prefetcher,        projector.project() (window)      (WriterPool,
       bounded queue)     (project_windows)                  bounded backlog)

Memory is the ring (F frames on the backend) plus ``prefetch`` decoded
frames plus the writers' backlog, whatever the number of frames.

A projector with a ``batch`` above 1 (the cupy backend's
``BatchedCupyProjector``) is handed the first window's frames, then
``batch`` frames at a time (:func:`blocks`), through ``push_many``, and
gives their images back in one array (``project_many``), downloaded at once;
the reader then decodes, and the writers' backlog holds, at least a batch.
"""

from __future__ import annotations

import queue
import threading
import time

from .. import config
from . import saturation
from .thread_split import CoreSplit
from .writer_pool import WriterPool

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher:
    """Iterate ``iterable`` on a background thread, ``depth`` items ahead.

    Exceptions raised by the iterable are re-raised in the consumer.
    """

    def __init__(self, iterable, depth: int, on_cpu=None):
        self._on_cpu = on_cpu
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(iterable,), name="flowtrace-reader", daemon=True
        )
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, iterable) -> None:
        items = iter(iterable)
        try:
            while True:
                start = time.thread_time()
                try:
                    item = next(items)
                except StopIteration:
                    break
                finally:
                    if self._on_cpu is not None:
                        self._on_cpu(time.thread_time() - start)
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put(_Failure(exc))
        else:
            self._put(_END)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class FrameReadError(Exception):
    """Reading the frame at ``position`` of a run's frame sequence raised ``cause``."""

    def __init__(self, position: int, cause: Exception):
        super().__init__(f"frame at position {position}: {cause}")
        self.position = position
        self.cause = cause


def numbered(frames):
    """Yield ``frames``; an error while reading one becomes a :class:`FrameReadError`."""
    iterator = iter(frames)
    position = 0
    while True:
        try:
            frame = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise FrameReadError(position, exc) from exc
        yield frame
        position += 1


class PeakRecorder:
    """A writer that keeps only the largest value of all images (the global peak)."""

    parallel = True

    def __init__(self):
        self.peak = None
        self._lock = threading.Lock()

    def write(self, index, image) -> None:
        value = float(image.max())
        with self._lock:
            self.peak = value if self.peak is None else max(self.peak, value)

    def close(self) -> float:
        return 0.0 if self.peak is None else self.peak


def run(frames, plan, backend, writer, n_outputs: int, *, workers: int = 1,
        prefetch: int | None = None, progress: bool = False, desc: str = "flowtrace",
        first_index: int = 0, keep=None):
    """Trace ``frames`` and hand each image to ``writer``.

    Parameters
    ----------
    frames : iterable of numpy.ndarray
        The frames windows slide over, in order (already skipped).
    plan : TracePlan
    backend : Backend
    writer : object with ``write(index, image)``, ``close()``, ``parallel`` and
        optionally ``abort()`` (called when the run fails)
    n_outputs : int or None
        Images expected (for the progress bar), None if unknown.
    workers : int
        Threads for reading, compute and writing (writers: at most
        ``FLOWTRACE_WRITERS``); 0 runs everything serially in the calling
        thread (``use_parallel=False``).
    prefetch : int, optional
        Frames decoded ahead; default ``FLOWTRACE_PREFETCH`` (8); at least
        the projector's batch.
    progress : bool
        Show a tqdm bar (frames/s, ETA) on stderr.
    desc : str
        Label of the bar.
    first_index : int, default 0
        Index of the first window: a resumed run starts ``frames`` F-1
        frames before its first missing image and numbers images from there.
    keep : container of int, optional
        Indices of the images to hand to ``writer``; the others are
        computed (the ring must advance) but not written. Default: all.

    Returns
    -------
    Whatever ``writer.close()`` returns.

    Raises
    ------
    FrameReadError
        Reading a frame failed; ``position`` counts from the first of ``frames``.
    """
    depth = int(config.get("prefetch") if prefetch is None else prefetch)
    window = plan.frames_to_merge
    projector = saturation.projector(backend, plan)
    batch = int(getattr(projector, "batch", 1))
    # A batched projector takes `batch` frames at once and gives as many
    # images: the reader and the writers' backlog hold at least a batch, or
    # reading, computing and writing take turns instead of overlapping.
    depth = max(depth, batch)
    # Compute shares the cores with the reader and the writers; the split
    # follows what each costs (thread_split), and starts where the last run of
    # this workload in this process settled. Serial runs use one thread.
    workload = (getattr(backend, "name", type(backend).__name__), type(projector).__name__,
                window, tuple(plan.frame_shape), str(plan.dtype), repr(plan.options),
                type(writer).__name__, bool(getattr(writer, "parallel", False)))
    split = CoreSplit(backend, workers, warmup=window, key=workload) if workers else None
    if split is None:
        backend.set_threads(1)

    frames = numbered(frames)
    reader = Prefetcher(frames, depth, on_cpu=split.reader_cpu) if workers else None
    n_writers = min(workers, int(config.get("writers"))) if writer.parallel else 1
    pool = WriterPool(writer, n_writers if workers else 0, split=split, keep=keep,
                      max_backlog=max(1, batch, n_writers * int(config.get("write_queue_per_writer"))),
                      n_outputs=n_outputs, progress=progress, desc=desc)
    try:
        try:
            # One frame at a time; a batched projector (batch > 1) takes the
            # first window's frames, then batch frames at a time.
            first = window - 1 if batch > 1 else 1
            source = blocks(reader if reader is not None else frames, first, batch)
            for index, images, many in project_windows(source, projector, window, batch,
                                                       first_index, split):
                pool.put(index, images, many, backend.to_host)
        except FrameReadError:
            # Every image before an unreadable frame is sound: write them (they
            # are resumed from), then report the frame.
            pool.drain()
            raise
        pool.drain()
    except BaseException:
        pool.abort()  # e.g. removes a half-written video
        raise
    finally:
        pool.close()
        if reader is not None:
            reader.close()
    return writer.close()


def project_windows(blocks, projector, window: int, batch: int, first_index: int = 0,
                    split: CoreSplit | None = None):
    """The compute loop: push ``blocks`` of frames through ``projector``.

    Yields ``(index, images, many)`` for the windows that end in each block:
    ``many`` (batched projectors) means ``images`` holds the images of
    windows ``index, index + 1, ...``, else it is window ``index``'s one
    image; both still on the backend. Each is yielded one block late, after
    the next block was pushed: on a GPU its download then waits while the
    next frames' upload is already queued. When reading a frame raises
    :class:`FrameReadError`, the images computed before it are yielded
    first. ``split`` (optional) is told each frame's wait and compute time.
    """
    clock = time.perf_counter
    pending = None
    pushed = 0
    start = clock()  # of the wait for each block
    try:
        for block in blocks:
            computing = clock()
            if batch > 1:
                projector.push_many(block)
            else:
                projector.push(block[0])
            pushed += len(block)
            if pending is not None:
                yield pending
                pending = None
            ready = min(len(block), pushed - window + 1)  # windows ending in the block
            if ready > 0:
                index = first_index + pushed - window + 1 - ready
                pending = (index, projector.project_many(ready), True) if batch > 1 else \
                    (index, projector.project(), False)
            done = clock()
            if split is not None:
                for _ in block:
                    split.frame(read_wait=(computing - start) / len(block),
                                step=(done - computing) / len(block))
            start = done
    except FrameReadError:
        if pending is not None:
            yield pending
        raise
    if pending is not None:
        yield pending


def blocks(frames, first: int, size: int):
    """Lists of consecutive ``frames``: ``first`` of them, then ``size`` at a time.

    The last list may be shorter. When reading a frame raises
    :class:`FrameReadError`, the frames read before it come first (their
    windows are sound), then the error.

    >>> [len(b) for b in blocks(range(10), 4, 3)]
    [4, 3, 3]
    """
    block, want = [], max(1, first)
    try:
        for frame in frames:
            block.append(frame)
            if len(block) == want:
                yield block
                block, want = [], size
    except FrameReadError:
        if block:
            yield block
        raise
    if block:
        yield block


def trace_frames(frames, plan, backend, writer):
    """Trace a block of frames in the calling thread: :func:`run`, serially.

    What a task of :func:`flowtrace_gpu.flowtrace_dask` runs: the same
    push/project loop as every run, with no reader or writer threads and one
    compute thread (the caller runs many such tasks side by side).

    Parameters
    ----------
    frames : numpy.ndarray, shape (n, *plan.frame_shape), n >= F
        Consecutive frames windows slide over.
    plan : TracePlan
    backend : Backend
    writer
        Where the n - F + 1 images go (e.g. a :class:`PeakRecorder`).

    Returns
    -------
    What ``writer.close()`` returns.
    """
    n_out = len(frames) - plan.frames_to_merge + 1
    return run(frames, plan, backend, writer, n_out, workers=0)
