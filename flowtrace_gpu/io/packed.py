"""Bit-packed pixels: 10-bit (Phantom P10) and 12-bit (Photron MRAW, Phantom 12L).

Both packings store the pixels as one bit stream, most significant bit
first: 12-bit packs 2 pixels in 3 bytes (``AAAAAAAA AAAABBBB BBBBBBBB``),
10-bit packs 4 pixels in 5 bytes. A stream whose pixel count does not fill
its last group is read as if zero bytes completed the group.

The loops are compiled by Numba (serial and ``nogil``: they run on the
reader thread while the compute thread works); NumPy's column arithmetic
was several times slower (``bench/bench_readers.py`` measures both).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Identity table: 10-bit codes kept as they are.
_IDENTITY_10BIT = np.arange(1024, dtype=np.uint16)


@njit(cache=True, nogil=True)
def _unpack12(data, out):
    for i in range(out.size // 2):
        b0, b1, b2 = np.uint16(data[3 * i]), np.uint16(data[3 * i + 1]), np.uint16(data[3 * i + 2])
        out[2 * i] = (b0 << 4) | (b1 >> 4)
        out[2 * i + 1] = ((b1 & 0x0F) << 8) | b2


@njit(cache=True, nogil=True)
def _unpack10(data, table, out):
    for i in range(out.size // 4):
        b0, b1, b2 = np.uint16(data[5 * i]), np.uint16(data[5 * i + 1]), np.uint16(data[5 * i + 2])
        b3, b4 = np.uint16(data[5 * i + 3]), np.uint16(data[5 * i + 4])
        out[4 * i] = table[(b0 << 2) | (b1 >> 6)]
        out[4 * i + 1] = table[((b1 & 0x3F) << 4) | (b2 >> 4)]
        out[4 * i + 2] = table[((b2 & 0x0F) << 6) | (b3 >> 2)]
        out[4 * i + 3] = table[((b3 & 0x03) << 8) | b4]


def _stream(packed, count: int, pixels: int, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
    """The bytes as a flat uint8 array covering whole groups, and the uint16 output."""
    data = packed if isinstance(packed, np.ndarray) else np.frombuffer(packed, dtype=np.uint8)
    data = np.ascontiguousarray(data.reshape(-1), dtype=np.uint8)
    groups = -(-count // pixels)
    if data.size < groups * nbytes:
        full = np.zeros(groups * nbytes, np.uint8)
        full[:data.size] = data
        data = full
    return data, np.empty(groups * pixels, np.uint16)


def unpack_12bit(packed, shape: tuple) -> np.ndarray:
    """Unpack 12-bit pixels (3 bytes -> 2 pixels, MSB first) into uint16 of ``shape``.

    Parameters
    ----------
    packed : bytes-like or uint8 ndarray
        ``ceil(prod(shape) / 2) * 3`` bytes (fewer are zero-completed, more ignored).
    shape : tuple of int
    """
    count = int(np.prod(shape))
    data, out = _stream(packed, count, 2, 3)
    _unpack12(data, out)
    return out[:count].reshape(shape)


def unpack_10bit(packed, shape: tuple, table: np.ndarray | None = None) -> np.ndarray:
    """Unpack 10-bit codes (5 bytes -> 4 pixels, MSB first) into uint16 of ``shape``.

    Parameters
    ----------
    packed : bytes-like or uint8 ndarray
        ``ceil(prod(shape) / 4) * 5`` bytes (fewer are zero-completed, more ignored).
    shape : tuple of int
    table : uint16 ndarray of 1024 values, optional
        Each code is replaced by ``table[code]`` on the way (e.g. Phantom's
        linearization, :data:`~flowtrace_gpu.io.phantom_p10.P10_TO_12BIT`).
    """
    table = _IDENTITY_10BIT if table is None else np.ascontiguousarray(table, dtype=np.uint16)
    if table.shape != (1024,):
        raise ValueError(f"a 10-bit table has 1024 entries, got shape {table.shape}")
    count = int(np.prod(shape))
    data, out = _stream(packed, count, 4, 5)
    _unpack10(data, table, out)
    return out[:count].reshape(shape)
