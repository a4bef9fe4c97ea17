"""Where frames come from: one interface for folders and arrays.

A source knows its frame count (or None), the shape and dtype of its
frames, and the name of each frame (what outputs are named after); it is
iterated lazily, so decoding happens on the reader thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import config
from ..errors import FlowtraceError
from . import suffixes
from .images import TiffTemplate, list_images, probe_image, read_image
from .own_files import without_own_files


class FrameSource:
    """Base of the sources. Subclasses fill the attributes and ``_read``."""

    #: Number of frames after skipping, or None if unknown.
    n_frames: int | None = None
    frame_shape: tuple = ()
    dtype: np.dtype = np.dtype(np.uint8)
    #: Frame name stems (after skipping) used to name outputs, or None.
    names: list[str] | None = None
    description = "frames"
    #: Frames per second of the recording, where the file says.
    fps: float | None = None
    #: Bits really used by integer pixels (e.g. 12 in uint16), where the file says.
    bit_depth: int | None = None

    def frames(self, indices, region=None):
        """Yield the frames at ``indices`` (positions after skipping), checked.

        ``region`` = ``(top, left, height, width)`` crops each frame while it
        is read (see :meth:`_read`); None yields whole frames.
        """
        for i in indices:
            frame = self._read(i, region)
            self._check(frame, i, region)
            yield cut(frame, region)

    def _read(self, i: int, region=None) -> np.ndarray:
        """Frame ``i``: whole, or where the format allows, only ``region``'s rows or pixels.

        Readers that can read part of a frame return the region's rows (all
        columns) or the region itself; :func:`cut` finishes the crop.
        """
        raise NotImplementedError

    def raw_index(self, i: int) -> int:
        """Index in the recording (as stored, before any selection) of frame ``i``."""
        return i * getattr(self, "skip", 1)

    def _label(self, i: int) -> str:
        return f"frame {i}"

    def _check(self, frame: np.ndarray, i: int, region=None) -> None:
        if frame.shape not in shapes_read(self.frame_shape, region) or frame.dtype != self.dtype:
            raise FlowtraceError(
                f"{self._label(i)} is {frame.shape} {frame.dtype}, but the first frame is "
                f"{self.frame_shape} {self.dtype}; every frame must match the first"
            )


def shapes_read(frame_shape: tuple, region) -> tuple:
    """Shapes a reader may return for ``region``: the frame, its rows, or the region itself."""
    if region is None:
        return (tuple(frame_shape),)
    _, _, height, width = region
    rest = tuple(frame_shape[2:])
    return tuple(frame_shape), (height, frame_shape[1]) + rest, (height, width) + rest


def cut(frame: np.ndarray, region) -> np.ndarray:
    """``frame`` cropped to ``region`` = (top, left, height, width), whatever part a reader read.

    A reader returns the whole frame, the region's rows (all columns) or the
    region (see :meth:`FrameSource._read`): the shape tells which.
    """
    if region is None:
        return frame
    top, left, height, width = region
    if frame.shape[:2] == (height, width):
        return frame
    if frame.shape[0] != height:  # the whole frame
        frame = frame[top:top + height]
    # Contiguous: the backends copy frames into their ring in one block.
    return np.ascontiguousarray(frame[:, left:left + width])


class ImageFolderSource(FrameSource):
    """A directory of images, in natural order; a multi-page TIFF gives each of its pages.

    Every file's header is read up front (all files, before skipping: pages
    count as frames), so a stray file is reported before any output exists.

    Parameters
    ----------
    directory : path-like
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame (file or page), starting with the first.
    probe_workers : int
        Threads that read the file headers up front.
    """

    def __init__(self, directory, frames_to_skip: int = 1, probe_workers: int = 1):
        path = Path(directory)
        if not path.exists():
            raise FlowtraceError(f"image_dir {str(path)!r} does not exist; give a folder of frames")
        if not path.is_dir():
            raise FlowtraceError(
                f"image_dir {str(path)!r} is not a directory; give the folder that holds the frames"
            )
        # Never a file flowtrace wrote: images, single-file outputs, temporaries.
        files = without_own_files(list_images(path), path)
        if not files:
            raise FlowtraceError(
                f"image_dir {str(path)!r} holds no images ({', '.join(suffixes.IMAGES)}); "
                "point it at the folder of frames"
            )
        self.directory = path
        self.description = str(path)
        pages = self._probe(files, probe_workers)
        # One entry per frame: (file, page); pages of a multi-page TIFF named <stem>_<page>.
        entries = []
        for file, count in zip(files, pages):
            width = len(str(count - 1))
            entries += [(file, page, file.stem if count == 1 else f"{file.stem}_{page:0{width}d}")
                        for page in range(count)]
        self._entries = entries[::frames_to_skip]
        self.files = [file for file, _, _ in self._entries]
        self.n_frames = len(self._entries)
        self.names = [name for _, _, name in self._entries]

    def _probe(self, files, workers: int) -> list[int]:
        """Check every file against the first; return each file's page count."""
        # Files laid out like the first TIFF are checked by their header bytes,
        # far cheaper than parsing them.
        self._template = None
        if suffixes.suffix(files[0]) in suffixes.TIFF:
            self._template = TiffTemplate.from_file(files[0])
        template = self._template

        def header(path):
            if template is not None and template.matches(path):
                return template.shape, template.frame_dtype, 1
            return probe_image(path)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            headers = list(pool.map(header, files))
        self.frame_shape, self.dtype, _ = headers[0]
        for path, (shape, dtype, _) in zip(files, headers):
            if shape != self.frame_shape or dtype != self.dtype:
                raise FlowtraceError(
                    f"{path} is {shape} {dtype}, but {files[0].name} is "
                    f"{self.frame_shape} {self.dtype}; every frame must match the first "
                    "(move the odd file out of the folder)"
                )
        return [count for _, _, count in headers]

    def _read(self, i, region=None):
        path, page, _ = self._entries[i]
        if self._template is not None and page == 0:
            try:
                frame = self._template.read(path)
            except OSError:
                frame = None  # let the decoder report it
            if frame is not None:
                return frame
        return read_image(path, page, (self.frame_shape, self.dtype))

    def _label(self, i):
        path, page, _ = self._entries[i]
        return str(path) if page == 0 else f"page {page} of {path}"


