"""One window of frames -> one projection, written once for NumPy and CuPy.

This is the readable form of the whole computation: each option is one
array expression over the window, in the original's order.
"""

from __future__ import annotations


def trace_window(window, plan, xp):
    """Project one window of frames, as the original does, in float64.

    Parameters
    ----------
    window : array, shape (F, *plan.frame_shape)
        The window's frames, oldest first, any real dtype.
    plan : flowtrace_gpu.plan.TracePlan
        Options and derived constants of the run.
    xp : module
        Array namespace of ``window`` (``numpy`` or ``cupy``).

    Returns
    -------
    array, shape plan.out_shape, float64
        The projection before the 8-bit stretch; may be negative.
    """
    opts = plan.options
    stack = window.astype(xp.float64)
    raw_first = stack[0]
    if opts.subtract_first:
        stack = stack - stack[0]
    if opts.subtract_median:
        stack = stack - xp.median(stack, axis=0)
    if opts.take_diff:
        stack = xp.diff(stack, n=opts.diff_order, axis=0)
    if opts.add_first_frame:
        stack = xp.concatenate([stack, raw_first[None]], axis=0)
    weights = plan.colors
    if weights is not None:
        weights = xp.asarray(weights)
        if weights.ndim == 2 and not plan.is_color_input:
            stack = stack[..., None]
        # Frame j times weights[j]: a color (RGB input channel by channel) or a fade.
        trailing = (1,) * (stack.ndim - 1 - (weights.ndim - 1)) + weights.shape[1:]
        stack = stack * weights.reshape((weights.shape[0],) + trailing)
    if opts.invert_color:
        return plan.invert_offset - stack.min(axis=0)
    return stack.max(axis=0)
