"""The Numba backend's projectors: one class per projection path.

Every projector takes frames one at a time (:meth:`NumbaProjector.push`)
and returns the image of the last F (:meth:`NumbaProjector.project`),
equal bit for bit to :func:`kernels.window.trace_window` followed by
:func:`kernels.stretch.finalize` (NaNs aside). :func:`choose_projector` is
the one place that decides which path a plan takes:

=============================  ================================================
class                          when
=============================  ================================================
:class:`CertifiedColorProjector` ``color_series`` or ``fade_tails`` alone on
                               unsigned frames, 8-bit output (float32 paths
                               of :mod:`.color_state`)
:class:`ShiftedColorProjector` the same after ``subtract_first``,
                               ``subtract_median``, ``invert_color``,
                               ``add_first_frame`` or ``take_diff`` (order
                               <= 7), or on signed frames: integers of <= 16
                               bits, or floats of <= 32 bits without a shift
                               or a difference; 8-bit output (float32,
                               certified)
:class:`WeightedProjector`     the other plans with weights (float64)
:class:`PerWindowProjector`    ``take_diff`` with a shift on floats or 32/64-bit
                               integers (differences kept in float64)
:class:`PlainProjector`        no shift left: max/min, ``take_diff``,
                               ``add_first_frame``
:class:`FloatShiftProjector`   a shift on values the half path cannot take, or
                               raw output (``normalize='none'``, global peak)
:class:`FusedMedianProjector`  ``subtract_median`` on integers of <= 16 bits,
                               blocked sorted window, no ``add_first_frame``
:class:`FusedAdaptiveMedianProjector` the same on uint8 frames with the adaptive
                               median (``'auto'`` from ``median_band_min_f``)
:class:`HalfUnitProjector`     the other shifts of integers of <= 16 bits
=============================  ================================================

Why sliding state is exact for the shifts: within a window, the first
frame ``x0`` and the median ``m`` are constants, and ``v -> fl(v - c)`` is
non-decreasing, so ``max_j fl(x_j - c) == fl(max_j x_j - c)`` and the order
statistics of ``fl(x_j - x0)`` are ``fl(order statistics of x - x0)``.
Hence NumPy's ``max(x - x0 - median(x - x0))`` follows bit for bit from the
sliding maximum, ``x0`` and the two middle order statistics of x. With
``take_diff`` on 8- and 16-bit integers every difference is an exact integer
(kept in int16 or int32, :func:`diff_dtype`), so ``diff(x - c) == diff(x)``
and the shifts drop out.

Memory, P = values per frame (pixels x channels), s = bytes per value: ring
``F * P * s`` (where a path needs the window's frames), sliding buffer
``(F - d + 1) * P`` values of the difference dtype, and the median state
(:mod:`.median_state`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import config
from ...kernels.colors import WeightMode
from ...kernels.stretch import finalize
from .adaptive_median import AdaptiveMedian
from .color_state import ShiftedColor, color_method, make_color
from .median_state import BandMedian, BlockedMedian, SlidingMedian, resolve_method

# scale_mode of the kernels (kernels.numba.project.project_sliding).
_PEAK, _FIXED, _RAW = 0, 1, 2


def make_median(method: str, f: int, npix: int, dtype: np.dtype, chunk: int) -> SlidingMedian:
    """The sliding-median state for windows of ``f`` frames of ``npix`` values.

    Parameters
    ----------
    method : {'auto', 'band', 'blocked', 'adaptive'}
    f : int
        Frames per window.
    npix : int
        Values per frame (pixels times channels).
    dtype : numpy.dtype
        Storage dtype of the frames.
    chunk : int
        Values per parallel task (caps the block size).
    """
    chosen = resolve_method(method, f, np.dtype(dtype))
    if chosen == "band":
        return BandMedian(f, npix, dtype, chunk)
    if chosen == "adaptive":
        return AdaptiveMedian(f, npix, block=min(chunk, config.get("median_block")))
    return BlockedMedian(f, npix, dtype, chunk)


@functools.cache
def _kernels():
    """The kernel modules, imported (and their caches loaded) on first use.

    Cached: an import statement per call takes the import lock while
    holding the GIL, which the reader and writer threads wait on.
    """
    from ...kernels.numba import project as numba_project
    from ...kernels.numba import sliding as numba_sliding

    return numba_sliding, numba_project


def storage_dtype(dtype: np.dtype) -> np.dtype:
    """Dtype the frames are kept in: same values, one Numba can index."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind == "f" and dtype.itemsize < 4:
        return np.dtype(np.float32)
    return dtype


