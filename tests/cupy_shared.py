"""What the CuPy test files share: the stand-in, option sets, strategies and C types.

``CupyBackend(xp=numpy)`` runs the same array code as on a GPU (resident
ring, staging buffers, stack preparation) with streams, events and pinned
memory as no-ops and the fused CUDA kernels replaced by their NumPy twins.
``test_cupy_standin.py`` checks that code, ``test_cupy_sources.py`` the CUDA
source of each kernel built as C++ and ``test_cupy_device.py`` the device
(detection with fakes everywhere, the real thing where a GPU is).
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowtrace_gpu import flowtrace_array
from flowtrace_gpu.backends.cupy import backend as cb
from flowtrace_gpu.kernels.colors import WeightMode

# One frame at a time (CupyProjector); the batched projector, the default
# since gpu_batch = 8, has its own tests (test_cupy_standin.py, "Batches").
STANDIN = cb.CupyBackend(xp=np, batch=1)
WEIGHTED = tuple(m for m in WeightMode if m != WeightMode.NONE)
OPTION_NAMES = ("invert_color", "take_diff", "subtract_median", "subtract_first",
                "add_first_frame", "color_series", "fade_tails")
NORMALIZE = ("frame", "global", "none")
DTYPES = (np.uint8, np.uint16, np.float32)
STEP_NAMES = ("subtract_first", "subtract_median", "take_diff", "add_first_frame")
ALL_OPTIONS = [dict(zip(OPTION_NAMES, bits))
               for bits in itertools.product((False, True), repeat=len(OPTION_NAMES))]

#: C types of the frames the extreme and weighted kernels are built for.
CTYPES = {np.uint8: "unsigned char", np.uint16: "unsigned short", np.float32: "float",
          np.float64: "double"}
#: C types of the frames the median kernel is built for (integers of up to 32 bits).
MEDIAN_CTYPES = {np.uint8: "unsigned char", np.uint16: "unsigned short", np.uint32: "unsigned int",
                 np.int8: "signed char", np.int16: "short", np.int32: "int"}


def trace(frames, f, backend, **kw):
    return flowtrace_array(frames, f, backend=backend, use_parallel=False, **kw)


def option_id(options):
    return "+".join(k for k, v in options.items() if v) or "plain"


@st.composite
def movies(draw):
    """(frames, F, options): small movies of every dtype and layout, options at random."""
    dtype = draw(st.sampled_from(DTYPES))
    rgb = draw(st.booleans())
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 7))
    n = draw(st.integers(1, 9))
    shape = (n, h, w) + ((3,) if rgb else ())
    if dtype is np.float32:
        elements = st.floats(-1e4, 1e4, width=32, allow_nan=False, allow_infinity=False)
    else:
        elements = st.integers(0, int(np.iinfo(dtype).max))
    frames = draw(hnp.arrays(dtype, shape, elements=elements))
    f = draw(st.integers(1, n))
    options = {name: draw(st.booleans()) for name in OPTION_NAMES}
    options["diff_order"] = draw(st.integers(1, 3))
    assume(not options["take_diff"] or options["diff_order"] < f)
    options["windows"] = draw(st.sampled_from(("original", "sliding")))
    options["normalize"] = draw(st.sampled_from(NORMALIZE))
    if dtype is not np.float32 and draw(st.booleans()):
        options["bit_depth"] = draw(st.integers(1, 8 * np.dtype(dtype).itemsize))
    if options["color_series"] and draw(st.booleans()):
        options["colormap"] = draw(st.lists(st.tuples(*[st.integers(0, 255)] * 3),
                                            min_size=2, max_size=4))
    return frames, f, options


@st.composite
def rings(draw):
    """(ring, start, window): F frames in ring slots, the oldest at ``start``."""
    dtype = draw(st.sampled_from(DTYPES))
    f = draw(st.integers(1, 6))
    shape = (f, 2, 3) + ((3,) if draw(st.booleans()) else ())
    elements = (st.floats(-1e6, 1e6, width=32) if dtype is np.float32
                else st.integers(0, int(np.iinfo(dtype).max)))
    ring = draw(hnp.arrays(dtype, shape, elements=elements))
    start = draw(st.integers(0, f - 1))
    return ring, start, np.concatenate((ring[start:], ring[:start]))


class ListIndexWriter:
    """A writer that keeps each image under its index."""

    parallel = True

    def __init__(self):
        self.images = {}

    def write(self, index, image):
        self.images[index] = np.array(image)

    def close(self):
        return None
