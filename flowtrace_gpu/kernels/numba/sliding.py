"""Sliding maximum and minimum over a stream of frames, O(1) per value.

This is van Herk / Gil-Werman turned into a stream. Per pixel the values
y_0, y_1, ... are cut into blocks of L (the window length). The window that
ends at position ``s`` of the current block is the previous block from
``s + 1`` on plus the current block up to ``s``, so its extreme is
``ext(suffix_prev[s + 1], prefix_cur[s])``.

One buffer of L frames, ``buf``, holds both halves: slot ``s`` keeps the
previous block's suffix extreme until step ``s`` of the current block, which
no longer needs it and overwrites it with the current block's raw value.
When a block completes, :func:`ext_suffix` turns it into suffix extremes in
place, backwards. That is about three comparisons per value whatever L: one
for the running prefix, one for the answer, one (amortized) for the suffix
scan. State: ``buf`` (L frames) and ``prefix`` (one frame), in the values'
own dtype, so comparisons are exact.

Every kernel works on flattened frames (channels are just more pixels) and
splits them into chunks of ``chunk`` values, one chunk per parallel task.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def ext_push(y, buf, prefix, s, is_max, chunk, chunk_ext):
    """Push one frame of values at block position ``s``; return its extreme.

    Parameters
    ----------
    y : ndarray, shape (P,)
        The new values, dtype of ``buf``.
    buf : ndarray, shape (L, P)
        Block buffer; ``buf[s]`` receives ``y``.
    prefix : ndarray, shape (P,)
        Running extreme of the current block; reset when ``s == 0``.
    s : int
        Position of ``y`` in its block, ``0 <= s < L``.
    is_max : bool
        Track maxima (True) or minima (False).
    chunk : int
        Values per parallel task.
    chunk_ext : ndarray of float64, shape (ceil(P / chunk),)
        Scratch for the per-chunk extremes of ``y``.

    Returns
    -------
    float
        The largest (``is_max``) or smallest value of ``y``, as float64:
        the window's extreme is the extreme of its frames' extremes, which
        lets the projection stretch in one pass (see
        :func:`kernels.numba.project.project_plain_scaled`).
    """
    n = y.shape[0]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        # Chunk views: loops over 0..m index without wraparound checks and vectorize.
        yy = y[start:stop]
        row = buf[s, start:stop]
        pre = prefix[start:stop]
        e = yy[0]
        # The frame's extreme rides along each loop (that still vectorizes).
        if s == 0 and is_max:
            for i in range(stop - start):
                v = yy[i]
                row[i] = v
                pre[i] = v
                e = v if v > e else e
        elif s == 0:
            for i in range(stop - start):
                v = yy[i]
                row[i] = v
                pre[i] = v
                e = v if v < e else e
        elif is_max:
            for i in range(stop - start):
                v = yy[i]
                row[i] = v
                q = pre[i]
                pre[i] = v if v > q else q
                e = v if v > e else e
        else:
            for i in range(stop - start):
                v = yy[i]
                row[i] = v
                q = pre[i]
                pre[i] = v if v < q else q
                e = v if v < e else e
        chunk_ext[c] = np.float64(e)
    ext = chunk_ext[0]
    for c in range(1, nchunks):
        v = chunk_ext[c]
        if (v > ext) if is_max else (v < ext):
            ext = v
    return ext


@njit(parallel=True, cache=True, nogil=True)
def ext_suffix(buf, is_max, chunk):
    """Turn a completed block into suffix extremes, in place.

    After this, ``buf[s]`` is the extreme of the block's values ``s .. L-1``
    for ``s >= 1`` (slot 0 is never read as a suffix, so it is left alone).
    """
    nblock = buf.shape[0]
    n = buf.shape[1]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        for s in range(nblock - 2, 0, -1):
            row = buf[s, start:stop]
            nxt = buf[s + 1, start:stop]
            if is_max:
                for i in range(stop - start):
                    a = row[i]
                    b = nxt[i]
                    row[i] = b if b > a else a
            else:
                for i in range(stop - start):
                    a = row[i]
                    b = nxt[i]
                    row[i] = b if b < a else a


@njit(parallel=True, cache=True, nogil=True)
def diff_frame(frame, ring, slots, out, chunk):
    """The newest value of the order-``d`` difference sequence, per pixel.

    Computes ``np.diff(stack, n=d, axis=0)[-1]`` for the stack of the ``d``
    previous frames and ``frame``, in float64 and in NumPy's order of
    operations (``d`` passes of ``a[1:] - a[:-1]``), so the result is the
    float NumPy gets, bit for bit, and is then stored in ``out``'s dtype.
    Cost O(d**2) per pixel; ``d`` is small in practice.

    Parameters
    ----------
    frame : ndarray, shape (P,)
        The newest frame.
    ring : ndarray, shape (R, P)
        Earlier frames.
    slots : ndarray of int64, shape (d,)
        Ring rows of the ``d`` previous frames, oldest first.
    out : ndarray, shape (P,)
        Receives the difference (its dtype must hold it exactly).
    chunk : int
        Values per parallel task.
    """
    n = frame.shape[0]
    d = slots.shape[0]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        start = c * chunk
        stop = min(start + chunk, n)
        if d == 1:
            prev = ring[slots[0], start:stop]
            cur = frame[start:stop]
            res = out[start:stop]
            for i in range(stop - start):
                res[i] = np.float64(cur[i]) - np.float64(prev[i])
        else:
            tmp = np.empty(d + 1, np.float64)
            for p in range(start, stop):
                for k in range(d):
                    tmp[k] = np.float64(ring[slots[k], p])
                tmp[d] = np.float64(frame[p])
                for level in range(d):
                    for i in range(d - level):
                        tmp[i] = tmp[i + 1] - tmp[i]
                out[p] = tmp[0]
