"""Phantom ``.cine`` recordings (Vision Research), read one frame at a time.

Written from the documented file layout (field offsets as transcribed by
PIMS and pycine). A file is a ``CINEFILEHEADER`` (44 bytes), a
``BITMAPINFOHEADER`` (40), a ``SETUP`` block, an int64 table of image
offsets, and per image: a ``uint32`` annotation size, the annotation (whose
last 4 bytes give the image size), the pixels. Read here:

============================  =======================  ===========================
``Compression`` (file)        pixels (``biCompression``) frames out
============================  =======================  ===========================
0: gray or camera-made color   0: 8/16-bit gray,          (H, W) uint8/uint16, or
                               24/48-bit BGR              (H, W, 3) RGB
0: gray                        256: packed 10-bit "P10",  (H, W) uint16
                               1024: packed 12-bit "12L"
2: raw Bayer (``CFA`` 3-6)     any of 0 (8/16 bit), 256,  (H, W, 3) RGB, demosaiced
                               1024                       (:mod:`~flowtrace_gpu.io.bayer`)
============================  =======================  ===========================

* P10 codes go through Phantom's 10 -> 12-bit linearization table
  (:mod:`~flowtrace_gpu.io.phantom_p10`); 12L is the bit order of Photron's
  12-bit MRAW (:func:`~flowtrace_gpu.io.packed.unpack_12bit`).
* Unpacked (8/16/24/48-bit) frames are stored bottom-up where
  ``biHeight > 0`` and are flipped; packed frames are stored top-down.
* The ``CFA`` code names the Bayer pattern of the first *stored* row
  (3 GBRG, 4 RGGB, 5 GRBG, 6 BGGR). Flipping a bottom-up frame of even height
  puts the pattern's second row on top, so the pattern used is swapped then.
* ``bit_depth`` is ``RealBPP`` (12 after the P10 table; None where it is
  absent or more than the samples hold).

Every offset and size in the headers is checked against the file's size
before anything is allocated or read. JPEG-compressed files
(``Compression == 1``), other packings and other CFA codes are refused with
a message naming the file.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import FlowtraceError
from .bayer import demosaic, swap_rows
from .packed import unpack_10bit, unpack_12bit
from .phantom_p10 import P10_TO_12BIT
from .recording import RecordingSource, region_rows

#: ``<`` little-endian, as the format documents. Field order of CINEFILEHEADER.
CINE_HEADER = struct.Struct("<2sHHHiIiIIIIQ")
BITMAP_HEADER = struct.Struct("<IiiHHIIiiII")
# SETUP fields used, as byte offsets into the packed SETUP structure; read
# only where its ``Length`` field says they are present.
_SETUP_LENGTH = 142     # uint16: bytes of SETUP present
_SETUP_FRAMERATE16 = 0  # uint16: older frame-rate field
_SETUP_FRAMERATE = 768  # uint32
_SETUP_CFA = 808        # uint32: color filter array code
_SETUP_REALBPP = 896    # uint32: significant bits per pixel

_RAW_BAYER = 2
#: biCompression -> packing, and the 16-bit containers they fill.
_P10, _P12L = 256, 1024
#: CFA code -> Bayer pattern of the first stored row.
CFA_PATTERNS = {3: "GBRG", 4: "RGGB", 5: "GRBG", 6: "BGGR"}

_SCOPE = (
    "this reader takes 8/16-bit gray, 24/48-bit color, packed 10-bit (P10) or 12-bit (12L) "
    "and raw Bayer (CFA GBRG/RGGB/GRBG/BGGR) cine files; export other kinds to TIFF in PCC"
)


class CineSource(RecordingSource):
    """The frames of a Phantom ``.cine`` file (see the module notes).

    Parameters
    ----------
    path : path-like
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.

    Attributes
    ----------
    fps : float or None
        Frame rate from the SETUP block.
    bit_depth : int or None
        Significant bits per pixel (``RealBPP``; 12 for P10 files).
    pattern : str or None
        Bayer pattern of the frames as returned (top row first) for raw
        Bayer files, else None.
    """

    kind = "a Phantom cine"
    fix = "the file is truncated or corrupt; copy it again from the camera or export it in PCC"

    def __init__(self, path, frames_to_skip: int = 1):
        super().__init__(path, frames_to_skip)
        with self._opening(), open(self.path, "rb") as fh:
            self._size = os.fstat(fh.fileno()).st_size
            count = self._parse(fh)
            self._image_bytes(fh, 0)  # the first image's sizes, checked before any output
            self._set_count(count)

    def _bad(self, why: str) -> FlowtraceError:
        """A file of a kind this reader does not take."""
        return FlowtraceError(f"cannot read {self.path} as a Phantom cine: {why}; {_SCOPE}")

    def _read_at(self, fh, offset: int, nbytes: int, what: str) -> bytes:
        """``nbytes`` at ``offset``, after checking that the file holds them.

        A corrupt size or offset raises ValueError, which the reader's boundary
        (``_opening``/``_decoding``) turns into the FlowtraceError naming the file.
        """
        if offset < 0 or nbytes < 0 or offset + nbytes > self._size:
            raise ValueError(
                f"its {what} ({nbytes} bytes at offset {offset}) lies beyond the end of the "
                f"{self._size}-byte file"
            )
        fh.seek(offset)
        return fh.read(nbytes)

    def _parse(self, fh) -> int:
        head = self._read_at(fh, 0, CINE_HEADER.size, "file header")
        if head[:2] != b"CI":
            raise self._bad("it does not start with the 'CI' signature")
        (_, _, compression, _, _, _, first_image_no, count, off_bitmap, off_setup, off_offsets,
         trigger_time) = CINE_HEADER.unpack(head)
        #: Number of the first image stored, counted from the trigger (image 0), and the
        #: trigger's time (TIME64: 32-bit seconds since 1970 above 32 bits of fraction).
        self.first_image_no = int(first_image_no)
        self.trigger_time = (trigger_time >> 32) + (trigger_time & 0xFFFFFFFF) / 2.0**32
        if compression == 1:
            raise self._bad("it is JPEG-compressed")
        if compression not in (0, _RAW_BAYER):
            raise self._bad(f"unknown Compression {compression}")
        (_, width, height, _, bits, packing, _, _, _, _, _) = BITMAP_HEADER.unpack(
            self._read_at(fh, off_bitmap, BITMAP_HEADER.size, "bitmap header"))
        if count < 1 or width < 1 or height == 0:
            raise ValueError(f"it announces {count} images of {width}x{height}")
        self.fps, cfa, real_bpp = self._setup(fh, off_setup)
        self._layout(compression, packing, bits, cfa, width, height)
        # RealBPP beyond the samples' bits is a corrupt field: ignored, as where it is absent.
        plausible = 1 <= real_bpp <= 8 * self.dtype.itemsize
        self.bit_depth = 12 if packing == _P10 else (int(real_bpp) if plausible else None)
        table = self._read_at(fh, off_offsets, 8 * count, "image offset table")
        self._offsets = np.frombuffer(table, dtype="<i8").astype(np.int64)
        # Every image's smallest extent (annotation size, image size, pixels) inside the
        # file; compared without adding to the offsets, which may be near int64's limit.
        past_end = (self._offsets < 0) | (self._offsets > self._size - 8 - self._pixel_bytes)
        if past_end.any():
            first = int(np.argmax(past_end))
            raise ValueError(f"image {first} lies beyond the end of the file, at offset "
                             f"{int(self._offsets[first])}")
        return count

    def _layout(self, compression, packing, bits, cfa, width, height) -> None:
        """Pixel storage, frame shape, dtype and Bayer pattern from the headers, or a refusal."""
        raw_bayer = compression == _RAW_BAYER
        rows = abs(height)
        if packing in (_P10, _P12L):
            if bits != 16:
                raise self._bad(f"its packed pixels come in a {bits}-bit container, not 16")
            self._packing = packing
            # The bit stream's bytes; a last partial group is zero-completed on unpacking.
            self._pixel_bytes = -(-rows * width * (10 if packing == _P10 else 12) // 8)
            dtype, channels = np.uint16, 1
        elif packing == 0:
            if bits not in ((8, 16) if raw_bayer else (8, 16, 24, 48)):
                raise self._bad(f"it has {bits} bits per pixel")
            self._packing = 0
            self._pixel_bytes = rows * width * bits // 8
            dtype, channels = (np.uint8 if bits in (8, 24) else np.uint16), (3 if bits in (24, 48) else 1)
        else:
            raise self._bad(f"its pixels are packed as biCompression {packing}")
        # Unpacked frames are stored bottom-up unless biHeight < 0; packed ones top-down.
        self._bottom_up = packing == 0 and height > 0
        self.pattern = self._bayer_pattern(cfa, width, rows) if raw_bayer else None
        self._channels = channels
        self._stored_shape = (rows, width) + ((3,) if channels == 3 else ())
        self.dtype = np.dtype(dtype)
        self.frame_shape = (rows, width, 3) if raw_bayer else self._stored_shape

    def _bayer_pattern(self, cfa: int, width: int, rows: int) -> str:
        """The pattern of the frames as returned: the CFA's, row-swapped by an even flip."""
        if cfa & 0xFFFFFF00:
            raise self._bad(f"its CFA code {cfa:#x} marks gray sensor areas (multi-head camera)")
        if cfa not in CFA_PATTERNS:
            raise self._bad(f"its raw Bayer CFA code is {cfa}, not one of 3, 4, 5, 6")
        if rows < 2 or width < 2:
            raise self._bad(f"its raw Bayer frames are {width}x{rows}, smaller than 2x2")
        pattern = CFA_PATTERNS[cfa]
        # Flipped, stored row H-1 comes first: it has the CFA's second row when H is even.
        return swap_rows(pattern) if self._bottom_up and rows % 2 == 0 else pattern

    def _setup(self, fh, off_setup) -> tuple[float | None, int, int]:
        """Frame rate (or None), CFA code and RealBPP (0 where absent)."""
        if off_setup < 0 or off_setup >= self._size:
            raise ValueError(f"its SETUP offset {off_setup} lies beyond the end of the file")
        fh.seek(off_setup)
        setup = fh.read(_SETUP_REALBPP + 4)  # read() stops at the end of the file
        if len(setup) < _SETUP_LENGTH + 2:
            return None, 0, 0
        length = struct.unpack_from("<H", setup, _SETUP_LENGTH)[0]

        def field(offset, fmt):
            size = struct.calcsize(fmt)
            if length >= offset + size and len(setup) >= offset + size:
                return struct.unpack_from(fmt, setup, offset)[0]
            return 0

        rate = field(_SETUP_FRAMERATE, "<I") or field(_SETUP_FRAMERATE16, "<H")
        return (float(rate) if rate else None), field(_SETUP_CFA, "<I"), field(_SETUP_REALBPP, "<I")

    def _open_pass(self):
        return open(self.path, "rb")  # one handle for the pass, on the reader thread

    def _image_extent(self, fh, raw: int) -> tuple[int, int]:
        """(offset, bytes) of image ``raw``'s pixels, its annotation and sizes checked."""
        start = int(self._offsets[raw])
        (annotation,) = struct.unpack("<I", self._read_at(fh, start, 4, f"image {raw} header"))
        if annotation < 8:
            raise ValueError(f"image {raw} has an annotation of {annotation} bytes, less than 8")
        (image_size,) = struct.unpack(
            "<I", self._read_at(fh, start + annotation - 4, 4, f"image {raw} size"))
        if image_size < self._pixel_bytes:
            raise ValueError(f"image {raw} is {image_size} bytes, expected {self._pixel_bytes}")
        if start + annotation + image_size > self._size:
            raise ValueError(
                f"its image {raw} ({image_size} bytes at offset {start + annotation}) lies beyond "
                f"the end of the {self._size}-byte file")
        return start + annotation, image_size

    def _image_bytes(self, fh, raw: int) -> bytes:
        """Image ``raw``'s stored bytes, its annotation and sizes checked against the file."""
        offset, image_size = self._image_extent(fh, raw)
        return self._read_at(fh, offset, image_size, f"image {raw}")

    def _pixels(self, fh, raw: int, rows: tuple[int, int] | None = None) -> np.ndarray:
        """Image ``raw``'s samples as stored, unpacked and in top-down order.

        ``rows`` = ``(first, stop)``: only those rows (of the frame as
        returned, top row first) are read and unpacked.
        """
        offset, image_size = self._image_extent(fh, raw)
        height, width = self._stored_shape[:2]
        first, stop = (0, height) if rows is None else rows
        if self._packing in (_P10, _P12L):
            # One bit stream, top-down: start at the group holding the first pixel needed.
            group, group_bytes = (4, 5) if self._packing == _P10 else (2, 3)
            pixel = first * width
            lead = pixel - pixel % group
            count = stop * width - lead
            skip = lead // group * group_bytes
            nbytes = min(-(-count // group) * group_bytes, self._pixel_bytes - skip)
            data = self._read_at(fh, offset + skip, nbytes, f"image {raw}")
            if self._packing == _P10:
                flat = unpack_10bit(data, (count,), P10_TO_12BIT)
            else:
                flat = unpack_12bit(data, (count,))
            return flat[pixel - lead:].reshape(stop - first, width)
        stride = image_size // height  # rows may be padded
        row_bytes = self._pixel_bytes // height
        # Bottom-up files store the frame's row y as row height-1-y.
        stored_first = height - stop if self._bottom_up else first
        data = self._read_at(fh, offset + stored_first * stride, (stop - first) * stride,
                             f"image {raw}")
        pixels = np.frombuffer(data, np.uint8).reshape(stop - first, stride)[:, :row_bytes]
        shape = (stop - first,) + self._stored_shape[1:]
        frame = pixels.copy().view(self.dtype.newbyteorder("<")).reshape(shape)
        frame = frame.astype(self.dtype, copy=False)
        if self._bottom_up:
            frame = frame[::-1]
        if self._channels == 3:
            frame = frame[..., ::-1]  # stored BGR
        return np.ascontiguousarray(frame)

    def _read_raw(self, fh, raw: int, region=None) -> np.ndarray:
        if self.pattern is None:
            return self._pixels(fh, raw, region_rows(region, self._stored_shape[0]))
        if region is None:
            return demosaic(self._pixels(fh, raw), self.pattern)
        # Demosaic only the crop plus the one photosite around it each pixel's colors
        # come from; started on an even row and column, so the pattern's phase is kept.
        # Where the margin meets the frame's edge, the demosaic mirrors as the whole
        # frame's does.
        top, left, height, width = region
        rows, columns = self._stored_shape[:2]
        first, stop = max(0, top - 1) & ~1, min(rows, top + height + 1)
        lead, end = max(0, left - 1) & ~1, min(columns, left + width + 1)
        rgb = demosaic(self._pixels(fh, raw, (first, stop))[:, lead:end], self.pattern)
        return np.ascontiguousarray(
            rgb[top - first:top - first + height, left - lead:left - lead + width])

    def mosaic(self, raw: int) -> np.ndarray:
        """The Bayer mosaic of image ``raw`` (index in the file), top row first.

        Unpacked, linearized (P10) and flipped (bottom-up files) but not
        demosaiced; its pattern is :attr:`pattern`.
        """
        if self.pattern is None:
            raise FlowtraceError(f"{self.path} is not a raw Bayer cine; it has no mosaic")
        if not 0 <= raw < self.n_raw:
            raise FlowtraceError(f"{self.path} holds images 0..{self.n_raw - 1}, not {raw}")
        with self._decoding(raw), open(self.path, "rb") as fh:
            return self._pixels(fh, raw)
