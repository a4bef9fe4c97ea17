"""Hypothesis strategies shared by the test files."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowtrace_gpu.options import step_flags

#: Every on/off step of the registry: a new one fails here until the oracle knows it.
OPTION_NAMES = step_flags()


def small_movie(draw, max_frames: int, max_height: int, max_width: int) -> np.ndarray:
    """A small (n, h, w) or (n, h, w, 3) movie of uint8, uint16 or float32 values."""
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    n = draw(st.integers(1, max_frames))
    h, w = draw(st.integers(1, max_height)), draw(st.integers(1, max_width))
    shape = (n, h, w) + ((3,) if draw(st.booleans()) else ())
    if dtype == np.float32:
        elements = st.floats(-300, 300, width=32, allow_nan=False)
    else:
        elements = st.integers(0, np.iinfo(dtype).max)
    return draw(arrays(dtype, shape, elements=elements))


@st.composite
def movies(draw):
    """(frames, F, frames_to_skip, options): small movies of every dtype, every step at random."""
    frames = small_movie(draw, 9, 5, 7)
    n = len(frames)
    skip = draw(st.integers(1, 3))
    kept = len(range(0, n, skip))
    f = draw(st.integers(1, kept))
    return frames, f, skip, step_options(draw, f)


def step_options(draw, f: int) -> dict:
    """Every on/off step at random, a valid diff_order, both window schemes, frame or global scale."""
    options = {name: draw(st.booleans()) for name in OPTION_NAMES}
    if options["take_diff"]:
        if f < 2:
            options["take_diff"] = False
        else:
            options["diff_order"] = draw(st.integers(1, f - 1))
    options["windows"] = draw(st.sampled_from(["original", "sliding"]))
    options["normalize"] = draw(st.sampled_from(["frame", "global"]))
    return options
