"""Zarr arrays in and out: a recording stored as zarr, pathline images written as zarr.

A source is a zarr array (format 3, or 2) with time on axis 0, shaped
(N, H, W) or (N, H, W, C); it is read a chunk of frames at a time. The
output is a zarr v3 array of the images, one image per chunk, so a chunk
is exactly one image: each is written whole by one writer, under a new
temporary name created exclusively and renamed into place
(:func:`~flowtrace_gpu.io.own_files.write_in_tree`, which follows no link
inside the array), so an interrupted run leaves complete images or none and
a link planted in the array is refused, not written through. The result
opens as it is in dask (``dask.array.from_zarr``), napari or zarr.

Shards (many images per file) are not used: on this project's machine they
wrote no faster than one file per image, and a shard must be written whole
by one task (partial shard writes from several lose data, zarr-python#3514).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError, require_dask
from . import suffixes
from .boundary import first_line
from .own_files import is_regular_file, is_temporary, write_in_tree
from .recording import RecordingSource

#: Bytes of frames one read may decode at once (a chunk of frames, capped).
_READ_BYTES = 64 * 2**20


def is_zarr_path(path) -> bool:
    """Whether ``path`` names a zarr store: a ``.zarr`` suffix, or a folder with zarr metadata."""
    p = Path(path)
    return (suffixes.suffix(p) in suffixes.ZARR or (p / "zarr.json").is_file()
            or (p / ".zarray").is_file())


def _zarr(purpose: str):
    return require_dask("zarr", purpose)


@functools.cache
def _own_store_class():
    """zarr's LocalStore, writing every file through :func:`~flowtrace_gpu.io.own_files.write_in_tree`."""
    from zarr.storage import LocalStore

    class OwnFilesStore(LocalStore):
        """A local store whose writes create files exclusively and follow no link below its root."""

        def set_sync(self, key: str, value) -> None:
            self._ensure_open_sync()
            self._check_writable()
            self.root.mkdir(parents=True, exist_ok=True)  # the root is the output as given
            write_in_tree(self.root, key, value.as_buffer_like())

        async def set(self, key: str, value) -> None:
            await self._put(key, value, False)

        async def set_if_not_exists(self, key: str, value) -> None:
            try:
                await self._put(key, value, True)
            except FileExistsError:
                pass

        async def _put(self, key: str, value, exclusive: bool) -> None:
            if not self._is_open:
                await self._open()
            self._check_writable()
            self.root.mkdir(parents=True, exist_ok=True)  # deleted by an overwrite
            await asyncio.to_thread(write_in_tree, self.root, key, value.as_buffer_like(), exclusive)

    return OwnFilesStore


def own_store(path):
    """A zarr store at ``path`` that writes as flowtrace writes its own files."""
    return _own_store_class()(Path(path))


