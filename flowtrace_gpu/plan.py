"""What a run will compute, decided once and shared by every backend.

Validation and planning live here so that each backend owns only its
kernels: a :class:`TracePlan` fixes the window length, the per-window steps,
the color weights and the output shape before the first frame is read.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from .errors import FlowtraceError

#: The original's time ramp, first frame to last (RGB, 0-255).
RAMP_START = (90, 10, 250)
RAMP_END = (255, 153, 0)

#: How windows are laid over the frames (see :func:`trace_sequence`).
WINDOW_SCHEMES = ("original", "sliding")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise FlowtraceError(
            f"{name} must be a whole number >= {minimum}, got {value!r} "
            f"({type(value).__name__})"
        ) from None
    if ivalue < minimum:
        raise FlowtraceError(f"{name} must be >= {minimum}, got {ivalue}")
    return ivalue


@dataclass(frozen=True)
class TraceOptions:
    """The per-window steps, in the original's order (see README, "Options")."""

    invert_color: bool = False
    take_diff: bool = False
    diff_order: int = 1
    subtract_median: bool = False
    subtract_first: bool = False
    add_first_frame: bool = False
    color_series: bool = False
    windows: str = "original"

    def __post_init__(self):
        for name in ("invert_color", "take_diff", "subtract_median", "subtract_first",
                     "add_first_frame", "color_series"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise FlowtraceError(f"{name} must be True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))
        object.__setattr__(self, "diff_order", _positive_int("diff_order", self.diff_order))
        if self.windows not in WINDOW_SCHEMES:
            raise FlowtraceError(
                f"windows must be one of {', '.join(map(repr, WINDOW_SCHEMES))}, "
                f"got {self.windows!r}"
            )

    def stack_length(self, frames_to_merge: int) -> int:
        """Frames left in a window after ``take_diff`` and ``add_first_frame``."""
        k = frames_to_merge
        if self.take_diff:
            k -= self.diff_order
        if self.add_first_frame:
            k += 1
        return k


def check_window(frames_to_merge, n_frames: int | None, frames_to_skip: int,
                 options: TraceOptions) -> int:
    """Validate ``frames_to_merge`` against the options and the frames available.

    ``n_frames`` is the count after ``frames_to_skip`` (None when unknown, as
    for a generator). Returns ``frames_to_merge`` as an int.
    """
    f = _positive_int("frames_to_merge", frames_to_merge)
    if n_frames is not None:
        if n_frames < 1:
            raise FlowtraceError("no frames to trace")
        if f > n_frames:
            after = f" after frames_to_skip={frames_to_skip}" if frames_to_skip > 1 else ""
            raise FlowtraceError(
                f"frames_to_merge={f} but only {n_frames} frames remain{after}; "
                f"use at most {n_frames}"
            )
    if options.take_diff and options.diff_order >= f:
        raise FlowtraceError(
            f"diff_order={options.diff_order} leaves no frames in a window of "
            f"frames_to_merge={f}; use diff_order < {f} or a longer window"
        )
    return f


def trace_sequence(n_frames: int, frames_to_merge: int, windows: str = "original") -> list[int]:
    """Indices of the frames that windows slide over, in order.

    ``'sliding'`` keeps every frame: window i holds frames i .. i+F-1, and
    there are N-F+1 windows. ``'original'`` reproduces the original
    flowtrace, which fills its first window with frames 0..F-1 and then
    reads frame i+F for window i, so frame F is never read: windows slide
    over the frames with frame F removed (N-F windows; with N == F, where the
    original writes nothing, the one window of all frames). Either way
    output i is named after frame i.
    """
    indices = list(range(n_frames))
    if windows == "original" and n_frames > frames_to_merge:
        del indices[frames_to_merge]
    return indices


def count_outputs(n_frames: int, frames_to_merge: int, windows: str = "original") -> int:
    """Number of images written for ``n_frames`` frames (after skipping)."""
    return len(trace_sequence(n_frames, frames_to_merge, windows)) - frames_to_merge + 1


def ramp_colors(k: int) -> np.ndarray:
    """The original's time ramp as (k, 3) float64 weights, frame 0 first.

    Built exactly as the original builds it (``linspace`` of colors divided
    by 255, then divided by 255 again) so the products round as its do; the
    per-image stretch cancels the constant factor.
    """
    start = np.array(RAMP_START, dtype=np.float64) / 255.0
    end = np.array(RAMP_END, dtype=np.float64) / 255.0
    ramp = np.stack([np.linspace(start[c], end[c], k) for c in range(3)], axis=1)
    return ramp / 255.0


@dataclass(frozen=True)
class TracePlan:
    """Everything a backend needs to turn windows of frames into images.

    Parameters
    ----------
    frames_to_merge : int
        Window length F.
    frame_shape : tuple of int
        (H, W) for grayscale or (H, W, C) for color frames.
    dtype : numpy.dtype
        Input frame dtype.
    options : TraceOptions
        The per-window steps.
    """

    frames_to_merge: int
    frame_shape: tuple
    dtype: np.dtype
    options: TraceOptions = field(default_factory=TraceOptions)

    def __post_init__(self):
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "frame_shape", tuple(int(s) for s in self.frame_shape))
        if len(self.frame_shape) not in (2, 3):
            raise FlowtraceError(
                f"frames must be 2-D (H, W) or 3-D (H, W, channels), got shape {self.frame_shape}"
            )
        if self.dtype.kind not in "uif" and self.dtype.kind != "b":
            raise FlowtraceError(
                f"frames must have an integer or float dtype, got {self.dtype}; "
                "convert them with numpy.asarray(frames, dtype=...)"
            )
        if self.options.color_series and self.is_color_input and self.frame_shape[2] != 3:
            raise FlowtraceError(
                f"color_series tints grayscale or RGB frames, got {self.frame_shape[2]} channels "
                f"(frame shape {self.frame_shape}); drop the extra channels or color_series"
            )
        check_window(self.frames_to_merge, None, 1, self.options)

    @property
    def stack_length(self) -> int:
        """K: frames in a window after diff and add_first_frame."""
        return self.options.stack_length(self.frames_to_merge)

    @property
    def is_color_input(self) -> bool:
        return len(self.frame_shape) == 3

    @property
    def colors(self) -> np.ndarray | None:
        """(K, 3) color_series weights, or None."""
        return ramp_colors(self.stack_length) if self.options.color_series else None

    @property
    def out_shape(self) -> tuple:
        """Shape of one output image."""
        if self.options.color_series and not self.is_color_input:
            return self.frame_shape + (3,)
        return self.frame_shape

    @property
    def invert_offset(self) -> float:
        """``invert_color`` computes ``invert_offset - min``.

        255, as the original, for 8-bit and float frames; the dtype's maximum
        for wider integers, where 255 - min would be negative everywhere.
        """
        if self.dtype.kind in "ui" and self.dtype.itemsize > 1:
            return float(np.iinfo(self.dtype).max)
        return 255.0
