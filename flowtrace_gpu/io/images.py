"""Single image files: find them, read their headers, decode them.

Every image mode has one meaning here (the same in a folder and a TIFF stack):

* gray (8/16/32-bit integer, float) and RGB are kept as stored, 16-bit RGB
  PNGs included (decoded by PyAV, as Pillow reads only 8 bits of them);
* an alpha channel is dropped: RGBA -> RGB, LA -> L;
* a palette image ('P', TIFF palette) -> RGB through its palette;
* CMYK (JPEG, TIFF) and YCbCr -> RGB, by Pillow's conversion;
* 1-bit -> uint8 0 (black) / 255 (white), as the file's photometric
  interpretation says (a min-is-white TIFF too);
* a TIFF whose samples are not gray or RGB (several planes of unknown
  meaning) is refused.

A multi-page TIFF in a folder gives all its pages, one frame each.
"""

from __future__ import annotations

import math
import os
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes
from .boundary import collected_messages, reading

#: What flowtrace writes; never read back as input when out_dir='same'.
OUTPUT_MARKER = re.compile(r"_streamlines_frames\d+\.png$")

# Pillow mode -> (channels or None for 2-D, dtype, mode to convert to or None).
_PIL_MODES = {
    "L": (None, np.uint8, None), "1": (None, np.uint8, "L"),
    "LA": (None, np.uint8, "L"), "La": (None, np.uint8, "L"),
    "P": (3, np.uint8, "RGB"), "PA": (3, np.uint8, "RGB"),
    "RGB": (3, np.uint8, None), "RGBA": (3, np.uint8, "RGB"), "RGBa": (3, np.uint8, "RGB"),
    "RGBX": (3, np.uint8, "RGB"), "CMYK": (3, np.uint8, "RGB"), "YCbCr": (3, np.uint8, "RGB"),
    "I;16": (None, np.uint16, None), "I;16L": (None, np.uint16, None),
    "I;16B": (None, np.uint16, None), "I;16N": (None, np.uint16, None),
    "I": (None, np.int32, None), "F": (None, np.float32, None),
}
# TIFF photometric interpretations tifffile's own decoding gives their meaning to.
_MINISBLACK, _RGB, _YCBCR = 1, 2, 6
_PLAIN_PHOTOMETRIC = (_MINISBLACK, _RGB, _YCBCR)
TIME_SERIES_HINT = (
    "save a time series as tifffile.imwrite(path, frames) with frames shaped (N, H, W) "
    "or (N, H, W, 3), or as an ImageJ hyperstack with axes 'TYX'"
)


