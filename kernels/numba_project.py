"""Projection kernels with the 8-bit stretch fused in.

Both kernels make two parallel passes over the image: the first computes
each value of the projection and the maximum of each chunk, the second
scales to uint8 exactly as :func:`kernels.stretch.stretch_to_uint8` does
(``floor(clip(v * (255 / M), 0, 255) + 0.5)``, M == 0 => scale 1).

* :func:`project_plain` serves the plain sliding max/min (the common case)
  from the O(1) sliding state, its first pass in the values' own dtype.
* :func:`project_sliding` adds the shifts (first frame, median) to the
  sliding extreme, one vectorizable loop per option.
* :func:`project_sliding_half` is :func:`project_sliding` for integer
  frames of at most 16 bits (scale modes 0 and 1): every value there is an
  exact multiple of 0.5, so its first pass stores twice the value in int16
  (8-bit) or int32 instead of float64 (1024x1024 uint8, F=30, median, one
  thread: about 1.1 ms instead of 2.0 ms per image).
* :func:`project_window` walks each pixel's window once (color_series, and
  the combinations where the sliding identities are not exact), stores the
  float64 projection and stretches it.

Why the sliding form is exact: within a window, the first frame ``x0`` and
the median ``m`` are constants, and ``v -> fl(v - c)`` is non-decreasing, so
``max_j fl(x_j - c) == fl(max_j x_j - c)`` and the order statistics of
``fl(x_j - x0)`` are ``fl(order statistics of x - x0)``. Hence NumPy's
``max(x - x0 - median(x - x0))`` is reproduced bit for bit from the sliding
maximum, ``x0`` and the two middle order statistics of x.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _stretch_scale(chunk_max):
    """255 / M for the image's maximum M (1 when M == 0)."""
    peak = -np.inf
    for c in range(chunk_max.shape[0]):
        if chunk_max[c] > peak:
            peak = chunk_max[c]
    if peak == 0.0:
        return 1.0
    return 255.0 / peak


@njit(cache=True, nogil=True)
def _to_uint8(v, scale):
    """One value of :func:`kernels.stretch.stretch_to_uint8`."""
    v = v * scale
    if v < 0.0:
        v = 0.0
    elif v > 255.0:
        v = 255.0
    return np.uint8(v + 0.5)


@njit(cache=True, nogil=True)
def _to_uint8_f32(v, scale):
    """:func:`_to_uint8` in float32: twice the SIMD lanes, used where it is exact."""
    v = v * scale
    if v < np.float32(0.0):
        v = np.float32(0.0)
    elif v > np.float32(255.0):
        v = np.float32(255.0)
    return np.uint8(v + np.float32(0.5))


@njit(cache=True, nogil=True)
def f32_stretch_exact(first, last, form, offset, scale):
    """Whether the float32 stretch gives the float64 one's byte for every v in first..last.

    The stretched value is ``v`` (form 0), ``offset - v`` (1) or ``v * 0.5``
    (2, twice-value projections), for integers v. Checking every value that
    can occur (256 for 8-bit frames) makes the float32 kernels exact by
    construction; they are used only then. About one window peak in ten
    fails somewhere (e.g. 255/14 * 7 = 127.5 rounds differently), and then
    the float64 kernels run.
    """
    s32 = np.float32(scale)
    o32 = np.float32(offset)
    for v in range(first, last + 1):
        if form == 0:
            a = _to_uint8(np.float64(v), scale)
            b = _to_uint8_f32(np.float32(v), s32)
        elif form == 1:
            a = _to_uint8(offset - np.float64(v), scale)
            b = _to_uint8_f32(o32 - np.float32(v), s32)
        else:
            a = _to_uint8(np.float64(v) * 0.5, scale)
            b = _to_uint8_f32(np.float32(v) * np.float32(0.5), s32)
        if a != b:
            return False
    return True


