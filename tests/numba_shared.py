"""What the Numba test files share: the naive images a plan asks for, and streaming a projector."""

from __future__ import annotations

import numpy as np

from naive import naive_stretch, naive_to_dtype, naive_trace_ext, naive_weights


def naive_images(frames, plan):
    """Every window's output by ``tests/naive.py``, as ``plan`` asks for it.

    Only the plan's options, window and scaling are read: the colors come
    from the oracle's own constants (:func:`naive.naive_weights`), never from
    ``plan.colors``.
    """
    opts = plan.options
    # naive takes the invert offset as a bit depth: 255, 2**16 - 1, ... all are 2**b - 1
    bits = int(plan.invert_offset + 1).bit_length() - 1
    assert 2.0 ** bits - 1 == plan.invert_offset
    k = opts.stack_length(plan.frames_to_merge)
    weights = naive_weights(k, color_series=opts.color_series, colormap=opts.colormap,
                            fade_tails=opts.fade_tails, unit=plan.scaling == "none")
    colors = weights if weights is not None and weights.ndim == 2 else None
    # float64 frames and normalize='none': naive's float64 projections, unrounded
    projections = naive_trace_ext(
        np.asarray(frames, np.float64), plan.frames_to_merge, normalize="none",
        colors=colors, fade_tails=weights is not None and weights.ndim == 1, bit_depth=bits,
        invert_color=opts.invert_color, take_diff=opts.take_diff,
        diff_order=opts.diff_order, subtract_median=opts.subtract_median,
        subtract_first=opts.subtract_first, add_first_frame=opts.add_first_frame)
    if plan.scaling == "frame":
        return [naive_stretch(p) for p in projections]
    if plan.scaling == "fixed":
        return [naive_stretch(p, plan.peak) for p in projections]
    # + 0.0: raw output has no negative zeros (kernels.stretch.to_dtype)
    if plan.scaling == "none":
        return [naive_to_dtype(p + 0.0, plan.out_dtype) for p in projections]
    return [p + 0.0 for p in projections]


def stream(projector, frames, f):
    """The images of every full window of ``frames``, pushed one at a time."""
    images = []
    for i, frame in enumerate(frames):
        projector.push(frame)
        if i >= f - 1:
            images.append(projector.project())
    return images
