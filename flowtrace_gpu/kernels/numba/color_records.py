"""Weighted projections (``color_series``, ``fade_tails``) from each pixel's records.

The weighted projection of a window is ``max_j fl(x_j * w[j])`` per pixel and
weight column (NumPy: the float64 stack times the weights, then ``max``),
where ``j`` is the frame's position in the window. Brute force is O(F) per
pixel per frame. This module keeps per pixel only the frames that can still
be the maximum (the "records"), O(log F) of them on random data, so a frame
costs about the same whatever F, and the image is the same bytes.

Dominance (exact). Values are non-negative (unsigned frames) and so are the
weights; ``v -> fl(v * w)`` is non-decreasing in ``v`` for ``w >= 0`` and in
``w`` for ``v >= 0``. For a column whose weights grow with the position
("up": the default ramp's red and green, ``fade_tails``), a frame followed
by a newer frame with a value at least as large is never the maximum again:
in every later window the newer frame has the larger weight too. The
candidates are the window's right-to-left maxima, kept in a deque as in the
sliding maximum (pop the smaller ones when a frame enters, drop the oldest
when it leaves). For weights that fall ("down": the ramp's blue), an older
frame with a value at least as large dominates the newer one, but only while
it is in the window, so the window is split as in van Herk's sliding max:
the part in the current block of F frames (``q + 1`` frames, where ``q =
t % F``) keeps its left-to-right maxima in an append-only list; the part in
the previous block (its frames ``q + 1 .. F - 1``) is precomputed when that
block completes, for every ``q``, by one backward sweep over the ring with a
stack of left-to-right maxima, and stored as the best candidate per ``q``.

Evaluation (float32, certified). Candidates are compared through float32
products with weights from a fitted formula ``(a + b*pos) * (c + d*pos)``
(affine ramps and fades, or an affine color times the fade), SIMD across
pixels without gathers. A bound ``delta`` on the formula's error (see
:func:`flowtrace_gpu.backends.numba.color_state.fit_weights`) enters the
stretch's margin (:mod:`.numba_color_stretch`); pixels whose candidate
lists overflowed their capacity (``lossy``) are recomputed in float64.

Layout: pixels (flattened values) in blocks of ``B``; each block's lists are
rows ``(nblocks, R + 1, B)`` (row ``R`` stays empty), oldest record first,
so every step is a SIMD loop over the block's pixels. An empty slot holds
the value 0, whose products are 0 and never exceed another candidate.
Each row loop lives in its own function: inlined in the ``prange`` body,
Numba 0.68 leaves such loops scalar.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .color_stretch import _finish

# Selects are written so that LLVM vectorizes them: both operands loaded
# first, and never ``rv[j] = v if c else rv[j]`` (LLVM turns that into a
# conditional store, which stays scalar; bit masks instead).


@njit(cache=True, nogil=True)
def _expiring(rt0, shift, keep, m):
    """Flag the pixels whose oldest record sat at position 0 (it leaves); reset ``keep``."""
    for j in range(m):
        shift[j] = -(rt0[j] == 0)
        keep[j] = -1


@njit(cache=True, nogil=True)
def _insert_row(rv, rt, nv, nt, shift, keep, xv, tt, dec, zero, m):
    """One row of "drop the oldest (where ``shift``), pop values <= x, append x".

    Row ``k`` becomes row ``k + shift`` (the oldest record left), then stays
    if its value exceeds ``x``, its tag lowered by ``dec``; the first row
    that does not stay receives ``(x, tt)``, the rows after it are emptied.
    ``keep`` carries, per pixel, whether every row so far stayed (all ones
    on entry; the values' dtype, 0 or all bits set) and ends as the
    overflow flag. ``tt`` and ``dec`` have the tags' dtype, ``zero`` the
    values'. Returns the largest value written (0: the row is empty for
    every pixel).
    """
    top = zero
    for j in range(m):
        sh = shift[j] != 0
        n1 = nv[j]
        r1 = rv[j]
        n2 = nt[j]
        r2 = rt[j]
        v = xv[j]
        p = keep[j]
        a = n1 if sh else r1
        at = n2 if sh else r2
        stays = a > v
        put = min(v, p)  # x where every earlier row stayed, else 0
        w = a if stays else put
        rv[j] = w
        rt[j] = at - dec if stays else tt
        keep[j] = -stays
        top = max(top, w)
    return top


@njit(cache=True, nogil=True)
def _weight(pos, a, b, c, d):
    """The fitted weight of position ``pos`` (float32)."""
    return (a + b * pos) * (c + d * pos)


@njit(cache=True, nogil=True)
def _eval1(rv, ro, base, w0, s0, d0, m):
    """d = max(s, x * w(tag + base)) over one row of candidates (float32)."""
    a0, b0, c0, e0 = w0
    for j in range(m):
        pos = np.float32(ro[j]) + base
        p0 = np.float32(rv[j]) * _weight(pos, a0, b0, c0, e0)
        q0 = s0[j]
        d0[j] = p0 if p0 > q0 else q0


@njit(cache=True, nogil=True)
def _eval2(rv, ro, base, w0, w1, s0, d0, s1, d1, m):
    """:func:`_eval1` for two columns sharing the candidates."""
    a0, b0, c0, e0 = w0
    a1, b1, c1, e1 = w1
    for j in range(m):
        pos = np.float32(ro[j]) + base
        x = np.float32(rv[j])
        p0 = x * _weight(pos, a0, b0, c0, e0)
        p1 = x * _weight(pos, a1, b1, c1, e1)
        q0 = s0[j]
        q1 = s1[j]
        d0[j] = p0 if p0 > q0 else q0
        d1[j] = p1 if p1 > q1 else q1


@njit(cache=True, nogil=True)
def _appends(xv, pm, cnt, app, slot, none, m):
    """Which pixels append x (a new left-to-right maximum of the block); update ``pm``.

    ``app`` gets 0 or all bits set, ``slot`` the row x goes to (``cnt``)
    or ``none`` (a value no row index takes).
    """
    for j in range(m):
        v = xv[j]
        p = pm[j]
        c = cnt[j]
        a = v > p
        app[j] = -a
        slot[j] = c if a else none
        pm[j] = max(v, p)


@njit(cache=True, nogil=True)
def _append_row(rv, ro, slot, k, xv, q, m):
    """Row ``k`` of an append-only list: ``(x, q)`` where ``slot == k``.

    ``k`` has the dtype of ``slot`` and ``q`` that of ``ro``.
    """
    for j in range(m):
        hv = -(slot[j] == k)
        rv[j] = (xv[j] & hv) | (rv[j] & ~hv)
    for j in range(m):
        ht = -(slot[j] == k)
        ro[j] = (q & ht) | (ro[j] & ~ht)


@njit(cache=True, nogil=True)
def _count(cnt, app, m):
    """cnt += 1 where the pixel appended (``app``: 0 or all bits, the dtype of ``cnt``)."""
    for j in range(m):
        cnt[j] = cnt[j] - app[j]  # minus all bits set is plus one
    top = cnt[0]
    for j in range(m):
        top = max(top, cnt[j])
    return top


@njit(cache=True, nogil=True)
def _argmax_row(rv, ro, base, w0, bp, bv, bo, bp2, bv2, bo2, m):
    """Best (product, value, tag) so far, ping-ponged; the row's position is tag + base."""
    a0, b0, c0, e0 = w0
    for j in range(m):
        o = ro[j]
        x = rv[j]
        p = np.float32(x) * _weight(np.float32(o) + base, a0, b0, c0, e0)
        q = bp[j]
        v0 = bv[j]
        o0 = bo[j]
        better = p > q
        bp2[j] = p if better else q
        bv2[j] = x if better else v0
        bo2[j] = o if better else o0


