"""What a run will compute, decided once and shared by every backend.

Validation and planning live here so that each backend owns only its
kernels: a :class:`TracePlan` fixes the window length, the per-window steps,
the color weights and the output shape before the first frame is read.
"""

from __future__ import annotations

import enum
import itertools
import operator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import FlowtraceError

#: The original's time ramp, first frame to last (RGB, 0-255).
RAMP_START = (90, 10, 250)
RAMP_END = (255, 153, 0)

#: How windows are laid over the frames (see :func:`trace_sequence`).
WINDOW_SCHEMES = ("original", "sliding")

#: How projections become output values (see README, "Scaling").
NORMALIZE_MODES = ("frame", "global", "none")

#: What a projector returns, decided by the plan: 'frame' (8-bit, each image
#: stretched on its own), 'fixed' (8-bit, one given peak for every image),
#: 'none' (raw values in the input dtype) and 'float' (the float64
#: projection, for measuring the global peak).
SCALINGS = ("frame", "fixed", "none", "float")


class WeightMode(enum.IntEnum):
    """How :attr:`TracePlan.colors` weights a window's frames: one encoding for every backend."""

    #: No weights.
    NONE = 0
    #: (K,) weights (``fade_tails`` alone): every channel of frame j times ``w[j]``.
    SCALAR = 1
    #: (K, 3) colors on RGB frames: channel c of frame j times ``w[j, c]``.
    CHANNELS = 2
    #: (K, 3) colors on gray frames: frame j becomes the RGB ``w[j] * value``.
    TINT = 3


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
    windows: str = "sliding"
    normalize: str = "frame"
    bit_depth: int | None = None
    colormap: object = None
    fade_tails: bool = False

    def __post_init__(self):
        for name in ("invert_color", "take_diff", "subtract_median", "subtract_first",
                     "add_first_frame", "color_series", "fade_tails"):
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
        if self.normalize not in NORMALIZE_MODES:
            raise FlowtraceError(
                f"normalize must be one of {', '.join(map(repr, NORMALIZE_MODES))}, "
                f"got {self.normalize!r}"
            )
        if self.bit_depth is not None:
            bits = _positive_int("bit_depth", self.bit_depth)
            if bits > 16:
                raise FlowtraceError(f"bit_depth must be 1..16 (bits per pixel stored), got {bits}")
            object.__setattr__(self, "bit_depth", bits)
        if self.colormap is not None:
            if not self.color_series:
                raise FlowtraceError("colormap colors the time series: pass color_series=True too")
            # Resolve now: a bad name fails before any frame is read.
            object.__setattr__(self, "colormap", resolve_colormap(self.colormap))

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


def resolve_colormap(colormap) -> str | tuple:
    """Validate a colormap: a matplotlib name, or two or more colors.

    Colors are RGB triples in 0-1 or 0-255, or ``'#rrggbb'`` strings;
    returns the name, or a tuple of RGB triples in 0-1.
    """
    if isinstance(colormap, str) and not colormap.startswith("#"):
        try:
            import matplotlib
        except ImportError:
            raise FlowtraceError(
                f"colormap={colormap!r} names a matplotlib colormap, but matplotlib is not "
                "installed; pip install matplotlib, or give a list of colors"
            ) from None
        if colormap not in matplotlib.colormaps:
            raise FlowtraceError(
                f"colormap {colormap!r} is not a matplotlib colormap name (e.g. 'viridis', "
                "'plasma'), nor a list of colors"
            )
        return colormap
    try:
        colors = [_rgb(c) for c in colormap]
    except (TypeError, ValueError):
        colors = []
    if len(colors) < 2:
        raise FlowtraceError(
            f"colormap must be a matplotlib name or two or more colors such as "
            f"[(90, 10, 250), (255, 153, 0)] or ['#5a0afa', '#ff9900'], got {colormap!r}"
        )
    return tuple(colors)


def _rgb(color) -> tuple:
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) != 6:
            raise ValueError(color)
        return tuple(int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    rgb = tuple(float(c) for c in color)
    if len(rgb) != 3 or min(rgb) < 0 or max(rgb) > 255:
        raise ValueError(color)
    return tuple(c / 255.0 for c in rgb) if max(rgb) > 1 else rgb


def colormap_colors(colormap, k: int) -> np.ndarray:
    """(k, 3) RGB in 0-1 sampled evenly along ``colormap``, oldest frame first."""
    positions = np.linspace(0.0, 1.0, k) if k > 1 else np.zeros(1)
    if isinstance(colormap, str):
        import matplotlib

        return np.asarray(matplotlib.colormaps[colormap](positions), dtype=np.float64)[:, :3]
    stops = np.asarray(colormap, dtype=np.float64)
    anchors = np.linspace(0.0, 1.0, len(stops))
    return np.stack([np.interp(positions, anchors, stops[:, c]) for c in range(3)], axis=1)


def fade_weights(k: int) -> np.ndarray:
    """The MATLAB flowtrace's ``fade_tails`` ramp: 0 for the oldest frame, 1 for the newest."""
    return np.linspace(0.0, 1.0, k) if k > 1 else np.ones(1)


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