class ArraySource(FrameSource):
    """Frames from an array-like (N, H, W) or (N, H, W, C), e.g. an array or memmap."""

    def __init__(self, frames, frames_to_skip: int = 1):
        if not hasattr(frames, "shape") or not hasattr(frames, "dtype"):
            frames = np.asarray(frames)
        if len(frames.shape) not in (3, 4):
            raise FlowtraceError(
                f"frames must be shaped (N, H, W) or (N, H, W, C), got shape {tuple(frames.shape)}"
            )
        self.array = frames
        self.skip = frames_to_skip
        self.n_frames = len(range(0, frames.shape[0], frames_to_skip))
        self.frame_shape = tuple(frames.shape[1:])
        self.dtype = np.dtype(frames.dtype)

    def _read(self, i, region=None):
        if region is None:
            return np.asarray(self.array[i * self.skip])
        # Sliced before it is read: a memmap or zarr array reads only the region.
        top, left, height, width = region
        return np.asarray(self.array[i * self.skip, top:top + height, left:left + width])


def default_probe_workers() -> int:
    return min(int(config.get("probe_workers")), os.cpu_count() or 1)


def source_files(source) -> list[Path]:
    """Every file ``source`` reads (frames of a folder; a recording and its header)."""
    # Through wrappers (a GrayscaleSource) to the first source that names its files:
    # a selection of frames names those it reads.
    while not (hasattr(source, "files") or hasattr(source, "path")) and hasattr(source, "source"):
        source = source.source
    files = getattr(source, "files", None)
    if files is not None:
        return [Path(f) for f in files]
    return [getattr(source, a) for a in ("path", "header")
            if isinstance(getattr(source, a, None), Path)]
