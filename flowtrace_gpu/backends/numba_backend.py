"""The Numba backend: CPU kernels whose cost per output frame does not grow with F.

:class:`NumbaProjector` keeps O(1)-per-frame state instead of recomputing
each window:

* a sliding maximum (or minimum, for ``invert_color``) of the frames, or of
  their ``diff_order`` differences (:mod:`kernels.numba_sliding`);
* for ``subtract_median``, the window's two middle order statistics
  (:mod:`.numba_median_state`, kernels in :mod:`kernels.numba_median`: a
  sorted window, blocked for SIMD, or for uint8 frames and longer windows
  a histogram of the bins around the median, whose cost does not grow
  with F);
* a ring of the last F raw frames where the window's first frame, the
  leaving value or the whole window is needed.

Each option is then a constant shift of the sliding extreme (see
:mod:`kernels.numba_project` for why that is exact). With the sorted window
the extreme is its top row, and the median update writes the
``subtract_median`` projection itself (``NumbaProjector.fused``). ``color_series``
weights each frame by its position, which no sliding state can absorb; it
runs one fused pass over each pixel's window, as do ``take_diff`` combined
with ``subtract_first``/``subtract_median`` on float (or 64-bit integer)
frames, where the differences of shifted frames need not equal the
differences of the frames. Results equal the NumPy reference bit for bit
(NaNs aside).

Memory, P = values per frame (pixels x channels), s = bytes per value:
ring ``F * P * s`` (when needed), sliding buffer ``(F - d + 1) * P`` values
of the difference dtype (s without take_diff), median ``F * P * s`` (sorted
window), about ``(16 + 8) * P`` bytes (band, F <= 255) or ``256 * P``
bytes (full 8-bit histogram, F <= 255).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import config
from .base import Backend, RingProjector
from .numba_median_state import BlockedMedian, make_median
from .numba_median_state import _kernels as median_kernels


@functools.cache
def _kernels():
    """The kernel modules, imported (and their caches loaded) on first use.

    Cached: an import statement per call takes the import lock while
    holding the GIL, which the reader and writer threads wait on.
    """
    from flowtrace_gpu.kernels import numba_project, numba_sliding

    return numba_sliding, numba_project


def _storage_dtype(dtype: np.dtype) -> np.dtype:
    """Dtype the frames are kept in: same values, one Numba can index."""
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind == "f" and dtype.itemsize < 4:
        return np.dtype(np.float32)
    return dtype


def _diff_dtype(dtype: np.dtype, order: int) -> np.dtype:
    """Smallest dtype holding every ``order``-th difference of ``dtype`` exactly.

    Differences are computed in float64 as NumPy does; for integers of at
    most 32 bits they are exact integers of magnitude <= 2**order * max|x|.
    """
    if dtype.kind in "biu" and dtype.itemsize <= 4:
        bound = (1 if dtype.kind == "b" else
                 max(abs(int(np.iinfo(dtype).min)), int(np.iinfo(dtype).max))) << order
        if bound < 2 ** 15:
            return np.dtype(np.int16)
        if bound < 2 ** 31:
            return np.dtype(np.int32)
    return np.dtype(np.float64)


class NumbaProjector:
    """Sliding-state projector: push a frame, project the last F.

    Parameters
    ----------
    plan : flowtrace_gpu.plan.TracePlan
        What to compute.
    chunk : int, optional
        Values per parallel task (default: the ``numba_chunk`` setting);
        tests shrink it so tiny frames span many chunks.
    median : {'auto', 'blocked', 'band', 'histogram', 'sorted'}
        Sliding-median method (:mod:`.numba_median_state`); ``'auto'``
        takes the band histogram for uint8 frames and F >=
        the ``median_band_min_f`` setting, else the vectorized blocked sorted window.
    hist_layout : {'bin', 'pixel'}
        Histogram memory order (bin-major is faster on images).
    """

    def __init__(self, plan, chunk: int | None = None, median: str = "auto",
                 hist_layout: str = "bin"):
        self.plan = plan
        opts = plan.options
        self.chunk = int(chunk or config.get("numba_chunk"))
        f = plan.frames_to_merge
        d = opts.diff_order if opts.take_diff else 0
        self.f, self.d, self.length = f, d, f - d
        self.xdtype = _storage_dtype(plan.dtype)
        self.npix = math.prod(plan.frame_shape)
        self.is_max = not opts.invert_color
        self.offset = float(plan.invert_offset)
        self.count = 0
        self.nchunks = max(1, -(-self.npix // self.chunk))
        self.chunk_max = np.empty(self.nchunks, np.float64)

        ydtype = _diff_dtype(self.xdtype, d) if d else self.xdtype
        shifted = opts.subtract_first or opts.subtract_median
        weights = plan.colors
        # diff(x - c) == diff(x) only when every step is exact: small integers.
        diff_exact = ydtype.kind == "i"
        self.sliding = weights is None and not (d and shifted and not diff_exact)
        self.use_median = opts.subtract_median and (not self.sliding or d == 0)
        need_x0 = opts.add_first_frame or (opts.subtract_first and d == 0)
        if not self.sliding or self.use_median or need_x0:
            ring_len = f
        else:
            ring_len = d + 1 if d else 0
        self.ring = np.empty((ring_len, self.npix) if ring_len else (1, 1), self.xdtype)
        self.ring_len = ring_len
        self.x = np.empty(self.npix, self.xdtype)  # the frame being pushed

        if self.sliding:
            self.buf = np.empty((self.length, self.npix), ydtype)
            self.prefix = np.empty(self.npix, ydtype)
            self.y = np.empty(self.npix, ydtype) if d else None
            self.n_y = 0
            # Extreme of each frame of the block, by block position (see ext_push).
            self.frame_ext = np.zeros(self.length, np.float64)
            self.chunk_ext = np.empty(self.nchunks, np.float64)
            # Scratch of the projection: the window extreme, or the shifted float64.
            self.ext = np.empty(self.npix, ydtype)
            self.proj = np.empty(self.npix, np.float64)

        # The window's middle order statistics (numba_median_state).
        self.median = (make_median(median, f, self.npix, self.xdtype, self.chunk, hist_layout)
                       if self.use_median else None)
        # lo/hi/off for the kernels; without a median, dummies keep their types fixed.
        if self.median is not None:
            self.lo, self.hi, self.off = self.median.lo, self.median.hi, self.median.off
        else:
            self.lo = self.hi = np.zeros(1, self.xdtype)
            self.off = 0.0
        # Weights as (K, columns) and how pixels pick a column (see project_window).
        if weights is None:
            self.weights, self.wmode = np.zeros((0, 1), np.float64), 0
        elif weights.ndim == 1:
            self.weights, self.wmode = np.ascontiguousarray(weights[:, None], np.float64), 1
        else:
            self.weights = np.ascontiguousarray(weights, np.float64)
            self.wmode = 2 if plan.is_color_input else 3
        if not self.sliding:
            self.proj = np.empty(math.prod(plan.out_shape), np.float64)
        # How the projection becomes the image (kernels.stretch.finalize).
        if plan.scaling == "frame":
            self.scale_mode, self.scale = 0, 1.0
        elif plan.scaling == "fixed":
            peak = float(plan.peak)
            self.scale_mode, self.scale = 1, (255.0 / peak if peak != 0 else 1.0)
        else:  # 'none' and 'float' finish the float64 projection in NumPy
            self.scale_mode, self.scale = 2, 1.0
        # Shifted projections of small integers: twice the value in integers
        # (exact; see numba_project.project_sliding_half).
        self.half = None
        if (self.sliding and self.d == 0 and self.scale_mode != 2
                and (opts.subtract_first or opts.subtract_median)
                and self.xdtype.kind in "iu" and self.xdtype.itemsize <= 2
                and self.off.is_integer() and self.offset.is_integer()
                and abs(self.offset) <= 2 ** 20):
            small = self.xdtype.itemsize == 1 and abs(self.offset) <= 2 ** 10
            self.half = np.empty(self.npix, np.int16 if small else np.int32)
            self.proj = None
        # subtract_median on the blocked sorted window: its top (bottom) row
        # is the window's maximum (minimum), so the median update forms the
        # projection too and no sliding extreme is kept
        # (numba_median.blocked_update_half).
        self.fused = (self.half is not None and isinstance(self.median, BlockedMedian)
                      and not opts.add_first_frame)
        if self.fused:
            self.median.fuse(self.half, self.is_max, int(self.offset))
            self.buf = self.ext = None

    # -- streaming ------------------------------------------------------------

    def push(self, frame) -> None:
        """Add the next frame (``plan.frame_shape``, values of ``plan.dtype``)."""
        nsl, _ = _kernels()
        frame = np.asarray(frame)
        if frame.shape != self.plan.frame_shape:
            raise ValueError(f"frame shape {frame.shape} != plan's {self.plan.frame_shape}")
        if frame.dtype == self.xdtype and frame.flags.c_contiguous:
            x = frame.reshape(-1)  # read, never kept: no copy needed
        else:
            x = self.x
            np.copyto(x.reshape(frame.shape), frame, casting="unsafe")
        t = self.count
        ch = self.chunk

        if self.median is not None:
            self.median.push(self.ring, t, x)
        if self.sliding and not self.fused:
            d = self.d
            if d == 0:
                y = x
            elif t >= d:
                slots = np.arange(t - d, t, dtype=np.int64) % self.ring_len
                nsl.diff_frame(x, self.ring, slots, self.y, ch)
                y = self.y
            else:
                y = None
            if y is not None:
                s = self.n_y % self.length
                self.frame_ext[s] = nsl.ext_push(y, self.buf, self.prefix, s, self.is_max, ch,
                                                 self.chunk_ext)
                if s == self.length - 1 and self.length > 2:
                    nsl.ext_suffix(self.buf, self.is_max, ch)
                self.n_y += 1
        if self.ring_len:
            self.ring[t % self.ring_len] = x
        self.count = t + 1

    def _half_f32_range(self) -> tuple[int, int]:
        """Bounds of twice a shifted projection of 8-bit frames (empty: float64 only).

        Values are 8-bit (plus ``off``), so twice the projection, its shifts
        and ``2 * offset - h`` stay within this range; the float32 stretch is
        checked on all of it (kernels.numba_project.f32_stretch_exact).
        """
        if self.half.dtype != np.int16:
            return 1, 0
        bound = 2048 + 2 * abs(int(self.offset)) + 2 * abs(int(self.off))
        return -bound, bound

    def _plain_scale(self) -> float:
        """The stretch factor of the plain projection, from the frames' extremes."""
        if self.scale_mode == 1:
            return self.scale
        _, nproj = _kernels()
        # the peak of a min projection is offset minus the smallest minimum
        peaks = self.frame_ext if self.is_max else self.offset - self.frame_ext
        return nproj._stretch_scale(peaks)

    def project(self):
        """Image of the last F frames pushed (``plan.out_shape``, ``plan.out_dtype``)."""
        if self.count < self.f:
            raise RuntimeError("project() needs a full window of frames")
        _, nproj = _kernels()
        opts = self.plan.options
        mode, scale = self.scale_mode, self.scale
        out = np.empty(self.plan.out_shape if mode != 2 else 0, np.uint8)
        flat = out.reshape(-1)
        if self.fused:
            if mode == 0:
                scale = nproj._stretch_scale(self.median.block_peak)
            first, last = self._half_f32_range()
            use32 = first <= last and nproj.f32_stretch_exact(first, last, 2, 0.0, scale)
            nproj.stretch_half(self.half, scale, flat, self.chunk, use32)
            return out
        if self.sliding:
            s1 = (self.n_y - 1) % self.length + 1
            x0slot = (self.count - self.f) % self.ring_len if self.ring_len else 0
            shift = self.d == 0  # with take_diff (integers) the shifts cancel
            if mode != 2 and not (shift and (opts.subtract_first or opts.subtract_median)):
                if not opts.add_first_frame or self.d == 0:  # the first frame is in the window
                    scale = self._plain_scale()
                    # 8-bit values: the float32 stretch where it is exact for all 256
                    use32 = self.buf.dtype == np.uint8 and nproj.f32_stretch_exact(
                        0, 255, 0 if self.is_max else 1, self.offset, scale)
                    nproj.project_plain_scaled(self.buf, self.prefix, s1, self.is_max,
                                               self.offset, scale, flat, self.chunk, use32)
                    return out
                nproj.project_plain(
                    self.buf, self.prefix, s1, self.ring, x0slot, opts.add_first_frame,
                    self.is_max, self.offset, self.ext, mode, scale, flat,
                    self.chunk_max, self.chunk)
                return out
            if self.half is not None:
                nproj.project_sliding_half(
                    self.buf, self.prefix, s1, self.ring, x0slot, self.lo, self.hi,
                    int(self.off), opts.subtract_first, opts.subtract_median,
                    opts.add_first_frame, self.is_max, int(self.offset),
                    self.half, mode, scale, flat, self.chunk_max, self.chunk,
                    *self._half_f32_range())
                return out
            nproj.project_sliding(
                self.buf, self.prefix, s1, self.ring, x0slot, self.lo, self.hi, self.off,
                opts.subtract_first and shift, opts.subtract_median and shift,
                opts.add_first_frame, self.is_max, self.offset,
                self.proj, mode, scale, flat, self.chunk_max, self.chunk)
        else:
            nproj.project_window(
                self.ring, self.count % self.f, self.d, self.lo, self.hi, self.off,
                opts.subtract_first, opts.subtract_median, opts.add_first_frame,
                self.weights, self.wmode, self.is_max, self.offset,
                self.proj, mode, scale, flat, self.chunk_max, self.chunk)
        if mode != 2:
            return out
        from flowtrace_gpu.kernels.stretch import finalize

        image = finalize(self.proj.reshape(self.plan.out_shape), self.plan, np)
        return image.copy() if image.base is self.proj else image


def supports(plan) -> bool:
    """Whether :class:`NumbaProjector` handles ``plan`` (else the ring reference runs)."""
    dtype = _storage_dtype(plan.dtype)
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        return False
    return True


class NumbaBackend(Backend):
    """CPU kernels compiled by Numba; O(1) work per frame for max, min and median."""

    name = "numba"
    xp = np

    def projector(self, plan):
        """A :class:`NumbaProjector` for ``plan`` (the ring reference where unsupported)."""
        if not supports(plan):
            return RingProjector(plan, np)
        return NumbaProjector(plan)

    def set_threads(self, n: int) -> None:
        """Use at most ``n`` threads in the kernels (of the calling thread)."""
        import numba

        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def load() -> NumbaBackend:
    """Return the backend, or raise ``BackendUnavailable`` if Numba is missing."""
    from . import BackendUnavailable

    try:
        import numba  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"numba cannot be imported ({exc}); pip install numba") from None
    try:
        _kernels()
        median_kernels()
    except Exception as exc:  # a broken numba/llvmlite install fails here
        raise BackendUnavailable(
            f"numba kernels failed to load ({type(exc).__name__}: {exc}); "
            "pip install --upgrade numba") from None
    return NumbaBackend()
