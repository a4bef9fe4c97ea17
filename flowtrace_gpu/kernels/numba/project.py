"""Projection kernels of the Numba backend, with the 8-bit stretch fused in.

Each kernel forms one window's projection from the state a projector of
:mod:`flowtrace_gpu.backends.numba.projectors` keeps, and stretches it to
8 bits exactly as :func:`kernels.stretch.stretch_to_uint8` does. The
stretch of one value is :func:`_to_uint8`, the one Numba copy of that
formula; every kernel calls it, in float64, or in float32 where
:func:`f32_stretch_exact` has shown the bytes to be the same.

* :func:`project_plain_scaled` and :func:`project_plain`: the sliding
  maximum (minimum) itself, no shift (``PlainProjector``).
* :func:`project_sliding`: the sliding extreme shifted by the first frame
  and the median, in float64 (``FloatShiftProjector``; also the raw output
  of ``PlainProjector``).
* :func:`project_sliding_half`: the same for integers of at most 16 bits,
  as twice the value in int16 or int32 (``HalfUnitProjector``);
  :func:`stretch_half` stretches such a projection formed elsewhere
  (``FusedMedianProjector``).
* :func:`project_window`: each pixel's window walked once, weighted or not
  (``WeightedProjector``, ``PerWindowProjector``).

Why each path is exact is told by its projector class.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..colors import WeightMode

# --- the 8-bit stretch -----------------------------------------------------------


@njit(cache=True, nogil=True)
def _to_uint8(v, scale, ft):
    """``floor(clip(v * scale, 0, 255) + 0.5)`` as uint8, computed in float type ``ft``.

    :func:`kernels.stretch.stretch_to_uint8` for one value. ``ft`` is
    ``np.float64`` (the reference's arithmetic) or ``np.float32`` (twice the
    SIMD lanes; callers use it only where :func:`f32_stretch_exact` passed);
    ``v`` and ``scale`` must already be of that type. The value is
    non-negative after the clip, so the conversion's truncation is the floor.
    """
    v = v * scale
    if v < ft(0.0):
        v = ft(0.0)
    elif v > ft(255.0):
        v = ft(255.0)
    return np.uint8(v + ft(0.5))


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
def f32_stretch_exact(first, last, form, offset, scale):
    """Whether the float32 stretch gives the float64 one's byte for every v in first..last.

    The stretched value is ``v`` (form 0), ``offset - v`` (1) or ``v * 0.5``
    (2, twice-value projections), for integers v. Checking every value that
    can occur (256 for 8-bit frames) makes the float32 kernels exact by
    construction; they are used only then. Some peaks fail somewhere (e.g.
    255/14 * 7 = 127.5 rounds differently), and then the float64 kernels run.
    """
    s32 = np.float32(scale)
    o32 = np.float32(offset)
    for v in range(first, last + 1):
        if form == 0:
            a = _to_uint8(np.float64(v), scale, np.float64)
            b = _to_uint8(np.float32(v), s32, np.float32)
        elif form == 1:
            a = _to_uint8(offset - np.float64(v), scale, np.float64)
            b = _to_uint8(o32 - np.float32(v), s32, np.float32)
        else:
            a = _to_uint8(np.float64(v) * 0.5, scale, np.float64)
            b = _to_uint8(np.float32(v) * np.float32(0.5), s32, np.float32)
        if a != b:
            return False
    return True


@njit(cache=True, nogil=True)
def _stretch_run(res, pv, scale):
    """res = the stretch of the float64 values pv."""
    for i in range(pv.shape[0]):
        res[i] = _to_uint8(pv[i], scale, np.float64)


@njit(parallel=True, cache=True, nogil=True)
def _stretch_projection(proj, scale_mode, scale, chunk_max, out, chunk):
    """The 8-bit image of a float64 projection whose chunk maxima are ``chunk_max``.

    Scale mode 0 stretches by the image's own peak, 1 multiplies by
    ``scale``. ``chunk`` is values per parallel task.
    """
    if scale_mode == 0:
        scale = _stretch_scale(chunk_max)
    n = proj.shape[0]
    for c in prange((n + chunk - 1) // chunk):
        start = c * chunk
        stop = min(start + chunk, n)
        _stretch_run(out[start:stop], proj[start:stop], scale)


def scale_projection(proj, scale, out, chunk):
    """``out`` = the 8-bit image of the flat float64 ``proj`` multiplied by ``scale``.

    :func:`kernels.stretch.scale_to_uint8` with ``scale = 255 / peak``, in
    parallel chunks of ``chunk`` values; the same bytes.
    """
    _stretch_projection(proj, 1, scale, np.zeros(1), out, chunk)


# --- plain sliding extreme ---------------------------------------------------------


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


@njit(cache=True, nogil=True)
def _extreme_run(res, w, is_max, offset, scale, ft):
    """res = stretch(w) (max) or stretch(offset - w) (min), in float type ``ft``."""
    # One flag-free loop per case: each vectorizes.
    if is_max:
        for i in range(w.shape[0]):
            res[i] = _to_uint8(ft(w[i]), scale, ft)
    else:
        for i in range(w.shape[0]):
            res[i] = _to_uint8(offset - ft(w[i]), scale, ft)


@njit(cache=True, nogil=True)
def _plain_run(res, pre, suf, is_max, offset, scale, ft):
    """res = the stretch of ext(pre, suf) (min: of ``offset - min``), in float type ``ft``."""
    if is_max:
        for i in range(res.shape[0]):
            a = pre[i]
            b = suf[i]
            res[i] = _to_uint8(ft(a if a > b else b), scale, ft)
    else:
        for i in range(res.shape[0]):
            a = pre[i]
            b = suf[i]
            res[i] = _to_uint8(offset - ft(a if a < b else b), scale, ft)


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
        _extreme_run(out[start:stop], ext[start:stop], is_max, offset, scale, np.float64)


@njit(parallel=True, cache=True, nogil=True)
def project_plain_scaled(buf, prefix, s1, is_max, offset, scale, out, chunk, use32):
    """:func:`project_plain` in one pass, when the scale is known beforehand.

    The peak of a max projection is the largest of its frames' maxima (and
    of a min projection, ``offset`` minus the smallest minimum), which
    :func:`kernels.numba.sliding.ext_push` returns as each frame enters; so
    the caller passes ``scale`` and no scratch image is written and read
    back. The same float operations as :func:`project_plain`, or with
    ``use32`` in float32 where :func:`f32_stretch_exact` showed them equal
    for every value: bit for bit the same image.

    Parameters
    ----------
    buf, prefix, s1, is_max, offset, out, chunk
        As for :func:`project_plain`.
    scale : float
        What :func:`project_plain` multiplies by (``255 / peak``, or 1).
    use32 : bool
        Stretch in float32 (for 8-bit values, where it is exact).
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
        suf = buf[srow, start:stop] if has_suffix else pre
        if use32:
            _plain_run(out[start:stop], pre, suf, is_max, o32, s32, np.float32)
        else:
            _plain_run(out[start:stop], pre, suf, is_max, offset, scale, np.float64)


