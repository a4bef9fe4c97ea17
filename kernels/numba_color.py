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
:func:`flowtrace_gpu.backends.numba_color_state.fit_weights`) bounds the error of
the stretched value ``y = P * scale``; the 8-bit output
``floor(clip(y, 0, 255) + 0.5)`` is decided from the float32 value only when
``y + 0.5`` is farther than that bound (``margin``) from an integer.
Otherwise -- a few values in ten thousand -- and for pixels whose candidate
lists overflowed their capacity (``lossy``), the value is recomputed in
float64 from the ring, exactly as NumPy does. The image's peak (the stretch
scale) is exact: the largest product over the image is the largest over its
frames of ``fl(frame max * w[j])``.

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
from numba import njit, prange, types
from numba.extending import overload

from .numba_project import _peak_int, _to_uint8

# --- row steps -----------------------------------------------------------------
#
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
def _stretch_value(b, off, s32, mg, high):
    """8-bit value of ``y = (off + b) * scale`` and whether the float32 value cannot decide it.

    ``floor(clip(y, 0, 255) + 0.5)`` is ``floor(z)`` with ``z = max(y, 0) +
    0.5`` whenever the true ``z`` cannot lie across an integer from the
    float32 one: farther than ``mg`` from every integer, or above ``high =
    255.5 + mg``. ``off`` is ``invert_color``'s offset of the shifted path,
    else 0 (``b`` may be negative there). Returns ``(value, unsure)`` as
    two uint8.
    """
    y = max((off + b) * s32, np.float32(0.0))
    z = min(y + np.float32(0.5), np.float32(300.0))
    k = np.int32(z)
    fr = z - np.float32(k)  # exact: z and k are within a factor 2
    bad = ((fr <= mg) | (fr >= np.float32(1.0) - mg)) & (z <= high)
    return np.uint8(min(k, 255)), np.uint8(bad)


@njit(cache=True, nogil=True)
def _any_flag(flags, m):
    """The largest of ``flags[:m]``: non-zero when any value is flagged."""
    n = flags[0]
    for j in range(m):
        n = max(n, flags[j])
    return n


@njit(cache=True, nogil=True)
def _stretch_row(best, off, s32, mg, out, flags, m):
    """:func:`_stretch_value` of a row into ``out``; flag the values it cannot decide.

    Returns whether any value of the row is flagged (non-zero).
    """
    high = np.float32(255.5) + mg
    for j in range(m):
        v, bad = _stretch_value(best[j], off, s32, mg, high)
        out[j] = v
        flags[j] = flags[j] | bad
    return _any_flag(flags, m)


@njit(cache=True, nogil=True)
def _stretch3(b0, b1, b2, off, s32, m0, m1, m2, out, flags, m):
    """:func:`_stretch_row` of three columns at once, written interleaved (RGB).

    One pass instead of three passes and an interleave: 20-35 % less time.
    """
    h0 = np.float32(255.5) + m0
    h1 = np.float32(255.5) + m1
    h2 = np.float32(255.5) + m2
    for j in range(m):
        v0, u0 = _stretch_value(b0[j], off, s32, m0, h0)
        v1, u1 = _stretch_value(b1[j], off, s32, m1, h1)
        v2, u2 = _stretch_value(b2[j], off, s32, m2, h2)
        out[3 * j] = v0
        out[3 * j + 1] = v1
        out[3 * j + 2] = v2
        flags[j] = flags[j] | u0 | u1 | u2
    return _any_flag(flags, m)


@njit(cache=True, nogil=True)
def _lossy_flags(lossy, t, flags, m):
    for j in range(m):
        flags[j] = np.uint8(lossy[j] >= t)


@njit(cache=True, nogil=True)
def _exact(ring, t, p, w64, col, scale):
    """The reference's value: max over the window of fl(x_j * w[j]) in float64, stretched."""
    f = ring.shape[0]
    best = 0.0
    for j in range(f):
        v = np.float64(ring[(t - f + 1 + j) % f, p]) * w64[j, col]
        best = v if v > best else best
    return _to_uint8(best, scale, np.float64)


@njit(cache=True, nogil=True)
def _finish(best, cur, ncol, s32, margins, flags, cols, out, ring, t, base, w64, scale, m):
    """Stretch every column into ``out`` (interleaved); recompute flagged pixels exactly.

    ``best[2 * c + cur[c]]`` holds column c's float32 projection. Returns
    the number of pixels recomputed.
    """
    if ncol == 1:
        nflag = _stretch_row(best[cur[0]], np.float32(0.0), s32, margins[0], cols[0], flags, m)
        out[:m] = cols[0, :m]
    else:
        nflag = _stretch3(best[cur[0]], best[2 + cur[1]], best[4 + cur[2]], np.float32(0.0), s32,
                          margins[0],
                          margins[1], margins[2], out, flags, m)
    nexact = 0
    if nflag:
        for j in range(m):
            if flags[j]:
                nexact += 1
                for col in range(ncol):
                    out[j * ncol + col] = _exact(ring, t, base + j, w64, col, scale)
    return nexact


