"""The saturating stretch's level, from a histogram: xp-generic (NumPy and CuPy).

``saturate=P`` maps the (100 - P)th percentile of the projection's values to
the top of the output range and clips above it, as ImageJ's auto-contrast
lets a small fraction of pixels saturate. The percentile is read from a
histogram over ``[0, top]`` (values at or below 0, and NaN, fall into the
first bin: they map to 0 anyway), never from a sort: the level is the upper
edge of the bin where the cumulative count reaches the percentile, so it
lies at most one bin width above the exact order statistic.
:mod:`flowtrace_gpu.kernels.numba.saturate` is the same histogram for the
Numba backend.
"""

from __future__ import annotations

import math

import numpy as np

#: Bins of one image's histogram (``normalize='frame'``).
FRAME_BINS = 4096
#: Bins of the run's histogram (``normalize='global'``): finer, because its
#: range grows as brighter images arrive and each regrowth rebins it.
RUN_BINS = 65536


def index_scale(top: float, bins: int) -> float:
    """Factor that turns a value into its bin: ``int(v * index_scale)``, clipped
    (``inf`` for a subnormal ``top``: every positive value in the last bin)."""
    return bins / float(top) if top > 0 else 0.0


def histogram(values, top: float, bins: int, xp):
    """Counts of ``values`` in ``bins`` equal bins over ``[0, top]``.

    Values above ``top`` count in the last bin; values at or below 0 and NaN
    in the first.
    """
    # An infinite scale (subnormal top) makes 0 * inf = NaN, sent to bin 0 below.
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = values.reshape(-1) * index_scale(top, bins)
    scaled[~(scaled > 0)] = 0  # NaN too
    index = xp.minimum(scaled, bins - 1).astype(xp.int64)
    return xp.bincount(index, minlength=bins)


def level(counts, top: float, percent: float) -> float:
    """The value the stretch maps to the top: the (100 - percent)th percentile.

    Parameters
    ----------
    counts : array of counts over ``[0, top]`` (host or device)
    top : float
        Upper end of the histogram's range.
    percent : float
        Share of values allowed above the level, 0 <= percent < 100.

    Returns
    -------
    float
        The upper edge of the first bin whose cumulative count reaches
        ``ceil((1 - percent / 100) * n)``; 0 (no scaling) when ``top <= 0``.
    """
    if not top > 0:
        return 0.0
    host = counts.get() if hasattr(counts, "get") else counts
    cumulative = np.cumsum(np.asarray(host, dtype=np.int64))
    wanted = max(1, math.ceil((1.0 - percent / 100.0) * int(cumulative[-1])))
    b = int(np.searchsorted(cumulative, wanted))
    return top * (b + 1) / len(cumulative)


def rebin(counts: np.ndarray, top: float, new_top: float) -> np.ndarray:
    """``counts`` over ``[0, top]`` moved onto the same bins over ``[0, new_top]``.

    Each bin is counted at its upper edge, so levels read afterwards stay at
    or above the exact percentile, by at most one new bin per rebin.
    """
    bins = len(counts)
    moved = np.zeros(bins, dtype=np.int64)
    if not top > 0:
        moved[0] = counts.sum()
        return moved
    edges = np.arange(1, bins + 1, dtype=np.float64) * (top / new_top)
    np.add.at(moved, np.minimum(edges.astype(np.int64), bins - 1), counts)
    return moved