@njit(cache=True, nogil=True)
def _peak(v):
    """Largest value of a float64 array, in four lanes so that it vectorizes."""
    m0 = m1 = m2 = m3 = -np.inf
    n4 = v.shape[0] - v.shape[0] % 4
    for i in range(0, n4, 4):
        a = v[i]
        b = v[i + 1]
        c = v[i + 2]
        d = v[i + 3]
        m0 = a if a > m0 else m0
        m1 = b if b > m1 else m1
        m2 = c if c > m2 else m2
        m3 = d if d > m3 else m3
    for i in range(n4, v.shape[0]):
        a = v[i]
        m0 = a if a > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


@njit(cache=True, nogil=True)
def _window_extreme(w, pre, suf, has_suffix, x0, add_first, is_max):
    """w = ext(prefix, suffix[, x0]) over one chunk, in the values' dtype."""
    # One flag-free loop per step: each vectorizes.
    if has_suffix:
        if is_max:
            for i in range(w.shape[0]):
                a = pre[i]
                b = suf[i]
                w[i] = a if a > b else b
        else:
            for i in range(w.shape[0]):
                a = pre[i]
                b = suf[i]
                w[i] = a if a < b else b
    else:
        w[:] = pre
    if add_first:
        if is_max:
            for i in range(w.shape[0]):
                a = w[i]
                b = x0[i]
                w[i] = a if a > b else b
        else:
            for i in range(w.shape[0]):
                a = w[i]
                b = x0[i]
                w[i] = a if a < b else b


@njit(parallel=True, cache=True, nogil=True)
def project_plain(buf, prefix, s1, ring, x0slot, add_first, is_max, offset,
                  ext, scale_mode, scale, out, chunk_max, chunk):
    """Stretched image from the sliding state when no shift applies.

    The projection is the sliding extreme itself (with ``add_first``, also
    the window's first frame), so the first pass stays in the values' dtype
    and stores it in ``ext``; the second stretches it.

    Parameters
    ----------
    buf, prefix, s1, ring, x0slot, add_first, is_max, offset
        As for :func:`project_sliding`.
    ext : ndarray, shape (P,), dtype of ``buf``
        Scratch for the window extreme.
    scale_mode, scale
        0: stretch each image by its own peak; 1: multiply by ``scale``.
    out : ndarray of uint8, shape (P,)
        Receives the image.
    chunk_max : ndarray of float64, shape (ceil(P / chunk),)
        Scratch for the per-chunk maxima.
    chunk : int
        Values per parallel task.
    """
    n = out.shape[0]
    nchunks = chunk_max.shape[0]
    has_suffix = s1 < buf.shape[0]
    srow = s1 if has_suffix else 0
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        w = ext[start:stop]
        x0 = ring[x0slot, start:stop] if add_first else ring[0, 0:0]
        _window_extreme(w, prefix[start:stop], buf[srow, start:stop], has_suffix,
                        x0, add_first, is_max)
        e = w[0]
        if is_max:
            for i in range(w.shape[0]):
                a = w[i]
                e = a if a > e else e
            chunk_max[c] = np.float64(e)
        else:
            for i in range(w.shape[0]):
                a = w[i]
                e = a if a < e else e
            chunk_max[c] = offset - np.float64(e)
    if scale_mode == 0:
        scale = _stretch_scale(chunk_max)
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        w = ext[start:stop]
        res = out[start:stop]
        if is_max:
            for i in range(w.shape[0]):
                res[i] = _to_uint8(np.float64(w[i]), scale)
        else:
            for i in range(w.shape[0]):
                res[i] = _to_uint8(offset - np.float64(w[i]), scale)


