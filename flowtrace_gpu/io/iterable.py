"""Frames from any iterable or generator, read once, never held all at once."""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import FlowtraceError
from .sources import FrameSource, cut

_END = object()


class IterableSource(FrameSource):
    """A source over an iterable of frames (a generator, a camera SDK loop...).

    The first frame is taken at construction to learn the shape and dtype;
    the rest are pulled only as :meth:`frames` asks for them. The count is
    unknown (``n_frames`` is None) and the frames can be walked once.

    Parameters
    ----------
    frames : iterable of array-like
        Each (H, W) or (H, W, C), all alike.
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.
    """

    def __init__(self, frames, frames_to_skip: int = 1):
        try:
            iterator = iter(frames)
        except TypeError:
            raise FlowtraceError(
                f"frames must be an array or an iterable of frames, got {type(frames).__name__}"
            ) from None
        first = next(iterator, _END)
        if first is _END:
            raise FlowtraceError("the iterable of frames is empty; give at least one frame")
        first = np.asarray(first)
        if first.ndim not in (2, 3):
            raise FlowtraceError(
                f"each frame must be (H, W) or (H, W, C), but the first is shaped {first.shape}"
            )
        self.frame_shape = first.shape
        self.dtype = first.dtype
        self.skip = frames_to_skip
        self.n_frames = None
        self.names = None
        self.description = f"iterable of {type(frames).__name__}"
        # Kept frames in order, the first put back in front.
        self._kept = itertools.islice(itertools.chain([first], iterator), 0, None, frames_to_skip)
        self._used = False

    def frames(self, indices, region=None):
        """Yield the frames at increasing ``indices``; stops when the iterable ends.

        ``indices`` may be endless (e.g. ``itertools.count()``): the walk
        ends with the frames.
        """
        if self._used:
            raise FlowtraceError(
                "this iterable of frames was already read; an iterable is walked once "
                "(pass an array, or make a new generator)"
            )
        self._used = True
        position = 0  # index (after skipping) of the frame _kept yields next
        for i in indices:
            if i < position:
                raise FlowtraceError(
                    f"frame {i} was asked for after frame {position - 1}; an iterable is read "
                    "forwards only"
                )
            frame = None
            while position <= i:
                frame = next(self._kept, _END)
                if frame is _END:
                    return
                position += 1
            frame = np.asarray(frame)
            self._check(frame, i)
            yield cut(frame, region)
