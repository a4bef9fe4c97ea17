"""normalize='global': one scale for the whole run, from its brightest image wherever it comes.

The movies here are dim except for one bright stretch placed at the start,
in the middle or at the end of the run, so a peak taken from the wrong
images (the first, the last, those of one block) scales every image wrongly.
Every image is compared with tests/naive.py; with ``saturate`` the level is
the exact percentile of all images within one level (the run histogram's
bin), as in tests/engine/test_saturation.py.
"""

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import flowtrace, flowtrace_array

from conftest import BACKENDS, read_png
from naive import naive_saturated, naive_trace_ext

N, F = 24, 4
WHERE = {"start": 0, "middle": N // 2 - 2, "end": N - 3}


def _movie(where, dtype=np.uint8, seed=0):
    """Dim noise with three bright frames at ``where`` (the brightest images' windows)."""
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 4095
    movie = rng.integers(0, top // 4, (N, 9, 11))
    first = WHERE[where]
    movie[first:first + 3] = rng.integers(top // 2, top, (3, 9, 11))
    return movie.astype(dtype)


def _bright_windows(where, n_images):
    """The images whose windows hold a bright frame."""
    bright = WHERE[where]
    return set(range(max(0, bright - F + 1), min(n_images, bright + 3)))


def _check_one_scale(got, where):
    # The brightest images reach 255; the others stay dim (not stretched on their own).
    windows = _bright_windows(where, len(got))
    assert got.max() == 255
    assert max(got[i].max() for i in windows) == 255
    dim = [i for i in range(len(got)) if i not in windows]
    assert max(got[i].max() for i in dim) < 128


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("options", [{}, {"subtract_median": True}, {"color_series": True},
                                     {"invert_color": True, "fade_tails": True}],
                         ids=lambda o: "+".join(o) or "plain")
@pytest.mark.parametrize("backend", BACKENDS)
def test_global_scale_comes_from_the_brightest_image(backend, options, where):
    movie = _movie(where)
    got = flowtrace_array(movie, F, normalize="global", backend=backend, **options)
    np.testing.assert_array_equal(got, naive_trace_ext(movie, F, normalize="global", **options))
    if not options:
        _check_one_scale(got, where)


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("backend", BACKENDS)
def test_global_scale_of_16_bit_frames_in_threads(backend, where):
    movie = _movie(where, np.uint16, seed=1)
    got = flowtrace_array(movie, F, normalize="global", backend=backend, max_cores=4)
    np.testing.assert_array_equal(got, naive_trace_ext(movie, F, normalize="global"))
    _check_one_scale(got, where)


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("backend", BACKENDS)
def test_global_saturate_takes_the_level_of_every_image(backend, where):
    movie = _movie(where, seed=2)
    percent = 2.0
    got = flowtrace_array(movie, F, normalize="global", saturate=percent, backend=backend)
    projections = naive_trace_ext(movie.astype(np.float64), F, normalize="none")
    expected = naive_saturated(projections, percent, per_image=False)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1
    # About `percent` of all values reach 255, and they lie in the bright images.
    assert percent / 100 * 0.9 <= (got == 255).mean() <= percent / 100 * 1.5
    windows = _bright_windows(where, len(got))
    assert all(got[i].max() < 128 for i in range(len(got)) if i not in windows)


@pytest.mark.parametrize("where", list(WHERE))
def test_global_folder_run_and_its_resume_keep_the_one_scale(tmp_path, where):
    movie = _movie(where, seed=3)
    d = tmp_path / "movie"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"frame{i:02d}.tif", frame)
    out = tmp_path / "out"
    expected = naive_trace_ext(movie, F, normalize="global")
    written = flowtrace(d, F, out, normalize="global", backend="numpy", progress=False)
    np.testing.assert_array_equal(np.stack([read_png(p) for p in written]), expected)
    # Remove images away from the brightest: the resumed run must scale them by
    # the run's peak, not by the peak of the images it computes again.
    bright = WHERE[where]
    missing = [i for i in (0, 1, N // 2, len(written) - 1) if abs(i - bright) >= F]
    for i in missing:
        written[i].unlink()
    again = flowtrace(d, F, out, normalize="global", backend="numpy", progress=False, resume=True)
    assert [p.name for p in again] == [p.name for p in written]
    np.testing.assert_array_equal(np.stack([read_png(p) for p in again]), expected)


@pytest.mark.parametrize("where", list(WHERE))
def test_global_dask_blocks_share_one_scale(where):
    da = pytest.importorskip("dask.array", reason="flowtrace_dask needs the [dask] extra")
    from flowtrace_gpu import flowtrace_dask

    movie = _movie(where, seed=4)
    lazy = flowtrace_dask(da.from_array(movie, chunks=5), F, normalize="global", block=6,
                          backend="numpy")
    got = lazy.compute(scheduler="synchronous")
    np.testing.assert_array_equal(got, naive_trace_ext(movie, F, normalize="global"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_whose_every_value_is_negative_scales_by_its_negative_peak(backend):
    # A movie that only darkens: every difference is negative, so is the run's peak.
    # 255 / peak is negative then, as the original's stretch computes it: the values
    # at the peak and below come out 255 (a peak of 0 alone means no scaling).
    rng = np.random.default_rng(5)
    movie = (200 - np.cumsum(rng.integers(1, 6, (10, 5, 6)), axis=0)).astype(np.uint8)
    got = flowtrace_array(movie, 3, take_diff=True, normalize="global", backend=backend)
    expected = naive_trace_ext(movie, 3, take_diff=True, normalize="global")
    raw = naive_trace_ext(movie.astype(np.float64), 3, take_diff=True, normalize="none")
    assert raw.max() < 0
    np.testing.assert_array_equal(got, expected)
    assert got.min() == 255


def test_a_resumed_global_run_reads_only_the_frames_of_missing_windows(tmp_path, monkeypatch):
    # The run's peak is in the manifest: resuming measures nothing again.
    from flowtrace_gpu.io.sources import ImageFolderSource

    movie = _movie("end", seed=6)
    d = tmp_path / "movie"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"frame{i:02d}.tif", frame)
    out = tmp_path / "out"
    written = flowtrace(d, F, out, normalize="global", backend="numpy", progress=False)
    written[2].unlink()
    reads = []
    original = ImageFolderSource._read
    monkeypatch.setattr(ImageFolderSource, "_read",
                        lambda self, i, region=None: reads.append(i) or original(self, i, region))
    again = flowtrace(d, F, out, normalize="global", backend="numpy", progress=False, resume=True)
    assert sorted(reads) == list(range(2, 2 + F))
    np.testing.assert_array_equal(read_png(again[2]),
                                  naive_trace_ext(movie, F, normalize="global")[2])
