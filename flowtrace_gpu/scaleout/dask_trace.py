"""Pathline images as a lazy dask array: :func:`flowtrace_dask`.

Layout. Output block b holds B windows (the last one fewer); window i needs
frames i .. i+F-1, so block b needs its own B frames and F-1 more from the
next block: a one-sided halo. The output chunks are chosen first and the
input chunks derived from them (the last input chunk also holds the final
F-1 frames); ``da.map_overlap`` with ``depth={0: (0, F-1)}``,
``boundary='none'`` and ``trim=False`` then hands each task exactly the
frames its windows need. Each task runs :func:`flowtrace_gpu.engine.pipeline.trace_frames`,
the push/project loop every run uses, so the images are those of
:func:`flowtrace_gpu.flowtrace_array`, pixel for pixel.

Not built on ``dask.array.lib.stride_tricks.sliding_window_view``: it
re-chunks the frames into small tiles and recomputes every window, where a
task here keeps the backend's sliding state across its block.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import config
from ..backends import AUTO_ORDER, Backend, get_backend
from ..engine.pipeline import trace_frames
from ..engine.plan import plan_run
from ..engine.saturation import LevelShare, run_tops
from ..errors import FlowtraceError, require_dask
from ..io.grayscale import GrayscaleSource, luma
from ..io.selection import select
from ..io.sources import ArraySource
from ..io.writers import ArrayWriter
from ..kernels.saturate import RUN_BINS, level
from ..options import FLOWTRACE_DASK, split, whole

#: Backend names a task may ask for (resolved on the worker, which may have the GPU).
_BACKEND_NAMES = ("auto",) + AUTO_ORDER


def flowtrace_dask(frames, frames_to_merge, frames_to_skip=1, *, subtract_first=False,
                   subtract_median=False, take_diff=False, diff_order=1, add_first_frame=False,
                   color_series=False, colormap=None, fade_tails=False, invert_color=False,
                   windows="sliding", normalize="frame", saturate=0.0, bit_depth=None,
                   grayscale=False, start=0, stop=None, crop=None, window_step=1, block=None,
                   backend="auto", device=None):
    """Pathline images of a dask array of frames, as a lazy dask array.

    The result equals ``flowtrace_array(frames.compute(), ...)`` in shape,
    dtype and every pixel; computing it (``.compute()``, ``.to_zarr(...)``,
    ``da.store``) runs one task per block of ``block`` images on whatever
    scheduler is active: threads, processes or a ``distributed`` cluster.

    Parameters
    ----------
    frames : dask.array.Array, or anything ``dask.array.asarray`` takes
        Shaped (N, H, W) or (N, H, W, C). A NumPy memmap is read by path
        in each task (never shipped with its data); a zarr array by its
        store. Chunks along H, W and C are merged: every task traces whole
        frames.
    frames_to_merge, frames_to_skip
        As for :func:`flowtrace_gpu.flowtrace`.
    subtract_first, subtract_median, take_diff, diff_order, add_first_frame, \