@njit(cache=True, nogil=True)
def _lossy_flags(lossy, t, flags, m):
    for j in range(m):
        flags[j] = np.uint8(lossy[j] >= t)


@njit(parallel=True, cache=True, nogil=True)
def color_step(x, ring, t, coef, cls, dslot, w64, dq_val, dq_tim, dq_rows, tags,
               bl_val, bl_off, bl_rows, bl_cnt, pm, a_val, a_pos, lossy, blk_lossy,
               scale, margins, out, project, counts, sc_mask, sc_flags, sc_best, sc_cols,
               srows):
    """Push frame ``t`` into the records; with ``project``, write the window's image.

    Parameters
    ----------
    x : ndarray, shape (P,), unsigned
        Frame ``t`` (flat); ``ring[t % F]`` already holds it.
    ring : ndarray, shape (F, P)
        The last F frames (slot ``t % F``).
    t : int
        Index of ``x`` in the stream (blocks of F frames start at multiples of F).
    coef : ndarray of float32, shape (ncol, 4)
        ``a, b, c, d`` of each column's weight formula (:func:`_weight`).
    cls : ndarray of int64, shape (ncol,)
        0: the column's weights grow with the position (deque); 1: they fall.
    dslot : ndarray of int64, shape (ncol,)
        Index of each falling column in ``a_val``/``a_pos`` (-1 for the others).
    w64 : ndarray of float64, shape (F, ncol)
        The exact weights (``plan.colors``), for the exact recomputation.
    dq_val, dq_tim : ndarray, shape (nblocks, R + 1, B)
        Deque of right-to-left maxima: values and positions in the window
        that ended at the previous frame (lowered by one per frame).
    dq_rows : ndarray of int64, shape (nblocks,)
        Rows in use per block (the most records any of its pixels holds).
    tags : ndarray, shape (3,), dtype of ``dq_tim``
        ``F - 1`` (an entering frame's position), 1, and ``t % F`` (the
        block index): typed so that the row loops stay in narrow SIMD lanes.
    bl_val, bl_off : ndarray, shape (nblocks, Rb + 1, B)
        Left-to-right maxima of the current block: values and block indices.
    bl_rows : ndarray of int64, shape (nblocks,)
    bl_cnt : ndarray, shape (P,)
        Entries per pixel in the list (dtype of ``x``).
    pm : ndarray, shape (P,)
        Largest value of the current block so far.
    a_val, a_pos : ndarray, shape (ndown, F, P)
        Row ``q``: the best candidate among the previous block's frames
        ``q + 1 .. F - 1`` for the window ending at block index ``q``: its
        value and block index (position ``index - q - 1`` in the window).
    lossy : ndarray of int64, shape (P,)
        Last frame whose image a pixel must take from the exact path
        (a candidate list overflowed); -1 if none.
    blk_lossy : ndarray of int64, shape (nblocks,)
        The largest ``lossy`` of each block (pixels are checked only if >= t).
    scale : float
        The stretch factor of the image (``255 / peak``, or the fixed one).
    margins : ndarray of float32, shape (ncol,)
        Per column, how far from an integer ``y + 0.5`` must be for the
        float32 value to decide the byte.
    out : ndarray of uint8, shape (P * ncol,)
        The image (value p, column c at ``p * ncol + c``).
    project : bool
        Write the image (the window is full).
    counts : ndarray of int64, shape (2,)
        Adds the values recomputed exactly and the overflows.
    sc_mask, sc_flags, sc_best, sc_cols : ndarray
        Scratch per thread (``numba.get_thread_id()``): shapes (T, 2, B) in
        the dtype of ``x``, (T, B) uint8, (T, 2 * ncol, B) float32,
        (T, ncol, B) uint8.
    srows : int
        Capacity of the backward sweep's stack (:func:`_sweep_block`).
    """
    n = x.shape[0]
    f = ring.shape[0]
    nblocks = dq_val.shape[0]
    bsize = dq_val.shape[2]
    ncol = coef.shape[0]
    ups = np.flatnonzero(cls == 0)
    downs = np.flatnonzero(cls == 1)
    nup = ups.shape[0]
    q = t % f
    first = q == 0
    tin, one, qtag = tags[0], tags[1], tags[2]
    s32 = np.float32(scale)
    zero = x[0] ^ x[0]
    nexact = np.zeros(nblocks, np.int64)
    nover = np.zeros(nblocks, np.int64)
    wts = [(coef[c, 0], coef[c, 1], coef[c, 2], coef[c, 3]) for c in range(ncol)]
    for blk in prange(nblocks):
        base = blk * bsize
        m = min(bsize, n - base)
        xv = x[base:base + m]
        lz = lossy[base:base + m]
        tid = numba.get_thread_id()
        m1 = sc_mask[tid, 0]
        m2 = sc_mask[tid, 1]
        best = sc_best[tid]
        cur = np.zeros(ncol, np.int64)
        if project:
            for c in range(ncol):
                best[2 * c, :m] = 0.0
        if nup:
            # Drop the leaving record, insert x, and evaluate each updated row.
            dv = dq_val[blk]
            dt = dq_tim[blk]
            rmax = dv.shape[0] - 1
            _expiring(dt[0], m1, m2, m)
            rows = dq_rows[blk]
            top = 0
            for k in range(min(rows + 1, rmax)):
                if _insert_row(dv[k], dt[k], dv[k + 1], dt[k + 1], m1, m2, xv, tin, one,
                               zero, m) != 0:
                    top = k + 1
                    if project:
                        for i in range(0, nup, 2):
                            c0 = ups[i]
                            if i + 1 < nup:
                                c1 = ups[i + 1]
                                _eval2(dv[k], dt[k], np.float32(0.0), wts[c0], wts[c1],
                                       best[2 * c0 + cur[c0]], best[2 * c0 + 1 - cur[c0]],
                                       best[2 * c1 + cur[c1]], best[2 * c1 + 1 - cur[c1]], m)
                                cur[c1] = 1 - cur[c1]
                            else:
                                _eval1(dv[k], dt[k], np.float32(0.0), wts[c0],
                                       best[2 * c0 + cur[c0]], best[2 * c0 + 1 - cur[c0]], m)
                            cur[c0] = 1 - cur[c0]
            dq_rows[blk] = top
            if rows == rmax:  # pixels whose R records all exceed x dropped x
                for j in range(m):
                    if m2[j] != 0 and xv[j] != 0:
                        lz[j] = max(lz[j], t + f - 1)
                        blk_lossy[blk] = max(blk_lossy[blk], t + f - 1)
                        nover[blk] += 1
        if downs.shape[0]:
            bv = bl_val[blk]
            bo = bl_off[blk]
            cnt = bl_cnt[base:base + m]
            pmb = pm[base:base + m]
            rbmax = bv.shape[0] - 1
            if first:  # a new block: empty list, no maximum yet
                cnt[:] = 0
                pmb[:] = 0
                for k in range(bl_rows[blk]):
                    bv[k, :m] = 0
            ktag = np.zeros(2, cnt.dtype)
            ktag[1] = rbmax + 1
            _appends(xv, pmb, cnt, m1, m2, ktag[1], m)
            rows = 0 if first else bl_rows[blk]
            for k in range(min(rows + 1, rbmax)):
                ktag[0] = k
                _append_row(bv[k], bo[k], m2, ktag[0], xv, qtag, m)
            if rows == rbmax:
                for j in range(m):
                    if m1[j] != 0 and cnt[j] == rbmax:  # no room: lossy till the block ends
                        m1[j] = 0
                        lz[j] = max(lz[j], t - q + f - 1)
                        blk_lossy[blk] = max(blk_lossy[blk], t - q + f - 1)
                        nover[blk] += 1
            bl_rows[blk] = _count(cnt, m1, m)
            if project:
                for i in range(downs.shape[0]):
                    c0 = downs[i]
                    for k in range(bl_rows[blk]):
                        _eval1(bv[k], bo[k], np.float32(f - 1 - q), wts[c0],
                               best[2 * c0 + cur[c0]], best[2 * c0 + 1 - cur[c0]], m)
                        cur[c0] = 1 - cur[c0]
                    if q < f - 1:
                        sl = dslot[c0]
                        _eval1(a_val[sl, q, base:base + m], a_pos[sl, q, base:base + m],
                               np.float32(-(q + 1)), wts[c0],
                               best[2 * c0 + cur[c0]], best[2 * c0 + 1 - cur[c0]], m)
                        cur[c0] = 1 - cur[c0]
        if project:
            flags = sc_flags[tid]
            if blk_lossy[blk] >= t:
                _lossy_flags(lz, t, flags, m)
            else:
                flags[:m] = 0
            nexact[blk] = _finish(best, cur, ncol, s32, margins, flags, sc_cols[tid],
                                  out[base * ncol:(base + m) * ncol], ring, t, base, w64,
                                  scale, m)
        if downs.shape[0] and q == f - 1:
            last = _sweep_block(ring, base, m, wts, downs, dslot, a_val, a_pos, lz, t, srows)
            blk_lossy[blk] = max(blk_lossy[blk], last)
    counts[0] += nexact.sum()
    counts[1] += nover.sum()