# --- the records path ------------------------------------------------------------


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
            a_val[sl, u - 1, base:base + m] = bv[cur]
            a_pos[sl, u - 1, base:base + m] = bo[cur]
    return last


@njit(cache=True, nogil=True)
def _max_strided(x, r, period):
    """Largest of ``x[r::period]`` (values are unsigned)."""
    e = x[r] ^ x[r]
    for i in range(r, x.shape[0], period):
        v = x[i]
        e = v if v > e else e
    return e


@njit(parallel=True, cache=True, nogil=True)
def frame_max(x, chunk, scratch, out):
    """Largest value of ``x`` into ``out[0]``, or with ``out`` of length 3 of each
    ``x[c::3]`` (RGB frames) into ``out[c]``; parallel over chunks (a multiple of 3)."""
    n = x.shape[0]
    nchunks = scratch.shape[0]
    period = out.shape[0]
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        if period == 1:  # a loop of its own: inlined behind the branch, it stayed scalar
            scratch[c, 0] = np.float64(_peak_int(x[start:stop]))
        else:
            for r in range(period):
                scratch[c, r] = np.float64(_max_strided(x[start:stop], r, period))
    for r in range(period):
        out[r] = scratch[:, r].max()


# --- brute force (any weights), certified the same way --------------------------


@njit(cache=True, nogil=True)
def _max(a, b):
    return a if a > b else b


def _value(x, shift, j):
    """``x[j] - shift[j]`` in float32, or ``x[j]`` when ``shift`` is None (in kernels only).

    ``shift`` is a float32 array (a shift per pixel) or a ring row (the
    previous frame: a first-order difference, exact in float32 for integers
    of at most 16 bits).
    """
    raise NotImplementedError("a Numba overload: call it from jitted code")


@overload(_value, inline="always")
def _value_impl(x, shift, j):
    # Resolved when a kernel is compiled: the unshifted kernels pay no subtraction.
    if isinstance(shift, types.NoneType):
        return lambda x, shift, j: np.float32(x[j])
    return lambda x, shift, j: np.float32(x[j]) - np.float32(shift[j])


@njit(cache=True, nogil=True)
def _rows3(x0, x1, x2, x3, y0, y1, y2, y3, w, s0, s1, s2, d0, d1, d2, m):
    """d_c = max(s_c, v_r * w[r, c] for four rows r), three columns (float32).

    ``v_r`` is ``x_r`` less ``y_r`` (:func:`_value`: a shift per pixel, the
    previous frame, or None). Four rows per pass over the accumulators: a
    quarter of their loads and stores. ``w`` is (4, 3); the caller pads
    the window to a multiple of four rows with rows that cannot change the
    maximum.
    """
    w00, w01, w02 = w[0, 0], w[0, 1], w[0, 2]
    w10, w11, w12 = w[1, 0], w[1, 1], w[1, 2]
    w20, w21, w22 = w[2, 0], w[2, 1], w[2, 2]
    w30, w31, w32 = w[3, 0], w[3, 1], w[3, 2]
    for j in range(m):
        v0 = _value(x0, y0, j)
        v1 = _value(x1, y1, j)
        v2 = _value(x2, y2, j)
        v3 = _value(x3, y3, j)
        a = _max(_max(v0 * w00, v1 * w10), _max(v2 * w20, v3 * w30))
        b = _max(_max(v0 * w01, v1 * w11), _max(v2 * w21, v3 * w31))
        c = _max(_max(v0 * w02, v1 * w12), _max(v2 * w22, v3 * w32))
        d0[j] = _max(a, s0[j])
        d1[j] = _max(b, s1[j])
        d2[j] = _max(c, s2[j])


@njit(cache=True, nogil=True)
def _rows1(x0, x1, x2, x3, y0, y1, y2, y3, w, s0, d0, m):
    """d = max(s, v_r * w[r]) over four rows (float32; :func:`_rows3`)."""
    w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
    for j in range(m):
        a = _max(_max(_value(x0, y0, j) * w0, _value(x1, y1, j) * w1),
                 _max(_value(x2, y2, j) * w2, _value(x3, y3, j) * w3))
        d0[j] = _max(a, s0[j])


