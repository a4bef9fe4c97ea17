"""Where images go: one interface for every output kind.

A writer receives ``write(index, image)`` calls, from several threads at
once when its ``parallel`` attribute is true, else from one thread in index
order; ``close()`` returns the result and ``abort()`` cleans up after an
error. Each file is written under a temporary name this process has just
created exclusively (:func:`flowtrace_gpu.io.own_files.create_temp`) and
renamed into place, so an interrupted run never leaves a half-written image
and no planted link is written through. Single-file
writers (TIFF stack, video) live with their formats and are chosen by
:func:`flowtrace_gpu.io.formats.open_writer`.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

from .. import config
from ..errors import FlowtraceError
from .own_files import create_temp, write_atomically
from .png import png_parts


def prepare_out_dir(out_dir) -> Path:
    """Create ``out_dir`` if needed and check that files can be written in it."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise FlowtraceError(f"out_dir {str(path)!r} is a file, not a directory; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise FlowtraceError(
            f"out_dir {str(path)!r} is not writable ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    return path


def prepare_out_file(out_file) -> Path:
    """Check that the single output file ``out_file`` can be created.

    Creates its folder if needed and writes a probe file there; nothing is
    written at ``out_file`` itself until the writer closes.
    """
    path = Path(out_file)
    if path.is_dir():
        raise FlowtraceError(
            f"output {str(path)!r} is a folder, but its suffix {path.suffix!r} asks for one file; "
            "give a file path that does not name a folder"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise FlowtraceError(
            f"cannot write {str(path)!r} ({exc.strerror or exc}); choose a location you can write to"
        ) from None
    return path


class PartialFile:
    """A new temporary file beside ``path``, renamed to ``path`` on :meth:`commit`.

    The temporary file is created at once, exclusively
    (:func:`~flowtrace_gpu.io.own_files.create_temp`), and stays open as
    :attr:`file`: encoders write into that file object, never to a path
    they open themselves, so a link planted at any name cannot redirect
    them. Its name keeps ``path``'s suffix, as encoders pick the container
    from it. If the owner is dropped (or the interpreter exits) before
    ``commit``, the temporary file is removed, so a failed run never leaves
    a half-written output.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        fd, self.tmp = create_temp(self.path, keep_suffix=True)
        #: The open temporary file (binary, read-write); its ``name`` is :attr:`tmp`.
        self.file = os.fdopen(fd, "w+b")
        self.file.raw.name = str(self.tmp)  # encoders that pick the container by name see it
        self._finalizer = weakref.finalize(self, _remove, self.file, self.tmp)

    def commit(self) -> Path:
        self.file.close()
        os.replace(self.tmp, self.path)
        self._finalizer.detach()
        return self.path

    def discard(self) -> None:
        self._finalizer()


def _remove(file, path: Path) -> None:
    try:
        file.close()
    except OSError:
        pass
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class StreamedFileWriter:
    """Base of the writers that stream every image, in index order, into one file.

    The file is written under a temporary name (:class:`PartialFile`,
    created with the first image, once the run holds the output's lock) and
    appears at its path only when :meth:`close` has checked that all
    ``n_images`` arrived; after an error :meth:`abort` removes it.
    Subclasses say how to check an image (``_check``), open the encoder on
    the first image (``_open``, writing into ``self.partial.file`` and
    returning a handle with ``close()``), append an image (``_append``) and
    finish the file (``_finish``).
    """

    parallel = False  # one file handle: images in order

    def __init__(self, path: Path, n_images: int):
        self.path = Path(path)
        self.partial: PartialFile | None = None
        self.n_images = n_images
        self._handle = None
        self._next = 0

    def _check(self, image: np.ndarray) -> None:
        """Raise FlowtraceError if the format cannot hold ``image``."""

    def _open(self, image: np.ndarray):
        raise NotImplementedError

    def _append(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        self._handle.close()

    def write(self, index: int, image: np.ndarray) -> None:
        if index != self._next:
            raise RuntimeError(f"{type(self).__name__} got image {index}, expected {self._next}")
        self._check(image)
        if self._handle is None:
            if self.partial is None:
                self.partial = PartialFile(self.path)
            self._handle = self._open(image)
        self._append(image)
        self._next += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._handle is None:
            self.abort()
            raise FlowtraceError(f"no images were written, so {self.path} was not created")
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        if self._next != self.n_images:
            self.partial.discard()
            raise FlowtraceError(
                f"{self.path}: {self._next} of {self.n_images} images arrived; "
                "nothing was written"
            )
        return self.partial.commit()

    def abort(self) -> None:
        """Drop the partial file (after an error)."""
        if self._handle is not None:
            try:
                self._handle.close()
            except Exception:  # the file goes anyway
                pass
        if self.partial is not None:
            self.partial.discard()


class PngFolderWriter:
    """One PNG per output image, named ``<frame stem><suffix>``.

    Parameters
    ----------
    out_dir : pathlib.Path
        An existing, writable folder (see :func:`prepare_out_dir`).
    names : sequence of str
        File name of output ``i`` is ``names[i]``.
    level : int, optional
        Deflate level; default ``FLOWTRACE_PNG_LEVEL`` (1).
    """

    parallel = True

    def __init__(self, out_dir: Path, names, level: int | None = None):
        self.out_dir = Path(out_dir)
        self.names = list(names)
        self.level = int(config.get("png_level") if level is None else level)
        self.paths: list[Path] = []

    def write(self, index: int, image: np.ndarray) -> None:
        path = self.out_dir / self.names[index]
        write_atomically(path, png_parts(image, self.level))

    def close(self) -> list[Path]:
        return [self.out_dir / name for name in self.names]

    def abort(self) -> None:
        """Nothing to undo: each file is complete or absent."""


class ArrayWriter:
    """Collects the images into one preallocated array (for flowtrace_array)."""

    parallel = True

    def __init__(self, out: np.ndarray):
        self.out = out

    def write(self, index: int, image: np.ndarray) -> None:
        self.out[index] = image

    def close(self) -> np.ndarray:
        return self.out

    def abort(self) -> None:
        """Nothing to undo."""


class ListWriter:
    """Collects images of an unknown count; ``close()`` stacks them in order.

    For sources of unknown length (an iterable of frames), where
    :class:`ArrayWriter` cannot preallocate.
    """

    parallel = True

    def __init__(self):
        self.images: dict[int, np.ndarray] = {}

    def write(self, index: int, image: np.ndarray) -> None:
        self.images[index] = image  # dict item assignment is atomic under the GIL

    def close(self) -> np.ndarray:
        if not self.images:
            return np.empty((0,), dtype=np.uint8)
        return np.stack([self.images[i] for i in range(len(self.images))])

    def abort(self) -> None:
        self.images.clear()
