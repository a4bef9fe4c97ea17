"""Exact sliding median of a stream of frames, per pixel.

NumPy's median of F values is the mean of the order statistics ``k1 =
(F - 1) // 2`` and ``k2 = F // 2`` (the same one when F is odd). These
kernels keep, per pixel, enough state to read both order statistics after
every frame; they write them to ``lo`` and ``hi``, and the projection
kernels form the mean in float64 exactly as NumPy does. Two methods
(state classes in :mod:`flowtrace_gpu.backends.numba.median_state`; costs
measured by ``bench/bench_median.py``):

* **Blocked sorted window** (any dtype; 'auto' for all but long uint8
  windows). Per pixel, the window's values kept sorted, stored ``(block,
  rank, pixel-in-block)`` so that a frame is the same branch-free merge on
  every pixel: F compare/select/min/max per value, SIMD across pixels, one
  streaming read and write of the ``F * P`` values. Memory: ``F * P``
  values. Cost grows with F, bandwidth-bound. Exact for every dtype (NaNs
  excepted: they have no rank).
* **Band histogram** (uint8 frames; 'auto' from F = ``median_band_min_f``).
  Per pixel, counts of only the K values around the median (K =
  ``band_bins``), plus the count under them: O(K) branch-free SIMD work per
  frame whatever F, and the median rebuilt from the ring (O(F)) for the
  pixels where it leaves the band. Memory: about ``(K + 8) * P`` bytes
  (counts are uint16 above F = 255). Short windows, whose median jumps out
  of the band more often, are cheaper with the blocked window.

Frames are flattened and cut into blocks of pixels whose state stays in
L1/L2 while a frame streams through it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .project import _peak_int

# --- blocked sorted window (any dtype, vectorized) -----------------------------
#
# ``srt`` has shape (nblocks, F, B): block c holds pixels c*B .. c*B+B-1, and
# ``srt[c, k, j]`` is the k-th smallest value of pixel c*B+j's window. A
# frame is a merge done row by row, the same operations for every pixel: no
# search, no data-dependent branch, so each row of a block is one SIMD loop
# over contiguous values (32 uint8 lanes per AVX2 op), and a block (F*B
# values) streams through L1/L2 once per frame.


@njit(cache=True, nogil=True)
def _merge_row(row, below, xv, m):
    """``row = max(below, min(row, v))``: one row of a merge of v into sorted rows."""
    for j in range(m):
        a = row[j]
        v = xv[j]
        t = a if a < v else v
        b = below[j]
        row[j] = b if b > t else t


@njit(cache=True, nogil=True)
def _min_row(row, xv, m):
    """``row = min(row, v)``."""
    for j in range(m):
        a = row[j]
        v = xv[j]
        row[j] = a if a < v else v


@njit(cache=True, nogil=True)
def _insert_value(s, xv, count, m):
    """Insert one frame into sorted rows ``s`` that hold ``count`` values per pixel.

    Row k of the result is ``max(s[k-1], min(s[k], x))`` (row 0: ``min``,
    row ``count``: ``max``): the merge of x into the sorted rows, computed
    from the last row down so it can run in place.
    """
    if count == 0:
        s[0, :m] = xv
        return
    _last_row(s[count], xv, s[count - 1], m)
    for k in range(count - 1, 0, -1):
        _merge_row(s[k], s[k - 1], xv, m)
    _min_row(s[0], xv, m)


@njit(cache=True, nogil=True)
def _build_sorted(ring, skip, xv, first, s, m):
    """Sorted rows of the window (the ring but slot ``skip``, plus ``xv``) for one block.

    All F values go in while the block's rows are in cache; frame by frame
    over every block the rows would stream from memory F times.
    """
    f = ring.shape[0]
    count = 0
    for r in range(f):
        if r != skip:
            _insert_value(s, ring[r, first:first + m], count, m)
            count += 1
    _insert_value(s, xv, count, m)


@njit(parallel=True, cache=True, nogil=True)
def blocked_build(ring, skip, x, srt):
    """The first window's sorted rows: ``ring`` (F, P) but slot ``skip``, plus ``x``."""
    n = x.shape[0]
    bsize = srt.shape[2]
    for c in prange(srt.shape[0]):
        base = c * bsize
        m = min(bsize, n - base)
        _build_sorted(ring, skip, x[base:base + m], base, srt[c], m)


@njit(parallel=True, cache=True, nogil=True)
def blocked_stats(srt, k1, k2, lo, hi):
    """Copy order statistics ``k1`` and ``k2`` of each pixel to ``lo``/``hi``."""
    n = lo.shape[0]
    bsize = srt.shape[2]
    for c in prange(srt.shape[0]):
        base = c * bsize
        m = min(bsize, n - base)
        r1 = srt[c, k1]
        r2 = srt[c, k2]
        for j in range(m):
            lo[base + j] = r1[j]
            hi[base + j] = r2[j]