color_series, colormap, fade_tails, invert_color, windows, normalize, saturate, bit_depth, \
grayscale
        As for :func:`flowtrace_gpu.flowtrace`: every option that shapes the
        images. ``normalize='global'`` computes the peak of every block
        first (a first compute, before this call returns), then returns
        the graph that writes with that one scale.
    start, stop, crop, window_step
        As for :func:`flowtrace_gpu.flowtrace_array`: the result equals
        ``flowtrace_dask(frames[start:stop, top:top+height, left:left+width], ...)``
        sliced ``[::window_step]``; the frames are sliced in the graph, so a
        task reads only the region.
    block : int, optional
        Images per output chunk, at least ``frames_to_merge - 1`` (each
        task also reads the F-1 frames after its block, so the reading
        overhead is (F-1)/block). Default: the larger of dask's
        ``array.chunk-size`` in frames and 4 (F-1), rounded up to whole
        input chunks.
    backend : {'auto', 'cupy', 'numba', 'numpy'}
        Resolved in each task, on the worker: ``'cupy'`` keeps NumPy chunks
        in the graph and does the GPU work inside the task (run one worker
        per GPU, as dask-cuda does).
    device : int, optional
        CUDA device of the cupy backend; default ``FLOWTRACE_DEVICE`` (0).

    Returns
    -------
    dask.array.Array, shape (M, H, W) or (M, H, W, 3)
        Chunked ``(block, H, W[, 3])`` along the images; uint8, or the
        input dtype with ``normalize='none'``.

    Raises
    ------
    FlowtraceError
        For bad input or options, before any task runs; when the
        ``[dask]`` extra is missing.

    Examples
    --------
    >>> import dask.array as da
    >>> movie = da.random.default_rng(0).integers(0, 255, (60, 32, 32), dtype='u1', chunks=20)
    >>> images = flowtrace_dask(movie, 10, block=16)
    >>> images.shape, images.chunks[0]
    ((51, 32, 32), (16, 16, 16, 3))
    >>> images.compute().dtype
    dtype('uint8')
    """
    da = require_dask("dask.array", "flowtrace_dask")
    config.validate()
    options, run = split(locals(), FLOWTRACE_DASK)
    if not (isinstance(run.backend, Backend) or run.backend in _BACKEND_NAMES):
        raise FlowtraceError(
            f"backend must be one of {', '.join(map(repr, _BACKEND_NAMES))} or a backend, "
            f"got {run.backend!r}")
    x = as_dask_array(frames)
    skip = run.frames_to_skip
    # Shape and dtype only (nothing is read); the range and crop checked against them.
    source = select(ArraySource(x), run.start, run.stop, skip, run.crop)
    if options.grayscale and len(source.frame_shape) == 3:
        source = GrayscaleSource(source)
    # Every window is traced, then every window_step-th kept (the result's slice).
    plan, sequence, _, n_out, _ = plan_run(source, frames_to_merge, skip, options)
    f = plan.frames_to_merge

    x = x[run.start:run.stop:skip]
    if run.crop is not None:
        top, left, height, width = run.crop
        x = x[:, top:top + height, left:left + width]
    if isinstance(source, GrayscaleSource):
        x = x.rechunk({3: -1}).map_blocks(luma, drop_axis=3, dtype=x.dtype)
    if len(sequence) < x.shape[0]:  # windows='original' never reads frame F
        x = da.concatenate([x[:f], x[f + 1:]])

    frame_bytes = math.prod(plan.frame_shape) * plan.dtype.itemsize
    b = check_block(block, f) if block is not None else default_block(f, frame_bytes, x.chunks[0])
    out_chunks = tuple(min(b, n_out - start) for start in range(0, n_out, b))
    in_chunks = out_chunks[:-1] + (out_chunks[-1] + f - 1,)
    x = x.rechunk((in_chunks,) + tuple((s,) for s in x.shape[1:]))
    task = dict(backend=run.backend, device=run.device)

    if plan.scaling == "float":
        plan = replace(plan, scaling="fixed",
                       peak=global_scale(da, x, plan, out_chunks, task))

    out_ndim = 1 + len(plan.out_shape)
    new_axis = (3,) if out_ndim > x.ndim else None
    images = _map_windows(da, _block_images, x, f, plan=plan,
                          chunks=(out_chunks,) + tuple((s,) for s in plan.out_shape),
                          new_axis=new_axis, dtype=plan.image_dtype, token="flowtrace", **task)
    return images if run.window_step == 1 else images[::run.window_step]


def global_scale(da, x, plan, out_chunks, task) -> float:
    """The one value every image is scaled by (``normalize='global'``), computed now.

    First compute: each image's brightest value. With ``saturate`` a second
    one: each block's share of the run histogram (:class:`~flowtrace_gpu.engine.saturation.LevelShare`),
    summed, whose level equals that of ``flowtrace_array``'s in-order
    measuring pass. Only numbers reach the writing graph: a lazy scale
    feeding the images would hold every float block until it is known.
    """
    f = plan.frames_to_merge
    drop = tuple(range(2, x.ndim))
    peaks = _map_windows(da, _image_peaks, x, f, plan=plan, chunks=(out_chunks,),
                         drop_axis=(1,) + drop, dtype=np.float64, token="flowtrace-peaks",
                         **task).compute()
    peak = float(peaks.max())
    if not plan.options.saturate:
        return peak
    tops = run_tops(peaks)
    starts = np.cumsum((0,) + out_chunks[:-1])
    before = [float(peaks[:start].max()) if start else -np.inf for start in starts]
    counts = _map_windows(da, _level_share, x, f, plan=plan, tops=tops, before=before,
                          chunks=((1,) * len(out_chunks), (RUN_BINS,)), drop_axis=drop,
                          dtype=np.int64, token="flowtrace-level", **task)
    return min(level(counts.sum(axis=0).compute(), float(tops[-1]), plan.options.saturate), peak)


def _map_windows(da, func, x, f, *, dtype, chunks, **kwargs):
    """``func`` over each input chunk plus the F-1 frames after it (none for F = 1)."""
    ndim = len(chunks)
    meta = np.empty((0,) * ndim, dtype=dtype)
    if f == 1:
        return x.map_blocks(func, chunks=chunks, dtype=dtype, meta=meta, **kwargs)
    return da.map_overlap(func, x, depth={0: (0, f - 1)}, boundary="none", trim=False,
                          chunks=chunks, dtype=dtype, meta=meta, **kwargs)


def _block_images(frames, *, plan, backend, device):
    """A task: the images of the windows that start in this block."""
    engine = get_backend(backend, device)
    images = np.empty((len(frames) - plan.frames_to_merge + 1,) + plan.out_shape, plan.out_dtype)
    with parallel_kernel_guard(engine):
        return trace_frames(frames, plan, engine, ArrayWriter(images))


def _image_peaks(frames, *, plan, backend, device):
    """A task: the brightest value of each float projection of this block."""
    engine = get_backend(backend, device)
    peaks = ImagePeaks(len(frames) - plan.frames_to_merge + 1)
    with parallel_kernel_guard(engine):
        return trace_frames(frames, plan, engine, peaks)


def _level_share(frames, block_info=None, *, plan, tops, before, backend, device):
    """A task: this block's share of the run histogram, as a (1, bins) array."""
    engine = get_backend(backend, device)
    share = LevelShare(tops, before[block_info[None]["chunk-location"][0]], engine)
    with parallel_kernel_guard(engine):
        return trace_frames(frames, plan, engine, share)[None]


