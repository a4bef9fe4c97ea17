"""Weighted projections after a shift, a difference or ``invert_color``, in float32, certified.

``color_series`` / ``fade_tails`` with ``subtract_first``,
``subtract_median``, ``take_diff``, ``invert_color`` or ``add_first_frame``
(or on signed frames). With a shift the values ``v = (x - x0) - m`` may be
negative, so neither the frames' maxima nor weight 0 bound the products:
the image's peak is taken from the image itself (a float32 pass, then the
candidates near its top recomputed exactly) and rows past the window's end
repeat its last row with that row's own weight.

Exactness. For integer frames of at most 16 bits every ``v`` is a multiple
of 0.5 below 2**17, exact in float32 as in float64, and equal to ``x - s``
for one shift ``s`` per pixel: ``x0`` (first frame), the window's median
``m`` (with or without the first frame: ``(x - x0) - (m - x0) == x - m``
exactly), or 0; every difference of order <= 7 is an integer below 2**24.
A product then errs only by its weight's rounding and two roundings, at
most ``c |B|`` for the value ``B`` (a bound relative to each value), so a
float32 ``B32`` is within ``c'' |B32|`` of the exact one (``c'' = c / (1 -
c)``): only values from ``top - 3 c'' |top|`` on can hold the exact peak
(both values' errors, with room), and those are recomputed in float64
(:func:`shifted_peak`). ``invert_color``'s ``offset - min_j fl(v * w)`` is
``offset + max_j fl(v * -w)`` (rounding is symmetric), so the kernels only
take maxima, of the products with negated weights. The 8-bit stretch is
certified as in :mod:`.numba_color_stretch`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .color_brute import _each, _pad_weights, fold_window
from .color_stretch import _stretch3, _stretch_row
from .project import _to_uint8


@njit(cache=True, nogil=True)
def count_tiny(x, below):
    """How many values of ``x`` (float32) are non-zero with a magnitude under ``below``.

    Float frames: a value times the smallest weight under 2**-126 gives a
    subnormal float32 product, whose error is absolute, not relative. One
    branch-free pass, cheaper than NumPy's abs and masked min.
    """
    n = 0
    for j in range(x.shape[0]):
        a = abs(x[j])
        n += (a < below) & (a > 0)
    return n


@njit(cache=True, nogil=True)
def _fold_row(x, w, a0, d0, m):
    """d = max(a, x * w): the raw first frame of ``add_first_frame``."""
    for j in range(m):
        p = np.float32(x[j]) * w
        q = a0[j]
        d0[j] = p if p > q else q


@njit(cache=True, nogil=True)
def _shift_of(ring, start, lo, hi, shift_mode, base, s, m):
    """The shift ``s`` of each pixel: the first frame (mode 1) or the median ``(lo + hi) / 2``."""
    if shift_mode == 1:
        for j in range(m):
            s[j] = np.float32(ring[start, base + j])
    else:
        for j in range(m):
            s[j] = (np.float32(lo[base + j]) + np.float32(hi[base + j])) * np.float32(0.5)


@njit(cache=True, nogil=True)
def _diff_rows(ring, start, base, m, order, rows):
    """The window's ``order``-th differences into ``rows[:F - order, :m]`` (float32).

    Later rows minus earlier, as :func:`kernels.window.prepare_stack`; exact
    in float32 for integers of at most 16 bits and order at most 7.
    """
    f = ring.shape[0]
    for j in range(f):
        src = ring[(start + j) % f, base:base + m]
        dst = rows[j]
        for i in range(m):
            dst[i] = np.float32(src[i])
    for q in range(order):
        for j in range(f - 1 - q):
            a = rows[j]
            b = rows[j + 1]
            for i in range(m):
                a[i] = b[i] - a[i]


@njit(parallel=True, cache=True, nogil=True)
def shifted_brute(ring, start, lo, hi, shift_mode, diff_order, w32, per_value, add_first, proj,
                  peaks, bsize, sc_shift, sc_best, sc_diff):
    """``B = max_j (x_j - s) * w[j]`` of every value in float32 into ``proj``; each block's
    largest into ``peaks``.

    With ``add_first`` the raw first frame's ``x0 * w[F]`` joins the
    maximum. The projection is ``B``, or ``offset + B`` for
    ``invert_color``, whose weights the caller negates.

    Parameters
    ----------
    ring : ndarray, shape (F, P), integers of at most 16 bits
        The window; row ``start`` is its oldest frame.
    lo, hi : ndarray, shape (P,)
        The window's two middle order statistics (``shift_mode`` 2).
    shift_mode : int
        0: no shift, 1: the first frame, 2: the median.
    diff_order : int
        ``take_diff``'s order d (0: none): the rows are the window's d-th
        differences, F - d of them (a shift drops out of them exactly).
    w32 : ndarray of float32, shape (K, ncol)
        The weights; row F - d with ``add_first``.
    per_value : bool
        RGB frames: value p takes column ``p % 3`` and the image has P
        values (else ncol values per input value).
    add_first : bool
    proj : ndarray of float32, shape (ncol, P), or (1, P) with ``per_value``
    peaks : ndarray of float32, shape (nblocks,)
    bsize : int
        Values per block (a multiple of 3 with ``per_value``).
    sc_shift, sc_best, sc_diff : ndarray
        Scratch per thread: (T, B), (T, 6, B) and, with ``diff_order`` > 1,
        (T, F * B) float32.
    """
    f = ring.shape[0]
    n = ring.shape[1]
    ncol = 1 if per_value else w32.shape[1]
    nblocks = (n + bsize - 1) // bsize
    nrows = f - diff_order
    w32q = _pad_weights(w32, nrows)
    for blk in prange(nblocks):
        base = blk * bsize
        m = min(bsize, n - base)
        tid = numba.get_thread_id()
        best = sc_best[tid]
        s = sc_shift[tid]
        for c in range(ncol):
            best[2 * c, :m] = -np.inf
        if diff_order > 1:
            rows = sc_diff[tid].reshape((f, bsize))
            _diff_rows(ring, start, base, m, diff_order, rows)
            k = fold_window(rows, 0, nrows, None, False, w32, w32q, per_value, base, 0, best, m)
        elif diff_order == 1 or shift_mode == 0:
            # no shift (the unshifted row kernels pay no subtraction), or the first
            # differences, formed as the rows are read
            k = fold_window(ring, start, nrows, None, diff_order == 1, w32, w32q, per_value, base,
                            base, best, m)
        else:
            _shift_of(ring, start, lo, hi, shift_mode, base, s, m)
            k = fold_window(ring, start, nrows, s, False, w32, w32q, per_value, base, base, best,
                            m)
        if add_first:  # the raw first frame, unshifted, weighted by row F - d
            first = ring[start, base:base + m]
            if per_value:
                wrow = best[4]
                for i in range(m):
                    wrow[i] = w32[nrows, (base + i) % 3]
                _each(first, None, wrow, best[k], best[1 - k], m)
            else:
                for c in range(ncol):
                    _fold_row(first, w32[nrows, c], best[2 * c + k], best[2 * c + 1 - k], m)
            k = 1 - k
        if ncol == 3:
            _emit3(best[k], best[2 + k], best[4 + k], proj[0, base:base + m],
                   proj[1, base:base + m], proj[2, base:base + m], best[1 - k], m)
            peaks[blk] = _peak_float(best[1 - k], m)
        else:
            proj[0, base:base + m] = best[k, :m]
            peaks[blk] = _peak_float(best[k], m)


@njit(cache=True, nogil=True)
def _peak_float(b, m):
    """Largest of ``b[:m]`` (float32, no NaN), as a vectorized integer maximum.

    Numba leaves a float maximum scalar (it is not associative); the bits
    of a float32 read as int32, with the sign bit's complement folded into
    the others, order as the floats do.
    """
    k = b[:m].view(np.int32)
    low = np.int32(0x7FFFFFFF)
    x = k[0]
    e = x ^ ((x >> np.int32(31)) & low)
    for j in range(m):
        x = k[j]
        key = x ^ ((x >> np.int32(31)) & low)
        e = key if key > e else e
    e = np.int32(e ^ ((e >> np.int32(31)) & low))
    return np.array([e], np.int32).view(np.float32)[0]


@njit(cache=True, nogil=True)
def _emit3(b0, b1, b2, d0, d1, d2, top, m):
    """Copy three columns to ``d`` and their elementwise maximum to ``top``."""
    for j in range(m):
        v0 = b0[j]
        v1 = b1[j]
        v2 = b2[j]
        d0[j] = v0
        d1[j] = v1
        d2[j] = v2
        a = v0 if v0 > v1 else v1
        top[j] = a if a > v2 else v2


@njit(cache=True, nogil=True)
def _exact_block(ring, start, lo, hi, shift_mode, diff_order, w64, per_value, add_first, base,
                 idx, nb, ncol):
    """``B`` of the pixels ``base + idx[:nb]`` as the reference forms it, in float64.

    The window's values are gathered row by row (a block's pixels share
    cache lines), shifted or differenced once for all columns (exact:
    integers and halves). Returns ``(nb, ncol)`` values.
    """
    f = ring.shape[0]
    vals = np.empty((f, nb), np.float64)
    for r in range(f):
        row = ring[(start + r) % f]
        for i in range(nb):
            vals[r, i] = np.float64(row[base + idx[i]])
    first = vals[0].copy()  # the raw first frame (add_first_frame, subtract_first)
    nrows = f - diff_order
    if diff_order:
        for q in range(diff_order):
            for r in range(f - 1 - q):
                for i in range(nb):
                    vals[r, i] = vals[r + 1, i] - vals[r, i]
    elif shift_mode:
        for i in range(nb):
            p = base + idx[i]
            sh = first[i] if shift_mode == 1 else (np.float64(lo[p]) + np.float64(hi[p])) / 2.0
            for r in range(f):
                vals[r, i] = vals[r, i] - sh
    best = np.full((nb, ncol), -np.inf)
    for i in range(nb):
        for c in range(ncol):
            col = (base + idx[i]) % 3 if per_value else c
            e = -np.inf
            for r in range(nrows):
                v = vals[r, i] * w64[r, col]
                e = v if v > e else e
            if add_first:
                v = first[i] * w64[nrows, col]
                e = v if v > e else e
            best[i, c] = e
    return best


@njit(parallel=True, cache=True, nogil=True)
def shifted_peak(proj, peaks, below, bsize, ring, start, lo, hi, shift_mode, diff_order, w64,
                 per_value, add_first):
    """The exact largest ``B`` of the image: its pixels with a value from ``below`` on,
    recomputed (:func:`_exact_block`).

    ``below`` must leave out only values whose exact ``B`` is below the
    exact largest; only blocks whose float32 peak reaches it are read.
    Returns ``(largest, values recomputed)``.
    """
    ncol, n = proj.shape
    nblocks = peaks.shape[0]
    tops = np.full(nblocks, -np.inf)
    counts = np.zeros(nblocks, np.int64)
    for blk in prange(nblocks):
        if peaks[blk] < below:
            continue
        base = blk * bsize
        m = min(base + bsize, n) - base
        idx = np.empty(m, np.int64)
        nb = 0
        for j in range(m):
            idx[nb] = j
            hit = False
            for c in range(ncol):
                hit = hit or proj[c, base + j] >= below
            nb += hit
        exact = _exact_block(ring, start, lo, hi, shift_mode, diff_order, w64, per_value,
                             add_first, base, idx, nb, ncol)
        tops[blk] = exact.max()
        counts[blk] = nb * ncol
    return tops.max(), counts.sum()


@njit(parallel=True, cache=True, nogil=True)
def shifted_stretch(proj, offset, s32, mg, scale, ring, start, lo, hi, shift_mode, diff_order,
                    w64, per_value, add_first, bsize, out, counts, sc_flags):
    """The 8-bit image ``floor(clip((offset + B) * scale, 0, 255) + 0.5)``, interleaved.

    Decided from the float32 value where the margin ``mg`` allows, else
    recomputed as the reference does (``offset - min``, ``offset`` 0
    without ``invert_color``), every value of a flagged pixel; their number
    is added to ``counts[0]``. ``sc_flags`` is scratch per thread,
    (T, bsize) uint8.
    """
    ncol, n = proj.shape
    nblocks = (n + bsize - 1) // bsize
    nexact = np.zeros(nblocks, np.int64)
    off32 = np.float32(offset)
    for blk in prange(nblocks):
        base = blk * bsize
        m = min(base + bsize, n) - base
        flags = sc_flags[numba.get_thread_id()]
        flags[:m] = 0
        dest = out[base * ncol:(base + m) * ncol]
        if ncol == 3:
            any_bad = _stretch3(proj[0, base:base + m], proj[1, base:base + m],
                                proj[2, base:base + m], off32, s32, mg, mg, mg, dest, flags, m)
        else:
            any_bad = _stretch_row(proj[0, base:base + m], off32, s32, mg, dest, flags, m)
        if any_bad:
            idx = np.empty(m, np.int64)
            nb = 0
            for j in range(m):
                idx[nb] = j
                nb += flags[j]
            exact = _exact_block(ring, start, lo, hi, shift_mode, diff_order, w64, per_value,
                                 add_first, base, idx, nb, ncol)
            for i in range(nb):
                for c in range(ncol):
                    dest[idx[i] * ncol + c] = _to_uint8(offset - (-exact[i, c]), scale,
                                                        np.float64)
            nexact[blk] = nb * ncol
    counts[0] += nexact.sum()
