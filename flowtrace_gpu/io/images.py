"""Single image files: find them, read their headers, decode them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes

#: What flowtrace writes; never read back as input when out_dir='same'.
OUTPUT_MARKER = re.compile(r"_streamlines_frames\d+\.png$")

# Pillow mode -> (channels or None for 2-D, dtype)
_PIL_MODES = {
    "L": (None, np.uint8), "P": (None, np.uint8), "1": (None, np.bool_),
    "I;16": (None, np.uint16), "I;16B": (None, np.uint16), "I;16L": (None, np.uint16),
    "I": (None, np.int32), "F": (None, np.float32),
    "RGB": (3, np.uint8), "RGBA": (4, np.uint8), "LA": (2, np.uint8),
}


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


def probe_image(path: Path) -> tuple[tuple, np.dtype]:
    """Shape and dtype of an image file from its header, without decoding pixels."""
    try:
        if suffixes.suffix(path) in suffixes.TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return tuple(page.shape), np.dtype(page.dtype)
        from PIL import Image

        with Image.open(path) as im:
            channels, dtype = _PIL_MODES.get(im.mode, (None, None))
            if dtype is None:  # an unusual mode: decode to learn it
                arr = read_image(path)
                return arr.shape, arr.dtype
            shape = (im.height, im.width) + ((channels,) if channels else ())
            return shape, np.dtype(dtype)
    except FlowtraceError:
        raise
    except Exception as exc:
        raise unreadable(path, exc) from None


def read_image(path: Path) -> np.ndarray:
    """Decode one frame (the first page of a TIFF)."""
    try:
        if suffixes.suffix(path) in suffixes.TIFF:
            import tifffile

            return tifffile.imread(path, key=0)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as exc:
        raise unreadable(path, exc) from None


class TiffTemplate:
    """Read TIFF frames that share one layout without parsing each file.

    Cameras and their software write every frame of a sequence with the same
    header. A file whose bytes outside the pixel data equal the template's
    has the same tags, hence the same layout, and its pixels are read
    straight from the file: one read, no tag parsing, and no time spent
    holding the GIL (tifffile parses tags in Python: ~0.5 ms per file, which
    held up the compute thread). Any other file is decoded by tifffile.

    Use :meth:`from_file`, which returns None where the template's pixels
    are not stored plainly (compressed, packed bits, scattered strips) or
    where reading them plainly does not reproduce tifffile's decoding.
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

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if (not page.is_contiguous or page.compression != 1 or page.predictor != 1
                        or page.fillorder != 1 or page.dtype is None
                        or page.bitspersample != 8 * page.dtype.itemsize):
                    return None
                offset = int(page.dataoffsets[0])
                nbytes = int(sum(page.databytecounts))
                dtype = page.dtype.newbyteorder(tif.byteorder)
                shape = tuple(page.shape)
                expected = page.asarray()
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


def unreadable(path: Path, exc: BaseException) -> FlowtraceError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FlowtraceError(
        f"cannot decode image file {path} ({reason}); replace or remove it"
    )
