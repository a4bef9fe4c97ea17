"""Bayer mosaics to RGB: bilinear demosaic, one frame at a time.

A pattern is named by its top-left 2x2 block read row by row: ``'RGGB'``
means R at (0, 0), G at (0, 1) and (1, 0), B at (1, 1). Each output pixel
keeps the color its photosite measured and takes the other two as the mean,
rounded half up, of the nearest photosites of that color: the four edge
neighbors (G at R and B sites), the four diagonal ones (B at R sites, R at
B sites), or the two horizontal or two vertical ones (R and B at G sites).
That is the convolution of each color's samples with
``[[0,1,0],[1,4,1],[0,1,0]]/4`` (G) and ``[[1,2,1],[2,4,2],[1,2,1]]/4``
(R, B), the mosaic mirrored about its first and last rows and columns
(``np.pad(mode='reflect')``, which keeps the pattern's phase).

The loop is compiled by Numba (serial, ``nogil``, for the reader thread);
whole-array NumPy was slower (``bench/bench_readers.py`` measures both).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import FlowtraceError

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


def swap_rows(pattern: str) -> str:
    """The pattern seen one row further down: ``'GBRG'`` -> ``'RGGB'``."""
    return pattern[2:] + pattern[:2]


@njit(cache=True, nogil=True, inline="always")
def _edge_site(o, x, g_parity, across, other, up, mid, down, left, right):
    # A border column: its mirrored neighbor index is passed as left/right.
    if (x & 1) == g_parity:
        o[x, 1] = mid[x]
        o[x, across] = (np.int32(mid[left]) + np.int32(mid[right]) + 1) >> 1
        o[x, other] = (np.int32(up[x]) + np.int32(down[x]) + 1) >> 1
    else:
        o[x, across] = mid[x]
        o[x, 1] = (np.int32(up[x]) + np.int32(down[x]) + np.int32(mid[left])
                   + np.int32(mid[right]) + 2) >> 2
        o[x, other] = (np.int32(up[left]) + np.int32(up[right]) + np.int32(down[left])
                       + np.int32(down[right]) + 2) >> 2


@njit(cache=True, nogil=True)
def _demosaic(m, g_first, row0_color, out):
    height, width = m.shape
    for y in range(height):
        g_parity = g_first ^ (y & 1)  # column parity of G in this row
        across = row0_color if (y & 1) == 0 else 2 - row0_color  # the row's R or B
        other = 2 - across  # the color of the rows above and below
        up = m[y - 1] if y > 0 else m[1]
        down = m[y + 1] if y < height - 1 else m[height - 2]
        mid = m[y]
        o = out[y]
        _edge_site(o, 0, g_parity, across, other, up, mid, down, 1, 1)
        _edge_site(o, width - 1, g_parity, across, other, up, mid, down, width - 2, width - 2)
        first_g = 1 if g_parity == 1 else 2
        for x in range(first_g, width - 1, 2):
            o[x, 1] = mid[x]
            o[x, across] = (np.int32(mid[x - 1]) + np.int32(mid[x + 1]) + 1) >> 1
            o[x, other] = (np.int32(up[x]) + np.int32(down[x]) + 1) >> 1
        for x in range(3 - first_g, width - 1, 2):
            o[x, across] = mid[x]
            o[x, 1] = (np.int32(up[x]) + np.int32(down[x]) + np.int32(mid[x - 1])
                       + np.int32(mid[x + 1]) + 2) >> 2
            o[x, other] = (np.int32(up[x - 1]) + np.int32(up[x + 1]) + np.int32(down[x - 1])
                           + np.int32(down[x + 1]) + 2) >> 2


def demosaic(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaic of an (H, W) Bayer mosaic into (H, W, 3) RGB of its dtype.

    Parameters
    ----------
    mosaic : ndarray, uint8 or uint16, shape (H, W), H and W >= 2
    pattern : {'RGGB', 'BGGR', 'GRBG', 'GBRG'}
        The colors of the mosaic's top-left 2x2 block, row by row.

    Returns
    -------
    ndarray, shape (H, W, 3), C-contiguous
    """
    if pattern not in PATTERNS:
        raise FlowtraceError(f"Bayer pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if mosaic.ndim != 2 or min(mosaic.shape) < 2 or mosaic.dtype not in (np.uint8, np.uint16):
        raise FlowtraceError(
            f"a Bayer mosaic is a 2-D uint8 or uint16 array of at least 2x2, "
            f"got {mosaic.dtype} shape {mosaic.shape}"
        )
    mosaic = np.ascontiguousarray(mosaic)
    g_first = pattern[:2].index("G")
    row0_color = 0 if "R" in pattern[:2] else 2
    out = np.empty(mosaic.shape + (3,), mosaic.dtype)
    _demosaic(mosaic, g_first, row0_color, out)
    return out