class ZarrSource(RecordingSource):
    """Frames of a zarr array, time on axis 0, decoded a chunk of frames at a time.

    Parameters
    ----------
    path : path-like
        The array's folder (a ``.zarr`` store holding one array, or an
        array inside a group: ``recording.zarr/raw``).
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.
    """

    def __init__(self, path, frames_to_skip: int = 1):
        super().__init__(path, frames_to_skip)
        zarr = _zarr(f"reading the zarr array {self.description!r}")
        p = self.path
        try:
            node = zarr.open(store=str(p), mode="r")
        except Exception as exc:
            raise FlowtraceError(
                f"input {str(p)!r} is not a readable zarr array ({first_line(exc)}); give the "
                "folder of a zarr array whose axis 0 is time") from None
        if not isinstance(node, zarr.Array):
            names = sorted(name for name, _ in node.arrays())
            raise FlowtraceError(
                f"input {str(p)!r} is a zarr group; give one of its arrays, e.g. "
                f"{str(p / names[0]) if names else str(p / 'NAME')!r} (arrays: {names or 'none'})")
        if node.ndim not in (3, 4):
            raise FlowtraceError(
                f"input {str(p)!r} is a zarr array of shape {node.shape}; frames must be shaped "
                "(N, H, W) or (N, H, W, C), time on axis 0")
        self.array = node
        self._set_count(node.shape[0])
        self.frame_shape = tuple(node.shape[1:])
        self.dtype = np.dtype(node.dtype)
        fps = node.attrs.get("fps")
        self.fps = float(fps) if isinstance(fps, (int, float)) and fps > 0 else None

    def _open_pass(self):
        frame_bytes = max(1, math.prod(self.frame_shape) * self.dtype.itemsize)
        return contextlib.nullcontext(_ChunkReader(self.array, _READ_BYTES // frame_bytes))

    def _read_raw(self, reader, raw: int, region=None) -> np.ndarray:
        return reader.frame(raw, region)


class _ChunkReader:
    """One pass's reads: the rest of a frame's chunk decoded at once, then served.

    zarr decodes whole chunks, so reading frame by frame would decode a
    chunk of many frames once per frame.
    """

    def __init__(self, array, most_frames: int):
        self.array = array
        self.chunk = int(array.chunks[0])
        self.most = max(1, min(self.chunk, most_frames))
        self.start = self.stop = 0
        self.frames = None

    def frame(self, raw: int, region=None) -> np.ndarray:
        """Frame ``raw``, cropped to ``region``: zarr then decodes only the chunks it covers.

        ``region`` is the same for every frame of a pass.
        """
        if not self.start <= raw < self.stop:
            end = min((raw // self.chunk + 1) * self.chunk, raw + self.most, self.array.shape[0])
            if region is None:
                self.frames = np.asarray(self.array[raw:end])
            else:
                top, left, height, width = region
                self.frames = np.asarray(self.array[raw:end, top:top + height, left:left + width])
            self.start, self.stop = raw, end
        return self.frames[raw - self.start]


class ZarrWriter:
    """Images into a zarr v3 array at ``path``, one image per chunk.

    The array is opened when the first image arrives (its shape is known
    then): an array already there with this shape, dtype and chunking is
    written into, keeping the images a resumed run does not rewrite; any
    other is replaced. Every image gets its chunk file, even an all-zero one
    (zarr skips those by default), so a resumed run can tell which exist.
    Writes of different images touch different chunks: writer threads run
    side by side.
    """

    parallel = True

    def __init__(self, path: Path, n_images: int, dtype):
        self.path = Path(path)
        self.n_images = n_images
        self.dtype = np.dtype(dtype)
        self._array = None
        self._lock = threading.Lock()
        self._zarr = _zarr(f"writing the zarr array {str(self.path)!r}")

    def _open(self, image: np.ndarray):
        with self._lock:
            if self._array is None:
                shape, chunks = (self.n_images,) + image.shape, (1,) + image.shape
                zarr = self._zarr
                with zarr.config.set({"array.write_empty_chunks": True}):
                    array = _existing(zarr, self.path, shape, chunks, self.dtype)
                    if array is None:
                        array = zarr.create_array(
                            store=own_store(self.path), shape=shape, chunks=chunks, dtype=self.dtype,
                            chunk_key_encoding={"name": "default", "separator": "/"},
                            overwrite=True)
                remove_partial_chunks(self.path)
                self._array = array
            return self._array

    def write(self, index: int, image: np.ndarray) -> None:
        array = self._array if self._array is not None else self._open(image)
        array[index] = image

    def close(self) -> Path:
        if self._array is None and self.n_images:
            raise FlowtraceError(f"no images were written, so {self.path} was not created")
        return self.path

    def abort(self) -> None:
        """Nothing to undo: each image written is complete (a later run may resume)."""


def _existing(zarr, path: Path, shape, chunks, dtype):
    """The array at ``path`` if it has this layout, else None."""
    if not (path / "zarr.json").is_file():
        return None
    try:
        array = zarr.open_array(store=own_store(path), mode="r+")
    except Exception:  # not an array we can use: replaced
        return None
    encode = getattr(array.metadata, "encode_chunk_key", None)  # zarr v3 arrays only
    key = (1,) + (0,) * (len(shape) - 1)
    same = (array.shape == shape and array.chunks == chunks and array.dtype == dtype
            and encode is not None and Path(path, encode(key)) == chunk_file(path, 1, len(shape)))
    return array if same else None


def chunk_file(path, index: int, ndim: int) -> Path:
    """The file holding image ``index`` of the array at ``path`` (``c/<index>/0/0``)."""
    return Path(path, "c", str(index), *(["0"] * (ndim - 1)))


def chunk_files(path, n_images: int, ndim: int) -> list[Path]:
    """The chunk file of every image: what a resumed run checks exists."""
    return [chunk_file(path, i, ndim) for i in range(n_images)]


def remove_partial_chunks(path) -> list[Path]:
    """Remove chunk files left half-written when a run was killed.

    Those are zarr's own (``*.partial``) and flowtrace's temporary names
    (:func:`~flowtrace_gpu.io.own_files.is_temporary`): regular files only,
    found without following links. Called while the run holds the output's
    lock: no other writer is at work.
    """
    removed = []
    for folder, _, names in os.walk(Path(path, "c")):  # os.walk follows no link
        for name in names:
            found = Path(folder, name)
            if (name.endswith(".partial") or is_temporary(name)) and is_regular_file(found):
                try:
                    found.unlink()
                except OSError:
                    continue
                removed.append(found)
    return removed


def prepare_zarr_out(out) -> Path:
    """Check that a zarr array can be written at ``out``: absent, or a zarr store to replace."""
    p = Path(out)
    if p.is_file():
        raise FlowtraceError(f"output {str(p)!r} is a file; a .zarr output is a folder: give a new path")
    if p.is_dir() and any(p.iterdir()) and not (
            (p / "zarr.json").is_file() or (p / ".zarray").is_file()):
        raise FlowtraceError(
            f"output {str(p)!r} is a folder holding files that are not a zarr array; writing an "
            "array there would replace them: give a new path or remove the folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        for folder in (p.parent, p) if p.is_dir() else (p.parent,):
            with tempfile.TemporaryFile(dir=folder):  # its manifest and lock go beside it
                pass
    except OSError as exc:
        raise FlowtraceError(
            f"cannot write {str(p)!r} ({exc.strerror or exc}); choose a location you can write to"
        ) from None
    return p