@njit(cache=True, nogil=True)
def _fold4(x0, x1, x2, x3, y0, y1, y2, y3, w4, ncol, best, k, m):
    """Four rows into the accumulators ``best[.. + k]`` -> ``best[.. + 1 - k]``."""
    if ncol == 3:
        _rows3(x0, x1, x2, x3, y0, y1, y2, y3, w4, best[k], best[2 + k], best[4 + k],
               best[1 - k], best[3 - k], best[5 - k], m)
    else:
        _rows1(x0, x1, x2, x3, y0, y1, y2, y3, w4[:, 0], best[k], best[1 - k], m)


@njit(cache=True, nogil=True)
def _each(xr, shift, wrow, s0, d0, m):
    """d = max(s, v * wrow): RGB frames, ``wrow`` the row's weight of each value
    (``v`` as in :func:`_rows3`)."""
    for j in range(m):
        p0 = _value(xr, shift, j) * wrow[j]
        q0 = s0[j]
        d0[j] = p0 if p0 > q0 else q0


@njit(cache=True, nogil=True)
def _pad_weights(w32, f):
    """The window's F rows of weights padded to a multiple of four with copies of the last.

    :func:`_window_rows` pads the window with copies of its last frame:
    each padding row's products repeat that frame's, so they never change
    a maximum (whatever the sign of the values).
    """
    ncol = w32.shape[1]
    fq = (f + 3) // 4 * 4
    w32q = np.empty((fq, ncol), np.float32)
    for j in range(fq):
        for c in range(ncol):
            w32q[j, c] = w32[min(j, f - 1), c]
    return w32q


@njit(cache=True, nogil=True)
def _window_rows(ring, start, nrows, shift, diff, w32q, ncol, best, base, m):
    """Fold ``nrows`` rows into the accumulators ``best`` (1 or 3 columns, ping-ponged).

    Row ``start`` of ``ring`` is the window's oldest (the rows wrap around
    the ring); row j's values are frame j less ``shift``, or with ``diff``
    frame j + 1 less frame j (the first differences, formed as they are
    read). Rows are taken four at a time (:func:`_rows3`), the last group
    padded (see :func:`_pad_weights`). Returns which of each column's two
    accumulators holds the result.
    """
    f = ring.shape[0]
    last = nrows - 1
    lag = 1 if diff else 0
    k = 0
    for j in range(0, nrows, 4):
        i1, i2, i3 = min(j + 1, last), min(j + 2, last), min(j + 3, last)
        r0 = ring[(start + j + lag) % f, base:base + m]
        r1 = ring[(start + i1 + lag) % f, base:base + m]
        r2 = ring[(start + i2 + lag) % f, base:base + m]
        r3 = ring[(start + i3 + lag) % f, base:base + m]
        w4 = w32q[j:j + 4]
        if diff:
            _fold4(r0, r1, r2, r3, ring[(start + j) % f, base:base + m],
                   ring[(start + i1) % f, base:base + m], ring[(start + i2) % f, base:base + m],
                   ring[(start + i3) % f, base:base + m], w4, ncol, best, k, m)
        else:
            _fold4(r0, r1, r2, r3, shift, shift, shift, shift, w4, ncol, best, k, m)
        k = 1 - k
    return k


@njit(parallel=True, cache=True, nogil=True)
def color_brute(ring, t, w32, w64, per_value, scale, margins, out, counts, sc_flags, sc_best,
                sc_cols, bsize):
    """The window's image by brute force over the ring, in float32, certified as above.

    Every frame of the window is multiplied by its weights and the largest
    product kept, in float32; :func:`_finish` stretches it (``margins``
    bound the float32 weights' error ``|w32 - w64|`` and the products'
    rounding) and recomputes the unsure values exactly.

    Parameters
    ----------
    ring : ndarray, shape (F, P)
        The window's frames, slot ``j % F`` holding frame j.
    t : int
        The window's last frame.
    w32, w64 : ndarray, shape (F, ncol)
        The weights (1 or 3 columns) in float32 and float64.
    per_value : bool
        RGB frames: value p takes column ``p % 3`` and the image has P values
        (else ncol values per input value).
    scale, margins, out, counts
        As for :func:`color_step` (``margins`` per column).
    sc_flags, sc_best, sc_cols : ndarray
        Scratch per thread: (T, B) uint8, (T, 6, B) float32, (T, 3, B) uint8.
    bsize : int
        Values per block (a multiple of 3 with ``per_value``).
    """
    f = ring.shape[0]
    n = ring.shape[1]
    ncol = 1 if per_value else w32.shape[1]
    nblocks = (n + bsize - 1) // bsize
    w32q = _pad_weights(w32, f)
    s32 = np.float32(scale)
    nexact = np.zeros(nblocks, np.int64)
    for blk in prange(nblocks):
        base = blk * bsize
        m = min(bsize, n - base)
        tid = numba.get_thread_id()
        best = sc_best[tid]
        for c in range(ncol):
            best[2 * c, :m] = 0.0
        if per_value:
            k = _fold_per_value(ring, (t + 1) % f, f, None, False, w32, base, base, best, m)
        else:
            k = _window_rows(ring, (t + 1) % f, f, None, False, w32q, ncol, best, base, m)
        flags = sc_flags[tid]
        flags[:m] = 0
        if per_value:  # one margin for the three columns: the largest
            nexact[blk] = _finish_each(best[k], s32, margins.max(), flags, sc_cols[tid, 0],
                                       out[base:base + m], ring, t, base, w64, scale, m)
        else:
            nexact[blk] = _finish(best, np.full(ncol, k, np.int64), ncol, s32, margins, flags,
                                  sc_cols[tid], out[base * ncol:(base + m) * ncol], ring, t,
                                  base, w64, scale, m)
    counts[0] += nexact.sum()