def natural_key(name: str):
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(directory: Path) -> list[Path]:
    """Image files of ``directory`` in natural order, flowtrace's own outputs left out."""
    files = [
        p for p in directory.iterdir()
        if suffixes.suffix(p) in suffixes.IMAGES and p.is_file() and not OUTPUT_MARKER.search(p.name)
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


# ------------------------------------------------------------------ Pillow images

def _pillow_layout(im, path: Path) -> tuple[tuple, np.dtype, str | None]:
    """Frame shape and dtype of an open Pillow image, and the mode to convert it to."""
    if im.mode not in _PIL_MODES:
        raise FlowtraceError(
            f"{path} has image mode {im.mode!r}, which flowtrace does not read; save it as "
            "gray, RGB(A), palette, CMYK or 1-bit (8/16/32-bit gray and float are kept)"
        )
    channels, dtype, convert = _PIL_MODES[im.mode]
    if im.mode == "I" and im.format == "PNG":
        dtype = np.uint16  # Pillow opens some 16-bit gray PNGs as 32-bit 'I'
    shape = (im.height, im.width) + ((channels,) if channels else ())
    check_image_size(path, shape, np.dtype(dtype))
    return shape, np.dtype(dtype), convert


#: Most pixels a PNG, JPEG or BMP file may hold per stored byte: deflate's 1032:1
#: on 1-bit pixels (8 to a byte), with room; baseline JPEG needs at least a bit
#: per 64 pixels. Pillow allocates the image its header announces before it
#: decodes a byte.
_MAX_PIXELS_PER_BYTE = 16384


def check_image_size(path: Path, shape: tuple, dtype: np.dtype) -> None:
    """Refuse an image whose header announces more pixels than its file can decode to."""
    pixels = shape[0] * shape[1]
    file_size = os.stat(path).st_size
    if pixels < 1 or pixels > file_size * _MAX_PIXELS_PER_BYTE:
        raise FlowtraceError(
            f"{path} announces a {shape[1]}x{shape[0]} image ({pixels} pixels), which its "
            f"{file_size}-byte file cannot hold: its header is corrupt; replace the file"
        )


def _pillow_frame(im, path: Path) -> np.ndarray:
    shape, dtype, convert = _pillow_layout(im, path)
    # Pillow's warnings ("palette images with transparency ...") are collected
    # by the reader's boundary (boundary.reading), not printed.
    frame = np.asarray(im.convert(convert) if convert else im)
    return frame.astype(dtype)  # a writable copy, native byte order


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_chunks(path: Path) -> None:
    """Refuse a PNG chunk whose length runs past the end of the file.

    Pillow allocates a chunk's announced length before reading it: a corrupt
    length would reserve up to 4 GiB for a file of a few bytes. Reads only
    the chunk headers, up to ``IEND``.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if fh.read(8) != _PNG_SIGNATURE:
            return  # not a PNG inside: the decoder says what it is
        pos = 8
        while pos + 12 <= size:
            fh.seek(pos)
            length, kind = struct.unpack(">I4s", fh.read(8))
            if length > size - pos - 12:
                raise ValueError(
                    f"its {kind!r} chunk at offset {pos} announces {length} bytes, past the end "
                    f"of the {size}-byte file"
                )
            if kind == b"IEND":
                return
            pos += 12 + length


def _png_rgb16(path: Path):
    """(H, W) of a 16-bit RGB(A) PNG from its IHDR chunk, else None."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    if head[24] != 16 or head[25] not in (2, 6):  # bit depth, color type RGB / RGBA
        return None
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


def _read_png_rgb16(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb48le")


# ------------------------------------------------------------------ TIFF pages

# Most bytes each TIFF compression can decode from one stored byte: none; LZW
# (a 12-bit code stands for at most 4096 bytes); deflate (1032:1); PackBits
# (2 bytes for a run of 128). Other codecs (JPEG, zstd, LZMA...) have no such
# bound: only the machine's memory limits what their pages may claim.
_MAX_EXPANSION = {1: 1, 5: 4096, 8: 1032, 32946: 1032, 32773: 64}


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, where the OS says (None elsewhere)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_tiff_extent(page, path: Path, index: int) -> None:
    """Refuse a page whose header claims what its file cannot hold, before any allocation.

    A page needs at least one row and column, all the strips or tiles its
    size implies, each inside the file, and no more pixels than its file's
    bytes can decode to (see ``_MAX_EXPANSION``) or than the machine's
    memory holds.
    """
    where = f"{path} page {index}"
    if not page.shape or min(page.shape) < 1:
        raise FlowtraceError(
            f"{where} is {page.imagewidth}x{page.imagelength} pixels (shape {page.shape}), an "
            "empty image: its header is corrupt; replace the file"
        )
    if page.dtype is None:
        raise FlowtraceError(
            f"{where} stores {page.bitspersample}-bit samples of format {page.sampleformat}, "
            "which no image type holds; replace the file or save it as 8/16/32-bit samples"
        )
    stored = math.ceil(page.size * page.bitspersample / 8)
    file_size = page.parent.filehandle.size
    ratio = _MAX_EXPANSION.get(page.compression)
    memory = physical_memory()
    if (ratio is not None and stored > file_size * ratio) or (memory and page.nbytes > memory):
        raise FlowtraceError(
            f"{where} claims {page.shape} {page.dtype} pixels ({page.nbytes} bytes), more than "
            f"its {file_size}-byte file can hold: its header is corrupt; replace the file"
        )
    segments = math.prod(page.chunked)
    if not page.is_lsm and len(page.dataoffsets) < segments:
        raise FlowtraceError(
            f"{where} stores {len(page.dataoffsets)} strips or tiles, but its size "
            f"{page.shape} needs {segments}: its header is corrupt; replace the file"
        )
    # A strip is read whole before it is decoded: one claiming gigabytes would be allocated.
    ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)
            if count]
    if ends and max(ends) > file_size:
        raise FlowtraceError(
            f"{where} has strips or tiles up to byte {max(ends)} of its {file_size}-byte file: "
            "it is truncated or its header is corrupt; replace the file"
        )


