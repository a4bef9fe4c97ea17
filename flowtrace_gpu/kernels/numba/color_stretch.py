"""The certified 8-bit stretch of the color paths, and the image's peak from frame maxima.

Every color path (:mod:`.numba_color_records`, :mod:`.numba_color_brute`,
:mod:`.numba_color_shifted`) computes its weighted projection ``B`` in
float32, where the reference (NumPy) computes it in float64. A bound on the
float32 error (weights rounded to float32, and the products' roundings; the
callers in :mod:`flowtrace_gpu.backends.numba.color_state` compute it)
bounds the error of the stretched value ``y = (offset + B) * scale``; the
8-bit output ``floor(clip(y, 0, 255) + 0.5)`` is decided from the float32
value only when ``y + 0.5`` is farther than that bound (``margin``) from an
integer. Otherwise -- a few values in ten thousand on camera data -- the
value is recomputed in float64 from the ring, exactly as NumPy does
(:func:`_exact` here; the shifted path has its own, a block at a time).

With non-negative values and weights (the records and plain brute force)
the image's peak, the stretch's scale, is exact from the frames' maxima:
the largest product over the image is the largest over its frames of
``fl(frame max * w[j])`` (:func:`frame_max3`, or NumPy's ``max`` on gray frames).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .project import _to_uint8


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
        for j in range(m):
            out[j] = cols[0, j]
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


@njit(cache=True, nogil=True)
def _finish_each(best, s32, mg, flags, col8, out, ring, t, base, w64, scale, m):
    """:func:`_finish` for RGB frames (value p, column p % 3)."""
    nflag = _stretch_row(best, np.float32(0.0), s32, mg, col8, flags, m)
    for j in range(m):
        out[j] = col8[j]
    nexact = 0
    if nflag:
        for j in range(m):
            if flags[j]:
                nexact += 1
                out[j] = _exact(ring, t, base + j, w64, (base + j) % 3, scale)
    return nexact


@njit(cache=True, nogil=True)
def _max_strided(x, r, period):
    """Largest of ``x[r::period]`` (values are unsigned)."""
    e = x[r] ^ x[r]
    for i in range(r, x.shape[0], period):
        v = x[i]
        e = v if v > e else e
    return e


@njit(cache=True, nogil=True)
def frame_max3(x, out):
    """Largest value of each ``x[c::3]`` (RGB frames) into ``out[c]``.

    Serial: one pass over a frame per frame pushed, against the O(F) passes
    of each window's image; a parallel kernel would cost more to compile
    than it saves. (Gray frames take NumPy's ``max``.)
    """
    for r in range(3):
        out[r] = np.float64(_max_strided(x, r, 3))