@njit(cache=True, nogil=True)
def _finish_each(best, s32, mg, flags, col8, out, ring, t, base, w64, scale, m):
    """:func:`_finish` for RGB frames (value p, column p % 3)."""
    nflag = _stretch_row(best, np.float32(0.0), s32, mg, col8, flags, m)
    out[:m] = col8[:m]
    nexact = 0
    if nflag:
        for j in range(m):
            if flags[j]:
                nexact += 1
                out[j] = _exact(ring, t, base + j, w64, (base + j) % 3, scale)
    return nexact


# --- shifted values (subtract_first / subtract_median, take_diff, invert_color, add_first_frame)
#
# With a shift the values ``v = (x - x0) - m`` may be negative, so neither the
# frames' maxima nor weight 0 bound the products: the image's peak is taken
# from the image itself (a float32 pass, then the candidates near its top
# recomputed exactly) and rows past the window's end repeat its last row
# with that row's own weight. For integer frames of at most 16 bits every
# ``v`` is a multiple of 0.5 below 2**17, exact in float32 as in float64,
# and equal to ``x - s`` for one shift ``s`` per pixel: ``x0`` (first frame),
# the window's median ``m`` (with or without the first frame: ``(x - x0) -
# (m - x0) == x - m`` exactly), or 0. ``invert_color``'s
# ``offset - min_j fl(v * w)`` is ``offset + max_j fl(v * -w)`` (rounding is
# symmetric), so the kernels only take maxima, of the products with
# negated weights.


@njit(cache=True, nogil=True)
def _fold_row(x, w, a0, d0, m):
    """d = max(a, x * w): the raw first frame of ``add_first_frame``."""
    for j in range(m):
        p = np.float32(x[j]) * w
        q = a0[j]
        d0[j] = p if p > q else q


@njit(cache=True, nogil=True)
def _shift_of(ring, start, lo, hi, shift_mode, base, s, m):
    """The shift ``s`` of each pixel: 0, the first frame, or the median ``(lo + hi) / 2``."""
    if shift_mode == 0:
        s[:m] = 0.0
    elif shift_mode == 1:
        for j in range(m):
            s[j] = np.float32(ring[start, base + j])
    else:
        for j in range(m):
            s[j] = (np.float32(lo[base + j]) + np.float32(hi[base + j])) * np.float32(0.5)


@njit(cache=True, nogil=True)
def _fold_per_value(rows, start, nrows, shift, diff, w32, base, rbase, best, m):
    """RGB frames: fold ``nrows`` rows (from row ``start``, wrapping) into ``best``, value p
    weighted by column ``(base + p) % 3``; values as in :func:`_window_rows`. Returns the
    accumulator holding the result."""
    f = rows.shape[0]
    wrow = best[4]  # the row's weight of each value (columns 1 and 2 are unused)
    k = 0
    for j in range(nrows):
        for i in range(m):
            wrow[i] = w32[j, (base + i) % 3]
        if diff:
            _each(rows[(start + j + 1) % f, rbase:rbase + m], rows[(start + j) % f,
                  rbase:rbase + m], wrow, best[k], best[1 - k], m)
        else:
            _each(rows[(start + j) % f, rbase:rbase + m], shift, wrow, best[k], best[1 - k], m)
        k = 1 - k
    return k


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
            if per_value:
                k = _fold_per_value(rows, 0, nrows, None, False, w32, base, 0, best, m)
            else:
                k = _window_rows(rows, 0, nrows, None, False, w32q, ncol, best, 0, m)
        else:  # the first differences are formed as the rows are read
            diff = diff_order == 1
            if not diff:
                _shift_of(ring, start, lo, hi, shift_mode, base, s, m)
            if per_value:
                k = _fold_per_value(ring, start, nrows, s, diff, w32, base, base, best, m)
            else:
                k = _window_rows(ring, start, nrows, s, diff, w32q, ncol, best, base, m)
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