def diff_dtype(dtype: np.dtype, order: int) -> np.dtype:
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


def half_dtype(plan) -> np.dtype | None:
    """Integer dtype of twice a shifted projection, or None where that is not exact.

    For integer frames of at most 16 bits and an integral ``invert_offset``,
    every value of a shifted projection is a multiple of 0.5 far below
    2**52: twice it is an exact small integer (int16 for 8-bit frames, else
    int32). The output must be 8-bit: raw output needs the float64 values.
    """
    dtype = storage_dtype(plan.dtype)
    offset = float(plan.invert_offset)
    if (plan.scaling not in ("frame", "fixed") or dtype.kind not in "iu"
            or dtype.itemsize > 2 or not offset.is_integer() or abs(offset) > 2 ** 20):
        return None
    small = dtype.itemsize == 1 and abs(offset) <= 2 ** 10
    return np.dtype(np.int16 if small else np.int32)


def choose_projector(plan, median: str = "auto", color: str = "auto") -> type[NumbaProjector]:
    """The projector class for ``plan`` (see the table in the module docstring).

    Parameters
    ----------
    plan : flowtrace_gpu.engine.plan.TracePlan
    median : {'auto', 'band', 'blocked', 'adaptive'}
        Sliding-median method (:func:`.median_state.resolve_method`);
        only the blocked sorted window can be fused with the projection.
    color : {'auto', 'brute', 'records', 'exact'}
        Method of the certified color paths
        (:func:`.color_state.color_method`), where they apply;
        'exact' takes the float64 pass (a benchmark's yardstick).
    """
    opts = plan.options
    if plan.weight_mode != WeightMode.NONE:
        method = color_method(plan, color)
        if method == "shifted":
            return ShiftedColorProjector
        return CertifiedColorProjector if method else WeightedProjector
    d = opts.diff_order if opts.take_diff else 0
    shifted = opts.subtract_first or opts.subtract_median
    if d and shifted and diff_dtype(storage_dtype(plan.dtype), d).kind != "i":
        return PerWindowProjector
    if d or not shifted:
        return PlainProjector
    if half_dtype(plan) is None:
        return FloatShiftProjector
    if opts.subtract_median and not opts.add_first_frame:
        method = resolve_method(median, plan.frames_to_merge, storage_dtype(plan.dtype))
        if method == "blocked":
            return FusedMedianProjector
        if method == "adaptive":
            return FusedAdaptiveMedianProjector
    return HalfUnitProjector


def make_projector(plan, chunk: int | None = None, median: str = "auto",
                   color: str = "auto") -> NumbaProjector:
    """The projector :func:`choose_projector` picks, built for ``plan``."""
    cls = choose_projector(plan, median, color)
    if cls is CertifiedColorProjector:
        return cls(plan, chunk=chunk, color=color)
    return cls(plan, chunk=chunk, median=median)