@njit(parallel=True, cache=True, nogil=True)
def project_plain_scaled(buf, prefix, s1, is_max, offset, scale, out, chunk, use32):
    """:func:`project_plain` in one pass, when the scale is known beforehand.

    The peak of a max projection is the largest of its frames' maxima (and
    of a min projection, ``offset`` minus the smallest minimum), which
    :func:`kernels.numba_sliding.ext_push` returns as each frame enters; so
    the caller passes ``scale`` and no scratch image is written and read
    back. The same float operations as :func:`project_plain`, or with
    ``use32`` their float32 twins where :func:`f32_stretch_exact` showed
    them equal for every value: bit for bit the same image.

    Parameters
    ----------
    buf, prefix, s1, is_max, offset, out, chunk
        As for :func:`project_plain`.
    scale : float
        What :func:`project_plain` multiplies by (``255 / peak``, or 1).
    use32 : bool
        Stretch in float32 (about 2x faster on 8-bit values).
    """
    n = out.shape[0]
    nchunks = (n + chunk - 1) // chunk
    has_suffix = s1 < buf.shape[0]
    srow = s1 if has_suffix else 0
    s32 = np.float32(scale)
    o32 = np.float32(offset)
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        pre = prefix[start:stop]
        suf = buf[srow, start:stop]
        res = out[start:stop]
        if not has_suffix:
            suf = pre
        # One flag-free loop per case: each vectorizes.
        if is_max and use32:
            for i in range(stop - start):
                a = pre[i]
                b = suf[i]
                res[i] = _to_uint8_f32(np.float32(a if a > b else b), s32)
        elif is_max:
            for i in range(stop - start):
                a = pre[i]
                b = suf[i]
                res[i] = _to_uint8(np.float64(a if a > b else b), scale)
        elif use32:
            for i in range(stop - start):
                a = pre[i]
                b = suf[i]
                res[i] = _to_uint8_f32(o32 - np.float32(a if a < b else b), s32)
        else:
            for i in range(stop - start):
                a = pre[i]
                b = suf[i]
                res[i] = _to_uint8(offset - np.float64(a if a < b else b), scale)


@njit(parallel=True, cache=True, nogil=True)
def project_sliding(buf, prefix, s1, ring, x0slot, lo, hi, off,
                    sub_first, sub_median, add_first, is_max, offset,
                    proj, scale_mode, scale, out, chunk_max, chunk):
    """Stretched image of the window from the sliding state.

    Parameters
    ----------
    buf, prefix : ndarray
        State of :func:`kernels.numba_sliding.ext_push`, shapes (L, P), (P,).
    s1 : int
        Block position of the newest value plus one; ``buf[s1]`` is the
        previous block's suffix extreme when ``s1 < L``.
    ring : ndarray, shape (R, P)
        Raw frames; row ``x0slot`` is the window's first frame (read only
        with ``sub_first`` or ``add_first``).
    lo, hi : ndarray, shape (P,)
        Middle order statistics of the raw window (``sub_median`` only),
        plus ``off`` (see :mod:`kernels.numba_median`).
    off : float
        Subtracted from ``lo``/``hi`` to get values.
    sub_first, sub_median, add_first : bool
        The options, as applied to the raw window.
    is_max : bool
        Max projection (True) or ``offset - min`` (False, invert_color).
    offset : float
        ``plan.invert_offset``.
    proj : ndarray of float64, shape (P,)
        Receives the projection (before scaling).
    scale_mode : int
        0: stretch each image by its own peak into ``out``; 1: multiply by
        ``scale`` into ``out``; 2: stop at ``proj``.
    scale : float
        The scale of mode 1.
    out : ndarray of uint8, shape (P,)
        Receives the image (modes 0 and 1).
    chunk_max : ndarray of float64, shape (ceil(P / chunk),)
        Scratch for the per-chunk maxima.
    chunk : int
        Values per parallel task.
    """
    n = proj.shape[0]
    nchunks = chunk_max.shape[0]
    has_suffix = s1 < buf.shape[0]
    srow = s1 if has_suffix else 0
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        pre = prefix[start:stop]
        suf = buf[srow, start:stop]
        pv = proj[start:stop]
        x0 = ring[x0slot, start:stop]
        if has_suffix:
            if is_max:
                for i in range(pv.shape[0]):
                    a = pre[i]
                    b = suf[i]
                    pv[i] = np.float64(a if a > b else b)
            else:
                for i in range(pv.shape[0]):
                    a = pre[i]
                    b = suf[i]
                    pv[i] = np.float64(a if a < b else b)
        else:
            for i in range(pv.shape[0]):
                pv[i] = np.float64(pre[i])
        # Same float operations, in the same order, as kernels.window.
        if sub_first:
            for i in range(pv.shape[0]):
                pv[i] = pv[i] - np.float64(x0[i])
        if sub_median:
            lv = lo[start:stop]
            hv = hi[start:stop]
            if sub_first:
                for i in range(pv.shape[0]):
                    f = np.float64(x0[i])
                    a = (np.float64(lv[i]) - off) - f
                    b = (np.float64(hv[i]) - off) - f
                    pv[i] = pv[i] - (a + b) / 2.0
            else:
                for i in range(pv.shape[0]):
                    a = np.float64(lv[i]) - off
                    b = np.float64(hv[i]) - off
                    pv[i] = pv[i] - (a + b) / 2.0
        if add_first:
            if is_max:
                for i in range(pv.shape[0]):
                    a = pv[i]
                    b = np.float64(x0[i])
                    pv[i] = a if a > b else b
            else:
                for i in range(pv.shape[0]):
                    a = pv[i]
                    b = np.float64(x0[i])
                    pv[i] = a if a < b else b
        if not is_max:
            for i in range(pv.shape[0]):
                pv[i] = offset - pv[i]
        chunk_max[c] = _peak(pv)
    if scale_mode == 2:
        return
    if scale_mode == 0:
        scale = _stretch_scale(chunk_max)
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        pv = proj[start:stop]
        res = out[start:stop]
        for i in range(pv.shape[0]):
            res[i] = _to_uint8(pv[i], scale)


