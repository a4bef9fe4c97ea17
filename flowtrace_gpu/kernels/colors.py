"""Colors of the time series: the original's ramp, colormaps, and the fade of ``fade_tails``."""

from __future__ import annotations

import enum

import numpy as np

from ..errors import FlowtraceError


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


#: The original's time ramp, first frame to last (RGB, 0-255).
RAMP_START = (90, 10, 250)
RAMP_END = (255, 153, 0)


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
