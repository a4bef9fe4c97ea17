"""Internal to the cupy backend: the device memory a run needs, checked before it starts.

:func:`estimate_device_bytes` counts the buffers a ``CupyProjector`` allocates
for a plan (the layout is shared through :data:`N_STAGING` and
:func:`flowtrace_gpu.kernels.window.stack_shape`), plus the scratch CuPy's
memory pool serves during a projection; :func:`check_device_memory` refuses
a run that would not fit, before anything is allocated.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ... import config
from ...errors import FlowtraceError
from ...kernels.window import ORDERED_STEPS, needs_stack, stack_shape
from .kernels import has_median_kernel

#: Upload buffers per projector (pinned host + device staging): one may be
#: in flight while the next frame is copied in.
N_STAGING = 2

_FLOAT64 = 8


def headroom_bytes() -> int:
    """Kept free beyond the estimate (CUB reduction scratch, the CUDA context's
    growth, fragmentation of the memory pool): the ``gpu_headroom_mib`` setting."""
    return int(config.get("gpu_headroom_mib")) * 2**20


class MemoryEstimate(NamedTuple):
    """Device bytes a ``CupyProjector`` will use, by purpose."""

    ring: int
    staging: int
    work: int
    weights: int
    scratch: int
    output: int

    @property
    def total(self) -> int:
        return sum(self)

    def describe(self) -> str:
        parts = ((name, getattr(self, name)) for name in self._fields)
        return ", ".join(f"{name} {_mib(n)}" for name, n in parts if n)


def uses_median_kernel(plan) -> bool:
    """Whether ``subtract_median`` runs as the selection kernel (integer frames)."""
    return plan.options.subtract_median and has_median_kernel(plan.dtype)


def median_without_stack(plan) -> bool:
    """Whether the projection is ``max(frames) - median`` (or ``offset - min + median``).

    ``subtract_median`` as the only ordered step, on integer frames, with
    no color / fade weights: the stack of differences is never built.
    """
    opts = plan.options
    steps = [name for name in ORDERED_STEPS if getattr(opts, name)]
    return steps == ["subtract_median"] and uses_median_kernel(plan) and plan.colors is None


def ring_slots(plan, batch: int) -> int:
    """Frames a projector of ``batch`` frames per upload keeps resident.

    One frame at a time: the window, F. In batches: every window a batch
    projects, F + batch - 1 frames, each held twice (slot ``s`` and ``s + R``)
    so that every window is one contiguous run of the ring, oldest first.
    """
    f = plan.frames_to_merge
    return f if batch == 1 else 2 * (f + batch - 1)


def estimate_device_bytes(plan, batch: int = 1) -> MemoryEstimate:
    """Device memory a run of ``plan`` needs, before allocating any of it.

    Parameters
    ----------
    plan : TracePlan
    batch : int, default 1
        Frames per upload and images per download (``gpu_batch``).

    Returns
    -------
    MemoryEstimate
        ``ring``: the resident frames (:func:`ring_slots`); ``staging``: the
        device upload buffers (one frame at a time only: batches upload
        straight into the ring);
        ``work``: the float64 stack buffer of ``prepare_stack`` (only for
        the order-dependent options) and the median kernel's output plane
        (one per window of a batch projected at once);
        ``weights``: the color / fade weights; ``scratch``: what
        ``cupy.median`` (float frames) and ``normalize='none'`` allocate
        from CuPy's pool during a projection; ``output``: the float64
        projection and its peak (one per window of a batch without a stack,
        which is projected at once), and two images, or two batches of them
        (the one being made and the one being downloaded).
    """
    opts = plan.options
    f = plan.frames_to_merge
    plane = math.prod(plan.frame_shape)
    frame = plane * plan.dtype.itemsize
    out = math.prod(plan.out_shape)
    work = scratch = weights = 0
    stacked = needs_stack(opts) and not median_without_stack(plan)
    # A batch without a stack is projected, and converted, n images at once.
    at_once = batch if batch > 1 and not stacked else 1
    if uses_median_kernel(plan):
        work += at_once * plane * _FLOAT64  # the selection kernel's output(s)
    if stacked:
        work += math.prod(stack_shape(plan)) * _FLOAT64
        if opts.subtract_median and not uses_median_kernel(plan):
            # cupy.median: a partitioned copy of the window, transposed, and its result.
            scratch += (2 * f + 1) * plane * _FLOAT64
    if plan.colors is not None:
        weights = plan.colors.nbytes
    if plan.scaling == "none":
        scratch += 2 * at_once * out * _FLOAT64  # to_dtype's clip and floor
    image = out * plan.out_dtype.itemsize
    staging = N_STAGING * frame if batch == 1 else 0
    # The float64 projection(s), the peak (fixed, or the one image's), a batch's
    # own peaks, and two images or batches of them.
    batch_peaks = at_once * _FLOAT64 if at_once > 1 else 0
    output = at_once * out * _FLOAT64 + _FLOAT64 + batch_peaks + 2 * batch * image
    return MemoryEstimate(ring=ring_slots(plan, batch) * frame, staging=staging, work=work,
                          weights=weights, scratch=scratch, output=output)


def check_device_memory(plan, free_bytes: int, device_label: str = "the GPU",
                        headroom: int | None = None, batch: int = 1) -> MemoryEstimate:
    """Refuse a run of ``plan`` that would not fit in ``free_bytes``.

    Parameters
    ----------
    plan : TracePlan
    free_bytes : int
        Device memory free for this run.
    device_label : str
        How the message names the device.
    headroom : int, optional
        Bytes kept free beyond the estimate; default :func:`headroom_bytes`.
    batch : int, default 1
        Frames per upload (see :func:`estimate_device_bytes`).

    Returns
    -------
    MemoryEstimate
        The estimate, when it fits.

    Raises
    ------
    FlowtraceError
        When the estimate plus the headroom exceeds ``free_bytes``; the
        message names F, the frames' shape and dtype, and what to change.
    """
    est = estimate_device_bytes(plan, batch)
    if headroom is None:
        headroom = headroom_bytes()
    if est.total + headroom > free_bytes:
        raise FlowtraceError(
            f"the cupy backend needs about {_mib(est.total + headroom)} of memory on "
            f"{device_label} for frames_to_merge={plan.frames_to_merge} with "
            f"{'x'.join(map(str, plan.frame_shape))} {plan.dtype} frames "
            f"({est.describe()}, {_mib(headroom)} headroom), but only {_mib(free_bytes)} "
            "is free; use a smaller frames_to_merge, free GPU memory held by other "
            "processes, or choose backend='numba' or backend='numpy'"
        )
    return est


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
