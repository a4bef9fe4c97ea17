"""Multi-page TIFF and ImageJ stacks: one file, many frames (read and write).

Where the pixel data lie uncompressed in one block (as ImageJ and most
cameras write), each frame is read from its offset straight into a new
array; otherwise one page is decoded per frame. A stack is never loaded
whole, and never memory-mapped: pages of a mapped file count in the
process's resident memory (RSS) for as long as the mapping lives, which
makes a long run look as large as the file to a job scheduler that counts
RSS, though the process itself holds only the window (docs/guide/recordings.md, "Memory").
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes
from .images import TIME_SERIES_HINT, check_tiff_extent, read_tiff_page, tiff_layout, tiff_samples
from .own_files import write_atomically
from .recording import RecordingSource, read_block, region_rows
from .writers import StreamedFileWriter

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

    kind = "a TIFF stack"
    fix = f"give an intact {'/'.join(suffixes.TIFF)} file (multi-page or ImageJ stack)"

    def __init__(self, path, frames_to_skip: int = 1):
        super().__init__(path, frames_to_skip)
        with self._opening():
            self._parse()

    def _parse(self) -> None:
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            # The first page's header, checked before tifffile's series arithmetic uses it.
            check_tiff_extent(tif.pages[0], self.path, 0)
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
            # Palette, min-is-white, CMYK pages are decoded one by one through Pillow.
            block = series.dataoffset if plain and not self._every_page else None
            stored = np.dtype(tif.byteorder + self._page.dtype.char)
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
        self._block = None if block is None else self._check_block(int(block), stored)
        if self._block is None and n_pages != self.n_raw:
            raise FlowtraceError(
                f"{self.path} holds {n_pages} pages for {self.n_raw} frames of {axes} {shape}; "
                "only stacks with one page per frame are read page by page "
                "(save it uncompressed, or as one page per frame)"
            )
        if self._block is None:
            # Decode the first page now: a codec or bit depth that cannot be decoded here
            # fails before any output exists.
            with self._open_pass() as handle:
                self._read_raw(handle, 0)

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

    def _check_block(self, offset: int, stored: np.dtype) -> tuple[int, int, np.dtype]:
        """(offset, bytes per frame, stored dtype) of contiguous pixels the file holds whole."""
        frame_bytes = math.prod(self._page.shape) * stored.itemsize
        size = self.path.stat().st_size
        if offset < 0 or offset + self.n_raw * frame_bytes > size:
            raise ValueError(
                f"its {self.n_raw} frames of {frame_bytes} bytes from offset {offset} pass the "
                f"end of the {size}-byte file"
            )
        return offset, frame_bytes, stored

    def _rows_in_order(self) -> bool:
        """Whether the stored frame's first axis is its rows (not planar color planes)."""
        page = self._page
        return (page.shape[0] == self.frame_shape[0]
                and (page.samplesperpixel == 1 or page.planarconfig != 2))

    def _open_pass(self):
        if self._block is not None:
            return open(self.path, "rb", buffering=0)  # unbuffered: readinto fills the frame
        import tifffile

        return tifffile.TiffFile(self.path)  # one open file for the whole pass

    def _read_raw(self, handle, raw, region=None):
        if self._block is not None:
            offset, frame_bytes, stored = self._block
            shape = tuple(self._page.shape)
            if region is not None and self._rows_in_order():
                # Only the crop's rows: each is a run of bytes in the stored frame.
                first, stop = region_rows(region, shape[0])
                row_bytes = frame_bytes // shape[0]
                block = read_block(handle, offset + raw * frame_bytes + first * row_bytes,
                                   (stop - first) * row_bytes)
                shape = (stop - first,) + shape[1:]
            else:
                block = read_block(handle, offset + raw * frame_bytes, frame_bytes)
            return tiff_samples(block.view(stored).reshape(shape), self._page)
        index = raw if self._every_page else handle.series[0].pages[raw].index
        if region is not None:
            frame = self._strip_rows(handle, index, region)
            if frame is not None:
                return frame
        return read_tiff_page(handle, self.path, index, (self.frame_shape, self.dtype))

    def _strip_rows(self, handle, index: int, region) -> np.ndarray | None:
        """The rows of ``region`` from the page's strips that hold them, or None.

        A compressed page is stored in strips of ``rowsperstrip`` rows, each
        decoded on its own: only the strips the crop covers are read and
        decoded. None (decode the page whole) for tiles, separate color planes,
        bits packed below a byte and pages Pillow decodes (palette, CMYK...).
        """
        page = handle.pages[index]
        shape, dtype, plain = tiff_layout(page, self.path, index)
        rows = shape[0]
        if (not plain or (shape, dtype) != (self.frame_shape, self.dtype) or page.is_tiled
                or page.bitspersample % 8 or tuple(page.shape[:1]) != (rows,)
                or (page.samplesperpixel > 1 and page.planarconfig == 2)):
            return None
        per_strip = min(int(page.rowsperstrip or rows), rows)
        if per_strip < 1 or len(page.dataoffsets) != -(-rows // per_strip):
            return None
        first, stop = region_rows(region, rows)
        strips = range(first // per_strip, (stop - 1) // per_strip + 1)
        parts = []
        for strip in strips:
            offset, count = int(page.dataoffsets[strip]), int(page.databytecounts[strip])
            handle.filehandle.seek(offset)
            data = handle.filehandle.read(count)
            if len(data) != count:
                raise ValueError(f"page {index}'s strip {strip} passes the end of the file")
            segment, _, _ = page.decode(data, strip, jpegtables=page.jpegtables)
            parts.append(np.asarray(segment).reshape((-1,) + tuple(page.shape[1:])))
        lead = strips[0] * per_strip
        return tiff_samples(np.concatenate(parts)[first - lead:stop - lead], page)


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
        return tifffile.TiffWriter(self.partial.file, bigtiff=big, imagej=imagej)

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