class NumbaProjector:
    """Base of the paths: the ring of raw frames, the median, the output's scaling.

    Subclasses say how a frame updates their state (:meth:`_update`) and
    how the image is formed (:meth:`_project`).

    Parameters
    ----------
    plan : flowtrace_gpu.engine.plan.TracePlan
        What to compute.
    chunk : int, optional
        Values per parallel task (default: the ``numba_chunk`` setting);
        tests shrink it so tiny frames span many chunks.
    median : {'auto', 'band', 'blocked', 'adaptive'}
        Sliding-median method (:mod:`.median_state`), for the paths
        that subtract the median.
    """

    #: Whether ``subtract_median`` makes this path keep a sliding median.
    keeps_median = True

    def __init__(self, plan, chunk: int | None = None, median: str = "auto"):
        self.plan = plan
        opts = plan.options
        self.chunk = int(chunk or config.get("numba_chunk"))
        self.f = plan.frames_to_merge
        self.d = opts.diff_order if opts.take_diff else 0
        self.xdtype = storage_dtype(plan.dtype)
        self.npix = math.prod(plan.frame_shape)
        self.is_max = not opts.invert_color
        self.offset = float(plan.invert_offset)
        self.count = 0
        self.nchunks = max(1, -(-self.npix // self.chunk))
        self.chunk_max = np.empty(self.nchunks, np.float64)
        self.ring_len = self._ring_rows()
        self.ring = np.empty((self.ring_len, self.npix) if self.ring_len else (1, 1),
                             self.xdtype)
        self.x = np.empty(self.npix, self.xdtype)  # the frame being pushed, when copied
        self.median = None
        if self.keeps_median and opts.subtract_median:
            self.median = make_median(median, self.f, self.npix, self.xdtype, self.chunk)
            self.lo, self.hi = self.median.lo, self.median.hi
        else:  # dummies keep the kernels' argument types fixed
            self.lo = self.hi = np.zeros(1, self.xdtype)
        # How the projection becomes the image (kernels.stretch.finalize).
        if plan.scaling == "frame":
            self.scale_mode, self.scale = _PEAK, 1.0
        elif plan.scaling == "fixed":
            peak = float(plan.peak)
            self.scale_mode, self.scale = _FIXED, (255.0 / peak if peak != 0 else 1.0)
        else:  # 'none' and 'float' finish the float64 projection in NumPy
            self.scale_mode, self.scale = _RAW, 1.0

    def _ring_rows(self) -> int:
        """Raw frames the path keeps (default: the whole window)."""
        return self.f

    def push(self, frame) -> None:
        """Add the next frame (``plan.frame_shape``, values of ``plan.dtype``)."""
        frame = np.asarray(frame)
        if frame.shape != self.plan.frame_shape:
            raise ValueError(f"frame shape {frame.shape} != plan's {self.plan.frame_shape}")
        if frame.dtype == self.xdtype and frame.flags.c_contiguous:
            x = frame.reshape(-1)  # read, never kept: no copy needed
        else:
            x = self.x
            np.copyto(x.reshape(frame.shape), frame, casting="unsafe")
        t = self.count
        if self.median is not None:  # reads the leaving frame, ring[t % F]
            self.median.push(self.ring, t, x)
        self._update(x, t)
        if self.ring_len:
            self.ring[t % self.ring_len] = x
        self.count = t + 1

    def _update(self, x: np.ndarray, t: int) -> None:
        """Frame ``t`` (flat ``x``) enters the path's own state (default: none)."""

    def project(self):
        """Image of the last F frames pushed (``plan.out_shape``, ``plan.out_dtype``)."""
        if self.count < self.f:
            raise RuntimeError("project() needs a full window of frames")
        out = np.empty(self.plan.out_shape if self.scale_mode != _RAW else 0, np.uint8)
        self._project(out.reshape(-1))
        if self.scale_mode != _RAW:
            return out
        image = finalize(self.proj.reshape(self.plan.out_shape), self.plan, np)
        return image.copy() if image.base is self.proj else image

    def _project(self, out: np.ndarray) -> None:
        """Write the 8-bit image to flat ``out``, or (raw output) ``self.proj``."""
        raise NotImplementedError


class _SlidingExtreme(NumbaProjector):
    """Base of the paths built on the sliding maximum (minimum) of the window.

    Keeps van Herk's block buffer (:mod:`kernels.numba.sliding`) of the
    frames, or of their ``diff_order``-th differences, in a dtype holding
    them exactly, so comparisons are exact; each frame's extreme is kept
    too (see :meth:`PlainProjector._scale`). Subclasses that form the
    float64 projection allocate ``proj``.
    """

    proj = None

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        self.length = self.f - self.d
        ydtype = diff_dtype(self.xdtype, self.d) if self.d else self.xdtype
        self.buf = np.empty((self.length, self.npix), ydtype)
        self.prefix = np.empty(self.npix, ydtype)
        self.y = np.empty(self.npix, ydtype) if self.d else None
        self.n_y = 0
        # Extreme of each frame of the block, by block position (see ext_push).
        self.frame_ext = np.zeros(self.length, np.float64)
        self.chunk_ext = np.empty(self.nchunks, np.float64)

    def _update(self, x, t):
        nsl, _ = _kernels()
        d = self.d
        if d == 0:
            y = x
        elif t >= d:
            slots = np.arange(t - d, t, dtype=np.int64) % self.ring_len
            nsl.diff_frame(x, self.ring, slots, self.y, self.chunk)
            y = self.y
        else:
            return
        s = self.n_y % self.length
        self.frame_ext[s] = nsl.ext_push(y, self.buf, self.prefix, s, self.is_max,
                                         self.chunk, self.chunk_ext)
        if s == self.length - 1 and self.length > 2:
            nsl.ext_suffix(self.buf, self.is_max, self.chunk)
        self.n_y += 1

    def _state(self) -> tuple:
        """(buf, prefix, s1, ring, x0slot) as the projection kernels take them."""
        s1 = (self.n_y - 1) % self.length + 1
        x0slot = (self.count - self.f) % self.ring_len if self.ring_len else 0
        return self.buf, self.prefix, s1, self.ring, x0slot

    def _float_projection(self, out, sub_first: bool, sub_median: bool) -> None:
        """The float64 projection (kernels.numba.project.project_sliding), stretched."""
        _, nproj = _kernels()
        nproj.project_sliding(
            *self._state(), self.lo, self.hi, sub_first, sub_median,
            self.plan.options.add_first_frame, self.is_max, self.offset, self.proj,
            self.scale_mode, self.scale, out, self.chunk_max, self.chunk)


class PlainProjector(_SlidingExtreme):
    """The sliding maximum (minimum) itself: no shift applies.

    Applies to max/min projections without ``subtract_first`` or
    ``subtract_median``, with or without ``add_first_frame``, and to
    ``take_diff`` whatever the shifts where :func:`diff_dtype` keeps the
    differences in an integer dtype (8- and 16-bit frames): they are exact
    integers, so the shifts cancel.

    Exact because the projection is the sliding extreme (comparisons in the
    values' own dtype), maxed with the raw first frame for
    ``add_first_frame``; the stretch applies the float operations of
    :func:`kernels.stretch.stretch_to_uint8` to its float64 value. The
    peak is known before the image is formed (the extreme of the frames'
    extremes), so the image is one pass (``project_plain_scaled``) unless
    ``add_first_frame`` adds a frame the differences do not hold.
    """

    keeps_median = False

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        if self.scale_mode == _RAW:
            self.proj = np.empty(self.npix, np.float64)
        elif self.d and plan.options.add_first_frame:
            self.ext = np.empty(self.npix, self.buf.dtype)  # scratch of project_plain

    def _ring_rows(self):
        if self.plan.options.add_first_frame:
            return self.f
        return self.d + 1 if self.d else 0  # the previous frames of a difference

    def _scale(self) -> float:
        """The stretch factor, from the frames' extremes (or the fixed scale)."""
        if self.scale_mode == _FIXED:
            return self.scale
        _, nproj = _kernels()
        # the peak of a min projection is offset minus the smallest minimum
        peaks = self.frame_ext if self.is_max else self.offset - self.frame_ext
        return nproj._stretch_scale(peaks)

    def _project(self, out):
        _, nproj = _kernels()
        if self.scale_mode == _RAW:
            self._float_projection(out, False, False)
            return
        buf, prefix, s1, ring, x0slot = self._state()
        add_first = self.plan.options.add_first_frame
        if not add_first or self.d == 0:  # the first frame is in the window already
            scale = self._scale()
            # 8-bit values: the float32 stretch where it is exact for all 256 (None:
            # never, and not compiled)
            use32 = nproj.f32_stretch_exact(0, 255, 0 if self.is_max else 1, self.offset,
                                            scale) if buf.dtype == np.uint8 else None
            nproj.project_plain_scaled(buf, prefix, s1, self.is_max, self.offset, scale,
                                       out, self.chunk, use32)
            return
        nproj.project_plain(buf, prefix, s1, ring, x0slot, add_first, self.is_max,
                            self.offset, self.ext, self.scale_mode, self.scale, out,
                            self.chunk_max, self.chunk)


class FloatShiftProjector(_SlidingExtreme):
    """Sliding extreme shifted by the first frame and/or the median, in float64.

    Applies to ``subtract_first``/``subtract_median`` (no ``take_diff``) on
    floats and integers wider than 16 bits, and on any dtype when the output
    is raw (``normalize='none'``, or the float pass of ``'global'``).

    Exact by the identity in the module docstring: the kernel
    (``project_sliding``) applies NumPy's float operations, in NumPy's
    order, to the sliding extreme, the first frame and the median's two
    middle order statistics.
    """

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        self.proj = np.empty(self.npix, np.float64)

    def _project(self, out):
        opts = self.plan.options
        self._float_projection(out, opts.subtract_first, opts.subtract_median)


def _half_f32_range(half: np.ndarray, offset: float) -> tuple[int, int]:
    """Bounds of twice a shifted projection of 8-bit frames (empty: float64 only).

    Values are 8-bit, so twice the projection, its shifts and
    ``2 * offset - h`` stay within this range; the float32 stretch is
    checked on all of it (kernels.numba.project.f32_stretch_exact).
    """
    if half.dtype != np.int16:
        return 1, 0
    bound = 2048 + 2 * abs(int(offset))
    return -bound, bound


class HalfUnitProjector(_SlidingExtreme):
    """The shifted projection of small integers, as twice its value in integers.

    Applies to ``subtract_first``/``subtract_median`` (no ``take_diff``) on
    integers of at most 16 bits with 8-bit output (:func:`half_dtype`),
    where :class:`FusedMedianProjector` does not.

    Exact because every float64 value :class:`FloatShiftProjector` would
    compute is then a multiple of 0.5 far below 2**52: each operation is
    exact, and the same value is ``h / 2`` with ``h`` formed in int16 or
    int32 (``project_sliding_half``: a quarter or half of the float64
    traffic). The stretch converts ``h * 0.5`` (exact) and applies the
    float operations of :func:`kernels.stretch.stretch_to_uint8`.
    """

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        self.half = np.empty(self.npix, half_dtype(plan))

    def _project(self, out):
        _, nproj = _kernels()
        opts = self.plan.options
        nproj.project_sliding_half(
            *self._state(), self.lo, self.hi, opts.subtract_first, opts.subtract_median,
            opts.add_first_frame, self.is_max, int(self.offset), self.half,
            self.chunk_max, self.chunk)
        _stretch_twice(self, self.chunk_max, out)


class FusedMedianProjector(NumbaProjector):
    """``subtract_median`` read off the blocked sorted window: no sliding extreme.

    Applies where :class:`HalfUnitProjector` would, with ``subtract_median``,
    the blocked sorted window as the median method and no
    ``add_first_frame`` (which needs the raw first frame).

    The sorted window's top (bottom) row is the window's maximum (minimum),
    so the median update forms twice the projection while each block is in
    cache (``numba_median.blocked_update_half``; ``subtract_first`` cancels
    there: ``x - x0 - median(x - x0) == x - median(x)``, exactly, in
    integers); the image is then the stretch of :class:`HalfUnitProjector`.
    """

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        self.half = np.empty(self.npix, half_dtype(plan))
        self.median.fuse(self.half, self.is_max, int(self.offset))

    def _project(self, out):
        _stretch_twice(self, self.median.block_peak, out)


def _stretch_twice(proj, block_peak, out) -> None:
    """The 8-bit image of ``proj.half / 2``, peak from the chunks' or blocks' peaks."""
    _, nproj = _kernels()
    nproj.stretch_twice(proj.half, block_peak, proj.scale_mode, proj.scale, out, proj.chunk,
                        *_half_f32_range(proj.half, proj.offset))


class FusedAdaptiveMedianProjector(_SlidingExtreme):
    """``subtract_median`` formed inside the adaptive median's update (uint8 frames).

    Applies where :class:`FusedMedianProjector` would, when the median
    method is the adaptive one (:class:`~.adaptive_median.AdaptiveMedian`:
    ``'auto'`` on uint8 frames from ``median_band_min_f``).

    Each block of pixels runs the band histogram or the sorted window; while
    the block is in cache the update forms twice the projection in integers
    (``kernels.numba.median_adaptive.adaptive_update`` with ``fuse``), the
    window's maximum (minimum) taken from the sorted window's top (bottom)
    row or, in band blocks, from the sliding extreme this path keeps.
    Exact as :class:`HalfUnitProjector`, of which these are the integers.
    """

    keeps_median = False

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        self.median_state = AdaptiveMedian(self.f, self.npix,
                                           block=min(self.chunk, config.get("median_block")))
        self.half = np.empty(self.npix, half_dtype(plan))
        self.block_peak = np.empty(self.median_state.mode.shape[0], np.float64)

    def _update(self, x, t):
        super()._update(x, t)  # the sliding extreme first: the window now ends at x
        buf, prefix, s1, ring, _ = self._state()
        has_suffix = s1 < buf.shape[0]
        self.median_state.push(ring, t, x, (
            self.half, prefix, buf[s1 if has_suffix else 0], has_suffix, self.is_max,
            2 * int(self.offset), self.block_peak))

    def _project(self, out):
        _stretch_twice(self, self.block_peak, out)


class PerWindowProjector(NumbaProjector):
    """Each pixel's window walked once per image: the fallback where sliding is not exact.

    Applies to ``take_diff`` combined with ``subtract_first`` or
    ``subtract_median`` where :func:`diff_dtype` keeps the differences in
    float64 (floats, 32- and 64-bit integers): there the differences of
    shifted frames need not equal those of the frames (floats round).

    Exact because ``project_window`` copies each pixel's window to a float64
    column and runs the steps of :func:`kernels.window.trace_window` on it,
    in the same order with the same float operations. O(F) per value.
    """

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        self.proj = np.empty(math.prod(plan.out_shape), np.float64)
        self.weights = np.zeros((0, 1), np.float64)  # as 2-D, see WeightedProjector

    def _project(self, out):
        _, nproj = _kernels()
        opts = self.plan.options
        nproj.project_window(
            self.ring, self.count % self.f, self.d, self.lo, self.hi, opts.subtract_first,
            opts.subtract_median, opts.add_first_frame, self.weights,
            int(self.plan.weight_mode), self.is_max, self.offset, self.proj,
            self.scale_mode, self.scale, out, self.chunk_max, self.chunk,
            config.get("numba_weight_block"))


class WeightedProjector(PerWindowProjector):
    """Frames weighted by their position: ``color_series``, ``fade_tails``.

    Applies to every plan with weights (``plan.weight_mode`` not NONE): no
    sliding state can absorb a weight that changes as the window slides.
    Each image is one pass over the window, frames outer and pixels inner in
    cache-sized blocks (the ``numba_weight_block`` setting), or per pixel
    with ``take_diff``.

    Exact as :class:`PerWindowProjector`: each value goes through
    ``(x - x0) - m``, the differences, then ``* w``, as in
    :func:`kernels.window.trace_window`.
    """

    def __init__(self, plan, chunk=None, median="auto"):
        super().__init__(plan, chunk, median)
        weights = plan.colors
        # (K, columns): a fade is one column (WeightMode.SCALAR).
        self.weights = np.ascontiguousarray(weights.reshape(len(weights), -1), np.float64)


class CertifiedColorProjector(NumbaProjector):
    """Weights alone on unsigned frames, in float32, certified: the NumPy bytes.

    Applies to ``color_series`` and ``fade_tails`` without the first-frame,
    median and difference steps or ``invert_color``, on unsigned (or bool)
    frames, with 8-bit output (:func:`.color_state.brute_applies`).
    Holds a :class:`~.color_state.BruteColor` (any weights: O(F) per
    value) or, for weights monotone in the position and long windows, a
    :class:`~.color_state.RecordsColor` (each pixel's candidate
    frames: about the same cost at every F).

    Exact because every product is formed in float32 with a known error
    bound, so each 8-bit value is decided by the float32 value only where
    the bound cannot carry it across a rounding boundary; the others (a few
    in ten thousand) are recomputed in float64 as
    :func:`kernels.window.trace_window` does, and the stretch's peak comes
    exactly from the frames' maxima (:mod:`kernels.numba.color_stretch`).
    """

    keeps_median = False

    def __init__(self, plan, chunk=None, median="auto", color="auto"):
        super().__init__(plan, chunk, median)
        self.state = make_color(plan, color,
                                min(self.chunk, config.get("numba_weight_block")),
                                min(self.chunk, config.get("numba_brute_block")))

    def _ring_rows(self):
        return 0  # the state keeps its own ring

    def _update(self, x, t):
        self.state.push(x)

    def project(self):
        if self.count < self.f:
            raise RuntimeError("project() needs a full window of frames")
        return self.state.image().reshape(self.plan.out_shape)


class ShiftedColorProjector(NumbaProjector):
    """Weights after a shift, in float32, certified: the NumPy bytes.

    Applies to ``color_series`` and ``fade_tails`` with ``subtract_first``,
    ``subtract_median``, ``invert_color``, ``add_first_frame`` or
    ``take_diff`` (or on signed frames), on integer frames of at most 16
    bits, or on float frames without a shift or a difference, with 8-bit output
    (:func:`.color_state.shifted_applies`). Keeps the window's ring
    and median like the exact paths; the image comes from a
    :class:`~.color_state.ShiftedColor`: O(F) per value in float32,
    each value decided from it where its error bound allows, the rest and
    the image's peak recomputed in float64.
    """

    def __init__(self, plan, chunk=None, median="auto"):
        # The median drops out of differences: no sliding median to keep then.
        self.keeps_median = not plan.options.take_diff
        super().__init__(plan, chunk, median)
        self.state = ShiftedColor(plan, min(self.chunk, config.get("numba_brute_block")))

    def _update(self, x, t):
        self.state.note(x, t % self.f)

    def _project(self, out):
        scale = self.scale if self.scale_mode == _FIXED else None
        out[:] = self.state.image(self.ring, self.count % self.f, self.lo, self.hi, scale)