@njit(cache=True, nogil=True)
def _first_row(row, nxt, xo, xv, prev, m):
    """Row 0 of :func:`blocked_update`: ``s2[0] = min(s1[0], v)``."""
    for j in range(m):
        a = row[j]
        b = nxt[j]  # loaded unconditionally so that the select vectorizes
        o = xo[j]
        s1 = a if a < o else b
        v = xv[j]
        row[j] = s1 if s1 < v else v
        prev[j] = s1


@njit(cache=True, nogil=True)
def _mid_row(row, nxt, xo, xv, prev, m):
    """Row 0 < k < F-1 of :func:`blocked_update`."""
    for j in range(m):
        a = row[j]
        b = nxt[j]
        o = xo[j]
        s1 = a if a < o else b
        v = xv[j]
        t = s1 if s1 < v else v
        p = prev[j]
        row[j] = p if p > t else t
        prev[j] = s1


@njit(cache=True, nogil=True)
def _last_row(row, xv, prev, m):
    """Row F-1 of :func:`blocked_update`: ``s1[F-1] = +inf``, so ``max(s1[F-2], v)``."""
    for j in range(m):
        p = prev[j]
        v = xv[j]
        row[j] = p if p > v else v


@njit(parallel=True, cache=True, nogil=True)
def blocked_update(xold, xnew, srt, k1, k2, lo, hi, scratch):
    """Slide the window by one frame: ``xold`` leaves, ``xnew`` enters.

    With s the sorted window of a pixel, o the leaving and v the entering
    value, removing o gives ``s1[k] = s[k] if s[k] < o else s[k+1]`` (the
    first copy of o drops out; equal values are interchangeable, so ties
    need no care) and inserting v gives ``s2[k] = max(s1[k-1], min(s1[k],
    v))``, with ``s1[-1] = -inf`` and ``s1[F-1] = +inf``. Both run in one
    in-place pass over the rows, carrying ``s1[k-1]`` in ``scratch``.

    Cost per frame: F compare/select/min/max per value, reading and writing
    the ``F * P`` window once (data independent). Exact for every dtype
    (NaNs excepted, as for the other methods).

    Parameters
    ----------
    xold, xnew : ndarray, shape (P,)
    srt : ndarray, shape (nblocks, F, B)
    k1, k2 : int
        Order statistics written to ``lo`` and ``hi``.
    lo, hi : ndarray, shape (P,)
    scratch : ndarray, shape (nblocks, B)
        Workspace of the srt dtype.
    """
    n = xnew.shape[0]
    bsize = srt.shape[2]
    for c in prange(srt.shape[0]):
        base = c * bsize
        m = min(bsize, n - base)
        s = srt[c]
        _merge_block(s, xold[base:base + m], xnew[base:base + m], scratch[c], m)
        lo[base:base + m] = s[k1, :m]
        hi[base:base + m] = s[k2, :m]


@njit(cache=True, nogil=True)
def _merge_block(s, xo, xv, prev, m):
    """One block of :func:`blocked_update`: xo leaves the sorted rows ``s``, xv enters."""
    f = s.shape[0]
    if f == 1:
        s[0, :m] = xv
    else:
        # The row loops live in helpers: inlined in the prange body, Numba
        # leaves them scalar.
        _first_row(s[0], s[1], xo, xv, prev, m)
        for k in range(1, f - 1):
            _mid_row(s[k], s[k + 1], xo, xv, prev, m)
        _last_row(s[f - 1], xv, prev, m)


@njit(cache=True, nogil=True)
def _block_half(s, k1, k2, is_max, ioffset2, h, m):
    """Twice the median-subtracted projection of one block, from its sorted rows.

    The window's maximum (minimum) is its top (bottom) row, so the
    projection needs no sliding extreme: ``h = 2 * max - lo - hi``, or for
    ``invert_color`` ``2 * offset - (2 * min - lo - hi)``, the same integers
    :func:`kernels.numba.project.project_sliding_half` forms. Returns the
    largest ``h``.
    """
    top = s[s.shape[0] - 1] if is_max else s[0]
    r1 = s[k1]
    r2 = s[k2]
    if is_max:
        for j in range(m):
            h[j] = 2 * np.int32(top[j]) - (np.int32(r1[j]) + np.int32(r2[j]))
    else:
        for j in range(m):
            h[j] = ioffset2 - (2 * np.int32(top[j]) - (np.int32(r1[j]) + np.int32(r2[j])))
    return _peak_int(h[:m])


