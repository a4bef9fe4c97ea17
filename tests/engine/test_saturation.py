"""saturate=P: the stretch maps the (100-P)th percentile to 255, on every backend."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrace_gpu import FlowtraceError, flowtrace_array
from flowtrace_gpu.engine.saturation import LevelRecorder
from flowtrace_gpu.kernels import saturate as ks
from flowtrace_gpu.synthetic import synthetic_movie

from conftest import BACKENDS, REAL
from naive import exact_level, naive_saturated, naive_trace_ext


def _float_projections(movie, f, **options):
    return naive_trace_ext(movie.astype(np.float64), f, normalize="none", **options)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalize", ["frame", "global"])
@pytest.mark.parametrize("options", [{}, {"subtract_median": True}, {"color_series": True},
                                     {"invert_color": True}])
def test_saturated_images_within_one_level_of_the_exact_percentile(backend, normalize, options):
    movie = synthetic_movie(24, (40, 56), n_particles=30, seed=4)
    movie[:, 20, 28] = 255  # one bright reflection, as in a PIV recording
    percent = 1.0
    got = flowtrace_array(movie, 8, saturate=percent, normalize=normalize, backend=backend,
                          **options)
    expected = naive_saturated(_float_projections(movie, 8, **options), percent,
                               per_image=normalize == "frame")
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1
    # About `percent` of the values reach the top: at least that many, not many more.
    at_top = (got == 255).mean()
    assert percent / 100 * 0.9 <= at_top <= percent / 100 * 3 + 1 / got[0].size


@pytest.mark.parametrize("options", [{}, {"subtract_median": True}, {"color_series": True}])
def test_numba_saturated_images_are_numpys(options):
    pytest.importorskip("numba")
    movie = synthetic_movie(20, (48, 64), n_particles=30, seed=5)
    movie[:, 10, 10] = 255
    args = dict(saturate=0.7, normalize="frame", **options)
    np.testing.assert_array_equal(flowtrace_array(movie, 6, backend="numba", **args),
                                  flowtrace_array(movie, 6, backend="numpy", **args))


def test_level_recorder_gets_the_images_in_order():
    # The level depends on the order images arrive in (the range regrows with
    # the brightest so far): the pipeline must hand them over in order even with
    # several writer threads and writes of uneven length.
    import time

    from flowtrace_gpu import get_backend
    from flowtrace_gpu.engine import pipeline
    from flowtrace_gpu.engine.plan import TracePlan

    class Slow(LevelRecorder):
        def __init__(self):
            super().__init__(1.0)
            self.order = []
            self.rng = np.random.default_rng(0)

        def write(self, index, image):
            time.sleep(self.rng.uniform(0, 0.003))
            self.order.append(index)
            super().write(index, image)

    frames = iter(synthetic_movie(40, (8, 8), seed=3))
    recorder = Slow()
    pipeline.run(frames, TracePlan(4, (8, 8), np.uint8), get_backend("numpy"), recorder, 37,
                 workers=4)
    assert recorder.order == list(range(37))


def test_global_saturate_is_the_same_whatever_the_threads():
    # A movie that brightens, so the run histogram regrows many times.
    movie = synthetic_movie(60, (40, 48), n_particles=20, seed=7)
    movie = (movie.astype(np.float64) * np.linspace(0.2, 1.0, 60)[:, None, None])
    movie = movie.astype(np.uint8)
    args = dict(saturate=2.0, normalize="global")
    serial = flowtrace_array(movie, 5, use_parallel=False, **args)
    for _ in range(3):
        np.testing.assert_array_equal(flowtrace_array(movie, 5, max_cores=4, **args), serial)


@pytest.mark.parametrize("backend", BACKENDS)
def test_saturate_zero_is_the_original_stretch(backend):
    movie = synthetic_movie(12, (16, 20), n_particles=8, seed=2)
    np.testing.assert_array_equal(flowtrace_array(movie, 4, saturate=0, backend=backend),
                                  flowtrace_array(movie, 4, backend=backend))


@pytest.mark.parametrize("value", [100, -1, float("nan"), float("inf"), True, "1"])
def test_bad_saturate_is_refused(value):
    with pytest.raises(FlowtraceError, match="saturate"):
        flowtrace_array(np.zeros((4, 2, 2), np.uint8), 2, saturate=value)


def test_saturate_needs_a_stretch():
    with pytest.raises(FlowtraceError, match="normalize='none'"):
        flowtrace_array(np.zeros((4, 2, 2), np.uint8), 2, saturate=1, normalize="none")


@given(values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))),
                       min_size=1, max_size=300),
       top=st.floats(1e-3, 1e6), bins=st.sampled_from([1, 7, 4096]))
def test_numba_histogram_equals_the_reference(values, top, bins):
    pytest.importorskip("numba")
    from flowtrace_gpu.kernels.numba import saturate as numba_saturate

    array = np.array(values, np.float64)
    expected = ks.histogram(array.copy(), top, bins, np)
    for nchunks in (1, 3):
        got = numba_saturate.histogram(array, ks.index_scale(top, bins), bins, nchunks)
        np.testing.assert_array_equal(got, expected)


@given(values=st.lists(st.floats(0, 1000), min_size=1, max_size=400),
       percent=st.floats(0, 99.9))
def test_level_is_at_most_one_bin_above_the_exact_percentile(values, percent):
    array = np.array(values)
    top = array.max()
    lv = ks.level(ks.histogram(array.copy(), top, ks.FRAME_BINS, np), top, percent)
    exact = exact_level(array, percent)
    assert exact <= lv * (1 + 1e-12) and lv <= exact + top / ks.FRAME_BINS * (1 + 1e-9)


def test_run_histogram_survives_images_that_grow_brighter():
    rng = np.random.default_rng(0)
    images = [rng.random((30, 30)) * scale for scale in (1, 2, 3, 5, 8, 13, 21, 34)]
    recorder = LevelRecorder(2.0)
    for i, image in enumerate(images):
        recorder.write(i, image)
    lv = recorder.close()
    exact = exact_level(np.array(images), 2.0)
    assert exact <= lv <= exact + 10 * images[-1].max() / ks.RUN_BINS


@pytest.mark.skipif(not (REAL / "piv_cylinder").is_dir(),
                    reason=f"real recordings not found at {REAL} (they live in ../shared)")
def test_piv_tracers_become_visible():
    import tifffile

    files = sorted((REAL / "piv_cylinder").glob("*.tif"))
    movie = np.stack([tifffile.imread(f) for f in files])
    plain = flowtrace_array(movie, 5)
    saturated = flowtrace_array(movie, 5, saturate=0.5)
    top = (saturated == 255).mean()
    assert 0.004 <= top <= 0.01, top  # about 0.5 % of the pixels reach 255
    # The tracers (the brightest 10 % of pixels) come out about twice as bright.
    assert np.percentile(saturated, 90) >= 1.8 * np.percentile(plain, 90)


def test_histogram_of_a_subnormal_top_warns_of_nothing():
    """A subnormal top overflows the bin scale to inf: 0 stays in bin 0, the rest go to
    the last bin, and NumPy's overflow/invalid warnings are not printed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = ks.histogram(np.array([0.0, 5e-324, 1.0]), np.float64(5e-324), 4096, np)
    assert counts[0] == 1 and counts[-1] == 2 and counts.sum() == 3


