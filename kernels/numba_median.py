"""Exact sliding median of a stream of frames, per pixel.

NumPy's median of F values is the mean of the order statistics ``k1 =
(F - 1) // 2`` and ``k2 = F // 2`` (the same one when F is odd). These
kernels keep, per pixel, enough state to read both order statistics after
every frame; they write them to ``lo`` and ``hi``, and the projection
kernels form the mean in float64 exactly as NumPy does.

Two methods:

* **Histogram** (8-bit frames). Per pixel, a 256-bin histogram of the
  window, updated in O(1) per frame (one value leaves, one enters), and for
  each order statistic a pointer ``lo`` (a bin) with ``blo``, the count of
  values in lower bins. A frame moves a pointer only as far as the median
  moves, over empty bins included, so the cost does not grow with F.
  Memory: ``256 * P`` counts (uint8 while F <= 255, else uint16) plus
  ``2 * 5 * P`` bytes of pointers: 256 MiB for a 1024x1024 gray frame.
  ``hist`` may be stored bin-major (``(256, P)``, passed transposed) or
  pixel-major; bin-major is faster on images, where neighbouring pixels
  touch the same bins.
* **Sorted window** (any dtype). Per pixel, the window's values kept sorted;
  a frame removes the leaving value and slides the entering one into place:
  O(log F + |shift|) per pixel, where the shift is the change of rank
  (small on slowly changing video, about F/3 on white noise). Memory: the
  window again, ``F * P`` values. Exact for floats too (NaNs excepted: they
  have no rank).

Frames are flattened, chunked like :mod:`kernels.numba_sliding`. 8-bit
signed frames use bins ``value + off`` with ``off = 128``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


# --- histogram (8-bit) ---------------------------------------------------------


@njit(parallel=True, cache=True)
def hist_add(x, hist, off, chunk):
    """Add one frame to the histograms (while the first window fills).

    Parameters
    ----------
    x : ndarray, shape (P,), uint8 or int8
    hist : ndarray, shape (P, 256)
        Counts, indexed ``hist[pixel, bin]`` (may be a transposed view).
    off : int
        Bin of value 0: 0 for uint8, 128 for int8.
    chunk : int
        Values per parallel task.
    """
    n = x.shape[0]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            hist[p, np.int64(x[p]) + off] += 1


@njit(cache=True)
def _seek(h, p, k):
    """Bin holding order statistic k of pixel p, and the count below it."""
    below = 0
    b = 0
    while below + h[p, b] <= k:
        below += h[p, b]
        b += 1
    return b, below


@njit(parallel=True, cache=True)
def hist_init(hist, k1, k2, lo, blo, hi, bhi, chunk):
    """Place the order-statistic pointers once the first window is full.

    ``hi``/``bhi`` are skipped when ``k1 == k2`` (odd F; pass ``lo`` again).
    """
    n = lo.shape[0]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            b, below = _seek(hist, p, k1)
            lo[p] = b
            blo[p] = below
            if k2 != k1:
                b, below = _seek(hist, p, k2)
                hi[p] = b
                bhi[p] = below


@njit(cache=True)
def _track(h, p, m, below, k, old, new):
    """Move a pointer (bin ``m``, ``below`` values under it) after old -> new."""
    if old < m:
        below -= 1
    if new < m:
        below += 1
    while below > k:
        m -= 1
        below -= h[p, m]
    while below + h[p, m] <= k:
        below += h[p, m]
        m += 1
    return m, below


@njit(parallel=True, cache=True)
def hist_update(xold, xnew, hist, off, k1, k2, lo, blo, hi, bhi, chunk):
    """Slide the window by one frame: ``xold`` leaves, ``xnew`` enters.

    Updates the histograms and both pointers; ``lo``/``hi`` then hold the
    bins of order statistics ``k1``/``k2``. O(1) per pixel plus the
    distance the median moves.
    """
    n = xnew.shape[0]
    nchunks = (n + chunk - 1) // chunk
    two = k2 != k1
    for c in prange(nchunks):
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            old = np.int64(xold[p]) + off
            new = np.int64(xnew[p]) + off
            if old == new:
                continue
            hist[p, old] -= 1
            hist[p, new] += 1
            m, below = _track(hist, p, np.int64(lo[p]), np.int64(blo[p]), k1, old, new)
            lo[p] = m
            blo[p] = below
            if two:
                m, below = _track(hist, p, np.int64(hi[p]), np.int64(bhi[p]), k2, old, new)
                hi[p] = m
                bhi[p] = below


# --- sorted window (any dtype) -------------------------------------------------


@njit(parallel=True, cache=True)
def sorted_insert(x, srt, count, chunk):
    """Insert one frame while the first window fills (``count`` values in).

    Parameters
    ----------
    x : ndarray, shape (P,)
    srt : ndarray, shape (P, F)
        Per pixel, the first ``count`` entries are sorted.
    count : int
        Values already held per pixel, ``< F``.
    chunk : int
        Values per parallel task.
    """
    n = x.shape[0]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            row = srt[p]
            v = x[p]
            j = count
            while j > 0 and row[j - 1] > v:
                row[j] = row[j - 1]
                j -= 1
            row[j] = v


@njit(parallel=True, cache=True)
def sorted_stats(srt, k1, k2, lo, hi, chunk):
    """Copy order statistics ``k1`` and ``k2`` of each pixel to ``lo``/``hi``."""
    n = srt.shape[0]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            lo[p] = srt[p, k1]
            hi[p] = srt[p, k2]


@njit(parallel=True, cache=True)
def sorted_update(xold, xnew, srt, k1, k2, lo, hi, chunk):
    """Slide the window by one frame: ``xold`` leaves, ``xnew`` enters.

    Finds ``xold`` by bisection and moves the hole it leaves towards where
    ``xnew`` belongs, shifting the values in between by one.
    """
    n = xnew.shape[0]
    f = srt.shape[1]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            row = srt[p]
            old = xold[p]
            new = xnew[p]
            # leftmost entry >= old: it equals old, which is in the window
            a = 0
            b = f
            while a < b:
                mid = (a + b) >> 1
                if row[mid] < old:
                    a = mid + 1
                else:
                    b = mid
            j = a
            while j + 1 < f and row[j + 1] < new:
                row[j] = row[j + 1]
                j += 1
            while j > 0 and row[j - 1] > new:
                row[j] = row[j - 1]
                j -= 1
            row[j] = new
            lo[p] = row[k1]
            hi[p] = row[k2]