@njit(parallel=True, cache=True, nogil=True)
def blocked_update_half(xold, xnew, srt, k1, k2, is_max, ioffset2, half, block_peak,
                        scratch, update):
    """:func:`blocked_update` fused with the ``subtract_median`` projection.

    Writes twice the projection of each pixel (see :func:`_block_half`) to
    ``half`` and half the largest value of each block to ``block_peak``
    while the block is in cache, instead of the order statistics: the
    projection is then only the stretch
    (:func:`kernels.numba.project.stretch_half`). With ``update`` False
    the rows are only read (the first window, after
    :func:`blocked_build`). Integer frames of at most 16 bits.
    """
    n = half.shape[0]
    bsize = srt.shape[2]
    for c in prange(srt.shape[0]):
        base = c * bsize
        m = min(bsize, n - base)
        s = srt[c]
        if update:
            _merge_block(s, xold[base:base + m], xnew[base:base + m], scratch[c], m)
        peak = _block_half(s, k1, k2, is_max, ioffset2, half[base:base + m], m)
        block_peak[c] = np.float64(peak) * 0.5


# --- band histogram (8-bit, vectorized) ----------------------------------------
#
# Per pixel, a histogram of only K consecutive bins ``base .. base+K-1``
# around the median, plus ``below``, the count of window values under
# ``base``. A frame is O(K) branch-free work per pixel whatever F: the
# leaving and entering values move ``below`` or one band bin, and a running
# sum over the K bins finds both order statistics (their ranks k1, k2 fall
# inside the band while ``below <= k1`` and ``below + sum(band) > k2``).
# When the median leaves the band -- rare on video, where it is the slowly
# changing background -- that pixel's band is rebuilt, centred on the new
# median, from the F values in the ring: O(F), the cost of one frame of
# the blocked sorted window, paid only then.
#
# Layout, as the blocked sorted window: ``band[c, k, j]`` counts the value
# ``base[c*B + j] + k`` in pixel c*B+j's window; a block's K rows (K*B
# counts) stay in L1 while the frame streams through them.


@njit(cache=True, nogil=True)
def _band_prep(xo, xv, base, below, vo, vv, csum, nlo, nhi, ct, m):
    """Offsets of the leaving/entering values in the band; update ``below``.

    ``ct`` is the count scalar type: Numba widens small integers to int64,
    and every step is cast back so that the loops run on narrow SIMD lanes.
    """
    for j in range(m):
        b = base[j]
        o = xo[j]
        v = xv[j]
        # uint8 arithmetic wraps, so vo == k exactly when o == b + k
        vo[j] = np.uint8(o - b)
        vv[j] = np.uint8(v - b)
        bl = ct(below[j] + ct(v < b) - ct(o < b))
        below[j] = bl
        csum[j] = bl
        nlo[j] = 0
        nhi[j] = 0


@njit(cache=True, nogil=True)
def _band_row(row, k, vo, vv, csum, nlo, nhi, k1, k2, ct, m):
    """Bin ``base + k``: count the entering/leaving value, advance the running sum.

    ``nlo`` ends as the number of bins whose running sum is <= k1, which is
    the offset of order statistic k1 in the band (the sums never decrease).
    ``k`` is a uint8 and ``k1``/``k2`` are ``ct`` (see :func:`_band_prep`).
    """
    for j in range(m):
        t = ct(row[j] + ct(vv[j] == k) - ct(vo[j] == k))
        row[j] = t
        c = ct(csum[j] + t)
        csum[j] = c
        nlo[j] = np.uint8(nlo[j] + np.uint8(c <= k1))
        nhi[j] = np.uint8(nhi[j] + np.uint8(c <= k2))


@njit(cache=True, nogil=True)
def _band_finish(base, below, csum, nlo, nhi, lo, hi, flag, k1, k2, m):
    """Write the order statistics; flag the pixels whose median left the band.

    Returns the number flagged.
    """
    nbad = 0
    for j in range(m):
        b = base[j]
        lo[j] = np.uint8(b + nlo[j])
        hi[j] = np.uint8(b + nhi[j])
        bad = np.uint8(below[j] > k1) | np.uint8(csum[j] <= k2)
        flag[j] = bad
        nbad += bad
    return nbad


