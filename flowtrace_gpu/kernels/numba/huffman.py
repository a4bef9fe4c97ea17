"""Deflate of bytes that LZ77 cannot shorten: the loops of one Huffman-coded literal block.

Noisy 8-bit images (the pathline images of a noisy recording, tinted RGB
above all) give LZ77 almost nothing to match; what they do give is a skewed
byte histogram. zlib's ``Z_HUFFMAN_ONLY`` strategy codes exactly that, but
zlib, zlib-ng and ISA-L at level 1 spend most of their time looking for
matches or tallying one symbol at a time. Here the histogram is one pass
and the coding another, two bytes per step from a table of code pairs,
with no branch in the loop (the flush of a full 32-bit word is
arithmetic). The stream is a standard deflate block (RFC 1951,
``BTYPE = 2``); the block header is built by :mod:`flowtrace_gpu.io.huffman`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_LOW32 = np.uint64(0xFFFFFFFF)
#: A pair's entry: its two codes in the low 56 bits, their total length above.
_LEN_SHIFT = np.uint64(56)
_CODE_MASK = np.uint64((1 << 56) - 1)


@njit(cache=True, nogil=True)
def histogram(data):
    """Count of each byte value in ``data`` (uint8), as int64[256].

    Four tables, so that runs of equal bytes do not wait on one counter.
    """
    h = np.zeros((4, 256), np.int64)
    n = data.shape[0]
    stop = n - n % 4
    for i in range(0, stop, 4):
        h[0, data[i]] += 1
        h[1, data[i + 1]] += 1
        h[2, data[i + 2]] += 1
        h[3, data[i + 3]] += 1
    for i in range(stop, n):
        h[0, data[i]] += 1
    return h[0] + h[1] + h[2] + h[3]


@njit(cache=True, nogil=True)
def code_lengths(counts, limit):
    """Huffman code lengths of at most ``limit`` bits for ``counts`` (0: symbol unused).

    The optimal code by the two-queue method (leaves sorted by count;
    merged nodes come out in order of weight). Where it is deeper than
    ``limit``, the deepest codes are moved up to ``limit`` and the code is
    made complete again by deepening the shallowest codes that can take it
    (miniz's ``tdefl_huffman_enforce_max_code_size``); the lengths then go
    to the symbols by count, the most frequent the shortest. At least two
    symbols get a code, as zlib does, so that no inflater meets a
    one-symbol code. Ties go the same way every time.
    """
    n = counts.shape[0]
    c = counts.astype(np.int64)
    used = np.flatnonzero(c > 0)
    k = 0
    while used.shape[0] < 2:  # a symbol never sent keeps the code complete
        while c[k] != 0:
            k += 1
        c[k] = 1
        used = np.flatnonzero(c > 0)
    m = used.shape[0]
    order = used[np.argsort(c[used], kind="mergesort")]  # by count, then symbol
    weight = np.empty(2 * m - 1, np.int64)
    parent = np.zeros(2 * m - 1, np.int64)
    weight[:m] = c[order]
    leaf = 0
    node = m  # next internal node to merge; internal nodes are made in weight order
    for new in range(m, 2 * m - 1):
        pick = np.empty(2, np.int64)
        for r in range(2):
            if leaf < m and (node >= new or weight[leaf] <= weight[node]):
                pick[r] = leaf
                leaf += 1
            else:
                pick[r] = node
                node += 1
        weight[new] = weight[pick[0]] + weight[pick[1]]
        parent[pick[0]] = new
        parent[pick[1]] = new
    depth = np.zeros(2 * m - 1, np.int64)
    for v in range(2 * m - 3, -1, -1):
        depth[v] = depth[parent[v]] + 1
    lengths = np.zeros(n, np.int64)
    deepest = 0
    for i in range(m):
        lengths[order[i]] = depth[i]
        deepest = max(deepest, depth[i])
    if deepest <= limit:
        return lengths
    per_length = np.zeros(limit + 1, np.int64)
    for i in range(m):
        per_length[min(depth[i], limit)] += 1
    total = 0
    for i in range(1, limit + 1):
        total += per_length[i] << (limit - i)
    while total > 1 << limit:  # Kraft's sum over 1: one leaf at the limit less
        per_length[limit] -= 1
        for i in range(limit - 1, 0, -1):
            if per_length[i]:  # a leaf at depth i becomes two at depth i + 1
                per_length[i] -= 1
                per_length[i + 1] += 2
                break
        total -= 1
    # Most frequent first, shortest lengths first.
    i = m - 1
    for bits in range(1, limit + 1):
        for _ in range(per_length[bits]):
            lengths[order[i]] = bits
            i -= 1
    return lengths


@njit(cache=True, nogil=True)
def pair_table(codes, lengths):
    """Entry ``a | b << 8``: the codes of byte ``a`` then ``b``, and their length.

    ``codes`` are bit-reversed (deflate packs a Huffman code from its first
    bit, into each byte from the least significant bit up) and at most 15
    bits long, so a pair fits 30 bits.
    """
    table = np.empty(65536, np.uint64)
    for a in range(256):
        ca = np.uint64(codes[a])
        la = np.uint64(lengths[a])
        for b in range(256):
            table[a | (b << 8)] = (ca | (np.uint64(codes[b]) << la)) | (
                (la + np.uint64(lengths[b])) << _LEN_SHIFT)
    return table


@njit(cache=True, nogil=True)
def _put(out, o, acc, nb, value, bits):
    """Append ``bits`` bits of ``value``; flush whole 32-bit words. Returns (o, acc, nb)."""
    acc |= np.uint64(value) << nb
    nb += np.uint64(bits)
    while nb >= 32:
        out[o] = np.uint32(acc & _LOW32)
        acc >>= np.uint64(32)
        nb -= np.uint64(32)
        o += 1
    return o, acc, nb


@njit(cache=True, nogil=True)
def encode(pairs, last, table, codes, lengths, head_values, head_bits, tail_value, tail_bits,
           out):
    """Write ``head``, the code of every byte of ``pairs`` then ``last``, then ``tail``.

    Parameters
    ----------
    pairs : ndarray of uint16
        The bytes to code, two at a time (a little-endian view).
    last : ndarray of uint8, shape (0,) or (1,)
        An odd last byte.
    table : ndarray of uint64, shape (65536,)
        :func:`pair_table` of the code.
    codes, lengths : ndarray of uint32, shape (256,)
        Each byte's reversed code and its length (for ``last``).
    head_values, head_bits : ndarray of uint32
        Fields written before the data (the block header), LSB first.
    tail_value, tail_bits : int
        The field written after (the end-of-block code).
    out : ndarray of uint32
        Little-endian words, large enough for every bit (the caller counts them).

    Returns
    -------
    int
        Bytes of ``out`` written (the last zero-padded).
    """
    o = np.int64(0)  # not a literal 0: Numba would compile _put for it too
    acc = np.uint64(0)
    nb = np.uint64(0)
    for k in range(head_values.shape[0]):
        o, acc, nb = _put(out, o, acc, nb, head_values[k], head_bits[k])
    # Coding two bytes in two interleaved chains (halves of the data) measured no faster.
    for i in range(pairs.shape[0]):
        e = table[pairs[i]]
        acc |= (e & _CODE_MASK) << nb  # nb < 32 and a pair < 31 bits: no overflow
        nb += e >> _LEN_SHIFT
        out[o] = np.uint32(acc & _LOW32)  # written every time; kept when full
        full = nb >> np.uint64(5)  # 1 when nb >= 32 (nb < 64)
        shift = full << np.uint64(5)
        o += np.int64(full)
        acc >>= shift
        nb -= shift
    for i in range(last.shape[0]):
        o, acc, nb = _put(out, o, acc, nb, codes[last[i]], lengths[last[i]])
    o, acc, nb = _put(out, o, acc, nb, tail_value, tail_bits)
    out[o] = np.uint32(acc & _LOW32)
    return 4 * o + (np.int64(nb) + 7) // 8