@njit(cache=True, nogil=True)
def _sweep_block(ring, base, m, wts, downs, dslot, a_val, a_pos, lz, t, srows):
    """The previous block's best candidates for every window of the next block.

    Called when block ``t // F`` completes (``ring`` holds it, slot = block
    index). Sweeping ``u`` from F-1 down to 1 keeps the left-to-right maxima
    of frames ``u .. F-1`` (a stack: x_u pops the values <= x_u and goes on
    top), and stores for window ``q = u - 1`` of the next block, per falling
    column, the candidate with the largest float32 product and its block
    index ``off`` (its position in that window is ``off - u``). Returns the
    last frame any pixel must take from the exact path (an overflow), or -1.
    """
    f = ring.shape[0]
    rmax = min(f, srows)
    sv = np.zeros((rmax + 1, m), ring.dtype)
    so = np.zeros((rmax + 1, m), a_pos.dtype)
    shift = np.zeros(m, ring.dtype)
    keep = np.empty(m, ring.dtype)
    bp = np.empty((2, m), np.float32)
    bv = np.empty((2, m), ring.dtype)
    bo = np.empty((2, m), a_pos.dtype)
    tag = np.zeros(2, so.dtype)
    zero = sv[0, 0]
    rows = 0
    last = -1
    for u in range(f - 1, 0, -1):
        xu = ring[u, base:base + m]
        keep[:] = -1
        top = 0
        tag[0] = u
        for k in range(min(rows + 1, rmax)):
            if _insert_row(sv[k], so[k], sv[k + 1], so[k + 1], shift, keep, xu, tag[0],
                           tag[1], zero, m) != 0:
                top = k + 1
        if rows == rmax:
            for j in range(m):
                if keep[j] != 0 and xu[j] != 0:  # x_u dropped: windows q <= u - 1 unsure
                    lz[j] = max(lz[j], t + u)
                    last = max(last, t + u)
        rows = top
        for i in range(downs.shape[0]):
            c0 = downs[i]
            bp[0, :] = -1.0
            bv[0, :] = 0
            bo[0, :] = 0
            cur = 0
            for k in range(rows):
                _argmax_row(sv[k], so[k], np.float32(-u), wts[c0], bp[cur], bv[cur], bo[cur],
                            bp[1 - cur], bv[1 - cur], bo[1 - cur], m)
                cur = 1 - cur
            sl = dslot[c0]
            for j in range(m):
                a_val[sl, u - 1, base + j] = bv[cur, j]
                a_pos[sl, u - 1, base + j] = bo[cur, j]
    return last
