"""Weighted projections by brute force over the ring, in float32, certified (any weights).

Every frame of the window times its weights, the largest product kept per
pixel and column: O(F) per pixel, with no state but the ring, for every
colormap (:mod:`.numba_color_records` is flat in F but needs weights that
rise or fall along the window). Rows are folded four at a time into
accumulators that stay in L1 (:func:`_window_rows`): one convert, three
products and three maxima per value and row, eight float32 lanes per AVX2
op. The values of a row may be shifted (a shift per pixel) or be the
first differences of two frames, formed as the rows are read
(:func:`_value`); the shifted path (:mod:`.numba_color_shifted`) uses that.
The 8-bit stretch is certified as in :mod:`.numba_color_stretch`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .color_stretch import _finish, _finish_each


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


def pad_weights(w32):
    """The window's F rows of weights padded to a multiple of four with copies of the last.

    :func:`_window_rows` pads the window with copies of its last frame:
    each padding row's products repeat that frame's, so they never change
    a maximum (whatever the sign of the values). In NumPy, once per
    projector: nothing for Numba to compile.
    """
    f = w32.shape[0]
    fq = (f + 3) // 4 * 4
    return np.ascontiguousarray(w32[np.minimum(np.arange(fq), f - 1)], np.float32)


@njit(cache=True, nogil=True)
def _window_rows(ring, start, nrows, shift, diff, w32q, ncol, best, base, m):
    """Fold ``nrows`` rows into the accumulators ``best`` (1 or 3 columns, ping-ponged).

    Row ``start`` of ``ring`` is the window's oldest (the rows wrap around
    the ring); row j's values are frame j less ``shift``, or with ``diff``
    frame j + 1 less frame j (the first differences, formed as they are
    read). ``shift`` and ``diff`` may be None: Numba then compiles no code
    for them (a literal False would not spare the branch). Rows are taken
    four at a time (:func:`_rows3`), the last group padded (see
    :func:`pad_weights`). Returns which of each column's two
    accumulators holds the result.
    """
    f = ring.shape[0]
    last = nrows - 1
    # ``diff`` None (not False) lets Numba drop the difference branch when compiling
    lag = 1 if diff is not None and diff else 0
    k = np.int64(0)  # not a literal 0: Numba would compile _fold4 for it too
    for j in range(0, nrows, 4):
        i1, i2, i3 = min(j + 1, last), min(j + 2, last), min(j + 3, last)
        r0 = ring[(start + j + lag) % f, base:base + m]
        r1 = ring[(start + i1 + lag) % f, base:base + m]
        r2 = ring[(start + i2 + lag) % f, base:base + m]
        r3 = ring[(start + i3 + lag) % f, base:base + m]
        w4 = w32q[j:j + 4]
        if diff is not None and diff:
            _fold4(r0, r1, r2, r3, ring[(start + j) % f, base:base + m],
                   ring[(start + i1) % f, base:base + m], ring[(start + i2) % f, base:base + m],
                   ring[(start + i3) % f, base:base + m], w4, ncol, best, k, m)
        else:
            _fold4(r0, r1, r2, r3, shift, shift, shift, shift, w4, ncol, best, k, m)
        k = 1 - k
    return k


@njit(cache=True, nogil=True)
def fold_window(rows, start, nrows, shift, diff, w32, w32q, per_value, base, rbase, best, m):
    """Fold ``nrows`` rows of ``rows`` (columns ``rbase ..``) into ``best``: RGB frames
    value by value (:func:`_fold_per_value`, pixels from ``base``), else by weight
    column (:func:`_window_rows`). Returns the accumulator holding the result."""
    if per_value:
        return _fold_per_value(rows, start, nrows, shift, diff, w32, base, rbase, best, m)
    return _window_rows(rows, start, nrows, shift, diff, w32q, w32.shape[1], best, rbase, m)


@njit(cache=True, nogil=True)
def _brute_block(ring, t, w32q, w64, s32, scale, margins, out, flags, best, cols, base, m):
    """One block of :func:`color_brute`: fold the window, stretch, recompute the unsure.

    Returns the number of values recomputed in float64.
    """
    f = ring.shape[0]
    ncol = w64.shape[1]
    for c in range(ncol):
        for j in range(m):
            best[2 * c, j] = 0.0
    k = _window_rows(ring, (t + 1) % f, f, None, None, w32q, ncol, best, base, m)
    for j in range(m):
        flags[j] = 0
    cur = np.empty(ncol, np.int64)
    for c in range(ncol):
        cur[c] = k
    return _finish(best, cur, ncol, s32, margins, flags, cols, out[base * ncol:(base + m) * ncol],
                   ring, t, base, w64, scale, m)


@njit(cache=True, nogil=True)
def _brute_block_each(ring, t, w32, w64, s32, scale, margin, out, flags, best, col8, base, m):
    """:func:`_brute_block` for RGB frames (:func:`color_brute_each`), value by value."""
    f = ring.shape[0]
    for j in range(m):
        best[0, j] = 0.0
    k = _fold_per_value(ring, (t + 1) % f, f, None, None, w32, base, base, best, m)
    for j in range(m):
        flags[j] = 0
    return _finish_each(best[k], s32, margin, flags, col8, out[base:base + m], ring, t, base,
                        w64, scale, m)


@njit(parallel=True, cache=True, nogil=True)
def color_brute(ring, t, w32, w32q, w64, scale, margins, out, counts, sc_flags, sc_best,
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
    w32q : ndarray, shape (4 * ceil(F / 4), ncol)
        ``w32`` padded (:func:`pad_weights`).
    scale, margins, out, counts
        As for :func:`.numba_color_records.color_step` (``margins`` per column).
    sc_flags, sc_best, sc_cols : ndarray
        Scratch per thread: (T, B) uint8, (T, 6, B) float32, (T, 3, B) uint8.
    bsize : int
        Values per block.
    """
    n = ring.shape[1]
    nblocks = (n + bsize - 1) // bsize
    s32 = np.float32(scale)
    nexact = np.zeros(nblocks, np.int64)
    for blk in prange(nblocks):
        base = blk * bsize
        tid = numba.get_thread_id()
        nexact[blk] = _brute_block(ring, t, w32q, w64, s32, scale, margins, out, sc_flags[tid],
                                   sc_best[tid], sc_cols[tid], base, min(bsize, n - base))
    total = 0
    for blk in range(nblocks):
        total += nexact[blk]
    counts[0] += total


