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
    if opts.color_series:
        colors = xp.asarray(plan.colors)
        if not plan.is_color_input:
            stack = stack[..., None]
        # Frame j is tinted by colors[j]; RGB input is tinted channel by channel.
        stack = stack * colors.reshape((colors.shape[0],) + (1,) * (stack.ndim - 2) + (3,))
    if opts.invert_color:
        return plan.invert_offset - stack.min(axis=0)
    return stack.max(axis=0)
