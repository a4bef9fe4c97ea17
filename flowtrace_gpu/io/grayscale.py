"""Color frames as gray: BT.601 luma, as a function and as a source wrapper."""

from __future__ import annotations

import numpy as np

from ..errors import FlowtraceError
from .sources import FrameSource


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, C) RGB(A) frame, in its dtype.

    Integer frames use Pillow's fixed-point weights (19595, 38470, 7471) / 2**16,
    so 8-bit results equal ``Image.convert('L')``; float frames use 0.299,
    0.587, 0.114.
    """
    rgb = frame[..., :3]
    if frame.dtype.kind in "ui" and frame.dtype.itemsize <= 2:
        # uint32 holds 65535 * 65536 + 2**15, the widest sum here.
        acc = rgb[..., 0].astype(np.uint32) * 19595
        acc += rgb[..., 1].astype(np.uint32) * 38470
        acc += rgb[..., 2].astype(np.uint32) * 7471
        acc += 1 << 15
        return (acc >> 16).astype(frame.dtype)
    weights = np.array([0.299, 0.587, 0.114])
    out = rgb @ weights
    return (np.rint(out) if frame.dtype.kind in "ui" else out).astype(frame.dtype)


class GrayscaleSource(FrameSource):
    """Another source's color frames as luma (see :func:`luma`).

    Count, names, frame rate and ``bit_depth`` are the wrapped source's: luma
    of values below ``2**bit_depth`` stays below it.
    """

    def __init__(self, source: FrameSource):
        if source.frame_shape[2] not in (3, 4):
            raise FlowtraceError(
                f"grayscale=True converts RGB or RGBA frames, but {source.description} has "
                f"{source.frame_shape[2]} channels (frame shape {source.frame_shape}); "
                "drop grayscale or convert the frames yourself"
            )
        self.source = source
        self.n_frames = source.n_frames
        self.frame_shape = tuple(source.frame_shape[:2])
        self.dtype = source.dtype
        self.names = source.names
        self.description = source.description
        self.fps = source.fps
        self.bit_depth = source.bit_depth

    def frames(self, indices, region=None):
        for frame in self.source.frames(indices, region):
            yield luma(frame)

    def raw_index(self, i: int) -> int:
        return self.source.raw_index(i)