def tiff_layout(page, path: Path, index: int) -> tuple[tuple, np.dtype, bool]:
    """Frame shape and dtype of a TIFF page, and whether tifffile's decoding is used.

    Raises FlowtraceError for pages whose header cannot be right
    (:func:`check_tiff_extent`) and for samples that are neither gray nor RGB.
    """
    check_tiff_extent(page, path, index)
    if page.photometric not in _PLAIN_PHOTOMETRIC:
        from PIL import Image

        with Image.open(path) as im:  # palette, min-is-white, CMYK...: Pillow knows their meaning
            im.seek(index)
            shape, dtype, _ = _pillow_layout(im, path)
        return shape, dtype, False
    colors = page.samplesperpixel - len(page.extrasamples)
    wanted = 3 if page.photometric in (_RGB, _YCBCR) else 1
    # Separate planes beyond R, G, B: what tifffile.imwrite makes of an (N, 4, H, W) array.
    planes = page.planarconfig == 2 and page.samplesperpixel not in (1, 3)
    if colors != wanted or planes:
        raise FlowtraceError(
            f"{path} page {index} holds {page.samplesperpixel} samples per pixel ({page.axes} "
            f"{page.shape}) that are neither gray nor RGB, so their meaning is unknown; "
            f"{TIME_SERIES_HINT}"
        )
    dtype = np.dtype(np.uint8 if page.dtype == np.bool_ else page.dtype).newbyteorder("=")
    return (page.imagelength, page.imagewidth) + ((3,) if wanted == 3 else ()), dtype, True


def tiff_samples(frame: np.ndarray, page) -> np.ndarray:
    """A tifffile-decoded page (or stack frame) as defined: channels last, no alpha, 1-bit as 0/255."""
    if page.samplesperpixel > 1:
        if page.planarconfig == 2:  # separate planes: (S, H, W)
            frame = np.moveaxis(frame, -3, -1)
        colors = page.samplesperpixel - len(page.extrasamples)
        frame = frame[..., 0] if colors == 1 else frame[..., :colors]
    if frame.dtype == np.bool_:
        return frame.astype(np.uint8) * np.uint8(255)
    if not frame.dtype.isnative:
        return frame.astype(frame.dtype.newbyteorder("="))
    return np.ascontiguousarray(frame)


def read_tiff_page(tif, path: Path, index: int, expected: tuple | None = None) -> np.ndarray:
    """Page ``index`` of an open ``tifffile.TiffFile`` as a frame (see the module notes).

    With ``expected`` = (shape, dtype), a page of another layout is refused
    before its pixels are decoded.
    """
    page = tif.pages[index]
    shape, dtype, plain = tiff_layout(page, path, index)
    if expected is not None and (shape, dtype) != tuple(expected):
        raise FlowtraceError(
            f"{path} page {index} is {shape} {dtype}, but the first frame is {expected[0]} "
            f"{expected[1]}; every frame must match the first"
        )
    if plain:
        return tiff_samples(page.asarray(), page)
    from PIL import Image

    with Image.open(path) as im:
        im.seek(index)
        return _pillow_frame(im, path)


# ------------------------------------------------------------------ any image

def _image_boundary(path: Path, page: int = 0):
    subject = f"image file {path}" if page == 0 else f"page {page} of image file {path}"
    return reading(subject, "replace or remove it", doing="decode")


def probe_image(path: Path) -> tuple[tuple, np.dtype, int]:
    """Shape and dtype of an image file's frames, and its page count, without decoding pixels.

    Every page of a multi-page TIFF must have the first page's shape and dtype.
    """
    with _image_boundary(path):
        if suffixes.suffix(path) in suffixes.TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                n_pages = len(tif.pages)
                shape, dtype, _ = tiff_layout(tif.pages[0], path, 0)
                for index in range(1, n_pages):
                    other = tiff_layout(tif.pages[index], path, index)[:2]
                    if other != (shape, dtype):
                        raise FlowtraceError(
                            f"{path} page {index} is {other[0]} {other[1]}, but its first page is "
                            f"{shape} {dtype}; every frame must match the first"
                        )
                return shape, dtype, n_pages
        png = suffixes.suffix(path) == ".png"
        if png:
            check_png_chunks(path)
        rgb16 = _png_rgb16(path) if png else None
        if rgb16 is not None:
            check_image_size(path, rgb16 + (3,), np.dtype(np.uint16))
            return rgb16 + (3,), np.dtype(np.uint16), 1
        from PIL import Image

        with Image.open(path) as im:
            shape, dtype, _ = _pillow_layout(im, path)
            return shape, dtype, 1


