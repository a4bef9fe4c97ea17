"""Sliding-median state of the Numba backend: one small class per method.

Each class owns the per-pixel state its kernels in :mod:`kernels.numba.median`
keep, and after :meth:`SlidingMedian.push` exposes the window's two middle
order statistics as ``lo`` and ``hi``; NumPy's median is their mean.
:func:`resolve_method` validates the method and picks one for ``'auto'``
(:func:`auto_method`); the projectors (:mod:`.projectors`) build the
state and own the ring of raw frames the methods read the leaving frame from.

Two methods: the band histogram (uint8 frames; its cost does not grow with
F) and the blocked sorted window (any dtype); and on uint8 frames over
longer windows, 'auto' takes :class:`~.adaptive_median.AdaptiveMedian`,
which runs one or the other per block of pixels, as the data asks.
"""

from __future__ import annotations

import functools

import numpy as np

from ... import config

# Tunables (config.py): "median_block" pixels per block of the blocked
# sorted window and the band histogram (layouts (nblocks, rows, block),
# capped by the projector's chunk), the sorted window's capped by
# "median_sorted_bytes" (sorted_block); "median_band_min_f", the shortest window for
# which 'auto' lets blocks of uint8 frames run the band histogram (the
# adaptive median; below it the sorted window, fused with the projection,
# is never more than the ``median_switch`` tolerance slower: see
# bench/bench_median.py for the crossover);
# "band_bins", the band's width of the 'band' method (8 bins: 2550 rebuilds
# per 1 MP frame at F = 30 where 16 bins need 241).

# No full 256-bin histogram and no scalar insertion sort: 'auto' would not
# pick them, and even at long windows they lose to the band and the blocked
# window (bench/bench_median.py).
METHODS = ("auto", "band", "blocked", "adaptive")


@functools.cache
def _kernels():
    """:mod:`kernels.numba.median`, imported on first use (cached: see numba_projectors)."""
    from ...kernels.numba import median as numba_median

    return numba_median


def auto_method(f: int, dtype: np.dtype) -> str:
    """The method for this window (see above): adaptive on uint8 frames over long windows."""
    if dtype == np.uint8 and config.get("median_band_min_f") <= f <= 65535:
        return "adaptive"
    return "blocked"


def resolve_method(method: str, f: int, dtype: np.dtype) -> str:
    """``method`` checked against the frames, with ``'auto'`` resolved.

    Raises
    ------
    ValueError
        For an unknown method, or the band on frames it cannot count.
    """
    if method not in METHODS:
        raise ValueError(f"median must be one of {', '.join(map(repr, METHODS))}, "
                         f"got {method!r}")
    if method == "auto":
        return auto_method(f, dtype)
    if method in ("band", "adaptive") and (dtype != np.uint8 or f > 65535):
        raise ValueError(f"the {method} median needs uint8 frames and F <= 65535")
    return method


class SlidingMedian:
    """Base: the window's middle order statistics, updated frame by frame.

    Attributes
    ----------
    method : str
        The method's name.
    lo, hi : numpy.ndarray, shape (P,)
        Order statistics ``(F - 1) // 2`` and ``F // 2`` of the last window
        pushed.
    rebuilt : int
        Pixels recounted from the ring after the first window (band only).
    """

    method = ""
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

    def _band_state(self, nblocks: int, bins: int, block: int) -> None:
        """Allocate the band histogram's state (:func:`kernels.numba.median.band_update`,
        also run by the adaptive median's band blocks) and ``lo``/``hi``."""
        npix = self.npix
        self.count_type = np.uint8 if self.f <= 255 else np.uint16
        self.band = np.zeros((nblocks, bins, block), self.count_type)
        self.base = np.zeros(npix, np.uint8)
        self.below = np.zeros(npix, self.count_type)
        self.scratch = np.empty((nblocks, 5, block), np.uint8)
        self.csum = np.empty((nblocks, block), self.count_type)
        self.bad = np.empty((nblocks, block), np.int64)
        self.lo = np.empty(npix, np.uint8)
        self.hi = np.empty(npix, np.uint8)


class BandMedian(SlidingMedian):
    """Histogram of the ``band_bins`` values around each pixel's median (uint8 frames).

    Attributes ``band`` (counts, ``(blocks, bins, block)``), ``base`` (each
    pixel's first bin) and ``below`` (the window's values under ``base``)
    are the state :func:`kernels.numba.median.band_update` keeps.
    """

    method = "band"

    def __init__(self, f, npix, dtype, chunk):
        super().__init__(f, npix, dtype)
        block = min(chunk, config.get("median_block"))
        self._band_state(-(-npix // block), config.get("band_bins"), block)

    def push(self, ring, t, x):
        if t < self.f - 1:
            return  # the ring holds the window but for x (slot t % f leaves)
        rebuilt = _kernels().band_update(
            ring, t % self.f, x, self.band, self.base, self.below, self.k1, self.k2,
            self.lo, self.hi, self.scratch, self.csum, self.bad, t == self.f - 1,
            self.count_type)
        if t >= self.f:
            self.rebuilt += rebuilt


def sorted_block(f: int, itemsize: int) -> int:
    """Pixels per block of the sorted window: ``median_block``, fewer for long windows.

    Halved (down to 1024 pixels, or ``median_block`` if smaller) while a
    block's sorted values, ``f * itemsize`` bytes per pixel, exceed
    ``median_sorted_bytes``.

    >>> sorted_block(30, 1), sorted_block(100, 2), sorted_block(1000, 2)
    (4096, 1024, 1024)
    """
    block = int(config.get("median_block"))
    floor = min(block, 1024)
    budget = int(config.get("median_sorted_bytes"))
    while block > floor and block * f * itemsize > budget:
        block //= 2
    return max(block, floor)


class BlockedMedian(SlidingMedian):
    """The window kept sorted per pixel, blocked so that a frame is one SIMD merge.

    ``srt[c, k, j]`` is the k-th smallest value of pixel ``c * block + j``'s
    window (:func:`kernels.numba.median.blocked_update`).

    After :meth:`fuse`, ``push`` writes twice the ``subtract_median``
    projection to ``half`` (and per-block peaks to ``block_peak``) instead
    of ``lo``/``hi``: the window's maximum (minimum) is its top (bottom) row.
    """

    method = "blocked"

    def __init__(self, f, npix, dtype, chunk):
        super().__init__(f, npix, dtype)
        block = min(chunk, sorted_block(f, self.dtype.itemsize))
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
        if t == f - 1:  # the ring holds frames 0 .. F-2; slot F-1 is x's
            nmed.blocked_build(ring, t, x, self.srt)
        if self.half is not None and t >= f - 1:
            nmed.blocked_update_half(ring[t % f], x, self.srt, self.k1, self.k2,
                                     self.is_max, self.ioffset2, self.half, self.block_peak,
                                     self.scratch, t >= f)
        elif t == f - 1:
            nmed.blocked_stats(self.srt, self.k1, self.k2, self.lo, self.hi)
        elif t >= f:
            nmed.blocked_update(ring[t % f], x, self.srt, self.k1, self.k2, self.lo, self.hi,
                                self.scratch)
