"""The time legend: its bar holds exactly the colors the run gives a window's frames."""

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array, time_legend
from flowtrace_gpu.kernels.colors import RAMP_END, RAMP_START
from flowtrace_gpu.runs.legend import _MARGIN, _ticks

from conftest import read_png


def bar_row(legend):
    """The colors of the bar's middle row, one per column of the bar."""
    first = int(np.argmax((legend[:, _MARGIN] != 255).any(axis=1)))  # the bar's outline
    row = first + 1 + 14
    return legend[row, _MARGIN:legend.shape[1] - _MARGIN]


def segments(row, k):
    """The color each of k equal segments of the bar shows (its middle column)."""
    width = len(row)
    return np.array([row[(2 * j + 1) * width // (2 * k)] for j in range(k)])


def test_default_ramp_is_the_originals_purple_to_orange():
    legend = time_legend(5)
    assert legend.dtype == np.uint8 and legend.ndim == 3 and legend.shape[1:] == (512, 3)
    colors = segments(bar_row(legend), 5)
    # The ramp's colors, oldest first: within one level, as the plan's weights carry the
    # original's /255/255 (187.5 comes out as 187.4999...); exactly the traced pixels below.
    expected = np.linspace(RAMP_START, RAMP_END, 5)
    assert np.abs(colors - expected).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("colormap", ["viridis", "plasma", [(0, 0, 255), (255, 0, 0)]])
@pytest.mark.parametrize("k", [2, 7, 30])
def test_bar_colors_equal_the_colormaps(colormap, k):
    from flowtrace_gpu.kernels.colors import colormap_colors, resolve_colormap

    colors = segments(bar_row(time_legend(k, colormap=colormap, width=600)), k)
    expected = np.floor(colormap_colors(resolve_colormap(colormap), k) * 255 + 0.5)
    np.testing.assert_array_equal(colors, expected)
    if isinstance(colormap, str):
        import matplotlib

        mpl = np.asarray(matplotlib.colormaps[colormap](np.linspace(0, 1, k)))[:, :3]
        assert np.abs(colors - mpl * 255).max() <= 0.5 + 1e-9


def test_bar_colors_are_what_a_traced_pixel_shows():
    # One bright pixel moving one column per frame: with normalize='none' its trail in the
    # color_series image holds each frame's color; the legend's bar must show the same ones.
    k = 6
    movie = np.zeros((k, 1, k), np.uint8)
    for j in range(k):
        movie[j, 0, j] = 255
    for options in (dict(), dict(colormap="viridis"), dict(fade_tails=True)):
        image = flowtrace_array(movie, k, color_series=True, normalize="none", **options)[0, 0]
        image = np.floor(image.astype(np.float64) + 0.5)
        legend = segments(bar_row(time_legend(k, **options)), k)
        np.testing.assert_array_equal(legend, image)


def test_fade_alone_is_a_gray_ramp_from_black():
    colors = segments(bar_row(time_legend(5, fade_tails=True, color_series=False)), 5)
    np.testing.assert_array_equal(colors, np.repeat(
        np.floor(np.linspace(0, 255, 5) + 0.5)[:, None], 3, axis=1))


def test_ticks_in_frames_ms_or_s_and_frames_to_skip():
    values, unit, scale = _ticks(29, None)
    assert unit == "frames" and values[0] == 0 and values[-1] <= 29 and scale == 1
    values, unit, scale = _ticks(29 * 3, 1000.0)  # F = 30, every 3rd of a 1 kHz recording
    assert unit == "ms" and values[-1] <= 87 and values[-1] > 50
    values, unit, _ = _ticks(99, 50.0)  # 1.98 s
    assert unit == "s" and values == [0.0, 0.5, 1.0, 1.5]
    assert _ticks(0, None)[0] == [0.0]  # F = 1


def test_legend_text_differs_with_units():
    # Ticks and caption are drawn: frames, ms and s give different pictures under the bar.
    frames, ms, s = (time_legend(30, fps=fps) for fps in (None, 10000, 20))
    assert frames.shape == ms.shape == s.shape
    below = slice(_MARGIN // 2 + 30, None)
    assert not np.array_equal(frames[below], ms[below]) and not np.array_equal(ms[below], s[below])
    assert (frames[below] < 128).any()  # ink


@pytest.mark.parametrize("bad, match", [
    (dict(frames_to_merge=0), "frames_to_merge"), (dict(fps=-1), "fps"),
    (dict(width=10), "width"), (dict(frames_to_skip=0), "frames_to_skip"),
    (dict(color_series=False), "color_series or fade_tails"),
    (dict(colormap="no-such-map"), "colormap"),
])
def test_bad_values_are_refused(bad, match):
    with pytest.raises(FlowtraceError, match=match):
        time_legend(**{"frames_to_merge": 5, **bad})


def test_runs_write_the_legend_in_a_folder_or_beside_a_file(tmp_path):
    movie = np.random.default_rng(1).integers(0, 256, (12, 8, 8), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    flowtrace(tmp_path / "rec.tif", 4, tmp_path / "pngs", color_series=True, legend=True,
              fps=500, frames_to_skip=2, progress=False)
    np.testing.assert_array_equal(read_png(tmp_path / "pngs" / "legend.png"),
                                  time_legend(4, fps=500, frames_to_skip=2))
    flowtrace(tmp_path / "rec.tif", 4, tmp_path / "stack.tif", fade_tails=True, legend=True,
              progress=False)
    np.testing.assert_array_equal(read_png(tmp_path / "stack.tif.legend.png"),
                                  time_legend(4, fade_tails=True, color_series=False))


def test_a_legend_beside_the_frames_is_never_read_as_a_frame(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(np.random.default_rng(2).integers(0, 256, (8, 6, 6), np.uint8)):
        tifffile.imwrite(frames / f"f{i}.tif", frame)
    first = flowtrace(frames, 3, "same", color_series=True, legend=True, progress=False)
    assert (frames / "legend.png").is_file()
    again = flowtrace(frames, 3, "same", color_series=True, legend=True, progress=False)
    assert [p.name for p in again] == [p.name for p in first]


def test_legend_without_colors_is_refused_before_anything_is_written(tmp_path):
    tifffile.imwrite(tmp_path / "rec.tif", np.zeros((6, 4, 4), np.uint8))
    with pytest.raises(FlowtraceError, match="color_series.*fade_tails"):
        flowtrace(tmp_path / "rec.tif", 3, tmp_path / "out", legend=True)
    assert not (tmp_path / "out").exists()
