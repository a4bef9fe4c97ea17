"""What a run will compute, decided once and shared by every backend.

Validation and planning live here so that each backend owns only its
kernels: a :class:`TracePlan` fixes the window length, the per-window steps,
the color weights and the output shape before the first frame is read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..errors import FlowtraceError
from ..kernels.colors import WeightMode, colormap_colors, fade_weights, ramp_colors
from ..options import TraceOptions, whole

#: What a projector returns, decided by the plan: 'frame' (8-bit, each image
#: stretched on its own), 'fixed' (8-bit, one given peak for every image),
#: 'none' (raw values in the input dtype) and 'float' (the float64
#: projection, for measuring the global peak).
SCALINGS = ("frame", "fixed", "none", "float")


def check_window(frames_to_merge, n_frames: int | None, frames_to_skip: int,
                 options: TraceOptions, where: str = "") -> int:
    """Validate ``frames_to_merge`` against the options and the frames available.

    ``n_frames`` is the count after ``frames_to_skip`` (None when unknown, as
    for a generator); ``where`` says which frames those are (e.g. ``' (frames
    2000 to 2999 of 10000)'``). Returns ``frames_to_merge`` as an int.
    """
    f = whole(1)("frames_to_merge", frames_to_merge)
    if n_frames is not None:
        if n_frames < 1:
            raise FlowtraceError(f"no frames to trace{where}")
        if f > n_frames:
            after = f" after frames_to_skip={frames_to_skip}" if frames_to_skip > 1 else ""
            after += where
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


def trace_sequence(n_frames: int | None, frames_to_merge: int, windows: str = "sliding"):
    """Indices of the frames that windows slide over, in order.

    ``'sliding'`` keeps every frame: window i holds frames i .. i+F-1, and
    there are N-F+1 windows. ``'original'`` reproduces the original
    flowtrace, which fills its first window with frames 0..F-1 and then
    reads frame i+F for window i, so frame F is never read: windows slide
    over the frames with frame F removed (N-F windows; with N == F, where the
    original writes nothing, the one window of all frames). Either way
    output i is named after frame i. With ``n_frames`` None (a stream of
    unknown length) the indices come as an endless iterator.
    """
    if n_frames is None:
        if windows == "original":
            return itertools.chain(range(frames_to_merge), itertools.count(frames_to_merge + 1))
        return itertools.count()
    indices = list(range(n_frames))
    if windows == "original" and n_frames > frames_to_merge:
        del indices[frames_to_merge]
    return indices


def step_sequence(sequence, frames_to_merge: int, window_step: int):
    """The frames to push for an image of every ``window_step``-th window, and their stride.

    Image k is the window starting at ``sequence[k * window_step]``. Returns
    ``(frames, stride)``: in ``frames``, image k is the window starting at
    position ``k * stride``. Frames no kept window holds are left out, so a
    step above F reads only each kept window's F frames (the windows between
    two groups are computed and dropped: F - 1 of them, fewer than a step).

    >>> step_sequence(list(range(10)), 3, 2)
    ([0, 1, 2, 3, 4, 5, 6, 7, 8], 2)
    >>> step_sequence(list(range(10)), 3, 4)
    ([0, 1, 2, 4, 5, 6], 3)
    """
    f, step = frames_to_merge, window_step
    stride = min(step, f)
    if step == 1:
        return sequence, 1
    if not isinstance(sequence, list):  # a stream of unknown length
        return _stepped_stream(iter(sequence), f, step), stride
    n_images = len(range(0, len(sequence) - f + 1, step))
    frames = []
    for k in range(n_images):
        frames += sequence[k * step:k * step + stride]
    last = (n_images - 1) * step
    return frames + sequence[last + stride:last + f], stride


def _stepped_stream(frames, f: int, step: int):
    if step <= f:
        yield from frames
        return
    while True:
        group = list(itertools.islice(frames, f))
        yield from group
        if len(group) < f or next(itertools.islice(frames, step - f - 1, None), None) is None:
            return


def images_of(n_frames: int | None, frames_to_merge: int, windows: str, window_step: int):
    """Images a run makes of ``n_frames`` frames (None when unknown)."""
    if n_frames is None:
        return None
    n_windows = len(trace_sequence(n_frames, frames_to_merge, windows)) - frames_to_merge + 1
    return len(range(0, n_windows, window_step))


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
    #: One of SCALINGS; None derives it from ``options.normalize``.
    scaling: str | None = None
    #: The one peak every image is scaled by when ``scaling == 'fixed'``.
    peak: float | None = None

    def __post_init__(self):
        if self.scaling is None:
            derived = {"frame": "frame", "global": "float", "none": "none"}[self.options.normalize]
            object.__setattr__(self, "scaling", derived)
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.scaling == "fixed" and self.peak is None:
            raise ValueError("scaling='fixed' needs the peak")
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
        bits = self.options.bit_depth
        if bits is not None and (self.dtype.kind not in "ui" or bits > 8 * self.dtype.itemsize):
            raise FlowtraceError(
                f"bit_depth={bits} does not fit {self.dtype} frames; bit_depth describes "
                f"integer frames of at least that many bits (e.g. 12-bit data in uint16)"
            )
        check_window(self.frames_to_merge, None, 1, self.options)

    @property
    def stack_length(self) -> int:
        """K: frames in a window after diff and add_first_frame."""
        return self.options.stack_length(self.frames_to_merge)

    @property
    def is_color_input(self) -> bool:
        return len(self.frame_shape) == 3

    @cached_property  # read for every window by kernels.window: build it once
    def colors(self) -> np.ndarray | None:
        """Per-frame weights of the window's K frames, oldest first, or None.

        (K, 3) with ``color_series`` (times the fade with ``fade_tails``),
        (K,) with ``fade_tails`` alone. The original's default ramp keeps its
        extra 1/255 factor, which the 8-bit stretch cancels, so its products
        round exactly as the original's; with ``normalize='none'`` colors
        are in 0-1.
        """
        opts = self.options
        k = self.stack_length
        weights = None
        if opts.color_series:
            if opts.colormap is not None:
                weights = colormap_colors(opts.colormap, k)
            elif self.scaling == "none":
                weights = ramp_colors(k) * 255.0
            else:
                weights = ramp_colors(k)
        if opts.fade_tails:
            fade = fade_weights(k)
            weights = fade if weights is None else weights * fade[:, None]
        return weights

    @property
    def weight_mode(self) -> WeightMode:
        """How :attr:`colors` applies to the frames (see :class:`WeightMode`)."""
        weights = self.colors
        if weights is None:
            return WeightMode.NONE
        if weights.ndim == 1:
            return WeightMode.SCALAR
        return WeightMode.CHANNELS if self.is_color_input else WeightMode.TINT

    @property
    def out_shape(self) -> tuple:
        """Shape of one output image."""
        if self.options.color_series and not self.is_color_input:
            return self.frame_shape + (3,)
        return self.frame_shape

    @property
    def image_dtype(self) -> np.dtype:
        """dtype of the images a run delivers: uint8, or the input's with ``normalize='none'``."""
        if self.options.normalize == "none" and self.dtype.kind != "b":
            return self.dtype
        return np.dtype(np.uint8)

    @property
    def out_dtype(self) -> np.dtype:
        """dtype of what a projector returns: the image's, or float64 when measuring."""
        return np.dtype(np.float64) if self.scaling == "float" else self.image_dtype

    @property
    def invert_offset(self) -> float:
        """``invert_color`` computes ``invert_offset - min``.

        255, as the original, for 8-bit and float frames; the dtype's maximum
        for wider integers, where 255 - min would be negative everywhere;
        ``2**bit_depth - 1`` when ``bit_depth`` is given.
        """
        if self.options.bit_depth is not None:
            return float(2 ** self.options.bit_depth - 1)
        if self.dtype.kind in "ui" and self.dtype.itemsize > 1:
            return float(np.iinfo(self.dtype).max)
        return 255.0


