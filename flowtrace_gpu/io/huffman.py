"""zlib streams of one Huffman-coded literal block (deflate without LZ77).

What zlib writes with the ``Z_HUFFMAN_ONLY`` strategy; the loops (the
histogram, the code lengths, the coding pass) are Numba kernels in
:mod:`flowtrace_gpu.kernels.numba.huffman`, the block's header is built here.
:class:`HuffmanBlock` knows the stream's exact size from the histogram
alone, so a writer can choose between storing, this, and full deflate before
coding anything (:func:`flowtrace_gpu.io.png._code`).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

#: Order in which the code-length code's lengths are sent (RFC 1951, 3.2.7).
_CL_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
_EOB = 256
#: Extra bits of the code-length symbols 16 (repeat 3-6), 17 (3-10 zeros), 18 (11-138 zeros).
_CL_EXTRA = {16: 2, 17: 3, 18: 7}


def code_lengths(freqs, limit: int) -> np.ndarray:
    """Huffman code lengths of at most ``limit`` bits, 0 for symbols never used.

    See :func:`flowtrace_gpu.kernels.numba.huffman.code_lengths`.
    """
    from ..kernels.numba import huffman as numba_huffman

    return numba_huffman.code_lengths(np.asarray(freqs, dtype=np.int64), limit)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical codes of ``lengths`` (RFC 1951, 3.2.2), bit-reversed for LSB-first packing.

    Codes of one length are consecutive in symbol order, and each length's
    first code follows the last of the length before, shifted left.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    bl_count = np.bincount(lengths, minlength=16)
    bl_count[0] = 0
    first = np.zeros(16, np.int64)
    for bits in range(1, 16):
        first[bits] = (first[bits - 1] + bl_count[bits - 1]) << 1
    order = np.lexsort((np.arange(lengths.size), lengths))  # by length, then symbol
    order = order[lengths[order] > 0]
    rank = np.arange(order.size) - np.searchsorted(lengths[order], lengths[order])
    code = first[lengths[order]] + rank
    reversed_ = np.zeros(order.size, np.int64)
    for bit in range(15):
        reversed_ |= ((code >> bit) & 1) << (lengths[order] - 1 - bit).clip(0)
    reversed_ &= (1 << lengths[order]) - 1
    codes = np.zeros(lengths.size, np.uint32)
    codes[order] = reversed_
    return codes


def _run_lengths(lengths) -> list:
    """(symbol, extra value) pairs that send ``lengths`` with the code-length alphabet."""
    out = []
    i, n = 0, len(lengths)
    while i < n:
        value = int(lengths[i])
        run = 1
        while i + run < n and lengths[i + run] == value:
            run += 1
        i += run
        if value == 0:
            while run >= 11:
                r = min(run, 138)
                out.append((18, r - 11))
                run -= r
            if run >= 3:
                out.append((17, run - 3))
                run = 0
        else:
            out.append((value, 0))
            run -= 1
            while run >= 3:
                r = min(run, 6)
                out.append((16, r - 3))
                run -= r
        out.extend([(value, 0)] * run)
    return out


class HuffmanBlock:
    """The code of one literal block for a byte histogram: its header, and its size."""

    def __init__(self, hist):
        freqs = np.zeros(257, np.int64)
        freqs[:256] = hist
        freqs[_EOB] = 1
        self.lengths = code_lengths(freqs, 15)
        self.codes = canonical_codes(self.lengths)
        # Two distance codes of one bit, never used (as zlib writes them).
        seq = _run_lengths(list(self.lengths) + [1, 1])
        cl_freqs = np.bincount([s for s, _ in seq], minlength=19)
        cl_lengths = code_lengths(cl_freqs, 7)
        cl_codes = canonical_codes(cl_lengths)
        hclen = max(4, max(k + 1 for k, s in enumerate(_CL_ORDER) if cl_lengths[s]))
        # BFINAL = 1, BTYPE = 2 (dynamic), HLIT = 257 - 257, HDIST = 2 - 1, HCLEN.
        fields = [(1, 1), (2, 2), (0, 5), (1, 5), (hclen - 4, 4)]
        fields += [(int(cl_lengths[s]), 3) for s in _CL_ORDER[:hclen]]
        for sym, extra in seq:
            fields.append((int(cl_codes[sym]), int(cl_lengths[sym])))
            if sym in _CL_EXTRA:
                fields.append((extra, _CL_EXTRA[sym]))
        self.head_values = np.array([v for v, _ in fields], np.uint32)
        self.head_bits = np.array([b for _, b in fields], np.uint32)
        data_bits = int(np.dot(np.asarray(hist, np.int64), self.lengths[:256]))
        self.bits = int(self.head_bits.sum()) + data_bits + int(self.lengths[_EOB])

    def stream_size(self) -> int:
        """Bytes of its zlib stream: header, the block, Adler-32."""
        return 2 + (self.bits + 7) // 8 + 4


def literal_ratio(hist) -> float:
    """Bytes per counted byte of the counted bytes Huffman-coded, header left out.

    Each byte's length in the 15-bit-limited Huffman code of ``hist`` itself:
    what :class:`HuffmanBlock` spends on the data (its code also holds the
    end-of-block symbol, which may lengthen a code by a bit), without the
    header (a few hundred bytes). On a sample of an image, what coding the
    image would cost per byte, up to the sample's noise.
    """
    hist = np.asarray(hist, dtype=np.int64)
    total = int(hist.sum())
    if total == 0:
        return 1.0
    return float(np.dot(hist, code_lengths(hist, 15)) / 8 / total)


def huffman_zlib(data, adler32=None, block=None) -> np.ndarray:
    """zlib stream of ``data`` (bytes or a buffer) as one Huffman-coded literal block.

    Parameters
    ----------
    data : bytes-like
        The bytes to compress.
    adler32 : callable, optional
        ``adler32(buffer) -> int`` (zlib's by default).
    block : HuffmanBlock, optional
        The code, if already built from the data's histogram.

    Returns
    -------
    ndarray of uint8
        The stream (what ``zlib.decompress`` inflates to ``data``).
    """
    from ..kernels.numba import huffman as numba_huffman  # Numba: imported when first needed

    raw = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    even = raw.size - raw.size % 2
    pairs = raw[:even].view(np.uint16) if raw.ctypes.data % 2 == 0 else raw[:even].copy().view(
        np.uint16)  # little-endian: byte a then b is a | b << 8 (see png._verdict)
    if block is None:
        block = HuffmanBlock(numba_huffman.histogram(raw))
    lengths = block.lengths[:256].astype(np.uint32)
    table = numba_huffman.pair_table(block.codes[:256], lengths)
    # 4 bytes before the block's words: the 2-byte zlib header goes right before it.
    words = np.empty(1 + block.bits // 32 + 2, np.uint32)
    nbytes = numba_huffman.encode(pairs, raw[even:], table, block.codes[:256], lengths,
                                  block.head_values, block.head_bits, int(block.codes[_EOB]),
                                  int(block.lengths[_EOB]), words[1:])
    out = words.view(np.uint8)[2:4 + nbytes + 4]
    out[:2] = (0x78, 0x01)  # deflate, 32 KiB window, no dictionary, check bits
    if adler32 is None:
        adler32 = zlib.adler32
    out[-4:] = np.frombuffer(struct.pack(">I", adler32(raw)), np.uint8)
    return out