@njit(parallel=True, cache=True, nogil=True)
def color_brute_each(ring, t, w32, w32q, w64, scale, margins, out, counts, sc_flags, sc_best,
                     sc_cols, bsize):
    """:func:`color_brute` for RGB frames with colors: value p takes weight column ``p % 3``.

    The image has P values; ``margins`` holds one margin, the largest of the
    columns'; ``bsize`` is a multiple of 3. A kernel of its own, so that gray
    frames never compile this path (nor RGB frames the other).
    """
    n = ring.shape[1]
    nblocks = (n + bsize - 1) // bsize
    s32 = np.float32(scale)
    nexact = np.zeros(nblocks, np.int64)
    for blk in prange(nblocks):
        base = blk * bsize
        tid = numba.get_thread_id()
        nexact[blk] = _brute_block_each(ring, t, w32, w64, s32, scale, np.float32(margins[0]),
                                        out, sc_flags[tid], sc_best[tid], sc_cols[tid, 0], base,
                                        min(bsize, n - base))
    total = 0
    for blk in range(nblocks):
        total += nexact[blk]
    counts[0] += total


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
        if diff is not None and diff:
            _each(rows[(start + j + 1) % f, rbase:rbase + m], rows[(start + j) % f,
                  rbase:rbase + m], wrow, best[k], best[1 - k], m)
        else:
            _each(rows[(start + j) % f, rbase:rbase + m], shift, wrow, best[k], best[1 - k], m)
        k = 1 - k
    return k
