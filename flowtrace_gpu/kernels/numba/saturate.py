"""Numba twin of :func:`flowtrace_gpu.kernels.saturate.histogram` (same bins, same counts)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def histogram(values, scale, bins, nchunks):
    """Counts of the flat float64 ``values`` in ``bins`` bins: ``min(int(v * scale), bins - 1)``.

    Values at or below 0 and NaN count in bin 0. Each of ``nchunks`` tasks
    counts its slice into its own row; the rows are summed at the end.
    """
    n = values.shape[0]
    partial = np.zeros((nchunks, bins), np.int64)
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        row = partial[c]
        for i in range(c * step, min(n, (c + 1) * step)):
            v = values[i] * scale
            k = 0
            if v > 0:
                k = bins - 1 if v >= bins - 1 else int(v)
            row[k] += 1
    return partial.sum(axis=0)