def read_image(path: Path, page: int = 0, expected: tuple | None = None) -> np.ndarray:
    """Decode one frame: an image file, or page ``page`` of a TIFF.

    ``expected`` (shape, dtype): a TIFF page of another layout is refused
    before it is decoded.
    """
    with _image_boundary(path, page):
        if suffixes.suffix(path) in suffixes.TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return read_tiff_page(tif, path, page, expected)
        if suffixes.suffix(path) == ".png":
            check_png_chunks(path)
            if _png_rgb16(path) is not None:
                return _read_png_rgb16(path)
        from PIL import Image

        with Image.open(path) as im:
            return _pillow_frame(im, path)


class TiffTemplate:
    """Read TIFF frames that share one layout without parsing each file.

    Cameras and their software write every frame of a sequence with the same
    header. A file whose bytes outside the pixel data equal the template's
    has the same tags, hence the same layout, and its pixels are read
    straight from the file: one read, no tag parsing, and no time spent
    holding the GIL (tifffile parses tags in Python, which holds up the
    compute thread). Any other file is decoded by tifffile.

    Use :meth:`from_file`, which returns None where the template's pixels
    are not stored plainly (compressed, packed bits, scattered strips, more
    than one page) or where reading them plainly does not give the frame
    :func:`read_tiff_page` defines (alpha, planar color, palette...).
    """

    def __init__(self, size: int, offset: int, nbytes: int, head: bytes, tail: bytes,
                 dtype: np.dtype, shape: tuple):
        self.size, self.offset, self.nbytes = size, offset, nbytes
        self.head, self.tail = head, tail
        self.dtype, self.shape = dtype, shape

    @classmethod
    def from_file(cls, path: Path):
        """The layout of ``path``'s first page, or None if it cannot be read plainly."""
        import tifffile

        # A file that tifffile complains about is read again, through the boundary, by
        # probe_image: its messages are reported there, not here.
        try:
            with collected_messages(), tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if (len(tif.pages) != 1 or not page.is_contiguous or page.compression != 1
                        or page.predictor != 1
                        or page.fillorder != 1 or page.dtype is None
                        or page.bitspersample != 8 * page.dtype.itemsize):
                    return None
                offset = int(page.dataoffsets[0])
                nbytes = int(sum(page.databytecounts))
                dtype = page.dtype.newbyteorder(tif.byteorder)
                shape = tuple(page.shape)
                expected = read_tiff_page(tif, path, 0)  # as a frame is defined
            data = Path(path).read_bytes()
        except Exception:
            return None
        if nbytes != int(np.prod(shape)) * dtype.itemsize or offset + nbytes > len(data):
            return None
        template = cls(len(data), offset, nbytes, data[:offset], data[offset + nbytes:],
                       dtype, shape)
        frame = template._decode(bytearray(data))
        if frame.shape != expected.shape or not np.array_equal(frame, expected):
            return None
        return template

    def _decode(self, buf: bytearray) -> np.ndarray:
        frame = np.frombuffer(buf, self.dtype, self.nbytes // self.dtype.itemsize,
                              self.offset).reshape(self.shape)
        return frame if self.dtype.isnative else frame.astype(self.dtype.newbyteorder("="))

    @property
    def frame_dtype(self) -> np.dtype:
        """The dtype of the frames read (native byte order)."""
        return self.dtype.newbyteorder("=")

    def matches(self, path: Path) -> bool:
        """Whether ``path`` has the template's layout (reads only its header bytes)."""
        try:
            with open(path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size != self.size or fh.read(self.offset) != self.head:
                    return False
                fh.seek(self.offset + self.nbytes)
                return fh.read() == self.tail
        except OSError:
            return False

    def read(self, path: Path):
        """The first page of ``path`` if it has the template's layout, else None."""
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size != self.size:
                return None
            buf = bytearray(self.size)  # writable: frames are not read-only arrays
            if fh.readinto(buf) != self.size:
                return None
        view = memoryview(buf)
        if view[:self.offset] != self.head or view[self.offset + self.nbytes:] != self.tail:
            return None
        return self._decode(buf)
