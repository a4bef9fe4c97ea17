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
from .boundary import reading
from .sources import FrameSource, cut


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


def read_block(handle, offset: int, nbytes: int) -> np.ndarray:
    """``nbytes`` of an unbuffered binary file from ``offset``, into a new uint8 array.

    Read, not memory-mapped: the pages of a mapped file count in the
    process's resident memory (RSS) while the mapping lives, so a long run
    would look as large as the file to job schedulers that count RSS
    (docs/guide/recordings.md, "Memory"). Raises ValueError where the file ends first.
    """
    block = np.empty(nbytes, np.uint8)
    view, filled = memoryview(block), 0
    handle.seek(offset)
    while filled < nbytes:
        got = handle.readinto(view[filled:])
        if not got:
            raise ValueError(f"the file ends {nbytes - filled} bytes short of a frame at offset {offset}")
        filled += got
    return block


def region_rows(region, height: int) -> tuple[int, int]:
    """Rows ``[first, stop)`` a reader must deliver for ``region`` (all rows for None)."""
    if region is None:
        return 0, height
    return region[0], region[0] + region[2]


def frame_names(stem: str, count: int, skip: int) -> list[str]:
    """``<stem>_<raw index>`` for the frames kept, zero-padded to the count's width."""
    width = len(str(max(count - 1, 0)))
    return [f"{stem}_{i:0{width}d}" for i in range(0, count, skip)]


class RecordingSource(FrameSource):
    """One file holding many frames, addressed by raw index; every ``skip``-th is kept.

    Subclasses call ``super().__init__`` with the file they read, parse their
    header inside ``with self._opening():``, call :meth:`_set_count` with the
    number of frames the file holds, and implement :meth:`_read_raw`;
    :meth:`_open_pass` opens whatever one pass over the frames keeps open (a
    file handle), on the reader thread. Whatever a library raises inside
    those becomes a FlowtraceError naming the file (and the frame), once, here
    (see :mod:`~flowtrace_gpu.io.boundary`).

    Parameters
    ----------
    path : path-like
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.
    """

    #: The kind of file, for messages: ``"cannot read <path> as <kind>"``.
    kind = "a recording"
    #: What to do about a file that cannot be opened.
    fix = "give an intact recording"

    def __init__(self, path, frames_to_skip: int = 1):
        self.path = Path(path)
        self.skip = frames_to_skip
        self.description = str(self.path)

    def _opening(self):
        """The boundary around reading the file's headers."""
        return reading(f"{self.path} as {self.kind}", self.fix)

    def _decoding(self, raw: int):
        """The boundary around decoding frame ``raw`` (index in the file)."""
        return reading(f"frame {raw} of {self.path}",
                       "the file may be truncated or corrupt", doing="decode")

    def _set_count(self, n_raw: int) -> None:
        """Frames in the file; sets ``n_frames`` and ``names`` after skipping.

        Every frame takes at least one byte of the file, so a header claiming
        more frames than the file has bytes is corrupt (and is refused before
        a name is made for each).
        """
        size = self.path.stat().st_size
        if not 0 <= n_raw <= size:
            raise FlowtraceError(
                f"{self.path} announces {n_raw} frames, which its {size} bytes cannot hold: "
                f"its header is corrupt; {self.fix}"
            )
        self.n_raw = int(n_raw)
        self.n_frames = len(range(0, self.n_raw, self.skip))
        self.names = frame_names(self.path.stem, self.n_raw, self.skip)

    def frames(self, indices, region=None):
        """Yield the frames at ``indices`` (positions after skipping), checked.

        ``region`` = ``(top, left, height, width)`` crops each frame while it
        is read: readers of uncompressed or bit-packed frames read and unpack
        only its rows (see :meth:`_read_raw`).
        """
        with contextlib.ExitStack() as stack:
            with self._opening():
                handle = stack.enter_context(self._open_pass())
            for i in indices:
                raw = i * self.skip
                with self._decoding(raw):
                    frame = self._read_raw(handle, raw, region)
                self._check(frame, i, region)
                yield cut(frame, region)

    def _open_pass(self):
        return contextlib.nullcontext()

    def _read_raw(self, handle, raw: int, region=None) -> np.ndarray:
        """Frame ``raw`` of the file: whole, the rows of ``region``, or ``region`` itself."""
        raise NotImplementedError

    def _label(self, i: int) -> str:
        return f"frame {i * self.skip} of {self.path}"
