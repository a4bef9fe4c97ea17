"""Plain per-window references, written from the original's description.

Slow and obvious on purpose: every backend and kernel is checked against
these. They share no code with the package.
"""

from __future__ import annotations

import numpy as np


def naive_sequence(n_frames, frames_to_merge, windows="sliding"):
    """Frame indices windows slide over: the original never reads frame F."""
    if windows == "original" and n_frames > frames_to_merge:
        return [i for i in range(n_frames) if i != frames_to_merge]
    return list(range(n_frames))


def naive_colors(k):
    """The original's cmap1D((90, 10, 250), (255, 153, 0), k) / 255.

    Its constants, written out here (never the package's): purple to orange,
    each channel a ``linspace`` of the colors in 0-1, then divided by 255
    once more (the original's second scaling, which the stretch cancels).
    """
    start = [c / 255.0 for c in (90, 10, 250)]
    end = [c / 255.0 for c in (255, 153, 0)]
    columns = [np.linspace(start[c], end[c], k) for c in range(3)]
    return np.array(columns).T / 255.0


def naive_colormap(colormap, k):
    """(k, 3) colors in 0-1 for frames 0 .. k-1, sampled at j / (k - 1) along ``colormap``.

    A name is looked up in matplotlib (its own values); colors ('#rrggbb', or
    RGB in 0-1, or in 0-255 when any channel is above 1) are evenly spaced
    stops with straight lines between them.
    """
    positions = np.linspace(0.0, 1.0, k) if k > 1 else np.zeros(1)
    if isinstance(colormap, str) and not colormap.startswith("#"):
        import matplotlib

        return np.asarray(matplotlib.colormaps[colormap](positions), np.float64)[:, :3]
    stops = []
    for color in colormap:
        if isinstance(color, str):
            stops.append([int(color[i:i + 2], 16) / 255.0 for i in (1, 3, 5)])
        else:
            rgb = [float(c) for c in color]
            stops.append([c / 255.0 for c in rgb] if max(rgb) > 1 else rgb)
    stops = np.array(stops)
    anchors = np.linspace(0.0, 1.0, len(stops))
    return np.stack([np.interp(positions, anchors, stops[:, c]) for c in range(3)], axis=1)


def naive_weights(k, *, color_series=False, colormap=None, fade_tails=False, unit=False):
    """Weights of a window's k frames as a run applies them: (k, 3), (k,) or None.

    The original's ramp (in 0-1 with ``unit``, i.e. normalize='none') or a
    colormap, times the fade when both are on: one multiplier per frame and
    channel, as documented for ``fade_tails`` with colors.
    """
    weights = None
    if color_series:
        if colormap is not None:
            weights = naive_colormap(colormap, k)
        else:
            weights = naive_colors(k) * 255.0 if unit else naive_colors(k)
    if fade_tails:
        fade = naive_fade(k)
        weights = fade if weights is None else weights * fade[:, None]
    return weights


def naive_stretch(proj, peak=None):
    """The original's 8-bit image: every value v becomes floor(clip(v * 255 / M, 0, 255) + 0.5).

    M is ``peak`` (normalize='global': the run's peak) or the image's own
    largest value over all channels; M == 0 leaves values unscaled. The
    scale is 255 / M, one factor, as scipy's ``toimage`` computes it.
    """
    peak = proj.max() if peak is None else peak
    scaled = proj * (255.0 / peak) if peak != 0 else proj
    return np.floor(np.clip(scaled, 0, 255) + 0.5).astype(np.uint8)


def naive_window(window, *, invert_color=False, take_diff=False, diff_order=1,
                 subtract_median=False, subtract_first=False, add_first_frame=False,
                 color_series=False, invert_offset=255.0):
    """Float64 projection of one window (F, H, W[, C]), step by step."""
    stack = np.array(window, dtype=np.float64)
    first = stack[0].copy()
    if subtract_first:
        stack = np.stack([frame - first for frame in stack])
    if subtract_median:
        stack = stack - np.median(stack, axis=0)
    if take_diff:
        for _ in range(diff_order):
            stack = stack[1:] - stack[:-1]
    if add_first_frame:
        stack = np.concatenate([stack, first[None]])
    if color_series:
        colors = naive_colors(len(stack))
        tinted = []
        for j, frame in enumerate(stack):
            if frame.ndim == 2:
                tinted.append(np.stack([frame * colors[j, c] for c in range(3)], axis=-1))
            else:
                tinted.append(np.stack([frame[..., c] * colors[j, c] for c in range(3)], axis=-1))
        stack = np.array(tinted)
    if invert_color:
        return invert_offset - stack.min(axis=0)
    return stack.max(axis=0)