@njit(cache=True, nogil=True)
def _reduce(col, n, weights, wcol, is_max):
    """max_j col[j] * weights[j, wcol] (or min); plain col[j] when wcol < 0."""
    e = np.inf
    if is_max:
        e = -np.inf
    for j in range(n):
        v = col[j]
        if wcol >= 0:
            v = v * weights[j, wcol]
        if is_max:
            if v > e:
                e = v
        elif v < e:
            e = v
    return e


@njit(parallel=True, cache=True, nogil=True)
def project_window(ring, start, diff_order, lo, hi, off,
                   sub_first, sub_median, add_first, weights, wmode,
                   is_max, offset, proj, scale_mode, scale, out, chunk_max, chunk):
    """Scaled image of the window, one pass over each pixel's window.

    Each pixel's window is copied to a float64 column and run through the
    steps of :func:`kernels.window.trace_window` in the same order and with
    the same float operations (so the result is NumPy's, bit for bit), then
    reduced, weighted on the fly.

    Parameters
    ----------
    ring : ndarray, shape (F, P)
        The window's frames; row ``start`` is the oldest.
    start : int
        Ring row of the window's first frame.
    diff_order : int
        0, or ``diff_order`` of ``take_diff``.
    lo, hi, off, sub_first, sub_median, add_first, is_max, offset
        As for :func:`project_sliding`.
    weights : ndarray of float64, shape (K, nw)
        ``plan.colors`` as 2-D (a fade is one column).
    wmode : int
        0: no weights; 1: column 0 (fade); 2: column ``p % 3`` (RGB input);
        3: three outputs per pixel, one per column (gray input, colors).
    proj : ndarray of float64, shape (P_out,)
        Receives the projection (before scaling).
    scale_mode, scale, out, chunk_max, chunk
        As for :func:`project_sliding` (chunks of input values).
    """
    n = ring.shape[1]
    nchunks = chunk_max.shape[0]
    if diff_order == 0:
        _weighted_frames_outer(ring, start, lo, hi, off, sub_first, sub_median, add_first,
                               weights, wmode, is_max, offset, proj, chunk_max, chunk)
    else:
        _columns(ring, start, diff_order, lo, hi, off, sub_first, sub_median, add_first,
                 weights, wmode, is_max, offset, proj, chunk_max, chunk)
    if scale_mode == 2:
        return
    if scale_mode == 0:
        scale = _stretch_scale(chunk_max)
    m_out = proj.shape[0]
    per = m_out // n
    for c in prange(nchunks):
        start = c * chunk * per
        stop = min((c * chunk + chunk) * per, m_out)
        pv = proj[start:stop]
        res = out[start:stop]
        for i in range(pv.shape[0]):
            res[i] = _to_uint8(pv[i], scale)


