"""Part of a recording: a frame range, every n-th frame, a crop.

:class:`Selection` wraps any :class:`~flowtrace_gpu.io.sources.FrameSource`
opened whole (``frames_to_skip=1``) and is the one place where ``start``,
``stop``, ``frames_to_skip`` and ``crop`` are applied: frame ``i`` of the
selection is frame ``start + i * frames_to_skip`` of the recording, cropped
while it is read (the wrapped reader reads and unpacks only the rows the crop
needs where its format allows, see :meth:`FrameSource._read`). Every value
is checked against the recording's size before anything is read.

>>> import numpy as np
>>> from flowtrace_gpu.io.sources import ArraySource
>>> movie = np.arange(10 * 4 * 6, dtype=np.uint8).reshape(10, 4, 6)
>>> part = Selection(ArraySource(movie), start=2, stop=8, skip=2, crop=(1, 2, 2, 3))
>>> part.n_frames, part.frame_shape
(3, (2, 3))
>>> np.array_equal(np.stack(list(part.frames(range(3)))), movie[2:8:2, 1:3, 2:5])
True
"""

from __future__ import annotations

from ..errors import FlowtraceError
from .sources import FrameSource


class Selection(FrameSource):
    """Frames ``[start, stop)`` of ``source``, every ``skip``-th, cropped to ``crop``.

    Parameters
    ----------
    source : FrameSource
        Opened with ``frames_to_skip=1``: its frame ``i`` is the recording's.
    start : int, default 0
    stop : int, optional
        Default: the end. A stop past the end is the end, as in ``movie[start:stop]``.
    skip : int, default 1
        ``frames_to_skip``: every ``skip``-th frame from ``start``.
    crop : (top, left, height, width), optional
        In pixels of the frame as displayed (as read: top row first).

    Raises
    ------
    FlowtraceError
        A crop outside the frame, ``start`` past the end, ``stop <= start``;
        the message names the value and the recording's size.
    """

    def __init__(self, source: FrameSource, start: int = 0, stop: int | None = None,
                 skip: int = 1, crop=None):
        self.source = source
        self.description = source.description
        total = source.n_frames  # None for an iterable: its end is found by reading
        held = "" if total is None else f", which holds {total} frames (0 to {total - 1})"
        if stop is not None and stop <= start:
            raise FlowtraceError(
                f"stop={stop} is not after start={start}: no frames of {self.description}"
                f"{held}; give stop > start")
        if total is not None and start >= total:
            raise FlowtraceError(
                f"start={start} is past the end of {self.description}{held}; "
                f"give start < {total}")
        height, width = source.frame_shape[:2]
        if crop is not None:
            top, left, h, w = crop
            if top + h > height or left + w > width:
                raise FlowtraceError(
                    f"crop=(top={top}, left={left}, height={h}, width={w}) reaches row "
                    f"{top + h} and column {left + w}, outside the {height}x{width} (height x "
                    f"width) frames of {self.description}; give top + height <= {height} and "
                    f"left + width <= {width}")
            crop = (int(top), int(left), int(h), int(w))
        self.start, self.skip, self.region = start, skip, crop
        self.stop = stop if total is None or stop is None else min(stop, total)
        end = total if self.stop is None else self.stop
        self.n_frames = None if end is None else len(range(start, end, skip))
        self.frame_shape = tuple(source.frame_shape) if crop is None else \
            (crop[2], crop[3]) + tuple(source.frame_shape[2:])
        self.dtype = source.dtype
        self.fps = source.fps
        self.bit_depth = source.bit_depth
        self.names = None if source.names is None else source.names[start:self.stop:skip]
        # What a run records it read (sources.source_files).
        for name in ("path", "header"):
            if hasattr(source, name):
                setattr(self, name, getattr(source, name))
        files = getattr(source, "files", None)
        if files is not None:
            self.files = files[start:self.stop:skip]
        self.recording_frames, self.recording_shape = total, tuple(source.frame_shape)

    def frames(self, indices, region=None):
        """Yield frames ``indices`` of the selection (a ``region`` crops the crop further)."""
        box = self.region
        if region is not None:
            top, left, height, width = region
            box = (top, left, height, width) if box is None else \
                (box[0] + top, box[1] + left, height, width)
        yield from self.source.frames(self._raw(indices), box)

    def _raw(self, indices):
        for i in indices:
            raw = self.start + i * self.skip
            if self.stop is not None and raw >= self.stop:
                return  # an iterable's indices are endless
            yield raw

    def raw_index(self, i: int) -> int:
        return self.source.raw_index(self.start + i * self.skip)

    def _label(self, i: int) -> str:
        return self.source._label(self.start + i * self.skip)

    def note(self) -> str:
        """Which frames of the recording these are, for messages: ``' (frames 2000 to 2999 of 10000)'``."""
        if (self.start, self.stop) == (0, None):
            return ""
        end = self.stop if self.stop is not None else self.recording_frames
        span = f"frames {self.start} to {end - 1}" if end is not None else \
            f"frames from {self.start}"
        of = f" of {self.recording_frames}" if self.recording_frames is not None else ""
        return f" ({span}{of})"


def select(source: FrameSource, start: int = 0, stop: int | None = None, skip: int = 1,
           crop=None) -> FrameSource:
    """``source`` itself when nothing is selected, else a :class:`Selection` of it."""
    if (start, stop, skip, crop) == (0, None, 1, None):
        return source
    return Selection(source, start, stop, skip, crop)
