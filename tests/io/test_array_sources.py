"""flowtrace_array on arrays, memmaps, lists and generators gives the same images."""

import numpy as np
import pytest

from flowtrace_gpu import FlowtraceError, flowtrace_array

from naive import naive_trace

MOVIE = np.random.default_rng(7).integers(0, 256, (23, 5, 6), dtype=np.uint8)


@pytest.mark.parametrize("windows", ["original", "sliding"])
@pytest.mark.parametrize("skip", [1, 2])
def test_generator_equals_array(windows, skip):
    expected = naive_trace(MOVIE, 4, skip, windows=windows, subtract_median=True)
    got = flowtrace_array((frame for frame in MOVIE), 4, skip, windows=windows,
                          subtract_median=True, backend="numpy")
    np.testing.assert_array_equal(got, expected)


def test_generator_exactly_one_window():
    got = flowtrace_array(iter(MOVIE[:4]), 4, backend="numpy")
    np.testing.assert_array_equal(got, naive_trace(MOVIE[:4], 4))


def test_generator_too_short_and_global_are_explained():
    with pytest.raises(FlowtraceError, match="fewer frames"):
        flowtrace_array(iter(MOVIE[:3]), 4, backend="numpy")
    with pytest.raises(FlowtraceError, match="read once"):
        flowtrace_array(iter(MOVIE), 4, normalize="global", backend="numpy")


def test_memmap_and_list(tmp_path):
    path = tmp_path / "movie.dat"
    mm = np.memmap(path, dtype=np.uint8, mode="w+", shape=MOVIE.shape)
    mm[:] = MOVIE
    mm.flush()
    ro = np.memmap(path, dtype=np.uint8, mode="r", shape=MOVIE.shape)
    expected = naive_trace(MOVIE, 6)
    np.testing.assert_array_equal(flowtrace_array(ro, 6, backend="numpy"), expected)
    np.testing.assert_array_equal(flowtrace_array(list(MOVIE), 6, backend="numpy"), expected)