@njit(cache=True, nogil=True)
def _fold(acc, v, w, is_max):
    """acc = max(acc, v * w) (or min), elementwise, w a scalar: a loop that vectorizes."""
    if is_max:
        for i in range(acc.shape[0]):
            t = v[i] * w
            acc[i] = t if t > acc[i] else acc[i]
    else:
        for i in range(acc.shape[0]):
            t = v[i] * w
            acc[i] = t if t < acc[i] else acc[i]


@njit(cache=True, nogil=True)
def _fold_each(acc, v, w, is_max):
    """acc = max(acc, v * w) (or min), elementwise, w an array (RGB input)."""
    if is_max:
        for i in range(acc.shape[0]):
            t = v[i] * w[i]
            acc[i] = t if t > acc[i] else acc[i]
    else:
        for i in range(acc.shape[0]):
            t = v[i] * w[i]
            acc[i] = t if t < acc[i] else acc[i]


@njit(parallel=True, cache=True, nogil=True)
def _weighted_frames_outer(ring, start, lo, hi, off, sub_first, sub_median, add_first,
                           weights, wmode, is_max, offset, proj, chunk_max, chunk):
    """Weighted projection without take_diff: frames outer, pixels inner.

    Walking each chunk of pixels frame by frame keeps every inner loop
    contiguous and vectorizable (the per-pixel column walk of
    :func:`_columns` gathers across rows). Each value goes through the same
    float operations as :func:`kernels.window.trace_window`, ``(x - x0) - m``
    then ``* w`` (subtracting 0.0 when an option is off is exact), so the
    result is NumPy's bit for bit.
    """
    n = ring.shape[1]
    nchunks = chunk_max.shape[0]
    for c in prange(nchunks):
        peak = -np.inf
        # Sub-blocks small enough that the accumulators and the row stay in L1.
        for b0 in range(c * chunk, min(c * chunk + chunk, n), _BLOCK):
            m = min(b0 + _BLOCK, min(c * chunk + chunk, n)) - b0
            block_peak = _weighted_block(ring, start, b0, m, lo, hi, off, sub_first, sub_median,
                                         add_first, weights, wmode, is_max, offset, proj)
            peak = block_peak if block_peak > peak else peak
        chunk_max[c] = peak


#: Pixels per sub-block of :func:`_weighted_frames_outer`: 3 accumulators and
#: one row of float64 in 32 KiB of L1 cache.
_BLOCK = 1024


@njit(cache=True, nogil=True)
def _weighted_block(ring, start, p0, m, lo, hi, off, sub_first, sub_median, add_first,
                    weights, wmode, is_max, offset, proj):
    """One block of :func:`_weighted_frames_outer`; returns its peak."""
    f = ring.shape[0]
    nacc = 3 if wmode == 3 else 1
    init = -np.inf if is_max else np.inf
    x0 = np.empty(m, np.float64)
    for i in range(m):
        x0[i] = np.float64(ring[start, p0 + i])
    shift = sub_first or sub_median
    first = np.zeros(m, np.float64)
    if sub_first:
        first[:] = x0
    med = np.zeros(m, np.float64)
    if sub_median:
        for i in range(m):
            a = np.float64(lo[p0 + i]) - off
            b = np.float64(hi[p0 + i]) - off
            if sub_first:
                a = a - x0[i]
                b = b - x0[i]
            med[i] = (a + b) / 2.0
    acc = np.full((nacc, m), init)
    v = np.empty(m, np.float64)
    w = np.empty(m, np.float64)
    for j in range(f + (1 if add_first else 0)):
        if j == f:  # add_first_frame: the raw first frame, unshifted
            v[:] = x0
        elif shift:
            row = ring[(start + j) % f, p0:p0 + m]
            for i in range(m):
                v[i] = (np.float64(row[i]) - first[i]) - med[i]
        else:
            row = ring[(start + j) % f, p0:p0 + m]
            for i in range(m):
                v[i] = np.float64(row[i])
        if wmode == 2:  # RGB input: value p takes color column p % 3
            for i in range(m):
                w[i] = weights[j, (p0 + i) % 3]
            _fold_each(acc[0], v, w, is_max)
        else:
            for a in range(nacc):
                _fold(acc[a], v, 1.0 if wmode == 0 else weights[j, a], is_max)
    peak = -np.inf
    for a in range(nacc):
        for i in range(m):
            e = acc[a, i] if is_max else offset - acc[a, i]
            proj[(p0 + i) * nacc + a] = e
            peak = e if e > peak else peak
    return peak


