"""Single image files: find them, read their headers, decode them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError

#: File endings read as one frame each.
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_TIFF_SUFFIXES = (".tif", ".tiff")
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
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not OUTPUT_MARKER.search(p.name)
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def probe_image(path: Path) -> tuple[tuple, np.dtype]:
    """Shape and dtype of an image file from its header, without decoding pixels."""
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
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
        if path.suffix.lower() in _TIFF_SUFFIXES:
            import tifffile

            return tifffile.imread(path, key=0)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as exc:
        raise unreadable(path, exc) from None


def unreadable(path: Path, exc: BaseException) -> FlowtraceError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FlowtraceError(
        f"cannot decode image file {path} ({reason}); replace or remove it"
    )
