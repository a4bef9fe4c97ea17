"""A minimal, fast PNG encoder for 8-bit gray and RGB images.

PNG's cost is deflate, and Pillow's default (zlib level 6, as the original)
is the slowest choice. This encoder writes filter type 0 rows and, per image
(:func:`_verdict` on a probe): stores them when nothing would shorten them
much (straight from the pixels, :func:`stored_rows_zlib`), codes
noisy images, which LZ77 barely shortens, with a Huffman code of their bytes
alone (:mod:`flowtrace_gpu.io.huffman`), and deflates the rest with ISA-L
(``isal``) at level 1, or zlib at ``level``. The result is a standard PNG
(zlib stream in IDAT, CRCs) that every reader opens; none of this changes a
pixel, only file size. Figures: ``python bench/bench_png.py``; why: docs/design/png.md.
"""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np

from .. import config
from . import huffman

try:  # ISA-L: deflate several times faster than zlib level 1 (bench/bench_png.py)
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal is a dependency; wheels may be missing
    _isal = None

# ISA-L's checksums: the same values as zlib's, several times faster.
_crc32 = _isal.crc32 if _isal is not None else zlib.crc32
_adler32 = _isal.adler32 if _isal is not None else zlib.adler32

# The Huffman coder writes 32-bit words in the machine's order; deflate's is little-endian.
_LITTLE_ENDIAN = sys.byteorder == "little"

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 3: 2, 4: 6}  # channels -> PNG color type (gray, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", _crc32(data, _crc32(kind)))


# Whether deflate pays is decided on a probe from the image's middle: the
# settings "png_probe_bytes" and "png_store_above" (config.py). Sparse
# images (the original's sample outputs deflate to ~50 %) are deflated.


#: Bytes per stored deflate block (the format's maximum).
_STORED_BLOCK = 65535


def stored_zlib(data) -> np.ndarray:
    """zlib stream of ``data`` in stored (uncompressed) deflate blocks.

    What ``zlib.compress(data, 0)`` makes, built with one NumPy copy instead
    (which runs without the GIL, so writer threads do not hold up compute).
    """
    raw = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    size = raw.size
    nfull, rest = divmod(size, _STORED_BLOCK)
    nblocks = nfull + (rest > 0 or size == 0)
    out = np.empty(2 + size + 5 * nblocks + 4, np.uint8)
    out[:2] = (0x78, 0x01)  # deflate, 32 KiB window, no dictionary, check bits
    if nfull:
        blocks = out[2:2 + nfull * (_STORED_BLOCK + 5)].reshape(nfull, _STORED_BLOCK + 5)
        blocks[:, :5] = (0, 0xFF, 0xFF, 0, 0)  # BFINAL=0, LEN=65535, NLEN=~LEN
        blocks[:, 5:] = raw[:nfull * _STORED_BLOCK].reshape(nfull, _STORED_BLOCK)
    if nblocks > nfull:
        pos = 2 + nfull * (_STORED_BLOCK + 5)
        out[pos:pos + 5] = (1, rest & 0xFF, rest >> 8, ~rest & 0xFF, (~rest >> 8) & 0xFF)
        out[pos + 5:pos + 5 + rest] = raw[nfull * _STORED_BLOCK:]
    if nfull and nblocks == nfull:
        out[2 + (nfull - 1) * (_STORED_BLOCK + 5)] = 1  # the last full block is final
    out[-4:] = np.frombuffer(struct.pack(">I", _adler32(raw)), np.uint8)
    return out


def isal_stream(data, level: int = 1) -> bytes:
    """zlib stream of ``data`` by ISA-L at ``level`` (1-3): the same bytes in every run.

    python-isal's ``isal_zlib.compress`` is not a function of its data
    alone: ISA-L's level 1-2 matcher (``igzip_icf_body_h1_gr_bt.asm``,
    ``.write_first_byte``; ISA-L 2.32.1 as python-isal 1.9 bundles it, and
    its source of July 2026), starting a stream without history, hashes the
    third byte's position from the address of its state instead of the
    data, so where the caller's stack lies (the thread, the process's
    address layout) decides whether a few matches near the start are found:
    a valid stream, different bytes (tests/io/test_png.py shows both). A stream
    that starts with history skips that path, so the first byte goes in a
    stored block of its own and is ISA-L's dictionary for the rest: the
    window spans blocks, every reader inflates it, and it costs 6 bytes.
    """
    view = memoryview(data).cast("B")
    if len(view) < 2:
        return zlib.compress(view, level)
    compressor = _isal.compressobj(level, _isal.DEFLATED, -15, zdict=view[:1])
    # zlib header (deflate, 32 KiB window, "fast"), then a stored block holding the first
    # byte: BFINAL 0, BTYPE 00, padding, LEN 1, NLEN.
    return b"".join((b"\x78\x5e\x00\x01\x00\xfe\xff", view[:1], compressor.compress(view[1:]),
                     compressor.flush(), struct.pack(">I", _adler32(view))))