@njit(parallel=True, cache=True, nogil=True)
def _columns(ring, start, diff_order, lo, hi, off, sub_first, sub_median, add_first,
             weights, wmode, is_max, offset, proj, chunk_max, chunk):
    """The projection pixel by pixel: each pixel's window copied to a column (take_diff)."""
    f = ring.shape[0]
    n = ring.shape[1]
    nchunks = chunk_max.shape[0]
    for c in prange(nchunks):
        col = np.empty(f + 1, np.float64)
        peak = -np.inf
        for p in range(c * chunk, min(c * chunk + chunk, n)):
            k = 0
            for r in range(start, f):
                col[k] = np.float64(ring[r, p])
                k += 1
            for r in range(0, start):
                col[k] = np.float64(ring[r, p])
                k += 1
            x0 = col[0]
            if sub_first:
                for j in range(f):
                    col[j] = col[j] - x0
            if sub_median:
                a = np.float64(lo[p]) - off
                b = np.float64(hi[p]) - off
                if sub_first:
                    a = a - x0
                    b = b - x0
                m = (a + b) / 2.0
                for j in range(f):
                    col[j] = col[j] - m
            k = f
            for _ in range(diff_order):
                for i in range(k - 1):
                    col[i] = col[i + 1] - col[i]
                k -= 1
            if add_first:
                col[k] = x0
                k += 1
            if wmode == 3:
                for ch in range(3):
                    e = _reduce(col, k, weights, ch, is_max)
                    if not is_max:
                        e = offset - e
                    proj[3 * p + ch] = e
                    if e > peak:
                        peak = e
            else:
                wcol = -1
                if wmode == 1:
                    wcol = 0
                elif wmode == 2:
                    wcol = p % 3
                e = _reduce(col, k, weights, wcol, is_max)
                if not is_max:
                    e = offset - e
                proj[p] = e
                if e > peak:
                    peak = e
        chunk_max[c] = peak



@njit(cache=True, nogil=True)
def _peak_int(h):
    """Largest value of an integer array (vectorizes: integer max is associative)."""
    e = h[0]
    for i in range(h.shape[0]):
        a = h[i]
        e = a if a > e else e
    return e


@njit(cache=True, nogil=True)
def _half_pass(h, pre, suf, has_suffix, x0, lv, hv, ioff2, sub_first, sub_median,
               add_first, is_max, ioffset2):
    """One chunk of :func:`project_sliding_half`'s first pass: h = 2 * projection."""
    m = h.shape[0]
    # One flag-free loop per step: each vectorizes.
    if has_suffix:
        if is_max:
            for i in range(m):
                a = pre[i]
                b = suf[i]
                h[i] = 2 * (np.int32(a) if a > b else np.int32(b))
        else:
            for i in range(m):
                a = pre[i]
                b = suf[i]
                h[i] = 2 * (np.int32(a) if a < b else np.int32(b))
    else:
        for i in range(m):
            h[i] = 2 * np.int32(pre[i])
    if sub_median:
        # 2 * ((x - x0) - ((lo - off - x0) + (hi - off - x0)) / 2): x0 cancels.
        for i in range(m):
            h[i] = h[i] - (np.int32(lv[i]) + np.int32(hv[i]) - ioff2)
    elif sub_first:
        for i in range(m):
            h[i] = h[i] - 2 * np.int32(x0[i])
    if add_first:
        if is_max:
            for i in range(m):
                a = h[i]
                b = 2 * np.int32(x0[i])
                h[i] = a if a > b else b
        else:
            for i in range(m):
                a = h[i]
                b = 2 * np.int32(x0[i])
                h[i] = a if a < b else b
    if not is_max:
        for i in range(m):
            h[i] = ioffset2 - h[i]


