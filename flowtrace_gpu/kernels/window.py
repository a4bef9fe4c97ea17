"""One window of frames -> one projection, written once for NumPy and CuPy.

This is the readable form of the whole computation: each option is one
array expression over the window, in the original's order. The
order-dependent steps live in :func:`prepare_stack` alone; the NumPy
backend runs it through :func:`trace_window`, and the CuPy backend runs it
on its device ring into preallocated buffers (``out=``).
"""

from __future__ import annotations

#: The steps that need the window as an ordered float64 stack, in the
#: order :func:`prepare_stack` applies them (the names of their options).
ORDERED_STEPS = ("subtract_first", "subtract_median", "take_diff", "add_first_frame")


def needs_stack(options) -> bool:
    """Whether any of :data:`ORDERED_STEPS` is on.

    Without them the window is only cast to float64, and max/min (or the
    weighted max/min) can read the raw frames directly.
    """
    return any(getattr(options, name) for name in ORDERED_STEPS)


def stack_shape(plan) -> tuple:
    """Shape of the float64 work buffer :func:`prepare_stack` needs.

    The window plus a row for ``add_first_frame``, and with ``take_diff`` a
    second buffer of F rows: each difference is written into the other
    buffer (an in-place difference would read rows already overwritten),
    and ``add_first_frame`` may append to either.
    """
    opts = plan.options
    f = plan.frames_to_merge
    rows = f + int(opts.add_first_frame) + (f if opts.take_diff else 0)
    return (rows,) + tuple(plan.frame_shape)


def prepare_stack(frames, plan, xp, start=0, out=None, median=None):
    """The window as float64, oldest first, after the order-dependent steps.

    Applies, in the original's order, ``subtract_first``, ``subtract_median``,
    ``take_diff`` (``diff_order`` times) and ``add_first_frame``: what comes
    before the color / fade weights and the projection.

    Parameters
    ----------
    frames : array, shape (F, *plan.frame_shape)
        The window's frames, any real dtype. With ``start`` the window is
        ``frames[start:]`` followed by ``frames[:start]``: a ring buffer read
        from its oldest slot, unrolled without a copy of its own.
    plan : flowtrace_gpu.engine.plan.TracePlan
        Options of the run.
    xp : module
        Array namespace of ``frames`` (``numpy`` or ``cupy``).
    start : int
        Index in ``frames`` of the window's oldest frame.
    out : array of float64, shape ``stack_shape(plan)``, optional
        Work buffer, not overlapping ``frames``; default: a new one.
    median : array of float64, shape ``plan.frame_shape``, optional
        For ``subtract_median``: the median of the window's raw frames,
        computed by the caller (the CuPy backend's selection kernel), in a
        buffer this function may overwrite. It must equal
        ``xp.median(frames.astype(float64), axis=0)``; default: computed here.

    Returns
    -------
    array of float64, shape (plan.stack_length, *plan.frame_shape)
        A view into ``out``.
    """
    opts = plan.options
    f = plan.frames_to_merge
    if out is None:
        out = xp.empty(stack_shape(plan), dtype=xp.float64)
    rows = f + int(opts.add_first_frame)
    a, spare = out[:rows], out[rows:]
    # The cast to float64 happens on the way in.
    a[: f - start] = frames[start:]
    a[f - start: f] = frames[:start]
    n = f
    if opts.subtract_first:
        # Not a[:n] -= a[0]: a broadcast in place over its own operand is a
        # race on the GPU. Row 0 last, so the other rows see it intact.
        a[1:n] -= a[0]
        a[0] -= a[0]
    if opts.subtract_median:
        if median is None:
            median = xp.median(a[:n], axis=0)
        elif opts.subtract_first:
            # The rows are x_j - x_0, so their median is the frames' minus x_0
            # (exact: integers and half-integers in float64).
            median -= frames[start]
        a[:n] -= median
    if opts.take_diff:
        b = spare
        for _ in range(opts.diff_order):
            # What xp.diff computes, a row at a time: later rows minus earlier.
            xp.subtract(a[1:n], a[: n - 1], out=b[: n - 1])
            a, b, n = b, a, n - 1
    if opts.add_first_frame:
        a[n] = frames[start]  # the raw first frame, before any step
        n += 1
    return a[:n]


def trace_window(window, plan, xp):
    """Project one window of frames, as the original does, in float64.

    Parameters
    ----------
    window : array, shape (F, *plan.frame_shape)
        The window's frames, oldest first, any real dtype.
    plan : flowtrace_gpu.engine.plan.TracePlan
        Options and derived constants of the run.
    xp : module
        Array namespace of ``window`` (``numpy`` or ``cupy``).

    Returns
    -------
    array, shape plan.out_shape, float64
        The projection before the 8-bit stretch; may be negative.
    """
    opts = plan.options
    stack = prepare_stack(window, plan, xp)
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
