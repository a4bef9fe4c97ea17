"""Every backend against the naive per-window oracle, on random movies."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowtrace_gpu import flowtrace_array
from flowtrace_gpu.options import step_flags

from conftest import BACKENDS
from naive import naive_trace, naive_trace_ext

#: Every on/off step of the registry: a new one fails here until the oracle knows it.
OPTION_NAMES = step_flags()


@st.composite
def movies(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    n = draw(st.integers(1, 9))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 7))
    shape = (n, h, w) + ((3,) if draw(st.booleans()) else ())
    if dtype == np.float32:
        elements = st.floats(-300, 300, width=32, allow_nan=False)
    else:
        elements = st.integers(0, np.iinfo(dtype).max)
    frames = draw(arrays(dtype, shape, elements=elements))
    skip = draw(st.integers(1, 3))
    kept = len(range(0, n, skip))
    f = draw(st.integers(1, kept))
    options = {name: draw(st.booleans()) for name in OPTION_NAMES}
    if options["take_diff"]:
        if f < 2:
            options["take_diff"] = False
        else:
            options["diff_order"] = draw(st.integers(1, f - 1))
    options["windows"] = draw(st.sampled_from(["original", "sliding"]))
    options["normalize"] = draw(st.sampled_from(["frame", "global"]))
    return frames, f, skip, options


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=movies(), parallel=st.booleans())
def test_backend_equals_oracle(backend, case, parallel):
    frames, f, skip, options = case
    expected = naive_trace_ext(frames, f, skip, **options)
    got = flowtrace_array(frames, f, skip, backend=backend, use_parallel=parallel, **options)
    assert got.dtype == np.uint8
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("windows", ["original", "sliding"])
def test_window_equal_to_movie_length(backend, windows):
    movie = np.random.default_rng(1).integers(0, 256, (7, 4, 5), dtype=np.uint8)
    got = flowtrace_array(movie, 7, windows=windows, backend=backend)
    assert got.shape == (1, 4, 5)
    np.testing.assert_array_equal(got, naive_trace(movie, 7, windows=windows))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_frame_windows_are_the_stretched_frames(backend):
    movie = np.random.default_rng(2).integers(1, 200, (5, 3, 3), dtype=np.uint16)
    got = flowtrace_array(movie, 1, windows="sliding", backend=backend)
    for frame, image in zip(movie, got):
        np.testing.assert_array_equal(
            image, np.floor(frame * (255.0 / frame.max()) + 0.5).astype(np.uint8))


def test_output_counts():
    movie = np.zeros((20, 2, 2), dtype=np.uint8)
    assert len(flowtrace_array(movie, 5, windows="original")) == 15  # the original's N - F
    assert len(flowtrace_array(movie, 5)) == 16  # every F consecutive frames: N - F + 1
    assert len(flowtrace_array(movie, 5, 3)) == 7 - 5 + 1  # 7 frames kept after skipping
