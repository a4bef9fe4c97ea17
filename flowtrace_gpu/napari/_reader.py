"""The reader contribution: every recording flowtrace_gpu reads, as a lazy napari layer.

The layer's data is a dask array with one chunk per frame; a chunk is read
only when napari shows it (or the preview asks for it), through the same
readers :func:`~flowtrace_gpu.flowtrace` uses
(:func:`flowtrace_gpu.io.formats.open_source`). Opening reads headers only:
contrast limits come from the bit depth, never from a scan of the pixels.
"""

from __future__ import annotations

import math
import operator
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .. import config
from ..io import suffixes
from ..io.formats import open_source
from ..io.sources import default_probe_workers
from ..io.zarr_store import is_zarr_path

#: ``layer.metadata`` key of the recording's path: what ``Trace all...`` traces.
SOURCE_KEY = "flowtrace_source"


def get_reader(path):
    """The reader of ``path`` if flowtrace_gpu reads it, else None (napari asks the next plugin)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None  # a stack of separate files: a folder of frames is one path
        path = path[0]
    p = Path(path)
    if p.is_dir():
        return read_recording if is_zarr_path(p) or _holds_images(p) else None
    return read_recording if suffixes.recording_for(p) is not None else None


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds a file with an image suffix (stops at the first)."""
    try:
        with os.scandir(folder) as entries:
            return any(suffixes.suffix(e.name) in suffixes.IMAGES for e in entries)
    except OSError:
        return False


def read_recording(path) -> list[tuple]:
    """``[(data, layer kwargs, 'image')]`` for one recording: lazy frames and their metadata.

    Raises
    ------
    FlowtraceError
        The recording cannot be read (napari shows the message).
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    source = open_source(path, probe_workers=default_probe_workers())  # a folder's headers
    frames = FrameCache(source, int(config.get("napari_cache_mib")) * 2**20)
    data = lazy_frames(frames)
    rgb = len(source.frame_shape) == 3
    metadata = {
        "fps": source.fps,
        # Significant bits where the file says (e.g. 12 in uint16), as flowtrace() uses them.
        "bit_depth": source.bit_depth,
        "bayer_pattern": getattr(source, "pattern", None),
        "n_frames": source.n_frames,
        "frame_names": source.names,
        SOURCE_KEY: str(Path(path).resolve()),
    }
    kwargs = {
        "name": Path(path).name,
        "metadata": metadata,
        "rgb": rgb,
        "axis_labels": ("t", "y", "x"),
        "contrast_limits": contrast_limits(source.dtype, source.bit_depth, frames),
    }
    return [(data, kwargs, "image")]


def contrast_limits(dtype, bit_depth: int | None, frames=None) -> tuple[float, float]:
    """``(0, 2**bits - 1)`` for integer frames; float frames: the first frame's range.

    Integers need no pixel at all; a float recording (a zarr array, a float
    TIFF) has no bit depth, so its first frame stands for it, never a scan.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        bits = bit_depth or 8 * dtype.itemsize
        low = 0 if dtype.kind == "u" else -(2 ** (bits - 1))
        high = 2**bits - 1 if dtype.kind == "u" else 2 ** (bits - 1) - 1
        return float(low), float(high)
    if dtype.kind == "b":
        return 0.0, 1.0
    first = frames.frame(0) if frames is not None else None
    if first is None or not np.isfinite(first).any():
        return 0.0, 1.0
    low, high = float(np.nanmin(first)), float(np.nanmax(first))
    return (low, high) if high > low else (low, low + 1.0)