@njit(cache=True, nogil=True)
def _half_stretch(res, h, scale):
    """res = stretch(h / 2): the float64 value h * 0.5 is exact."""
    for i in range(h.shape[0]):
        res[i] = _to_uint8(np.float64(h[i]) * 0.5, scale)


@njit(cache=True, nogil=True)
def _half_stretch32(res, h, s32):
    """:func:`_half_stretch` in float32 (where :func:`f32_stretch_exact` allows)."""
    for i in range(h.shape[0]):
        res[i] = _to_uint8_f32(np.float32(h[i]) * np.float32(0.5), s32)


@njit(parallel=True, cache=True, nogil=True)
def stretch_half(half, scale, out, chunk, use32):
    """The 8-bit image of ``half / 2`` (see :func:`project_sliding_half`).

    With ``use32``, in float32 (see :func:`f32_stretch_exact`, form 2).
    """
    n = half.shape[0]
    s32 = np.float32(scale)
    for c in prange((n + chunk - 1) // chunk):
        start = c * chunk
        stop = min(start + chunk, n)
        if use32:
            _half_stretch32(out[start:stop], half[start:stop], s32)
        else:
            _half_stretch(out[start:stop], half[start:stop], scale)


@njit(parallel=True, cache=True, nogil=True)
def project_sliding_half(buf, prefix, s1, ring, x0slot, lo, hi, ioff,
                         sub_first, sub_median, add_first, is_max, ioffset,
                         half, scale_mode, scale, out, chunk_max, chunk, f32_first, f32_last):
    """:func:`project_sliding` for small integer values, twice the projection in integers.

    For integer frames of at most 16 bits (and an integral ``offset`` and
    ``off``), every float64 value :func:`project_sliding` computes is an
    exact multiple of 0.5 far below 2**52, so each of its operations is
    exact and the same value is ``h / 2`` with ``h`` computed in integers
    (``half``: int16 or int32, a quarter or half of the float64 traffic).
    The stretch then converts ``h * 0.5`` (exact) and applies the same float
    operations as :func:`kernels.stretch.stretch_to_uint8`: bit for bit the
    same image. Scale modes 0 and 1 only (mode 2 needs the float64
    projection).

    Parameters
    ----------
    ioff, ioffset : int
        ``off`` and ``offset`` of :func:`project_sliding`, as integers.
    half : ndarray of int16 or int32, shape (P,)
        Receives twice the projection.
    f32_first, f32_last : int
        Bounds of every value ``half`` can hold: the stretch runs in float32
        when :func:`f32_stretch_exact` passes for all of them (none when
        ``f32_first > f32_last``).
    """
    n = half.shape[0]
    nchunks = chunk_max.shape[0]
    has_suffix = s1 < buf.shape[0]
    srow = s1 if has_suffix else 0
    ioff2 = 2 * ioff
    ioffset2 = 2 * ioffset
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        h = half[start:stop]
        lv = lo[start:stop] if sub_median else lo[0:0]
        hv = hi[start:stop] if sub_median else hi[0:0]
        _half_pass(h, prefix[start:stop], buf[srow, start:stop], has_suffix,
                   ring[x0slot, start:stop], lv, hv, ioff2, sub_first, sub_median,
                   add_first, is_max, ioffset2)
        chunk_max[c] = np.float64(_peak_int(h)) * 0.5
    if scale_mode == 0:
        scale = _stretch_scale(chunk_max)
    use32 = f32_first <= f32_last and f32_stretch_exact(f32_first, f32_last, 2, 0.0, scale)
    s32 = np.float32(scale)
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        if use32:
            _half_stretch32(out[start:stop], half[start:stop], s32)
        else:
            _half_stretch(out[start:stop], half[start:stop], scale)
