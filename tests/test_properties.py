"""Every backend against the naive per-window oracle, on random movies."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrace_gpu import flowtrace_array

from conftest import BACKENDS
from naive import naive_trace, naive_trace_ext
from strategies import movies


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
