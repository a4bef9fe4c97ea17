"""The time legend of a ``color_series`` or ``fade_tails`` image: which color is which time.

A horizontal bar of the colors a window's frames get, oldest (left) to
newest (right): segment j is the color of frame j, exactly the weights the
run's plan uses (:attr:`~flowtrace_gpu.engine.plan.TracePlan.colors`, from
:mod:`flowtrace_gpu.kernels.colors`), as a full-scale pixel shows it:
``floor(255 * weight + 0.5)``. Ticks below the bar count the time from the
window's first frame: in frames, or in ms or s when the frame rate is known.
The text is drawn with Pillow (a dependency of the package).

>>> legend = time_legend(30, fps=1000)
>>> legend.shape[1], legend.shape[2], legend.dtype
(512, 3, dtype('uint8'))
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..engine.plan import TracePlan
from ..errors import FlowtraceError
from ..io.own_files import write_atomically
from ..io.suffixes import BESIDE_LEGEND, LEGEND_NAME
from ..options import TraceOptions, optional, positive_finite, whole

#: Layout in pixels: margin around the bar (room for the edge labels), bar height, tick length.
_MARGIN, _BAR, _TICK, _FONT = 28, 28, 5, 12
_BACKGROUND, _INK = (255, 255, 255), (0, 0, 0)


def time_legend(frames_to_merge, *, fps=None, frames_to_skip=1, colormap=None, fade_tails=False,
                width=512, color_series=True) -> np.ndarray:
    """The time legend of a window of ``frames_to_merge`` frames, as an RGB image.

    Parameters
    ----------
    frames_to_merge : int
        F, the frames per window.
    fps : float, optional
        Frame rate of the recording: ticks in ms (windows shorter than 1 s)
        or s; default: ticks in frames.
    frames_to_skip : int, default 1
        As for :func:`~flowtrace_gpu.flowtrace`: consecutive frames of a
        window lie ``frames_to_skip`` recorded frames apart.
    colormap : str or sequence of colors, optional
        As for :func:`~flowtrace_gpu.flowtrace`; default the original's
        purple -> orange ramp.
    fade_tails : bool, default False
        The colors faded as ``fade_tails`` fades the frames (oldest black).
    width : int, default 512
        Width of the image in pixels (the bar is narrower by the margins).
    color_series : bool, default True
        False with ``fade_tails``: the gray fade alone.

    Returns
    -------
    numpy.ndarray, shape (H, width, 3), uint8
        White ground, the bar of colors, the ticks and their labels.

    Raises
    ------
    FlowtraceError
        A bad value, or neither ``color_series`` nor ``fade_tails``.
    """
    f = whole(1)("frames_to_merge", frames_to_merge)
    skip = whole(1)("frames_to_skip", frames_to_skip)
    width = whole(4 * _MARGIN)("width", width)
    fps = optional(positive_finite)("fps", fps)
    if not color_series and not fade_tails:
        raise FlowtraceError("a time legend shows the colors of color_series or fade_tails; "
                             "pass color_series=True or fade_tails=True")
    options = TraceOptions(color_series=bool(color_series), colormap=colormap,
                           fade_tails=fade_tails)
    plan = TracePlan(f, (1, 1), np.uint8, options)
    return render(legend_colors(plan), (f - 1) * skip, fps, width)


def legend_colors(plan: TracePlan) -> np.ndarray:
    """(K, 3) uint8: the color of each of a window's K frames as a full-scale pixel shows it.

    The plan's weights (:attr:`TracePlan.colors`) of its raw scaling
    (``normalize='none'``, where the default ramp is in 0-1), times 255,
    rounded half up; a gray fade gives gray.
    """
    options = plan.options
    if options.saturate or options.normalize != "none":
        from dataclasses import replace

        options = replace(options, normalize="none", saturate=0.0)
    raw = TracePlan(plan.frames_to_merge, plan.frame_shape, plan.dtype, options)
    weights = raw.colors
    if weights is None:
        raise FlowtraceError("a time legend needs color_series or fade_tails")
    if weights.ndim == 1:
        weights = np.repeat(weights[:, None], 3, axis=1)
    return np.floor(np.clip(weights, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render(colors: np.ndarray, span: int, fps: float | None, width: int) -> np.ndarray:
    """The legend image of ``colors`` (K, 3), spanning ``span`` recorded frames."""
    from PIL import Image, ImageDraw

    k = len(colors)
    bar_width = width - 2 * _MARGIN
    font = _font()
    text_height = _FONT + 4
    height = _MARGIN // 2 + _BAR + _TICK + 2 * text_height + _MARGIN // 2
    image = np.empty((height, width, 3), np.uint8)
    image[:] = _BACKGROUND
    # Column x of the bar shows frame floor(x * K / bar_width).
    segment = (np.arange(bar_width) * k) // bar_width
    top = _MARGIN // 2
    image[top:top + _BAR, _MARGIN:_MARGIN + bar_width] = colors[segment][None]
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((_MARGIN - 1, top - 1, _MARGIN + bar_width, top + _BAR), outline=_INK)
    values, unit, scale = _ticks(span, fps)
    below = top + _BAR + 1
    for value in values:
        # Frame j's segment is centred at (j + 0.5) / K of the bar; the ticks map
        # recorded frames 0..span onto the centres of the first and the last segment.
        frame = value * scale
        position = 0.5 if span == 0 else 0.5 + frame / span * (k - 1)
        x = _MARGIN + position * bar_width / k
        draw.line((x, below, x, below + _TICK), fill=_INK)
        label = _label(value)
        draw.text((x, below + _TICK + 1), label, fill=_INK, font=font, anchor="ma")
    caption = {"frames": "frames since the window's first (oldest) frame",
               "ms": "ms since the window's first (oldest) frame",
               "s": "s since the window's first (oldest) frame"}[unit]
    draw.text((width / 2, below + _TICK + text_height + 2), caption, fill=_INK, font=font,
              anchor="ma")
    return np.asarray(picture, dtype=np.uint8).copy()


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=_FONT)  # Pillow >= 10.1, with FreeType
    except TypeError:  # older Pillow: its bitmap font
        return ImageFont.load_default()


def _ticks(span: int, fps: float | None) -> tuple[list[float], str, float]:
    """Tick values, their unit and recorded frames per unit, for a window of ``span`` frames."""
    if fps is None:
        unit, scale, extent = "frames", 1.0, float(span)
    else:
        seconds = span / fps
        unit = "ms" if seconds < 1 else "s"
        scale = fps / (1000.0 if unit == "ms" else 1.0)  # frames per unit
        extent = span / scale
    if extent == 0:
        return [0.0], unit, scale
    step = _nice(extent / 5)
    if unit == "frames":
        step = max(1.0, step)
    count = int(math.floor(extent / step + 1e-9))
    return [i * step for i in range(count + 1)], unit, scale


def _nice(rough: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``rough``."""
    power = 10.0 ** math.floor(math.log10(rough))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * power >= rough - 1e-12:
            return factor * power
    return 10.0 * power


def _label(value: float) -> str:
    return f"{value:.6g}"


def legend_path(out, kind: str) -> Path:
    """Where a run's legend goes: in a folder output, or beside a file output."""
    out = Path(out)
    if kind in ("png", "tiff"):
        return out / LEGEND_NAME
    return out.with_name(out.name + BESIDE_LEGEND)


def write_legend(path: Path, plan: TracePlan, *, fps: float | None, frames_to_skip: int) -> Path:
    """Write the legend of ``plan``'s window as a PNG at ``path`` (complete or absent)."""
    from PIL import Image


    picture = render(legend_colors(plan), (plan.frames_to_merge - 1) * frames_to_skip, fps, 512)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    write_atomically(path, buffer.getvalue())
    return path
