"""An exact sliding median (uint8) that picks its method per block of pixels as it runs.

:mod:`kernels.numba.median` has two fast methods with opposite weak spots:
the blocked sorted window costs O(F) per pixel whatever the data; the band
histogram costs O(K) (K bins around the median) but recounts a pixel from
the ring, O(F), whenever its median leaves the band -- rare on video, where
the median is the still background, but most pixels every frame on noise.
Which wins depends on the data at hand, and may differ across the image.

Here every block of pixels (the blocked layout's blocks) runs one of the
two and keeps an estimate of the band's recount rate: counted where it runs
the band, and where it runs the sorted window by tracking, per pixel, where
the band would be (its base, recentred when the median leaves it). A cost
model turns the rate into the band's cost against the sorted window's, and
a block switches when the other method is cheaper by more than the
tolerance (1.3 by default): it then builds the other method's state from
the ring. Both give the same order statistics, so the switch is exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .median import (
    _block_half,
    _build_sorted,
    _merge_block,
    band_block,
)
from .project import _peak_int

#: Block modes.
BAND, SORTED = 0, 1


@njit(cache=True, nogil=True)
def _virtual_band(lo, hi, base, flag, consts, m):
    """Where the band would be: recentre ``base`` on pixels whose median left it; count them.

    ``consts`` (uint8): ``(K - 1) // 2``, ``256 - K``, ``K - 1`` for a band of
    K bins. Written in uint8 lanes (numba widens arithmetic to int64, and
    LLVM then leaves the loop scalar): ``hi - base`` cannot wrap where
    ``lo >= base``, the only case it decides.
    """
    half, top, width1 = consts[0], consts[1], consts[2]
    for j in range(m):
        b = base[j]
        a = lo[j]
        h = hi[j]
        out = (a < b) | (np.uint8(h - b) > width1)
        nb = min(np.uint8(max(a, half) - half), top)
        om = np.uint8(np.uint8(0) - np.uint8(out))
        base[j] = np.uint8((nb & om) | (b & ~om))  # not a select: see numba_color_records
        flag[j] = out
    moved = 0
    for j in range(m):
        moved += flag[j]
    return moved


@njit(cache=True, nogil=True)
def _extreme_half(pre, suf, has_suffix, lo, hi, is_max, ioffset2, h, m):
    """Twice the median-subtracted projection from the sliding extreme ``ext(pre, suf)``.

    The integers of :func:`kernels.numba.median._block_half`, with the
    window's maximum (minimum) from van Herk's prefix and suffix instead of
    a sorted top row. Returns the largest ``h``.
    """
    if not has_suffix:
        suf = pre
    if is_max:
        for j in range(m):
            a = pre[j]
            b = suf[j]
            e = np.int32(a) if a > b else np.int32(b)
            h[j] = 2 * e - (np.int32(lo[j]) + np.int32(hi[j]))
    else:
        for j in range(m):
            a = pre[j]
            b = suf[j]
            e = np.int32(a) if a < b else np.int32(b)
            h[j] = ioffset2 - (2 * e - (np.int32(lo[j]) + np.int32(hi[j])))
    return _peak_int(h[:m])


@njit(cache=True, nogil=True)
def band_cost(rate, f, costs):
    """Model cost per pixel per frame of the band at recount rate ``rate``."""
    return costs[0] + rate * (costs[1] + costs[2] * f)


@njit(cache=True, nogil=True)
def sorted_cost(f, costs):
    """Model cost per pixel per frame of the sorted window."""
    return costs[3] + costs[4] * f


@njit(parallel=True, cache=True, nogil=True)
def adaptive_update(ring, skip, xnew, srt, sscratch, band, base, below, k1, k2, lo, hi,
                    scratch, csum, bad, mode, rate, costs, ct, build, moved,
                    fuse, half, pre, suf, has_suffix, is_max, ioffset2, block_peak):
    """Slide the window by one frame in every block, each with its own method.

    Parameters
    ----------
    ring : ndarray, shape (F, P), uint8
        The last F frames; slot ``skip`` holds the frame leaving the window
        (with ``build``, the slot not yet filled).
    skip : int
    xnew : ndarray, shape (P,), uint8
        The entering frame.
    srt : ndarray, shape (nblocks, F, B), uint8
        Sorted windows of the blocks in mode :data:`SORTED` (see
        :func:`kernels.numba.median.blocked_update`).
    sscratch : ndarray, shape (nblocks, B), uint8
    band, base, below, scratch, csum, bad
        The band histograms of the blocks in mode :data:`BAND` (see
        :func:`kernels.numba.median.band_update`); ``base`` also tracks the
        band's place in the sorted blocks.
    k1, k2 : int
        Order statistics written to ``lo`` and ``hi``, shape (P,), uint8.
    mode : ndarray of uint8, shape (nblocks,)
        :data:`BAND` or :data:`SORTED` per block; may change.
    rate : ndarray of float64, shape (nblocks,)
        Moving average of the fraction of the block's pixels whose median
        left the band per frame.
    costs : ndarray of float64, shape (7,)
        The model: band fixed cost, recount cost + per frame of F, sorted
        fixed cost + per frame of F (any unit, per pixel per frame), the
        tolerance, and the moving average's weight of the newest frame.
    ct : numba number class
        The band's count dtype (``np.uint8`` while F <= 255, else ``np.uint16``).
    build : bool
        The first full window: build each block's state from the ring.
    moved : ndarray of int64, shape (nblocks, 2)
        Adds per block the pixels recounted (band) or whose virtual band
        moved (sorted), and the switches.
    fuse : bool
        Also form twice the ``subtract_median`` projection in ``half``
        (int16 or int32, shape (P,)) and half each block's largest value in
        ``block_peak``, while the block is in cache: the window's maximum
        (minimum with ``is_max`` False, then ``ioffset2 - ...``) is the
        sorted window's top (bottom) row, or in band blocks van Herk's
        ``ext(pre, suf)`` (``suf`` only where ``has_suffix``; see
        :func:`kernels.numba.sliding.ext_push`). Else those are dummies.
    """
    n = xnew.shape[0]
    f = ring.shape[0]
    bsize = band.shape[2]
    nk = band.shape[1]
    nblocks = band.shape[0]
    tol = costs[5]
    alpha = costs[6]
    consts = np.array([(nk - 1) // 2, 256 - nk, nk - 1], np.uint8)
    sc = sorted_cost(f, costs)
    for c in prange(nblocks):
        first = c * bsize
        m = min(bsize, n - first)
        xv = xnew[first:first + m]
        bs = base[first:first + m]
        bl = below[first:first + m]
        lo_c = lo[first:first + m]
        hi_c = hi[first:first + m]
        idx = bad[c]
        if mode[c] == BAND:
            nbad = band_block(ring, skip, xv, first, m, band[c], bs, bl, lo_c, hi_c,
                              scratch[c], csum[c], idx, k1, k2, ct, build)
            if fuse:
                block_peak[c] = np.float64(_extreme_half(
                    pre[first:first + m], suf[first:first + m], has_suffix, lo_c, hi_c,
                    is_max, ioffset2, half[first:first + m], m)) * 0.5
            if not build:
                moved[c, 0] += nbad
                rate[c] += alpha * (nbad / m - rate[c])
                if band_cost(rate[c], f, costs) > tol * sc:
                    _build_sorted(ring, skip, xv, first, srt[c], m)
                    mode[c] = SORTED
                    moved[c, 1] += 1
        else:
            s = srt[c]
            if build:
                _build_sorted(ring, skip, xv, first, s, m)
            else:
                _merge_block(s, ring[skip, first:first + m], xv, sscratch[c], m)
            lo_c[:] = s[k1, :m]
            hi_c[:] = s[k2, :m]
            if fuse:
                block_peak[c] = np.float64(_block_half(s, k1, k2, is_max, ioffset2,
                                                       half[first:first + m], m)) * 0.5
            if build:
                for j in range(m):
                    bs[j] = min(max(np.int64(lo_c[j]) - (nk - 1) // 2, 0), 256 - nk)
                continue
            nmoved = _virtual_band(lo_c, hi_c, bs, scratch[c, 4], consts, m)
            moved[c, 0] += nmoved
            rate[c] += alpha * (nmoved / m - rate[c])
            if band_cost(rate[c], f, costs) * tol < sc:
                band_block(ring, skip, xv, first, m, band[c], bs, bl, lo_c, hi_c,
                           scratch[c], csum[c], idx, k1, k2, ct, True)
                mode[c] = BAND
                moved[c, 1] += 1
