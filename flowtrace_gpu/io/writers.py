"""Where images go: one interface for every output kind.

A writer receives ``write(index, image)`` calls, from several threads at
once when its ``parallel`` attribute is true, else from one thread in index
order. Each file is written under a temporary name and renamed into place,
so an interrupted run never leaves a half-written image.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .. import config
from ..errors import FlowtraceError
from .png import encode_png


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


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        write_atomically(path, encode_png(image, self.level))

    def close(self) -> list[Path]:
        return [self.out_dir / name for name in self.names]


class ArrayWriter:
    """Collects the images into one preallocated array (for flowtrace_array)."""

    parallel = True

    def __init__(self, out: np.ndarray):
        self.out = out

    def write(self, index: int, image: np.ndarray) -> None:
        self.out[index] = image

    def close(self) -> np.ndarray:
        return self.out
