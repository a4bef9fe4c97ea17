"""Sliding-median state of the Numba backend: one small class per method.

Each class owns the per-pixel state its kernels in :mod:`kernels.numba_median`
keep, and after :meth:`SlidingMedian.push` exposes the window's two middle
order statistics as ``lo`` and ``hi`` (values plus ``off``); NumPy's median
is their mean. :func:`make_median` validates the method and picks one for
``'auto'``. The projector (:mod:`.numba_backend`) owns the ring of raw frames
the methods read the leaving frame from.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import config

# Tunables (config.py): "median_block" pixels per block of the blocked
# sorted window and the band histogram (layouts (nblocks, rows, block),
# capped by the projector's chunk; 512-8192 measured within noise, 1024
# keeps a block's row in L1); "median_band_min_f", the shortest window for
# which 'auto' takes the band histogram on uint8 frames (the measured
# crossover, bench/bench_median.py, README "Performance"); "band_bins", the
# band's width (8 bins: 2550 rebuilds per 1 MP frame at F = 30 where 16
# bins need 241).

METHODS = ("auto", "band", "blocked", "histogram", "sorted")


@functools.cache
def _kernels():
    """:mod:`kernels.numba_median`, imported on first use (cached: see numba_backend)."""
    from flowtrace_gpu.kernels import numba_median

    return numba_median


def auto_method(f: int, dtype: np.dtype) -> str:
    """The fastest exact median method measured for this window (see above)."""
    if dtype == np.uint8 and config.get("median_band_min_f") <= f <= 65535:
        return "band"
    return "blocked"


def make_median(method: str, f: int, npix: int, dtype: np.dtype, chunk: int,
                hist_layout: str = "bin") -> SlidingMedian:
    """The sliding-median state for windows of ``f`` frames of ``npix`` values.

    Parameters
    ----------
    method : {'auto', 'band', 'blocked', 'histogram', 'sorted'}
    f : int
        Frames per window.
    npix : int
        Values per frame (pixels times channels).
    dtype : numpy.dtype
        Storage dtype of the frames.
    chunk : int
        Values per parallel task (caps the block size).
    hist_layout : {'bin', 'pixel'}
        Memory order of the full histogram (``'histogram'`` only).
    """
    if method not in METHODS:
        raise ValueError(f"median must be one of {', '.join(map(repr, METHODS))}, "
                         f"got {method!r}")
    if method == "auto":
        method = auto_method(f, dtype)
    if method == "band":
        if dtype != np.uint8 or f > 65535:
            raise ValueError("the band median needs uint8 frames and F <= 65535")
        return BandMedian(f, npix, dtype, chunk)
    if method == "histogram":
        if dtype.itemsize != 1:
            raise ValueError("the histogram median needs 8-bit frames")
        return HistogramMedian(f, npix, dtype, chunk, hist_layout)
    if method == "blocked":
        return BlockedMedian(f, npix, dtype, chunk)
    return SortedMedian(f, npix, dtype, chunk)


class SlidingMedian:
    """Base: the window's middle order statistics, updated frame by frame.

    Attributes
    ----------
    method : str
        The method's name.
    lo, hi : numpy.ndarray, shape (P,)
        Order statistics ``(F - 1) // 2`` and ``F // 2`` of the last window
        pushed, as values plus ``off``.
    off : float
        What the stored values exceed the frame values by (128 for the
        histogram of int8 frames, else 0).
    rebuilt : int
        Pixels recounted from the ring after the first window (band only).
    """

    method = ""
    off = 0.0
    rebuilt = 0

    def __init__(self, f: int, npix: int, dtype: np.dtype):
        self.f, self.npix, self.dtype = f, npix, np.dtype(dtype)
        self.k1, self.k2 = (f - 1) // 2, f // 2

    def push(self, ring: np.ndarray, t: int, x: np.ndarray) -> None:
        """Frame ``t`` (flat ``x``) enters; ``ring[t % F]`` holds the frame leaving.

        For ``t < F`` that slot holds nothing yet; ``lo``/``hi`` are valid
        from ``t = F - 1`` on.
        """
        raise NotImplementedError


class BandMedian(SlidingMedian):
    """Histogram of the 16 values around each pixel's median (uint8 frames)."""

    method = "band"

    def __init__(self, f, npix, dtype, chunk):
        super().__init__(f, npix, dtype)
        block = min(chunk, config.get("median_block"))
        nblocks = -(-npix // block)
        self.count_type = np.uint8 if f <= 255 else np.uint16
        self.band = np.zeros((nblocks, config.get("band_bins"), block), self.count_type)
        self.base = np.zeros(npix, np.uint8)
        self.below = np.zeros(npix, self.count_type)
        self.scratch = np.empty((nblocks, 5, block), np.uint8)
        self.csum = np.empty((nblocks, block), self.count_type)
        self.bad = np.empty((nblocks, block), np.int64)
        self.lo = np.empty(npix, np.uint8)
        self.hi = np.empty(npix, np.uint8)

    def push(self, ring, t, x):
        if t < self.f - 1:
            return  # the ring holds the window but for x (slot t % f leaves)
        rebuilt = _kernels().band_update(
            ring, t % self.f, x, self.band, self.base, self.below, self.k1, self.k2,
            self.lo, self.hi, self.scratch, self.csum, self.bad, t == self.f - 1,
            self.count_type)
        if t >= self.f:
            self.rebuilt += rebuilt


class HistogramMedian(SlidingMedian):
    """Full 256-bin histogram per pixel, pointers tracking the median (8-bit frames)."""

    method = "histogram"

    def __init__(self, f, npix, dtype, chunk, layout):
        super().__init__(f, npix, dtype)
        self.chunk = chunk
        count_dtype = np.uint8 if f <= 255 else (np.uint16 if f <= 65535 else np.int32)
        self.hoff = 128 if self.dtype.kind == "i" else 0
        self.off = float(self.hoff)
        if layout == "bin":
            self.hist = np.zeros((256, npix), count_dtype).T
        elif layout == "pixel":
            self.hist = np.zeros((npix, 256), count_dtype)
        else:
            raise ValueError(f"hist_layout must be 'bin' or 'pixel', got {layout!r}")
        self.lo = np.zeros(npix, np.uint8)
        self.blo = np.zeros(npix, np.int32)
        if self.k2 != self.k1:
            self.hi = np.zeros(npix, np.uint8)
            self.bhi = np.zeros(npix, np.int32)
        else:
            self.hi, self.bhi = self.lo, self.blo

    def push(self, ring, t, x):
        nmed, f = _kernels(), self.f
        if t < f:
            nmed.hist_add(x, self.hist, self.hoff, self.chunk)
            if t == f - 1:
                nmed.hist_init(self.hist, self.k1, self.k2, self.lo, self.blo, self.hi,
                               self.bhi, self.chunk)
        else:
            nmed.hist_update(ring[t % f], x, self.hist, self.hoff, self.k1, self.k2,
                             self.lo, self.blo, self.hi, self.bhi, self.chunk)


class BlockedMedian(SlidingMedian):
    """The window kept sorted per pixel, blocked so that a frame is one SIMD merge.

    After :meth:`fuse`, ``push`` writes twice the ``subtract_median``
    projection to ``half`` (and per-block peaks to ``block_peak``) instead
    of ``lo``/``hi``: the window's maximum (minimum) is its top (bottom) row.
    """

    method = "blocked"

    def __init__(self, f, npix, dtype, chunk):
        super().__init__(f, npix, dtype)
        block = min(chunk, config.get("median_block"))
        nblocks = -(-npix // block)
        self.srt = np.empty((nblocks, f, block), self.dtype)
        self.scratch = np.empty((nblocks, block), self.dtype)
        self.lo = np.empty(npix, self.dtype)
        self.hi = np.empty(npix, self.dtype)
        self.half = None

    def fuse(self, half: np.ndarray, is_max: bool, offset: int) -> None:
        """Form the projection ``half`` in each update (see the class docstring)."""
        self.half, self.is_max, self.ioffset2 = half, is_max, 2 * int(offset)
        self.block_peak = np.empty(self.srt.shape[0], np.float64)

    def push(self, ring, t, x):
        nmed, f = _kernels(), self.f
        if t < f:
            nmed.blocked_insert(x, self.srt, t)
        if self.half is not None and t >= f - 1:
            nmed.blocked_update_half(ring[t % f], x, self.srt, self.k1, self.k2,
                                     self.is_max, self.ioffset2, self.half, self.block_peak,
                                     self.scratch, t >= f)
        elif t == f - 1:
            nmed.blocked_stats(self.srt, self.k1, self.k2, self.lo, self.hi)
        elif t >= f:
            nmed.blocked_update(ring[t % f], x, self.srt, self.k1, self.k2, self.lo, self.hi,
                                self.scratch)


class SortedMedian(SlidingMedian):
    """The window kept sorted per pixel by insertion (scalar; any dtype)."""

    method = "sorted"

    def __init__(self, f, npix, dtype, chunk):
        super().__init__(f, npix, dtype)
        self.chunk = chunk
        self.srt = np.empty((npix, f), self.dtype)
        self.lo = np.empty(npix, self.dtype)
        self.hi = np.empty(npix, self.dtype)

    def push(self, ring, t, x):
        nmed, f = _kernels(), self.f
        if t < f:
            nmed.sorted_insert(x, self.srt, t, self.chunk)
            if t == f - 1:
                nmed.sorted_stats(self.srt, self.k1, self.k2, self.lo, self.hi, self.chunk)
        else:
            nmed.sorted_update(ring[t % f], x, self.srt, self.k1, self.k2, self.lo, self.hi,
                               self.chunk)