class ImagePeaks:
    """A writer keeping each image's brightest value (as :class:`PeakRecorder` reads it)."""

    parallel = True

    def __init__(self, n_images: int):
        self.peaks = np.empty(n_images, np.float64)

    def write(self, index, image) -> None:
        self.peaks[index] = float(image.max())

    def close(self) -> np.ndarray:
        return self.peaks


# --------------------------------------------------------------- blocks

def check_block(block, frames_to_merge: int) -> int:
    """``block`` as an int, at least the halo F-1 (a block reads F-1 frames of the next)."""
    b = whole(1)("block", block)
    if b < frames_to_merge - 1:
        raise FlowtraceError(
            f"block={b} is shorter than the F-1 = {frames_to_merge - 1} frames each block reads "
            f"from the next; use block >= {frames_to_merge - 1} (or leave it out)")
    return b


def default_block(frames_to_merge: int, frame_bytes: int, time_chunks: tuple) -> int:
    """Images per output chunk when ``block`` is not given.

    At least ``dask_block_halos`` times the halo (reading overhead at most
    1/that), else as many frames as dask's ``array.chunk-size``; rounded up
    to whole input chunks when they are regular, so reads stay aligned.
    """
    import dask
    from dask.utils import parse_bytes

    budget = parse_bytes(dask.config.get("array.chunk-size"))
    halo = frames_to_merge - 1
    b = max(1, halo, budget // max(1, frame_bytes), halo * int(config.get("dask_block_halos")))
    first = int(time_chunks[0])
    if len(set(time_chunks[:-1])) <= 1 and first < b:
        b = -(-b // first) * first
    return b


# --------------------------------------------------------------- inputs

def as_dask_array(frames):
    """``frames`` as a dask array whose tasks can travel: memmaps by path, zarr by store."""
    da = require_dask("dask.array", "flowtrace_dask")
    if isinstance(frames, da.Array):
        array = frames
    elif isinstance(frames, np.memmap) and MappedFile.can_map(frames):
        mapped = MappedFile.of(frames)
        array = da.from_array(mapped, chunks=("auto",) + (-1,) * (mapped.ndim - 1),
                              meta=np.empty((0,) * mapped.ndim, mapped.dtype))
    elif type(frames).__module__.startswith("zarr"):
        array = da.from_zarr(frames)
    else:
        array = da.asarray(frames)
    if any(math.isnan(n) for n in array.shape):
        raise FlowtraceError(
            f"frames have unknown chunk sizes (shape {array.shape}); call "
            "frames.compute_chunk_sizes() first")
    return array


class MappedFile:
    """A memmap's frames by file, path and layout: what a task receives instead of the data.

    Pickling an open ``numpy.memmap`` copies its mapped bytes; this carries
    the path, offset and strides and maps the file again, read-only, in the
    process that reads it.
    """

    def __init__(self, path, dtype, shape, strides, offset: int):
        self.path = str(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.strides = tuple(int(s) for s in strides)
        self.offset = int(offset)
        self.ndim = len(self.shape)
        self._array = None

    @staticmethod
    def _root(mm: np.memmap):
        """The memmap that owns the mapping (views keep their root's ``offset``)."""
        root = mm
        while isinstance(root.base, np.memmap):
            root = root.base
        return root

    @classmethod
    def can_map(cls, mm: np.memmap) -> bool:
        """Whether ``mm`` is a file view this class can describe (non-negative strides)."""
        return (mm.filename is not None and all(s >= 0 for s in mm.strides)
                and cls._root(mm).base is not None)

    @classmethod
    def of(cls, mm: np.memmap) -> MappedFile:
        root = cls._root(mm)
        # The root's first byte is at its ``offset`` in the file.
        start = mm.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        return cls(mm.filename, mm.dtype, mm.shape, mm.strides, root.offset + start)

    def __getitem__(self, key):
        if self._array is None:
            raw = np.memmap(self.path, dtype=np.uint8, mode="r")
            self._array = np.ndarray(self.shape, self.dtype, buffer=raw, offset=self.offset,
                                     strides=self.strides)
        return np.asarray(self._array[key])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_array"] = None  # never the mapped bytes
        return state

    def __dask_tokenize__(self):
        stat = Path(self.path).stat()
        return (self.path, stat.st_mtime_ns, stat.st_size, str(self.dtype), self.shape,
                self.strides, self.offset)


# --------------------------------------------------------------- threads

_PARALLEL_LAUNCH = threading.Lock()


@contextlib.contextmanager
def parallel_kernel_guard(engine):
    """Let tasks on many threads of one process call Numba's parallel kernels.

    Numba's ``workqueue`` threading layer aborts the whole process when two
    threads launch parallel kernels at once, so under it (or before any
    kernel has chosen the layer) tasks take turns; ``omp`` and ``tbb`` are
    thread-safe and run side by side. Each task uses one Numba thread
    (:func:`trace_frames` asks for one): the parallelism is dask's.
    """
    if getattr(engine, "name", None) != "numba" or _threadsafe_layer():
        yield
        return
    with _PARALLEL_LAUNCH:
        yield


def _threadsafe_layer() -> bool:
    import numba

    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel kernel has run in this process yet
        return False