@njit(cache=True, nogil=True)
def _band_rebuild(ring, skip, xv, first, bad, nbad, base, below, band, lo, hi, k1, k2):
    """Recount the band of pixels ``first + bad[:nbad]`` from the window's values.

    The window is the ring without slot ``skip`` (the leaving frame), plus
    ``xv``. Its values are gathered frame by frame (a block's pixels share
    cache lines), then counted per pixel in one 256-bin histogram that is
    scanned only from the pixel's smallest value and cleared bin by bin:
    O(F + median - min) per pixel. The new band is centred on the median,
    clamped to 0..255.
    """
    nk = band.shape[0]
    f = ring.shape[0]
    vals = np.empty((nbad, f), np.int64)
    col = 0
    for r in range(f):
        if r != skip:
            row = ring[r]
            for i in range(nbad):
                vals[i, col] = row[first + bad[i]]
            col += 1
    hist = np.zeros(256, np.int64)
    for i in range(nbad):
        j = bad[i]
        w = vals[i]
        w[f - 1] = xv[j]
        vmin = 255
        for u in range(f):
            v = w[u]
            hist[v] += 1
            vmin = min(vmin, v)
        # acc: values below bin v
        v = vmin
        acc = 0
        while acc + hist[v] <= k1:
            acc += hist[v]
            v += 1
        m1 = v
        below_m1 = acc
        while acc + hist[v] <= k2:
            acc += hist[v]
            v += 1
        lo[j] = m1
        hi[j] = v
        b = min(max(m1 - (nk - 1) // 2, 0), 256 - nk)
        base[j] = b
        n_below = below_m1
        for u in range(b, m1):
            n_below -= hist[u]
        below[j] = n_below
        for k in range(nk):
            band[k, j] = hist[b + k]
        for u in range(f):
            hist[w[u]] = 0


@njit(parallel=True, cache=True, nogil=True)
def band_update(ring, skip, xnew, band, base, below, k1, k2, lo, hi, scratch, csum,
                bad, rebuild_all, ct):
    """Slide the band histograms by one frame; write order statistics k1, k2.

    Parameters
    ----------
    ring : ndarray, shape (F, P), uint8
        The last F frames; slot ``skip`` holds the frame leaving the window
        (with ``rebuild_all``, the slot not yet filled).
    skip : int
    xnew : ndarray, shape (P,), uint8
        The entering frame.
    band : ndarray, shape (nblocks, K, B)
        Counts (uint8 while F <= 255, else uint16).
    base : ndarray, shape (P,), uint8
        Value of each pixel's first band bin.
    below : ndarray, shape (P,)
        Window values under ``base`` (the band's count dtype).
    k1, k2 : int
    lo, hi : ndarray, shape (P,), uint8
        Order statistics k1 and k2 of the new window.
    scratch : ndarray, shape (nblocks, 5, B), uint8
    csum : ndarray, shape (nblocks, B), count dtype
    bad : ndarray, shape (nblocks, B), int64
    rebuild_all : bool
        Build every band from the ring (the first full window).
    ct : numba number class
        The count dtype's scalar type (``np.uint8`` or ``np.uint16``).

    Returns
    -------
    int
        Pixels whose band was rebuilt.
    """
    n = xnew.shape[0]
    bsize = band.shape[2]
    nblocks = band.shape[0]
    rebuilt = np.zeros(nblocks, np.int64)
    for c in prange(nblocks):
        first = c * bsize
        m = min(bsize, n - first)
        rebuilt[c] = band_block(ring, skip, xnew[first:first + m], first, m, band[c],
                                base[first:first + m], below[first:first + m],
                                lo[first:first + m], hi[first:first + m], scratch[c], csum[c],
                                bad[c], k1, k2, ct, rebuild_all)
    return rebuilt.sum()


@njit(cache=True, nogil=True)
def band_block(ring, skip, xv, first, m, s, bs, bl, lo_c, hi_c, sc, cs, idx, k1, k2, ct,
               rebuild_all):
    """One block of :func:`band_update` (pixels ``first .. first + m - 1``; the
    arguments are that block's slices). Returns the pixels rebuilt."""
    if rebuild_all:
        for j in range(m):
            idx[j] = j
        nbad = m
    else:
        _band_prep(ring[skip, first:first + m], xv, bs, bl, sc[0], sc[1], cs,
                   sc[2], sc[3], ct, m)
        # One bin per call: the pass is memory-bound, so fusing bins does not pay.
        for k in range(s.shape[0]):
            _band_row(s[k], np.uint8(k), sc[0], sc[1], cs, sc[2], sc[3], ct(k1), ct(k2),
                      ct, m)
        fl = sc[4]
        nbad = _band_finish(bs, bl, cs, sc[2], sc[3], lo_c, hi_c, fl, k1, k2, m)
        if nbad:
            i = 0
            for j in range(m):
                idx[i] = j
                i += fl[j]
    if nbad:
        _band_rebuild(ring, skip, xv, first, idx, nbad, bs, bl, s, lo_c, hi_c, k1, k2)
    return nbad
