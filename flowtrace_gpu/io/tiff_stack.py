"""Multi-page TIFF and ImageJ stacks: one file, many frames (read and write).

Reading memory-maps the pixel data where the file allows it (uncompressed,
contiguous, as ImageJ and most cameras write) and otherwise decodes one page
per frame; a stack is never loaded whole.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes
from .images import TIME_SERIES_HINT, read_tiff_page, tiff_layout, tiff_samples
from .recording import RecordingSource
from .recording import first_line as _reason
from .writers import StreamedFileWriter, write_atomically

# Above this a classic TIFF's 32-bit offsets overflow: switch to BigTIFF.
_CLASSIC_LIMIT = 2**32 - 2**25


class TiffStackSource(RecordingSource):
    """The frames of one multi-page TIFF or ImageJ hyperstack.

    Frames run along the one axis of the file's first series outside its
    pages (T, Z, C or tifffile's I/Q for plain page sequences); a hyperstack
    with two such axes longer than 1 (e.g. T and Z) is refused, as its frame
    order would be a guess, and so are pages whose samples are neither gray
    nor RGB (e.g. a plain (N, 4, H, W) array). Pixels mean what
    :mod:`~flowtrace_gpu.io.images` defines (alpha dropped, palette as RGB...).

    Parameters
    ----------
    path : path-like
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.
    """

    def __init__(self, path, frames_to_skip: int = 1):
        import tifffile

        super().__init__(path, frames_to_skip)
        try:
            with tifffile.TiffFile(self.path) as tif:
                series = tif.series[0]
                shape, axes = tuple(series.shape), series.axes
                n_pages = len(series.pages)
                self._page = series.pages[0]
                # Pages written one by one can make one series each: then every page is a frame.
                self._every_page = len(tif.series) > 1
                if self._every_page:
                    shape, axes, n_pages = self._pages_alike(tif)
                # Frame shape and dtype as images.py defines them (alpha dropped, 1-bit 0/255...).
                frame_shape, dtype, plain = tiff_layout(self._page, self.path, 0)
        except FlowtraceError:
            raise
        except Exception as exc:
            raise _unreadable(self.path, exc) from None
        n_lead = len(axes) - len(self._page.axes)
        lead = shape[:n_lead]
        long_axes = [a for a, n in zip(axes[:n_lead], lead) if n > 1]
        if len(long_axes) > 1:
            raise FlowtraceError(
                f"{self.path} has axes {axes} {shape}: more than one of {', '.join(long_axes)} "
                f"is longer than 1, so the frame order is ambiguous; {TIME_SERIES_HINT} "
                "(ImageJ: Image > Hyperstacks > Reduce Dimensionality)"
            )
        self._set_count(math.prod(lead))
        self.frame_shape = tuple(frame_shape)
        self.dtype = dtype
        # Palette, min-is-white, CMYK pages are decoded one by one through Pillow.
        self._memmap = self._try_memmap(tifffile) if plain and not self._every_page else None
        if self._memmap is None and n_pages != self.n_raw:
            raise FlowtraceError(
                f"{self.path} holds {n_pages} pages for {self.n_raw} frames of {axes} {shape}; "
                "only stacks with one page per frame are read page by page "
                "(save it uncompressed, or as one page per frame)"
            )

    def _pages_alike(self, tif) -> tuple[tuple, str, int]:
        """Shape, axes and count of a file's pages as one stack, if they all match the first."""
        first = tif.pages[0]
        for index, page in enumerate(tif.pages):
            if page.shape != first.shape or page.dtype != first.dtype:
                raise FlowtraceError(
                    f"{self.path} holds {len(tif.series)} series whose pages differ (page {index} "
                    f"is {page.shape} {page.dtype}, page 0 {first.shape} {first.dtype}), so which "
                    f"are frames is unknown; {TIME_SERIES_HINT}"
                )
        return (len(tif.pages),) + tuple(first.shape), "I" + first.axes, len(tif.pages)

    def _try_memmap(self, tifffile):
        # Uncompressed contiguous data: map it, decode nothing.
        try:
            mapped = tifffile.memmap(self.path, mode="r")
        except ValueError as exc:
            if "memory-mappable" in str(exc):
                return None  # compressed or scattered: read page by page
            raise _unreadable(self.path, exc) from None  # e.g. shorter than its header says
        except Exception as exc:
            raise _unreadable(self.path, exc) from None
        return mapped.reshape((self.n_raw,) + tuple(self._page.shape))

    def _open_pass(self):
        if self._memmap is not None:
            return super()._open_pass()
        import tifffile

        # One open file for the whole pass, on the reader thread.
        try:
            return tifffile.TiffFile(self.path)
        except Exception as exc:
            raise _unreadable(self.path, exc) from None

    def _read_raw(self, tif, raw):
        if tif is None:
            # A copy, so the page faults happen here on the reader thread, not in compute.
            return np.array(tiff_samples(self._memmap[raw], self._page))
        try:
            index = raw if self._every_page else tif.series[0].pages[raw].index
            return read_tiff_page(tif, self.path, index)
        except FlowtraceError:
            raise
        except Exception as exc:
            raise FlowtraceError(
                f"cannot decode page {raw} of {self.path} ({_reason(exc)}); "
                "the file may be truncated or corrupt"
            ) from None


def _unreadable(path: Path, exc: BaseException) -> FlowtraceError:
    return FlowtraceError(
        f"cannot read {path} as a TIFF stack ({_reason(exc)}); "
        f"give an intact {'/'.join(suffixes.TIFF)} file (multi-page or ImageJ stack)"
    )


def _photometric(image: np.ndarray) -> str:
    return "rgb" if image.ndim == 3 and image.shape[2] in (3, 4) else "minisblack"


class TiffStackWriter(StreamedFileWriter):
    """All output images as the pages of one TIFF, written as they come.

    Written uncompressed, as an ImageJ stack where ImageJ can hold the
    images (Fiji opens it as frames, and it can be memory-mapped), as BigTIFF
    when it would pass 4 GiB. The
    file appears at ``path`` only when :meth:`close` succeeds.

    Parameters
    ----------
    path : pathlib.Path
        The ``.tif``/``.tiff`` to create (see ``prepare_out_file``).
    n_images : int
        Images expected; ``close`` checks that all came.
    """

    def _check(self, image: np.ndarray) -> None:
        if image.dtype not in (np.uint8, np.uint16):
            raise FlowtraceError(f"TIFF output holds uint8 or uint16 images, got {image.dtype}")

    def _open(self, image: np.ndarray):
        import tifffile

        big = image.nbytes * self.n_images > _CLASSIC_LIMIT
        # ImageJ's format holds gray uint8/uint16 and RGB uint8 only.
        imagej = not big and (image.ndim == 2 or (image.shape[2] == 3 and image.dtype == np.uint8))
        return tifffile.TiffWriter(self.partial.tmp, bigtiff=big, imagej=imagej)

    def _append(self, image: np.ndarray) -> None:
        self._handle.write(image, contiguous=True, photometric=_photometric(image))


class TiffFolderWriter:
    """One TIFF per output image (uint8 or uint16 kept), like the PNG folder.

    Parameters
    ----------
    out_dir : pathlib.Path
        An existing, writable folder (see ``prepare_out_dir``).
    names : sequence of str
        File name of output ``i`` is ``names[i]`` (ending ``.tif``).
    """

    parallel = True

    def __init__(self, out_dir: Path, names):
        self.out_dir = Path(out_dir)
        self.names = list(names)

    def write(self, index: int, image: np.ndarray) -> None:
        import tifffile

        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, photometric=_photometric(image))
        write_atomically(self.out_dir / self.names[index], buffer.getvalue())

    def close(self) -> list[Path]:
        return [self.out_dir / name for name in self.names]

    def abort(self) -> None:
        """Nothing to undo: each file is complete or absent."""