# --- shifted sliding extreme, float64 ------------------------------------------------


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


@njit(parallel=True, cache=True, nogil=True)
def project_sliding(buf, prefix, s1, ring, x0slot, lo, hi,
                    sub_first, sub_median, add_first, is_max, offset,
                    proj, scale_mode, scale, out, chunk_max, chunk):
    """Stretched image of the window from the sliding state.

    Parameters
    ----------
    buf, prefix : ndarray
        State of :func:`kernels.numba.sliding.ext_push`, shapes (L, P), (P,).
    s1 : int
        Block position of the newest value plus one; ``buf[s1]`` is the
        previous block's suffix extreme when ``s1 < L``.
    ring : ndarray, shape (R, P)
        Raw frames; row ``x0slot`` is the window's first frame (read only
        with ``sub_first`` or ``add_first``).
    lo, hi : ndarray, shape (P,)
        Middle order statistics of the raw window (``sub_median`` only;
        see :mod:`kernels.numba.median`).
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
                    a = np.float64(lv[i]) - f
                    b = np.float64(hv[i]) - f
                    pv[i] = pv[i] - (a + b) / 2.0
            else:
                for i in range(pv.shape[0]):
                    a = np.float64(lv[i])
                    b = np.float64(hv[i])
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
    if scale_mode != 2:
        _stretch_projection(proj, scale_mode, scale, chunk_max, out, chunk)


# --- shifted sliding extreme, twice the value in integers ----------------------------


@njit(cache=True, nogil=True)
def _peak_int(h):
    """Largest value of an integer array (vectorizes: integer max is associative)."""
    e = h[0]
    for i in range(h.shape[0]):
        a = h[i]
        e = a if a > e else e
    return e


@njit(cache=True, nogil=True)
def _half_pass(h, pre, suf, has_suffix, x0, lv, hv, sub_first, sub_median,
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
        # 2 * ((x - x0) - ((lo - x0) + (hi - x0)) / 2): x0 cancels.
        for i in range(m):
            h[i] = h[i] - (np.int32(lv[i]) + np.int32(hv[i]))
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
def _half_run(res, h, scale, ft):
    """res = stretch(h / 2), in float type ``ft`` (``h * 0.5`` is exact in both)."""
    for i in range(h.shape[0]):
        res[i] = _to_uint8(ft(h[i]) * ft(0.5), scale, ft)


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
            _half_run(out[start:stop], half[start:stop], s32, np.float32)
        else:
            _half_run(out[start:stop], half[start:stop], scale, np.float64)


@njit(parallel=True, cache=True, nogil=True)
def project_sliding_half(buf, prefix, s1, ring, x0slot, lo, hi,
                         sub_first, sub_median, add_first, is_max, ioffset,
                         half, scale_mode, scale, out, chunk_max, chunk, f32_first, f32_last):
    """:func:`project_sliding` for small integer values, twice the projection in integers.

    For integer frames of at most 16 bits (and an integral ``offset``),
    every float64 value :func:`project_sliding` computes is an exact
    multiple of 0.5 far below 2**52, so each of its operations is exact and
    the same value is ``h / 2`` with ``h`` computed in integers (``half``:
    int16 or int32, a quarter or half of the float64 traffic). The stretch
    then converts ``h * 0.5`` (exact) and applies the same float operations
    as :func:`kernels.stretch.stretch_to_uint8`: bit for bit the same image.
    Scale modes 0 and 1 only (mode 2 needs the float64 projection).

    Parameters
    ----------
    ioffset : int
        ``offset`` of :func:`project_sliding`, as an integer.
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
    ioffset2 = 2 * ioffset
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        h = half[start:stop]
        lv = lo[start:stop] if sub_median else lo[0:0]
        hv = hi[start:stop] if sub_median else hi[0:0]
        _half_pass(h, prefix[start:stop], buf[srow, start:stop], has_suffix,
                   ring[x0slot, start:stop], lv, hv, sub_first, sub_median,
                   add_first, is_max, ioffset2)
        chunk_max[c] = np.float64(_peak_int(h)) * 0.5
    if scale_mode == 0:
        scale = _stretch_scale(chunk_max)
    use32 = f32_first <= f32_last and f32_stretch_exact(f32_first, f32_last, 2, 0.0, scale)
    stretch_half(half, scale, out, chunk, use32)


