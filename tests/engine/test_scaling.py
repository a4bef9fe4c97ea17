"""normalize, bit_depth, colormap and fade_tails against the naive oracle."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array

from conftest import BACKENDS
from naive import naive_colormap, naive_colors, naive_trace, naive_trace_ext, naive_weights


def _movie(dtype=np.uint16, shape=(16, 6, 7), seed=0, high=4095):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


def _interp_colors(stops, k):
    """Evenly spaced stops, sampled at j/(k-1): plain Python."""
    stops = np.asarray(stops, dtype=float)
    out = []
    for j in range(k):
        t = j / (k - 1) if k > 1 else 0.0
        x = t * (len(stops) - 1)
        i = min(int(x), len(stops) - 2)
        frac = x - i
        out.append(stops[i] * (1 - frac) + stops[i + 1] * frac)
    return np.array(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_uses_one_scale_for_every_image(backend):
    movie = _movie(np.uint8, high=255)
    movie[12:] //= 4  # a dim stretch at the end: 'frame' would brighten it
    got = flowtrace_array(movie, 4, normalize="global", backend=backend)
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 4, normalize="global"))
    per_frame = flowtrace_array(movie, 4, backend=backend)
    assert got.max() == 255 and per_frame[-1].max() == 255
    assert got[-1].max() < 100  # the dim windows stay dim


@pytest.mark.parametrize("backend", BACKENDS)
def test_16_bit_none_keeps_raw_values(backend):
    movie = _movie(np.uint16, high=60000)
    got = flowtrace_array(movie, 5, normalize="none", backend=backend)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 5, normalize="none"))
    # The plain max projection of 16-bit data is exactly the per-pixel max.
    np.testing.assert_array_equal(got[0], movie[:5].max(axis=0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_none_with_median_clips_negatives(backend):
    movie = _movie(np.uint16)
    got = flowtrace_array(movie, 5, normalize="none", subtract_median=True, invert_color=True,
                          backend=backend)
    np.testing.assert_array_equal(
        got, naive_trace_ext(movie, 5, normalize="none", subtract_median=True, invert_color=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_none_keeps_the_negative_values_of_signed_frames(backend):
    movie = np.random.default_rng(3).integers(-3000, 1000, (12, 5, 6)).astype(np.int16)
    for kw in ({}, {"take_diff": True}):
        got = flowtrace_array(movie, 4, normalize="none", backend=backend, **kw)
        assert got.dtype == np.int16 and got.min() < 0
        np.testing.assert_array_equal(got, naive_trace_ext(movie, 4, normalize="none", **kw))
    inverted = flowtrace_array(movie, 4, normalize="none", invert_color=True, backend=backend)
    np.testing.assert_array_equal(  # 32767 - min, clipped to int16
        inverted, naive_trace_ext(movie, 4, normalize="none", invert_color=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_invert_of_8_bit_frames_is_255_minus_min_signed_too(backend):
    # 255 for every 8-bit dtype, as the original (int8's maximum is 127).
    rng = np.random.default_rng(4)
    for dtype in (np.uint8, np.int8):
        info = np.iinfo(dtype)
        movie = rng.integers(info.min, info.max, (9, 4, 5), endpoint=True).astype(dtype)
        got = flowtrace_array(movie, 3, invert_color=True, backend=backend)
        np.testing.assert_array_equal(got, naive_trace(movie, 3, invert_color=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bit_depth_sets_the_invert_offset(backend):
    movie = _movie(np.uint16, high=1023)
    got = flowtrace_array(movie, 4, invert_color=True, bit_depth=10, normalize="none",
                          backend=backend)
    np.testing.assert_array_equal(got[0], 1023 - movie[:4].min(axis=0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fade_tails(backend):
    movie = _movie(np.uint8, high=255)
    got = flowtrace_array(movie, 6, fade_tails=True, backend=backend)
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 6, fade_tails=True))
    # The oldest frame has weight 0: a particle only there leaves no trace.
    spot = np.zeros((8, 5, 5), np.uint8)
    spot[0, 2, 2] = 200
    spot[3, 0, 0] = 100
    image = flowtrace_array(spot, 8, windows="sliding", fade_tails=True, backend=backend)[0]
    assert image[2, 2] == 0 and image[0, 0] == 255


@pytest.mark.parametrize("colormap", [None, [(0, 0, 255), (0, 255, 0), (255, 0, 0)]])
@pytest.mark.parametrize("backend", BACKENDS)
def test_colors_with_fade_weigh_each_frame_by_their_product(backend, colormap):
    # Frame j of K: its color times j / (K - 1), the oldest frame gone, the newest whole.
    movie = _movie(np.uint8, high=255)
    got = flowtrace_array(movie, 6, color_series=True, colormap=colormap, fade_tails=True,
                          backend=backend)
    weights = naive_weights(6, color_series=True, colormap=colormap, fade_tails=True)
    assert not weights[0].any() and np.array_equal(weights[-1], naive_weights(
        6, color_series=True, colormap=colormap)[-1])
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 6, colors=weights))


@pytest.mark.parametrize("backend", BACKENDS)
def test_colormap_from_colors(backend):
    movie = _movie(np.uint8, high=255)
    stops = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
    got = flowtrace_array(movie, 7, color_series=True, colormap=stops, backend=backend)
    colors = _interp_colors(np.array(stops) / 255.0, 7)
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 7, colors=colors))
    hexes = flowtrace_array(movie, 7, color_series=True, colormap=["#0000ff", "#00ff00", "#ff0000"],
                            backend=backend)
    np.testing.assert_array_equal(hexes, got)


@pytest.mark.parametrize("name", ["viridis", "plasma", "coolwarm"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_colormap_by_matplotlib_name(backend, name):
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is an optional extra")
    movie = _movie(np.uint8, high=255)
    got = flowtrace_array(movie, 5, color_series=True, colormap=name, backend=backend)
    colors = matplotlib.colormaps[name](np.linspace(0, 1, 5))[:, :3]  # matplotlib's own values
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 5, colors=colors))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_frame_windows_take_the_first_color_and_no_fade(backend):
    # K = 1 (F = 1, or F = 2 with take_diff): the colormap's first color, a fade of 1.
    movie = _movie(np.uint8, high=255)
    stops = [(0, 0, 255), (255, 0, 0)]
    for f, kw in ((1, {}), (2, {"take_diff": True})):
        got = flowtrace_array(movie, f, color_series=True, colormap=stops, backend=backend, **kw)
        first = np.array([[0.0, 0.0, 1.0]])
        np.testing.assert_array_equal(got, naive_trace_ext(movie, f, colors=first, **kw))
        faded = flowtrace_array(movie, f, fade_tails=True, backend=backend, **kw)
        np.testing.assert_array_equal(faded, flowtrace_array(movie, f, backend=backend, **kw))
        assert faded.max() == 255


def test_colors_in_0_to_1_keep_a_channel_of_1():
    # A triple whose largest channel is at most 1 is in 0-1: (0, 0, 1) is blue, as bright
    # as '#0000ff', beside a color whose channels are all below 1.
    movie = _movie(np.uint8, high=255)
    stops = [(0, 0, 1), (0.5, 0.25, 0)]
    got = flowtrace_array(movie, 4, color_series=True, colormap=stops, backend="numpy")
    np.testing.assert_array_equal(got, naive_trace_ext(movie, 4, colors=naive_colormap(stops, 4)))
    raw = flowtrace_array(movie, 1, color_series=True, colormap=stops, normalize="none",
                          backend="numpy")  # one-frame windows: the first color, raw values
    np.testing.assert_array_equal(raw[..., 2], movie)  # times blue 1.0
    assert not raw[..., :2].any()


def test_default_ramp_is_the_originals_under_every_normalization():
    movie = _movie(np.uint8, high=255)
    np.testing.assert_array_equal(flowtrace_array(movie, 5, color_series=True, backend="numpy"),
                                  naive_trace(movie, 5, color_series=True))
    raw = flowtrace_array(movie, 5, color_series=True, normalize="none", backend="numpy")
    ramp01 = naive_colors(5) * 255.0  # the original's colors in 0-1
    np.testing.assert_array_equal(raw, naive_trace_ext(movie, 5, colors=ramp01, normalize="none"))


@st.composite
def scaled_cases(draw):
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    n = draw(st.integers(1, 8))
    shape = (n, draw(st.integers(1, 4)), draw(st.integers(1, 5)))
    elements = (st.floats(0, 500, width=32) if dtype == np.float32
                else st.integers(0, np.iinfo(dtype).max))
    frames = draw(arrays(dtype, shape, elements=elements))
    f = draw(st.integers(1, n))
    opts = {name: draw(st.booleans()) for name in
            ("subtract_median", "subtract_first", "invert_color", "fade_tails", "add_first_frame")}
    return frames, f, draw(st.sampled_from(["frame", "global", "none"])), opts


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scaled_cases())
def test_scaling_modes_equal_oracle(backend, case):
    frames, f, normalize, opts = case
    got = flowtrace_array(frames, f, normalize=normalize, backend=backend, **opts)
    np.testing.assert_array_equal(got, naive_trace_ext(frames, f, normalize=normalize, **opts))


@pytest.mark.parametrize("kwargs,match", [
    ({"normalize": "auto"}, "normalize must be one of"),
    ({"colormap": "viridis"}, "pass color_series=True"),
    ({"color_series": True, "colormap": [(1, 2, 3)]}, "two or more colors"),
    ({"color_series": True, "colormap": "no-such-map-xyz"}, "no-such-map-xyz"),
    ({"bit_depth": 12}, "bit_depth=12 does not fit uint8"),
    ({"bit_depth": 17}, "bit_depth must be from 1 to 16"),
])
def test_option_errors(kwargs, match):
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_array(np.zeros((4, 3, 3), np.uint8), 2, **kwargs)


def test_global_folder_run_writes_one_scale(tmp_path):
    import tifffile

    from conftest import read_png

    movie = _movie(np.uint8, high=255, shape=(10, 5, 5))
    movie[6:] //= 3
    d = tmp_path / "in"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"f{i}.tif", frame)
    paths = flowtrace(d, 3, tmp_path / "out", normalize="global", backend="numpy")
    images = np.stack([read_png(p) for p in paths])
    np.testing.assert_array_equal(images, naive_trace_ext(movie, 3, normalize="global"))


def test_16_bit_png_output(tmp_path):
    import tifffile

    from conftest import read_png

    movie = _movie(np.uint16, high=60000, shape=(6, 4, 4))
    d = tmp_path / "in"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"f{i}.tif", frame)
    paths = flowtrace(d, 3, tmp_path / "out", normalize="none", backend="numpy")
    image = read_png(paths[0])
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, movie[:3].max(axis=0))
