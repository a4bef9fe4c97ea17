"""The backend protocol and the brute-force ring projector every backend can use.

A backend owns only arrays and kernels. The pipeline hands it a
:class:`~flowtrace_gpu.engine.plan.TracePlan`, gets a *projector* back, pushes
frames into it one at a time and asks for the image of the window that ends
at the last frame pushed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..kernels.saturate import histogram
from ..kernels.stretch import finalize, scale_to_uint8
from ..kernels.window import trace_window


class BackendUnavailable(Exception):
    """A backend cannot run here; the message says why and how to fix it."""


class Projector(Protocol):
    """Turns a stream of frames into one image per full window."""

    def push(self, frame: np.ndarray) -> None:
        """Add the next frame (host array of ``plan.frame_shape``, ``plan.dtype``)."""

    def project(self):
        """Image of the last F frames pushed: a backend array of ``plan.out_shape``
        and ``plan.out_dtype``, scaled as ``plan.scaling`` says (see
        :func:`flowtrace_gpu.kernels.stretch.finalize`). A new array each call:
        writer threads may hold it while the next window is computed."""


class Backend:
    """Base of the backends: array namespace, transfers, projector factory.

    Subclasses set :attr:`name` and :attr:`xp` and may override
    :meth:`projector` with faster kernels; transfers default to NumPy's.
    """

    name = "base"
    xp = np

    def projector(self, plan) -> Projector:
        """A projector for ``plan``; the default recomputes each window."""
        return RingProjector(plan, self.xp)

    def histogram(self, values, top: float, bins: int, xp=None):
        """Counts of ``values`` in ``bins`` equal bins over ``[0, top]``
        (:func:`flowtrace_gpu.kernels.saturate.histogram`); ``xp`` is the
        namespace ``values`` live in (default this backend's)."""
        return histogram(values, top, bins, self.xp if xp is None else xp)

    def scale(self, proj, peak: float):
        """A float projection stretched to uint8 by ``peak``
        (:func:`flowtrace_gpu.kernels.stretch.scale_to_uint8`)."""
        return scale_to_uint8(proj, peak, self.xp)

    def to_host(self, array) -> np.ndarray:
        """Copy a backend array to a NumPy array."""
        return np.asarray(array)

    def set_threads(self, n: int) -> None:
        """Use at most ``n`` compute threads (a hint; the default ignores it)."""

    def __repr__(self) -> str:
        return f"<flowtrace_gpu backend {self.name!r}>"


class RingProjector:
    """Keeps the last F frames in a preallocated ring and recomputes each window.

    The ring is one ``(F, *frame_shape)`` array written in place: frame t
    goes to slot ``t % F``. Cost per output is O(F): the readable
    reference, which the NumPy backend runs. (The CuPy backend runs the same
    steps, :func:`~flowtrace_gpu.kernels.window.prepare_stack`, on its own
    device ring.)
    """

    def __init__(self, plan, xp):
        self.plan = plan
        self.xp = xp
        self.ring = xp.empty((plan.frames_to_merge,) + plan.frame_shape, dtype=plan.dtype)
        self.count = 0

    def push(self, frame) -> None:
        self.ring[self.count % self.plan.frames_to_merge] = self.xp.asarray(frame)
        self.count += 1

    def window(self):
        """The ring's frames oldest first (a view when the ring is in order)."""
        start = self.count % self.plan.frames_to_merge
        if start == 0:
            return self.ring
        return self.xp.concatenate((self.ring[start:], self.ring[:start]))

    def project(self):
        if self.count < self.plan.frames_to_merge:
            raise RuntimeError("project() needs a full window of frames")
        return finalize(trace_window(self.window(), self.plan, self.xp), self.plan, self.xp)