def plan_run(source, frames_to_merge, frames_to_skip: int, options: TraceOptions,
             window_step: int = 1):
    """The plan of a run over ``source``: ``(plan, sequence, stride, n_out, every)``.

    ``sequence`` holds the frame indices to push and ``stride`` their
    windows' step (image k is the window starting at position
    ``k * stride`` of the frames pushed, see :func:`step_sequence`);
    ``n_out`` is the number of images (None for a source of unknown
    length); ``every`` is every window's frames and count ``(sequence, n)``,
    what ``normalize='global'`` measures.

    Parameters
    ----------
    source : flowtrace_gpu.io.sources.FrameSource
        Where frames come from (its ``n_frames``, ``frame_shape``, ``dtype``
        and ``bit_depth``), after ``frames_to_skip``.
    frames_to_merge : int
        F, checked here.
    frames_to_skip : int
        Named in the error when too few frames are left.
    options : TraceOptions
        A camera file's bit depth fills ``bit_depth`` where unset.
    window_step : int
        Images for every ``window_step``-th window only.
    """
    where = source.note() if hasattr(source, "note") else ""
    f = check_window(frames_to_merge, source.n_frames, frames_to_skip, options, where)
    if options.bit_depth is None and source.bit_depth is not None and source.dtype.itemsize > 1:
        options = replace(options, bit_depth=source.bit_depth)  # e.g. a 12-bit camera file
    plan = TracePlan(f, source.frame_shape, source.dtype, options)
    every = trace_sequence(source.n_frames, f, options.windows)
    if window_step == 1:
        n_out = images_of(source.n_frames, f, options.windows, 1)
        return plan, every, 1, n_out, (every, n_out)
    sequence, stride = step_sequence(every, f, window_step)
    n_out = images_of(source.n_frames, f, options.windows, window_step)
    return plan, sequence, stride, n_out, (every, images_of(source.n_frames, f, options.windows, 1))