def naive_median(window):
    """Per-pixel median over axis 0 by sorting: the middle value, or the mean of the two middle.

    In float64, as NumPy's median (the original's) computes it: (a + b) / 2.
    """
    ordered = np.sort(np.asarray(window, dtype=np.float64), axis=0)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def invert_offset_for(dtype):
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" and dtype.itemsize > 1 else 255.0


def naive_trace(frames, frames_to_merge, frames_to_skip=1, *, windows="sliding", **options):
    """All images flowtrace_array should return, one window at a time."""
    frames = np.asarray(frames)[::frames_to_skip]
    sequence = naive_sequence(len(frames), frames_to_merge, windows)
    images = []
    for i in range(len(sequence) - frames_to_merge + 1):
        window = frames[sequence[i:i + frames_to_merge]]
        proj = naive_window(window, invert_offset=invert_offset_for(frames.dtype), **options)
        images.append(naive_stretch(proj))
    return np.array(images)


# --- options of the scaling, colormaps, fades and bit depth ------------------------------

def naive_fade(k):
    return np.linspace(0.0, 1.0, k) if k > 1 else np.ones(1)


def naive_to_dtype(proj, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return proj.astype(dtype)
    info = np.iinfo(dtype)
    return np.floor(np.clip(proj, info.min, info.max) + 0.5).astype(dtype)


def naive_trace_ext(frames, frames_to_merge, frames_to_skip=1, *, windows="sliding",
                    normalize="frame", colors=None, fade_tails=False, bit_depth=None,
                    invert_color=False, **options):
    """naive_trace plus normalize / per-frame colors (a (K, 3) array in 0-1) / fade / bit_depth.

    ``color_series=True`` without ``colors`` takes the original's ramp.
    """
    if options.pop("color_series", False) and colors is None:
        colors = "ramp"
    frames = np.asarray(frames)[::frames_to_skip]
    sequence = naive_sequence(len(frames), frames_to_merge, windows)
    offset = float(2 ** bit_depth - 1) if bit_depth else invert_offset_for(frames.dtype)
    projections = []
    for i in range(len(sequence) - frames_to_merge + 1):
        window = frames[sequence[i:i + frames_to_merge]].astype(np.float64)
        first = window[0].copy()
        if options.get("subtract_first"):
            window = window - first
        if options.get("subtract_median"):
            window = window - np.median(window, axis=0)
        if options.get("take_diff"):
            window = np.diff(window, n=options.get("diff_order", 1), axis=0)
        if options.get("add_first_frame"):
            window = np.concatenate([window, first[None]])
        k = len(window)
        weights = naive_colors(k) if isinstance(colors, str) else colors
        layers = []
        for j in range(k):
            layer = window[j]
            if weights is not None:
                layer = np.stack([(layer if layer.ndim == 2 else layer[..., c]) * weights[j][c]
                                  for c in range(3)], axis=-1)
            if fade_tails:
                layer = layer * naive_fade(k)[j]
            layers.append(layer)
        stack = np.array(layers)
        proj = offset - stack.min(axis=0) if invert_color else stack.max(axis=0)
        projections.append(proj)
    projections = np.array(projections)
    if normalize == "frame":
        return np.array([naive_stretch(p) for p in projections])
    if normalize == "global":
        return naive_stretch(projections, projections.max())
    return naive_to_dtype(projections, frames.dtype)


# --- saturate: the exact percentile, by sorting ------------------------------------------

def exact_level(values, percent):
    """The smallest value with at least (100 - percent) % of the values at or below it."""
    flat = np.sort(np.asarray(values, np.float64).reshape(-1))
    wanted = max(1, int(np.ceil((1 - percent / 100) * flat.size)))
    return flat[wanted - 1]


def naive_saturated(projections, percent, per_image=True):
    """Scale projections so the exact percentile maps to 255 (the definition, by sorting)."""
    out = []
    run_level = exact_level(projections, percent)
    for proj in projections:
        lv = exact_level(proj, percent) if per_image else run_level
        out.append(naive_stretch(proj, lv if lv > 0 else 0.0))
    return np.array(out)