#: Pieces a probe is made of, spread over the image.
_PROBE_PIECES = 4


def _probe(view: memoryview, nbytes: int) -> bytes:
    """``nbytes`` of ``view`` in :data:`_PROBE_PIECES` pieces, each from the middle of its quarter.

    One piece from the image's middle misjudged images whose texture varies
    across the frame: the color_series images of the end-to-end movie are
    more compressible in the middle (0.895 of their size there, 0.909 over
    the whole image, against the 0.9 line of ``png_store_above``).
    """
    step, piece = len(view) // _PROBE_PIECES, nbytes // _PROBE_PIECES
    return b"".join(view[k * step + (step - piece) // 2:][:piece] for k in range(_PROBE_PIECES))


def png_rows(pixels: np.ndarray) -> np.ndarray:
    """The PNG rows of ``pixels`` (height, row bytes): filter byte 0, then each row."""
    rows = np.empty((pixels.shape[0], pixels.shape[1] + 1), np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = pixels
    return rows


def _probe_rows(pixels: np.ndarray, nbytes: int) -> bytes:
    """:func:`_probe` of the PNG rows of ``pixels``, gathered without building the rows."""
    height, width = pixels.shape
    row = width + 1
    step, piece = height * row // _PROBE_PIECES, nbytes // _PROBE_PIECES
    parts = []
    for k in range(_PROBE_PIECES):
        start = k * step + (step - piece) // 2
        first, last = start // row, (start + piece - 1) // row + 1
        rows = png_rows(pixels[first:last])
        parts.append(rows.reshape(-1)[start - first * row:][:piece].tobytes())
    return b"".join(parts)


def _wants_probe(nbytes: int, level: int) -> bool:
    """Whether data of ``nbytes`` at ``level`` is probed before it is coded."""
    return _isal is not None and 1 <= level <= 3 and nbytes > 4 * config.get("png_probe_bytes")


def _verdict(sample, level: int) -> str:
    """How to code data whose probe is ``sample`` (None: not probed).

    ``'stored'``, ``'huffman'`` (literals only) or ``'deflate'`` (LZ77). At
    levels 1-3 with ISA-L, a 64 KiB probe (:func:`_probe`) decides: data
    that neither LZ77 nor a Huffman code would shorten is stored (deflate
    level 0), and data that a Huffman code of its bytes alone shortens about
    as much as LZ77 does (noisy images) is coded so, without LZ77
    (:mod:`flowtrace_gpu.io.huffman`). Every zlib reader inflates all three.
    """
    if level == 0:
        return "stored"
    if sample is None:
        return "deflate"
    from ..kernels.numba import huffman as numba_huffman  # Numba loads with the first large image

    lz77 = len(isal_stream(sample, level)) / len(sample)
    literal = huffman.literal_ratio(numba_huffman.histogram(np.frombuffer(sample, np.uint8)))
    if min(lz77, literal) > config.get("png_store_above"):
        return "stored"
    if _LITTLE_ENDIAN and literal <= lz77 * (1 + config.get("png_literal_within")):
        return "huffman"
    return "deflate"


def _code(view: memoryview, verdict: str, level: int, stored):
    """zlib stream of ``view`` as ``verdict`` says; ``stored()`` makes its stored form."""
    if verdict == "stored":
        return stored()
    if verdict == "huffman":
        from ..kernels.numba import huffman as numba_huffman

        block = huffman.HuffmanBlock(numba_huffman.histogram(np.frombuffer(view, np.uint8)))
        if block.stream_size() > config.get("png_store_above") * len(view):
            return stored()
        return huffman.huffman_zlib(view, adler32=_adler32, block=block)
    if _isal is not None and level <= 3:
        return isal_stream(view, level)
    return zlib.compress(view, level)


def stored_rows_zlib(pixels: np.ndarray) -> np.ndarray:
    """zlib stream of the PNG rows of ``pixels`` (filter byte 0, then each row), stored.

    The same data as ``stored_zlib(rows)``, built without the rows: each
    stored block holds whole rows (as many as fit in 65535 bytes), so the
    blocks' data is a strided view that one NumPy copy fills straight from
    the pixels, and the Adler-32 runs block by block over what was just
    written. A row longer than a block goes through :func:`stored_zlib`.

    Parameters
    ----------
    pixels : numpy.ndarray of uint8, shape (height, row bytes)
        Each row's bytes as the PNG holds them (16-bit samples big-endian).
    """
    height, width = pixels.shape
    row = width + 1
    per_block = _STORED_BLOCK // row
    if per_block == 0 or height == 0:
        return stored_zlib(png_rows(pixels).reshape(-1))
    nfull, rest = divmod(height, per_block)
    sizes = [per_block] * nfull + ([rest] if rest else [])
    out = np.empty(2 + 5 * len(sizes) + height * row + 4, np.uint8)
    out[:2] = (0x78, 0x01)  # deflate, 32 KiB window, no dictionary, check bits
    span = 5 + per_block * row
    if nfull:  # the full blocks: (header, per_block rows) each
        blocks = out[2:2 + nfull * span].reshape(nfull, span)
        length = per_block * row
        blocks[:, :5] = (0, length & 0xFF, length >> 8, ~length & 0xFF, (~length >> 8) & 0xFF)
        body = blocks[:, 5:].reshape(nfull, per_block, row)
        body[:, :, 0] = 0
        body[:, :, 1:] = pixels[:nfull * per_block].reshape(nfull, per_block, width)
    if rest:
        length = rest * row
        tail = out[2 + nfull * span:2 + nfull * span + 5 + length]
        tail[:5] = (0, length & 0xFF, length >> 8, ~length & 0xFF, (~length >> 8) & 0xFF)
        body = tail[5:].reshape(rest, row)
        body[:, 0] = 0
        body[:, 1:] = pixels[nfull * per_block:]
    out[2 + (len(sizes) - 1) * span] = 1  # BFINAL on the last block's header
    check, pos = 1, 2
    for size in sizes:
        check = _adler32(out[pos + 5:pos + 5 + size * row], check)
        pos += 5 + size * row
    out[-4:] = np.frombuffer(struct.pack(">I", check), np.uint8)
    return out


def png_parts(image: np.ndarray, level: int = 1, compress=None) -> list:
    """The PNG file of ``image`` as a list of buffers, to be written in order.

    Kept apart so that the pixel data is never copied into one ``bytes``
    (a copy made holding the GIL); :func:`encode_png` joins them.

    Parameters
    ----------
    image : numpy.ndarray of uint8 or uint16
        Gray (H, W) or RGB(A) (H, W, C).
    level : int
        Deflate level, 0-9.
    compress : callable, optional
        ``compress(rows) -> zlib stream``, replacing :func:`deflate` (benchmarks).
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG holds uint8 or uint16 pixels, got {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    height, width = image.shape[:2]
    bit_depth = image.dtype.itemsize * 8
    # Each row: a filter-type byte (0, none) then the pixels, big-endian.
    pixels = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder(">"))
    pixels = pixels.reshape(height, -1).view(np.uint8)
    verdict = None
    if compress is None:  # decided on a probe of the rows, before the rows are built
        probe_bytes = config.get("png_probe_bytes")
        probed = _wants_probe(height * (pixels.shape[1] + 1), level)
        verdict = _verdict(_probe_rows(pixels, probe_bytes) if probed else None, level)
    if verdict == "stored":  # noisy images: the stream is built straight from the pixels
        stream = stored_rows_zlib(pixels)
    else:
        rows = png_rows(pixels)
        stream = compress(rows) if compress else _code(
            memoryview(rows).cast("B"), verdict, level, lambda: stored_rows_zlib(pixels))
    stream = memoryview(stream).cast("B")
    header = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOR_TYPE[channels], 0, 0, 0)
    return [
        _SIGNATURE + _chunk(b"IHDR", header) + struct.pack(">I", len(stream)) + b"IDAT",
        stream,
        struct.pack(">I", _crc32(stream, _crc32(b"IDAT"))) + _chunk(b"IEND", b""),
    ]


def encode_png(image: np.ndarray, level: int = 1, compress=None) -> bytes:
    """Encode an 8- or 16-bit gray or RGB(A) image as PNG bytes (see :func:`png_parts`)."""
    return b"".join(png_parts(image, level, compress))
