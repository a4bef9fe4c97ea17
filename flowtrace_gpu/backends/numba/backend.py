"""The Numba backend: CPU kernels whose cost per output frame does not grow with F.

Its projectors (:mod:`.projectors`, one class per projection path,
chosen by :func:`~.projectors.choose_projector`) keep O(1)-per-frame
state instead of recomputing each window:

* a sliding maximum (or minimum, for ``invert_color``) of the frames, or of
  their ``diff_order`` differences (:mod:`kernels.numba.sliding`);
* for ``subtract_median``, the window's two middle order statistics
  (:mod:`.median_state`, kernels in :mod:`kernels.numba.median`);
* a ring of the last F raw frames where the window's first frame, the
  leaving value or the whole window is needed.

``color_series`` and ``fade_tails`` weight each frame by its position,
which no sliding state can absorb: one fused pass over each pixel's window
(:class:`~.projectors.WeightedProjector`). Results equal the NumPy
reference bit for bit (NaNs aside).
"""

from __future__ import annotations

import functools

import numpy as np

from ... import config
from ...kernels.saturate import index_scale
from ..base import Backend, BackendUnavailable, RingProjector
from .median_state import _kernels as median_kernels
from .projectors import _kernels, make_projector, storage_dtype


@functools.cache
def _saturate_kernels():
    """The saturation histogram's kernel module, imported on first use."""
    from ...kernels.numba import saturate

    return saturate


def supports(plan) -> bool:
    """Whether the Numba projectors handle ``plan`` (else the ring reference runs)."""
    dtype = storage_dtype(plan.dtype)
    return dtype.kind in "iuf" and dtype.itemsize <= 8


class NumbaBackend(Backend):
    """CPU kernels compiled by Numba; O(1) work per frame for max, min and median."""

    name = "numba"
    xp = np

    def projector(self, plan):
        """The projector :func:`.projectors.choose_projector` picks (the ring
        reference where unsupported)."""
        if not supports(plan):
            return RingProjector(plan, np)
        return make_projector(plan)

    def histogram(self, values, top: float, bins: int, xp=None):
        """The saturation histogram by Numba's parallel kernel (the same counts)."""
        flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        nchunks = max(1, min(64, flat.size // 65536))
        return _saturate_kernels().histogram(flat, index_scale(top, bins), bins, nchunks)

    def scale(self, proj, peak: float):
        """:func:`~flowtrace_gpu.kernels.stretch.scale_to_uint8` by its parallel twin."""
        flat = np.ascontiguousarray(proj, dtype=np.float64).reshape(-1)
        out = np.empty(flat.size, np.uint8)
        _kernels()[1].scale_projection(flat, 255.0 / peak if peak != 0 else 1.0, out,
                                       config.get("numba_chunk"))
        return out.reshape(proj.shape)

    def set_threads(self, n: int) -> None:
        """Use at most ``n`` threads in the kernels (of the calling thread)."""
        import numba

        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def load() -> NumbaBackend:
    """Return the backend, or raise ``BackendUnavailable`` if Numba is missing."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"numba cannot be imported ({exc}); pip install numba") from None
    try:
        _kernels()
        median_kernels()
    except Exception as exc:  # a broken numba/llvmlite install fails here
        raise BackendUnavailable(
            f"numba kernels failed to load ({type(exc).__name__}: {exc}); "
            "pip install --upgrade numba") from None
    return NumbaBackend()
