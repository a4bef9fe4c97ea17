"""Every user option, declared once.

An option is a dataclass field whose metadata holds an :class:`Option`: its
one-line help, how it is checked, its command-line spelling and which public
calls take it. Two dataclasses hold them: :class:`~flowtrace_gpu.engine.plan.TraceOptions`
(what each window shows: every call that makes images takes these) and
:class:`RunOptions` (where frames come from and go, and how a run uses the
machine). From these fields come the command line (:mod:`flowtrace_gpu.cli`),
the docs' options table (:func:`markdown_table`, rendered when the site is built), the
option lists of the demo and the tests, and a test that holds the explicit
keyword signatures of :func:`~flowtrace_gpu.flowtrace`,
:func:`~flowtrace_gpu.flowtrace_array` and :func:`~flowtrace_gpu.flowtrace_dask`
against them.

Examples
--------
>>> from flowtrace_gpu.options import registry
>>> [o.name for o in registry()][:3]
['subtract_first', 'subtract_median', 'take_diff']
>>> registry()[0].cli
'--subtract-first'
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .errors import FlowtraceError
from .kernels.colors import resolve_colormap

#: The public calls options belong to.
FLOWTRACE = "flowtrace"
FLOWTRACE_ARRAY = "flowtrace_array"
FLOWTRACE_DASK = "flowtrace_dask"
BOTH = (FLOWTRACE, FLOWTRACE_ARRAY)
#: The calls that turn frames into images: every image option belongs to all three.
IMAGE_CALLS = (FLOWTRACE, FLOWTRACE_ARRAY, FLOWTRACE_DASK)


@dataclass(frozen=True)
class Option:
    """How one option is checked, spelled on the command line and documented."""

    help: str
    #: ``check(name, value) -> value``: the value, normalized; raises FlowtraceError.
    check: Callable
    #: Which public calls take it as a keyword.
    calls: tuple = IMAGE_CALLS
    #: Command-line flag; None keeps the option off the command line.
    cli: str | None = None
    #: Short alias of the flag, e.g. '-q'.
    cli_short: str | None = None
    #: Converts the flag's text; None for on/off flags.
    cli_type: Callable | None = None
    metavar: str | None = None
    choices: tuple | None = None
    #: The flag turns the option off (``--no-parallel`` sets ``use_parallel=False``).
    negate: bool = False
    #: A run option that decides which images a run makes (frames, region, windows):
    #: recorded in an output's manifest, so that ``resume`` refuses a change.
    recorded: bool = False
    #: Filled in by :func:`registry` from the dataclass field.
    name: str = ""
    default: object = None

    @property
    def is_flag(self) -> bool:
        """Whether the option is on/off (a bare flag on the command line)."""
        return self.cli_type is None


def option(default, help: str, check: Callable, **info):
    """A dataclass field carrying its :class:`Option` (see the module docstring)."""
    return field(default=default, metadata={"option": Option(help, check, **info)})


# --------------------------------------------------------------------- checks

def flag(name: str, value) -> bool:
    """True or False, nothing else (1, 'yes' and None are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise FlowtraceError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def whole(minimum: int = 1, maximum: int | None = None) -> Callable:
    """A check for whole numbers in ``[minimum, maximum]`` (True and 2.0 are refused)."""

    def check(name: str, value) -> int:
        if isinstance(value, (bool, np.bool_)):
            raise FlowtraceError(
                f"{name} must be a whole number >= {minimum}, got {value!r} (a bool)")
        try:
            number = operator.index(value)
        except TypeError:
            raise FlowtraceError(
                f"{name} must be a whole number >= {minimum}, got {value!r} "
                f"({type(value).__name__})"
            ) from None
        if number < minimum or (maximum is not None and number > maximum):
            span = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise FlowtraceError(f"{name} must be {span}, got {number}")
        return number

    return check


def one_of(*choices) -> Callable:
    """A check for one of ``choices``."""

    def check(name: str, value):
        if not isinstance(value, str) or value not in choices:
            raise FlowtraceError(
                f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    check.choices = choices
    return check


def optional(check: Callable) -> Callable:
    """``check``, or None."""

    def optional_check(name: str, value):
        return None if value is None else check(name, value)

    optional_check.choices = getattr(check, "choices", None)
    return optional_check


def positive_finite(name: str, value) -> float:
    """A real number > 0 that is not inf or nan (a frame rate)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise FlowtraceError(f"{name} must be a number > 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise FlowtraceError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def percent_below_100(name: str, value) -> float:
    """A percentage p with 0 <= p < 100 (finite)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise FlowtraceError(f"{name} must be a percentage from 0 to below 100, got {value!r}")
    number = float(value)
    if not (0.0 <= number < 100.0):
        raise FlowtraceError(
            f"{name} must be a percentage from 0 to below 100 (e.g. 0.35), got {value!r}")
    return number


#: Video time bases hold rates as fractions with denominators up to this (1001: NTSC's 30000/1001).
VIDEO_RATE_DENOMINATOR = 1001


def frame_rate(name: str, value) -> float:
    """A finite rate > 0 that a video's time base can hold (not 1e-9: that became 24 fps)."""
    number = positive_finite(name, value)
    held = Fraction(number).limit_denominator(VIDEO_RATE_DENOMINATOR)
    if held <= 0 or abs(held - Fraction(number)) > Fraction(number) / 1000:
        raise FlowtraceError(
            f"{name}={value!r} cannot be held by a video's time base (rates are fractions "
            f"with denominators up to {VIDEO_RATE_DENOMINATOR}); give at least "
            f"1/{VIDEO_RATE_DENOMINATOR - 1} fps")
    return number


def crop_box(name: str, value) -> tuple[int, int, int, int]:
    """``(top, left, height, width)``: whole numbers, top and left >= 0, height and width >= 1.

    Whether the box lies inside the frame is checked against the recording
    (:mod:`flowtrace_gpu.io.selection`), whose size is known only then.
    """
    try:
        parts = tuple(value)
    except TypeError:
        parts = ()
    if isinstance(value, (str, bytes)) or len(parts) != 4:
        raise FlowtraceError(
            f"{name} must be (top, left, height, width) in pixels, got {value!r}")
    top, left = (whole(0)(f"{name} {part}", v) for part, v in zip(("top", "left"), parts[:2]))
    height, width = (whole(1)(f"{name} {part}", v)
                     for part, v in zip(("height", "width"), parts[2:]))
    return top, left, height, width


def crop_text(text: str) -> tuple[int, ...]:
    """The command line's crop: ``TOP,LEFT,HEIGHT,WIDTH``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--crop takes TOP,LEFT,HEIGHT,WIDTH in pixels (e.g. 0,0,512,512), got {text!r}"
        ) from None


def anything(name: str, value):
    """Checked where it is used (e.g. a backend object, a colormap)."""
    return value


def colormap_check(name: str, value):
    """A matplotlib colormap name or two or more colors, resolved now (see plan)."""
    return resolve_colormap(value)


def colormap_text(text: str):
    """The command line's colormap: a name, or colors separated by commas."""
    if "," not in text:
        return text
    return [part.strip() for part in text.split(",")]


# ---------------------------------------------------------- image options

#: How windows are laid over the frames (see :func:`trace_sequence`).
WINDOW_SCHEMES = ("original", "sliding")

#: How projections become output values (docs/guide/scaling.md).
NORMALIZE_MODES = ("frame", "global", "none")

@dataclass(frozen=True, kw_only=True)
class TraceOptions:
    """What each window shows: the per-window steps, in the original's order.

    Each field is a user option declared once (:mod:`flowtrace_gpu.options`):
    its help, check and command-line flag live in the field's metadata.
    Build it by keyword; values are checked (and normalized) on creation.
    """

    subtract_first: bool = option(
        False, "subtract each window's first frame from its frames", flag,
        cli="--subtract-first")
    subtract_median: bool = option(
        False, "subtract each window's per-pixel median (removes the still background)", flag,
        cli="--subtract-median")
    take_diff: bool = option(
        False, "trace the diff_order-th difference of the window's frames along time", flag,
        cli="--take-diff")
    diff_order: int = option(
        1, "order of take_diff", whole(1), cli="--diff-order", cli_type=int, metavar="N")
    add_first_frame: bool = option(
        False, "add the window's raw first frame back before projecting", flag,
        cli="--add-first-frame")
    color_series: bool = option(
        False, "tint frame j by its time in the window, purple (90, 10, 250) -> orange "
               "(255, 153, 0); RGB out", flag, cli="--color-series")
    colormap: object = option(
        None, "with color_series: a matplotlib colormap name ('viridis') or two or more "
              "colors ('#5a0afa,#ff9900' on the command line)", optional(colormap_check),
        cli="--colormap", cli_type=colormap_text, metavar="MAP")
    fade_tails: bool = option(
        False, "weight frame j of K by j/(K-1): older frames fade (the MATLAB flowtrace's "
               "option)", flag, cli="--fade-tails")
    invert_color: bool = option(
        False, "dark particles on a light background: 255 - min (16-bit: 65535 - min, or "
               "2**bit_depth - 1)", flag, cli="--invert-color")
    windows: str = option(
        "sliding", "'sliding': every window of F consecutive frames (N-F+1 images); "
                   "'original': the original's windows, which skip frame F (N-F images)",
        one_of(*WINDOW_SCHEMES), cli="--windows", cli_type=str, choices=WINDOW_SCHEMES)
    normalize: str = option(
        "frame", "'frame': each image stretched to 255 (the original; flickers); 'global': "
                 "one scale for the whole run (reads the frames twice); 'none': raw values "
                 "in the input's dtype", one_of(*NORMALIZE_MODES), cli="--normalize",
        cli_type=str, choices=NORMALIZE_MODES)
    saturate: float = option(
        0.0, "percent of values allowed to saturate: the stretch maps the (100-P)th "
             "percentile of each image ('frame') or of all images ('global') to 255 and "
             "clips above; 0: the brightest value, as the original", percent_below_100,
        cli="--saturate", cli_type=float, metavar="P")
    bit_depth: int | None = option(
        None, "bits really used by integer frames (10, 12): invert_color uses "
              "2**bit_depth - 1; default from the camera file", optional(whole(1, 16)),
        cli="--bit-depth", cli_type=int, metavar="BITS")
    grayscale: bool = option(
        False, "trace the luma (BT.601) of color frames instead of each channel", flag,
        cli="--grayscale")

    def __post_init__(self):
        if self.colormap is not None and not self.color_series:
            raise FlowtraceError("colormap colors the time series: pass color_series=True too")
        check_fields(self)  # resolves a colormap now: a bad name fails before any frame
        if self.saturate and self.normalize == "none":
            raise FlowtraceError(
                f"saturate={self.saturate} sets how images are stretched, but "
                "normalize='none' writes the raw values; use normalize='frame' or 'global'")

    def stack_length(self, frames_to_merge: int) -> int:
        """Frames left in a window after ``take_diff`` and ``add_first_frame``."""
        k = frames_to_merge
        if self.take_diff:
            k -= self.diff_order
        if self.add_first_frame:
            k += 1
        return k



# ------------------------------------------------------------ run options

@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Where frames come from and go, and how a run uses the machine."""

    start: int = option(
        0, "first frame of the recording to trace (frames [start, stop), taken before "
           "frames_to_skip; outputs keep the names of their first frames)", whole(0),
        recorded=True, cli="--start", cli_type=int, metavar="N")
    stop: int | None = option(
        None, "frame to stop before; default the end of the recording", optional(whole(0)),
        recorded=True, cli="--stop", cli_type=int, metavar="N")
    crop: tuple | None = option(
        None, "(top, left, height, width) in pixels of the frame as displayed: only that "
              "region is read and traced", optional(crop_box),
        recorded=True, cli="--crop", cli_type=crop_text, metavar="TOP,LEFT,HEIGHT,WIDTH")
    frames_to_skip: int = option(
        1, "keep every n-th frame, starting with the first, before windowing", whole(1),
        recorded=True, cli="--frames-to-skip", cli_type=int, metavar="N")
    window_step: int = option(
        1, "an image for every n-th window only: image k covers the window that starts at "
           "k*n (n = F: non-overlapping groups of F frames)", whole(1),
        recorded=True, cli="--window-step", cli_type=int, metavar="N")
    format: str | None = option(
        None, "output kind: 'png' (default for a folder), 'tiff' (one TIFF per window "
              "in a folder, 16 bits kept) or 'video'; default from the output path",
        optional(one_of("png", "tiff", "video")), calls=(FLOWTRACE,),
        cli="--format", cli_type=str, choices=("png", "tiff", "video"))
    fps: float | None = option(
        None, "frame rate of a video output; default the recording's, else 30",
        optional(frame_rate), calls=(FLOWTRACE,), cli="--fps", cli_type=float,
        metavar="FPS")
    use_parallel: bool = option(
        True, "read, compute and write on separate threads (False: serially)", flag,
        calls=BOTH, cli="--no-parallel", negate=True)
    max_cores: int = option(
        8, "most threads to use (capped at the machine's cores)", whole(1),
        calls=BOTH, cli="--max-cores", cli_type=int, metavar="N")
    backend: object = option(
        "auto", "'cupy', 'numba' or 'numpy'; 'auto': the first that runs here "
                "(cupy on a CUDA GPU, else numba)", anything,
        cli="--backend", cli_type=str, choices=("auto", "cupy", "numba", "numpy"))
    device: int | None = option(
        None, "CUDA device of the cupy backend; default FLOWTRACE_DEVICE (0)",
        optional(whole(0)), cli="--device", cli_type=int, metavar="N")
    progress: bool | None = option(
        None, "progress bar on stderr; default: only when stderr is a terminal",
        optional(flag), calls=BOTH, cli="--quiet", cli_short="-q", negate=True)
    legend: bool = option(
        False, "with color_series or fade_tails: write the time legend of a window's colors "
               "(legend.png in a folder output, <out>.legend.png beside a file)", flag,
        calls=(FLOWTRACE,), cli="--legend")
    resume: bool = option(
        False, "finish an output an earlier run with the same options left incomplete: "
               "complete images are kept, only missing ones computed (see Long runs)",
        flag, calls=(FLOWTRACE,), cli="--resume")

    def __post_init__(self):
        check_fields(self)


def recorded_options(run: RunOptions) -> dict:
    """The run options a manifest records (``recorded``), by name, as JSON holds them."""
    found = {}
    for f in dataclasses.fields(run):
        if f.metadata["option"].recorded:
            value = getattr(run, f.name)
            found[f.name] = list(value) if isinstance(value, tuple) else value
    return found


def registry() -> list[Option]:
    """Every option, image options first, with ``name`` and ``default`` filled in."""
    found = []
    for cls in (TraceOptions, RunOptions):
        for f in dataclasses.fields(cls):
            info = f.metadata.get("option")
            if info is not None:
                found.append(dataclasses.replace(info, name=f.name, default=f.default))
    return found


def image_option_names() -> tuple[str, ...]:
    """Names of the options that shape the images (the fields of TraceOptions)."""
    return tuple(f.name for f in dataclasses.fields(TraceOptions))


def step_flags() -> tuple[str, ...]:
    """The on/off options that change what a window shows (the demo's and the tests' list)."""
    return tuple(f.name for f in dataclasses.fields(TraceOptions)
                 if f.metadata["option"].is_flag and f.name != "grayscale")


def split(kwargs: dict, call: str = FLOWTRACE) -> tuple:
    """``kwargs`` of a public call -> (TraceOptions, RunOptions), both checked.

    Only the options ``call`` takes are read; the rest of ``kwargs``
    (positional parameters such as ``image_dir``) is ignored.
    """
    image, run = {}, {}
    for opt in registry():
        if call in opt.calls and opt.name in kwargs:
            target = image if opt.name in image_option_names() else run
            target[opt.name] = kwargs[opt.name]
    return TraceOptions(**image), RunOptions(**run)


def check_fields(instance) -> None:
    """Run every field's check on a frozen options dataclass, storing the normalized values."""
    for f in dataclasses.fields(instance):
        info = f.metadata.get("option")
        if info is not None:
            object.__setattr__(instance, f.name, info.check(f.name, getattr(instance, f.name)))


def _markdown_default(opt: Option) -> str:
    if opt.name == "progress":
        return "auto"
    return f"`{opt.default!r}`"


def markdown_table() -> str:
    """The options as the Markdown table the docs show (docs/guide/options.md)."""
    lines = ["| option | command line | default | what it does |", "|---|---|---|---|"]
    for opt in registry():
        cli = opt.cli if opt.cli else "—"
        if opt.cli_short:
            cli = f"{opt.cli_short}, {cli}"
        if opt.cli and (opt.metavar or opt.choices):
            cli = f"{cli} {opt.metavar or '|'.join(opt.choices)}"
        if len(opt.calls) == 1:
            only = f" (`{opt.calls[0]}` only)"
        else:  # a run's threads and bar: flowtrace_dask leaves them to dask
            only = "" if FLOWTRACE_DASK in opt.calls else " (not `flowtrace_dask`)"
        text = opt.help.replace("|", "\\|")
        lines.append(f"| `{opt.name}` | `{cli}` | {_markdown_default(opt)} | {text}{only} |")
    return "\n".join(lines)


# Checks a run's own code may reuse for positional parameters.
check_frames_to_merge = whole(1)


__all__ = [
    "Option",
    "RunOptions",
    "TraceOptions",
    "check_fields",
    "image_option_names",
    "markdown_table",
    "recorded_options",
    "registry",
    "split",
    "step_flags",
]
