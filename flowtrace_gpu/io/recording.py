"""What the readers of recording files share (TIFF stack, video, MRAW, cine).

A leaf module: format modules import it, never the dispatcher
(:mod:`flowtrace_gpu.io.formats`), so nothing here imports a format.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from .sources import FrameSource


def require(module: str, pip_name: str, purpose: str):
    """Import an optional dependency or explain which package to install.

    Parameters
    ----------
    module : str
        Import name, e.g. ``'av'``.
    pip_name : str
        Package to ``pip install``, e.g. ``'av'``.
    purpose : str
        What it is needed for, e.g. ``'reading video'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlowtraceError(
            f"{purpose} needs the Python package {pip_name!r}, which is not importable "
            f"({exc}); install it with: pip install {pip_name}"
        ) from None


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only, for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def frame_names(stem: str, count: int, skip: int) -> list[str]:
    """``<stem>_<raw index>`` for the frames kept, zero-padded to the count's width."""
    width = len(str(max(count - 1, 0)))
    return [f"{stem}_{i:0{width}d}" for i in range(0, count, skip)]


class RecordingSource(FrameSource):
    """One file holding many frames, addressed by raw index; every ``skip``-th is kept.

    Subclasses call ``super().__init__`` with the file they read, parse their
    header, call :meth:`_set_count` with the number of frames the file holds,
    and implement :meth:`_read_raw`; :meth:`_open_pass` opens whatever one
    pass over the frames keeps open (a file handle), on the reader thread.

    Parameters
    ----------
    path : path-like
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.
    """

    def __init__(self, path, frames_to_skip: int = 1):
        self.path = Path(path)
        self.skip = frames_to_skip
        self.description = str(self.path)

    def _set_count(self, n_raw: int) -> None:
        """Frames in the file; sets ``n_frames`` and ``names`` after skipping."""
        self.n_raw = int(n_raw)
        self.n_frames = len(range(0, self.n_raw, self.skip))
        self.names = frame_names(self.path.stem, self.n_raw, self.skip)

    def frames(self, indices):
        """Yield the frames at ``indices`` (positions after skipping), checked."""
        with self._open_pass() as handle:
            for i in indices:
                frame = self._read_raw(handle, i * self.skip)
                self._check(frame, i)
                yield frame

    def _open_pass(self):
        return contextlib.nullcontext()

    def _read_raw(self, handle, raw: int) -> np.ndarray:
        raise NotImplementedError

    def _label(self, i: int) -> str:
        return f"frame {i * self.skip} of {self.path}"