#: The frame cache behind each lazy array this reader made, by the array's dask name.
_CACHES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def frame_window(data, start: int, stop: int):
    """Frames ``start:stop`` of a lazy array this reader made, as an array-like; else None.

    What the preview hands to ``flowtrace_array``: it reads each frame from
    the cache when the trace asks for it, with no dask graph and no
    ``(F, H, W)`` copy, which cost 3-4 times the trace itself for a 1 MP,
    F = 30 window (``bench/bench_preview.py``).
    """
    frames = _CACHES.get(getattr(data, "name", None))
    if frames is None or tuple(data.shape) != (frames.n_frames,) + frames.frame_shape:
        return None
    # A window slid by one frame rereads one frame only if the cache holds a window and one.
    frames.capacity = max(frames.capacity, stop - start + 1)
    return FrameWindow(frames, start, stop)


class FrameWindow:
    """Frames ``start:stop`` of a :class:`FrameCache`, indexed from 0 (shape, dtype, ``[i]``)."""

    def __init__(self, frames: FrameCache, start: int, stop: int):
        self._frames = frames
        self._start = start
        self.shape = (stop - start,) + frames.frame_shape
        self.dtype = frames.dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        index = operator.index(index)
        if not -self.shape[0] <= index < self.shape[0]:
            raise IndexError(f"frame {index} of a window of {self.shape[0]}")
        return self._frames.frame(self._start + index % self.shape[0])


def lazy_frames(frames: FrameCache):
    """A dask array ``(N, H, W[, C])`` whose chunk i is frame i, read when computed."""
    import dask.array as da

    shape = (frames.n_frames,) + tuple(frames.frame_shape)
    chunks = ((1,) * shape[0],) + tuple((n,) for n in shape[1:])

    def block(block_info=None):
        index = block_info[None]["array-location"][0][0]
        return frames.frame(index)[np.newaxis]

    meta = np.empty((0,) * len(shape), dtype=frames.dtype)
    # A fixed name: tokenizing the closure would hash the cache's frames.
    data = da.map_blocks(block, chunks=chunks, dtype=frames.dtype, meta=meta,
                         name=f"flowtrace-frames-{uuid.uuid4().hex}")
    _CACHES[data.name] = frames
    return data


class FrameCache:
    """The frames of a source by index, read through one open cursor; recent ones kept.

    napari's slicing and the preview's window ask for frames from several
    threads: one lock serializes the reads. Consecutive frames are read from
    the open cursor (one open file, one running video decoder), so sliding a
    window by one frame reads one frame. Frames are read-only (they are
    shared with the cache).

    Parameters
    ----------
    source : FrameSource
    budget : int
        Bytes of frames to keep (at least one frame is always kept).
    """

    def __init__(self, source, budget: int):
        self.source = source
        self.n_frames = source.n_frames
        self.frame_shape = tuple(source.frame_shape)
        self.dtype = np.dtype(source.dtype)
        frame_bytes = max(1, math.prod(self.frame_shape) * self.dtype.itemsize)
        self.capacity = max(1, budget // frame_bytes)
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._cursor = None
        self._next = 0
        #: Frames read from the source so far (not from the cache).
        self.reads = 0
        # A video decoder reaches a later frame by decoding on; restarting it
        # would decode from the first frame again.
        self._decodes_on = hasattr(source, "_decode")

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0 .. n_frames - 1)."""
        index = int(index)
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} of {self.n_frames}")
        with self._lock:
            frame = self._kept.get(index)
            if frame is not None:
                self._kept.move_to_end(index)
                return frame
            frame = self._read(index)
            frame.flags.writeable = False
            self._kept[index] = frame
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
            return frame

    def _read(self, index: int) -> np.ndarray:
        ahead = self._cursor is not None and index > self._next and self._decodes_on
        if self._cursor is None or (index != self._next and not ahead):
            self.close()
            self._cursor = self.source.frames(range(index, self.n_frames))
            self._next = index
        while True:
            try:
                frame = next(self._cursor)
            except BaseException:
                self.close()
                raise
            self._next += 1
            self.reads += 1
            if self._next > index:
                return frame

    def close(self) -> None:
        """Close the open cursor (its file or decoder); the next read reopens one."""
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
