"""The sliding median that chooses its method per block of pixels, on the data at hand.

:class:`AdaptiveMedian` keeps the state of
:mod:`kernels.numba.median_adaptive` (uint8 frames): every block of pixels
runs the band histogram or the blocked sorted window and switches when its
measured band recount rate says the other is cheaper by more than the
``median_switch`` tolerance. It exposes the window's two middle order
statistics as ``lo`` and ``hi`` after each ``push``, like the other
sliding-median states (:mod:`.median_state`).
"""

from __future__ import annotations

import functools

import numpy as np

from ... import config
from .median_state import SlidingMedian

#: The cost model, per pixel per frame, in nanoseconds on one thread of the
#: development machine (bench/bench_median.py): the
#: band histogram's pass, its recount of a pixel (fixed + per frame of F),
#: the sorted window's merge (fixed + per frame of F). Only their ratios
#: matter: they decide when a block switches.
COSTS = {"band": 3.5, "band_narrow": 2.7, "recount": 150.0, "recount_f": 5.0,
         "sorted": 0.4, "sorted_f": 0.1}
#: Weight of the newest frame in each block's moving average of the recount rate.
ALPHA = 1.0 / 16
#: From this F on the band has 8 bins instead of 16: longer windows hold
#: their median steadier, and half the bins are half the pass.
NARROW_BAND_MIN_F = 64


@functools.cache
def _kernels():
    from ...kernels.numba import median_adaptive as numba_median_adaptive

    return numba_median_adaptive


class AdaptiveMedian(SlidingMedian):
    """Band histogram or blocked sorted window per block, switching as the data asks.

    Parameters
    ----------
    f : int
        Frames per window (at most 65535).
    npix : int
        Values per frame.
    block : int
        Pixels per block (tests shrink it).
    bins : int, optional
        Band width (default: 8 from F = :data:`NARROW_BAND_MIN_F`, else 16).
    start : {'band', 'sorted'}, optional
        Every block's first method (default: the one the cost model prefers
        at a recount rate of zero).

    Attributes
    ----------
    lo, hi : numpy.ndarray of uint8, shape (P,)
        Order statistics ``(F - 1) // 2`` and ``F // 2`` of the last window.
    mode : numpy.ndarray of uint8, shape (nblocks,)
        Each block's method (0 band, 1 sorted).
    rebuilt : int
        Pixels recounted by the band, or whose band would have moved in
        sorted blocks, after the first window (a property here).
    switches : int
        Blocks that changed method.
    """

    method = "adaptive"

    def __init__(self, f: int, npix: int, block: int | None = None, bins: int | None = None,
                 start: str | None = None):
        if not 1 <= f <= 65535:
            raise ValueError(f"the adaptive median needs 1 <= F <= 65535, got {f}")
        super().__init__(f, npix, np.uint8)
        block = max(1, min(int(block or config.get("median_block")), npix))
        nblocks = -(-npix // block)
        nk = bins or (8 if f >= NARROW_BAND_MIN_F else 16)
        self._band_state(nblocks, nk, block)
        self.srt = np.zeros((nblocks, f, block), np.uint8)
        self.sscratch = np.zeros((nblocks, block), np.uint8)
        band = COSTS["band_narrow" if nk <= 8 else "band"]
        self.costs = np.array([band, COSTS["recount"], COSTS["recount_f"], COSTS["sorted"],
                               COSTS["sorted_f"], config.get("median_switch"), ALPHA])
        if start is None:
            start = "band" if band < COSTS["sorted"] + COSTS["sorted_f"] * f else "sorted"
        if start not in ("band", "sorted"):
            raise ValueError(f"start must be 'band' or 'sorted', got {start!r}")
        self.mode = np.full(nblocks, 0 if start == "band" else 1, np.uint8)
        self.rate = np.zeros(nblocks, np.float64)
        self.moved = np.zeros((nblocks, 2), np.int64)

    @property
    def rebuilt(self) -> int:
        return int(self.moved[:, 0].sum())

    @property
    def switches(self) -> int:
        return int(self.moved[:, 1].sum())

    def push(self, ring: np.ndarray, t: int, x: np.ndarray, fused=None) -> None:
        """Frame ``t`` (flat ``x``) enters; ``ring[t % F]`` holds the frame leaving.

        ``lo``/``hi`` are valid from ``t = F - 1`` on. ``fused``: the
        arguments ``(half, pre, suf, has_suffix, is_max, ioffset2,
        block_peak)`` with which the update also forms twice the
        ``subtract_median`` projection (:func:`kernels.numba.median_adaptive
        .adaptive_update`).
        """
        if t < self.f - 1:
            return  # the ring holds the window but for x (slot t % f leaves)
        fuse = fused is not None
        if not fuse:  # dummies of the fused arguments' types
            fused = (np.zeros(1, np.int16), self.lo, self.lo, False, True, 0, np.zeros(1))
        _kernels().adaptive_update(
            ring, t % self.f, x, self.srt, self.sscratch, self.band, self.base, self.below,
            self.k1, self.k2, self.lo, self.hi, self.scratch, self.csum, self.bad, self.mode,
            self.rate, self.costs, self.count_type, t == self.f - 1, self.moved, fuse, *fused)
