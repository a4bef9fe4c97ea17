"""Phantom ``.cine`` recordings (Vision Research), uncompressed only.

A minimal reader written from the documented file layout, because the
Python readers on PyPI do not fit: ``pycine`` reads 16-bit files only,
rescales pixels and pulls in OpenCV; PIMS' reader needs the tagged
time-stamp blocks and brings the whole PIMS stack. Scope:

* file header ``CINEFILEHEADER`` (44 bytes) with ``Compression == 0``
  (gray, or color already interpolated by the camera software);
* ``BITMAPINFOHEADER`` with ``biCompression == 0`` (not the packed 10/12-bit
  modes) and 8 or 16 bits (gray) or 24 or 48 bits (BGR) per pixel;
* image ``i`` at ``pImage[i]`` (int64 table at ``OffImageOffsets``): a
  ``uint32`` annotation size, the annotation, the ``uint32`` image size,
  the pixels, rows bottom-up (top-down where ``biHeight < 0``).

Pixels are returned as stored: 16-bit gray keeps the camera's values (often
12 significant bits), color comes out RGB. Raw Bayer files
(``Compression == 2``), JPEG-compressed and packed files are refused with a
message suggesting an export.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import FlowtraceError
from .recording import RecordingSource

#: ``<`` little-endian, as the format documents. Field order of CINEFILEHEADER.
CINE_HEADER = struct.Struct("<2sHHHiIiIIIIQ")
BITMAP_HEADER = struct.Struct("<IiiHHIIiiII")
# SETUP fields used, as byte offsets into the packed SETUP structure (the
# documented layout, as transcribed by PIMS); read only where ``Length`` covers them.
_SETUP_LENGTH = 142   # uint16: bytes of SETUP present
_SETUP_FRAMERATE16 = 0  # uint16: older frame-rate field
_SETUP_FRAMERATE = 768  # uint32
_SETUP_REALBPP = 896    # uint32: significant bits per pixel

_COMPRESSION = {1: "JPEG-compressed", 2: "raw (uninterpolated Bayer)"}
_PACKED = {256: "packed 10-bit", 1024: "packed 12-bit"}


class CineSource(RecordingSource):
    """The frames of an uncompressed Phantom ``.cine`` file (see module notes).

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
        Significant bits per pixel (``RealBPP``), where the file gives it.
    """

    def __init__(self, path, frames_to_skip: int = 1):
        super().__init__(path, frames_to_skip)
        try:
            with open(self.path, "rb") as fh:
                self._parse(fh)
        except FlowtraceError:
            raise
        except (OSError, struct.error, ValueError) as exc:
            raise self._bad(f"its headers cannot be read ({exc})") from None

    def _bad(self, why: str) -> FlowtraceError:
        return FlowtraceError(
            f"cannot read {self.path} as a Phantom cine: {why}; this reader takes uncompressed "
            "8/16-bit gray or 24/48-bit color cine files (export other kinds to TIFF in PCC)"
        )

    def _parse(self, fh) -> None:
        head = fh.read(CINE_HEADER.size)
        if len(head) < CINE_HEADER.size or head[:2] != b"CI":
            raise self._bad("it does not start with the 'CI' signature")
        (_, _, compression, _, _, _, _, count, off_bitmap, off_setup, off_offsets, _) = \
            CINE_HEADER.unpack(head)
        if compression in _COMPRESSION:
            raise self._bad(f"it is {_COMPRESSION[compression]}")
        if compression != 0:
            raise self._bad(f"unknown Compression {compression}")
        fh.seek(off_bitmap)
        (_, width, height, _, bits, bi_compression, _, _, _, _, _) = \
            BITMAP_HEADER.unpack(fh.read(BITMAP_HEADER.size))
        if bi_compression != 0:
            kind = _PACKED.get(bi_compression, f"biCompression {bi_compression}")
            raise self._bad(f"its pixels are {kind}")
        if bits not in (8, 16, 24, 48):
            raise self._bad(f"it has {bits} bits per pixel")
        if count < 1 or width < 1 or height == 0:
            raise self._bad(f"it announces {count} images of {width}x{height}")
        self.fps, self.bit_depth = self._setup(fh, off_setup)
        fh.seek(off_offsets)
        table = fh.read(8 * count)
        if len(table) < 8 * count:
            raise self._bad("its image offset table is cut short (truncated file)")
        self._offsets = np.frombuffer(table, dtype="<i8")
        self._bottom_up = height > 0
        channels = 3 if bits in (24, 48) else 1
        self.dtype = np.dtype(np.uint8 if bits in (8, 24) else np.uint16)
        self.frame_shape = (abs(height), width) + ((3,) if channels == 3 else ())
        self._row_bytes = width * bits // 8
        self._set_count(count)
        size = self.path.stat().st_size
        last = int(self._offsets[-1])
        if last + 8 + self._row_bytes * abs(height) > size:
            raise self._bad(f"image {count - 1} lies beyond the end of the file (truncated file)")

    def _setup(self, fh, off_setup) -> tuple[float | None, int | None]:
        fh.seek(off_setup)
        setup = fh.read(_SETUP_REALBPP + 4)
        if len(setup) < _SETUP_LENGTH + 2:
            return None, None
        length = struct.unpack_from("<H", setup, _SETUP_LENGTH)[0]

        def field(offset, fmt):
            size = struct.calcsize(fmt)
            if length >= offset + size and len(setup) >= offset + size:
                return struct.unpack_from(fmt, setup, offset)[0]
            return 0

        rate = field(_SETUP_FRAMERATE, "<I") or field(_SETUP_FRAMERATE16, "<H")
        real_bpp = field(_SETUP_REALBPP, "<I")
        return (float(rate) if rate else None), (int(real_bpp) if real_bpp else None)

    def _open_pass(self):
        return open(self.path, "rb")  # one handle for the pass, on the reader thread

    def _read_raw(self, fh, raw: int) -> np.ndarray:
        fh.seek(int(self._offsets[raw]))
        (annotation_size,) = struct.unpack("<I", fh.read(4))
        fh.seek(int(self._offsets[raw]) + annotation_size - 4)
        (image_size,) = struct.unpack("<I", fh.read(4))
        height = self.frame_shape[0]
        if image_size < self._row_bytes * height:
            raise FlowtraceError(
                f"image {raw} of {self.path} is {image_size} bytes, expected "
                f"{self._row_bytes * height}; the file is corrupt"
            )
        data = fh.read(image_size)
        if len(data) < image_size:
            raise FlowtraceError(f"image {raw} of {self.path} is cut short; the file is truncated")
        stride = image_size // height  # rows may be padded
        rows = np.frombuffer(data, dtype=np.uint8, count=stride * height).reshape(height, stride)
        pixels = rows[:, :self._row_bytes].copy().view(self.dtype.newbyteorder("<"))
        frame = pixels.reshape(self.frame_shape).astype(self.dtype, copy=False)
        if self._bottom_up:
            frame = frame[::-1]
        if frame.ndim == 3:
            frame = frame[..., ::-1]  # stored BGR
        return np.ascontiguousarray(frame)