@pytest.mark.parametrize("new_top", [4.5, 6.0, 8.0, 13.7, 4000.0])
def test_rebin_moves_each_bin_to_the_bin_holding_its_upper_edge(new_top):
    # Counted at its upper edge, a bin's values land where a level read afterwards is
    # at or above every one of them (and at most one new bin above).
    bins, top = 8, 4.0
    for k in range(bins):
        counts = np.zeros(bins, np.int64)
        counts[k] = 3
        moved = ks.rebin(counts, top, new_top)
        assert moved.sum() == 3 and np.count_nonzero(moved) == 1
        j = int(np.argmax(moved))
        upper, width = (k + 1) * top / bins, new_top / bins
        assert j * width <= upper * (1 + 1e-12) and upper <= (j + 1) * width * (1 + 1e-12), (k, j)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_saturate_level_is_at_most_the_brightest_value(backend):
    # Images of peaks 450 then 510: the run histogram's range grows to 450, then to
    # 1.25 * 450 = 562.5 > 510, so the bin holding 510 ends above it. Saturating (almost)
    # nothing, the level is the brightest value itself, 510, where 1 * 255 / 510 = 0.5
    # rounds up: a level at the bin's upper edge would round those pixels down.
    movie = np.zeros((2, 4, 4), np.uint16)
    movie[0, 0, 0] = 450
    movie[1, 0, 0] = 510
    movie[:, 1:, :] = np.array([1, 3, 5, 7])
    got = flowtrace_array(movie, 1, normalize="global", saturate=1e-6, backend=backend)
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 1, normalize="global"))
    assert got[1, 0, 0] == 255 and got[0, 1, 0] == 1  # 0.5 rounds half up