# --- per-window walk, weighted or not --------------------------------------------------


# Not parallel itself: the passes it calls are.
@njit(cache=True, nogil=True)
def project_window(ring, start, diff_order, lo, hi,
                   sub_first, sub_median, add_first, weights, wmode,
                   is_max, offset, proj, scale_mode, scale, out, chunk_max, chunk, block):
    """Scaled image of the window, one pass over each pixel's window.

    Each pixel's window goes through the steps of
    :func:`kernels.window.trace_window` in the same order and with the same
    float operations (so the result is NumPy's, bit for bit), then is
    reduced, weighted on the fly.

    Parameters
    ----------
    ring : ndarray, shape (F, P)
        The window's frames; row ``start`` is the oldest.
    start : int
        Ring row of the window's first frame.
    diff_order : int
        0, or ``diff_order`` of ``take_diff``.
    lo, hi, sub_first, sub_median, add_first, is_max, offset
        As for :func:`project_sliding`.
    weights : ndarray of float64, shape (K, nw)
        ``plan.colors`` as 2-D (a fade is one column).
    wmode : int
        ``plan.weight_mode`` (:class:`flowtrace_gpu.engine.plan.WeightMode`): NONE,
        SCALAR (column 0), CHANNELS (column ``p % 3``, RGB input), TINT
        (three outputs per pixel, one per column; gray input).
    proj : ndarray of float64, shape (P_out,)
        Receives the projection (before scaling).
    scale_mode, scale, out, chunk_max, chunk
        As for :func:`project_sliding` (chunks of input values).
    block : int
        Pixels per cache block of the weighted pass without ``take_diff``
        (:func:`_weighted_frames_outer`).
    """
    n = ring.shape[1]
    if diff_order == 0:
        _weighted_frames_outer(ring, start, lo, hi, sub_first, sub_median, add_first,
                               weights, wmode, is_max, offset, proj, chunk_max, chunk, block)
    else:
        _columns(ring, start, diff_order, lo, hi, sub_first, sub_median, add_first,
                 weights, wmode, is_max, offset, proj, chunk_max, chunk)
    if scale_mode != 2:
        # chunk values in, (proj size / n) outputs each: the same chunks
        _stretch_projection(proj, scale_mode, scale, chunk_max, out,
                            chunk * (proj.shape[0] // n))


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
def _weighted_frames_outer(ring, start, lo, hi, sub_first, sub_median, add_first,
                           weights, wmode, is_max, offset, proj, chunk_max, chunk, block):
    """Weighted projection without take_diff: frames outer, pixels inner.

    Walking each chunk of pixels frame by frame keeps every inner loop
    contiguous and vectorizable (the per-pixel column walk of
    :func:`_columns` gathers across rows), in sub-blocks of ``block`` pixels
    whose accumulators and row stay in L1. Each value goes through the same
    float operations as :func:`kernels.window.trace_window`, ``(x - x0) -
    m`` then ``* w`` (subtracting 0.0 when an option is off is exact), so
    the result is NumPy's bit for bit.
    """
    n = ring.shape[1]
    nchunks = chunk_max.shape[0]
    for c in prange(nchunks):
        peak = -np.inf
        stop = min(c * chunk + chunk, n)
        for b0 in range(c * chunk, stop, block):
            m = min(b0 + block, stop) - b0
            block_peak = _weighted_block(ring, start, b0, m, lo, hi, sub_first, sub_median,
                                         add_first, weights, wmode, is_max, offset, proj)
            peak = block_peak if block_peak > peak else peak
        chunk_max[c] = peak


@njit(cache=True, nogil=True)
def _weighted_block(ring, start, p0, m, lo, hi, sub_first, sub_median, add_first,
                    weights, wmode, is_max, offset, proj):
    """One block of :func:`_weighted_frames_outer`; returns its peak."""
    f = ring.shape[0]
    nacc = 3 if wmode == WeightMode.TINT else 1
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
            a = np.float64(lo[p0 + i])
            b = np.float64(hi[p0 + i])
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
        if wmode == WeightMode.CHANNELS:  # value p takes color column p % 3
            for i in range(m):
                w[i] = weights[j, (p0 + i) % 3]
            _fold_each(acc[0], v, w, is_max)
        else:
            for a in range(nacc):
                _fold(acc[a], v, 1.0 if wmode == WeightMode.NONE else weights[j, a], is_max)
    peak = -np.inf
    for a in range(nacc):
        for i in range(m):
            e = acc[a, i] if is_max else offset - acc[a, i]
            proj[(p0 + i) * nacc + a] = e
            peak = e if e > peak else peak
    return peak


@njit(parallel=True, cache=True, nogil=True)
def _columns(ring, start, diff_order, lo, hi, sub_first, sub_median, add_first,
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
                a = np.float64(lo[p])
                b = np.float64(hi[p])
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
            if wmode == WeightMode.TINT:
                for ch in range(3):
                    e = _reduce(col, k, weights, ch, is_max)
                    if not is_max:
                        e = offset - e
                    proj[3 * p + ch] = e
                    if e > peak:
                        peak = e
            else:
                wcol = -1
                if wmode == WeightMode.SCALAR:
                    wcol = 0
                elif wmode == WeightMode.CHANNELS:
                    wcol = p % 3
                e = _reduce(col, k, weights, wcol, is_max)
                if not is_max:
                    e = offset - e
                proj[p] = e
                if e > peak:
                    peak = e
        chunk_max[c] = peak
