"""The Numba kernels, median states and projectors against the naive oracle.

Every projector output is compared, byte for byte, with ``tests/naive.py``
(which shares no code with the package). Chunk sizes are shrunk so that
frames of a few pixels span many parallel chunks; streams run past several
sliding blocks so every block position and the suffix scans are exercised.
Each dtype compiles every kernel it meets (seconds each, cached on disk
afterwards: nearly all of this file's cold time), so dtypes beyond uint8,
uint16 and float32 run only where they take code those do not: int8 (signed
values in the integer paths) and bool (stored as uint8, no compile of its
own). Wider integers run the float64 code that float32 frames check; the
decision table asserts which class they get without streaming them.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flowtrace_gpu import config  # noqa: E402
from flowtrace_gpu.backends import BackendUnavailable  # noqa: E402
from flowtrace_gpu.backends.base import RingProjector  # noqa: E402
from flowtrace_gpu.backends.numba import backend as nb  # noqa: E402
from flowtrace_gpu.backends.numba import projectors as npj  # noqa: E402
from flowtrace_gpu.backends.numba.median_state import (  # noqa: E402
    BlockedMedian,
    resolve_method,
    sorted_block,
)
from flowtrace_gpu.backends.numba.projectors import make_median  # noqa: E402
from flowtrace_gpu.engine.plan import TracePlan  # noqa: E402
from flowtrace_gpu.kernels.numba import project as nproj  # noqa: E402
from flowtrace_gpu.kernels.numba import sliding as nsl  # noqa: E402
from flowtrace_gpu.options import TraceOptions  # noqa: E402

from numba_shared import naive_images, stream  # noqa: E402

FLAGS = ("invert_color", "take_diff", "subtract_median", "subtract_first",
         "add_first_frame", "color_series")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def make_frames(rng, n, shape, dtype, style="full"):
    """Frames with ties, extremes and (style 'flat') constant images."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        scale = {"full": 1e3, "narrow": 1.0, "flat": 0.0}[style]
        vals = rng.standard_normal((n,) + shape) * scale
        if style == "full":  # exact ties and zeros too
            vals[rng.random(vals.shape) < 0.2] = 0.0
        return vals.astype(dtype)
    if dtype.kind == "b":
        return rng.random((n,) + shape) < 0.5
    info = np.iinfo(dtype)
    if style == "full":
        lo, hi = int(info.min), int(info.max)
    elif style == "narrow":
        lo, hi = 3, 6
    else:
        lo = hi = int(rng.integers(0, 5))
    return rng.integers(lo, hi, (n,) + shape, endpoint=True, dtype=np.int64).astype(dtype)


def check_projector(projector, frames):
    """Every image of ``projector`` over ``frames`` equals naive's, byte for byte."""
    plan = projector.plan
    got = stream(projector, frames, plan.frames_to_merge)
    expected = naive_images(frames, plan)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == plan.out_dtype and g.shape == plan.out_shape
        assert g.tobytes() == e.tobytes(), (
            f"window {i}, {type(projector).__name__}, {plan}:\n{g}\n!=\n{e}")


def check_against_naive(plan, frames, **kw):
    check_projector(npj.make_projector(plan, **kw), frames)


# --- kernels -------------------------------------------------------------------


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("length", [1, 2, 3, 7])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_sliding_extreme_kernels(is_max, length, dtype):
    rng = np.random.default_rng(length)
    npix, chunk = 11, 3
    ys = make_frames(rng, 4 * length + 5, (npix,), dtype)
    buf = np.empty((length, npix), dtype)
    prefix = np.empty(npix, dtype)
    chunk_ext = np.empty(-(-npix // chunk), np.float64)
    ext = np.max if is_max else np.min
    for t, y in enumerate(ys):
        s = t % length
        got_ext = nsl.ext_push(y, buf, prefix, s, is_max, chunk, chunk_ext)
        assert got_ext == (y.max() if is_max else y.min())
        if t >= length - 1:
            window = ys[t - length + 1:t + 1]
            got = prefix if s == length - 1 else (np.maximum if is_max else np.minimum)(
                buf[s + 1], prefix)
            np.testing.assert_array_equal(got, ext(window, axis=0))
        if s == length - 1:  # the completed block becomes suffix extremes
            nsl.ext_suffix(buf, is_max, chunk)
            for k in range(1, length):
                np.testing.assert_array_equal(buf[k], ext(ys[t - length + 1 + k:t + 1], axis=0))


@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_diff_frame_matches_numpy(d, dtype):
    rng = np.random.default_rng(d)
    frames = make_frames(rng, d + 1, (13,), dtype)
    ring = np.ascontiguousarray(frames[:d][::-1])  # rows in any order: slots say which
    slots = np.arange(d, dtype=np.int64)[::-1].copy()
    out = np.empty(13, npj.diff_dtype(np.dtype(dtype), d))  # int16 for uint8: exact
    nsl.diff_frame(frames[d], ring, slots, out, 4)
    expect = np.diff(frames.astype(np.float64), n=d, axis=0)[-1]
    assert out.astype(np.float64).tobytes() == expect.tobytes()  # bit for bit


# --- median states ---------------------------------------------------------------


def median_windows(method, f, frames, chunk):
    """Push ``frames`` into ``make_median``'s state; yield (state, window) per full window.

    The ring is kept as the projectors keep it: the state reads the leaving
    frame from slot ``t % f`` before frame t is written there.
    """
    npix = frames.shape[1]
    median = make_median(method, f, npix, frames.dtype, chunk)
    assert median.method == method
    ring = np.empty((f, npix), frames.dtype)
    for t, x in enumerate(frames):
        median.push(ring, t, x)
        ring[t % f] = x
        if t >= f - 1:
            yield median, frames[t - f + 1:t + 1]


def check_median_state(median, window):
    """lo/hi are the window's middle order statistics, and the state counts the window."""
    f, npix = window.shape
    k1, k2 = (f - 1) // 2, f // 2
    np.testing.assert_array_equal(median.lo, np.partition(window, k1, axis=0)[k1])
    np.testing.assert_array_equal(median.hi, np.partition(window, k2, axis=0)[k2])
    mid = (median.lo.astype(np.float64) + median.hi) / 2.0
    np.testing.assert_array_equal(mid, np.median(window.astype(np.float64), axis=0))
    if median.method == "blocked":  # every row of the window sorted, not just the middle
        rows = median.srt.transpose(1, 0, 2).reshape(f, -1)[:, :npix]
        np.testing.assert_array_equal(rows, np.sort(window, axis=0))
    elif median.method == "band":  # the band: counts of each of its bins, and below it
        base = median.base.astype(np.int64)
        np.testing.assert_array_equal(median.below, (window < base).sum(0))
        bins = median.band.shape[1]
        counts = median.band.transpose(1, 0, 2).reshape(bins, -1)[:, :npix]
        for k in range(bins):
            np.testing.assert_array_equal(counts[k], (window == base + k).sum(0))


@pytest.mark.parametrize("f", [1, 2, 3, 4, 9])
@pytest.mark.parametrize("method,dtype", [
    ("blocked", np.uint8), ("blocked", np.int8), ("blocked", np.uint16),
    ("blocked", np.float32), ("band", np.uint8), ("adaptive", np.uint8)])
def test_median_states_track_the_window(f, method, dtype):
    rng = np.random.default_rng(f)
    for style in ("full", "narrow"):
        frames = make_frames(rng, 3 * f + 6, (17,), dtype, style)
        for median, window in median_windows(method, f, frames, 5):
            check_median_state(median, window)


@pytest.mark.parametrize("chunk", [1, 4, 17, 64])
def test_blocked_median_ties_and_partial_blocks(chunk):
    """Runs of equal values leave and enter at every rank; the last block is partial."""
    rng = np.random.default_rng(chunk)
    for f in (2, 5, 6, 30):
        frames = rng.integers(0, 3, (2 * f + 9, 37)).astype(np.uint8)
        frames[f + 2:f + 5] = 255  # a jump over the whole range, both ways
        for median, window in median_windows("blocked", f, frames, chunk):
            check_median_state(median, window)


@pytest.mark.parametrize("bins", [1, 2, 16])
@pytest.mark.parametrize("chunk", [1, 4, 17])
def test_band_median_leaves_and_rebuilds(bins, chunk, monkeypatch):
    """Jumps across the whole range force rebuilds; narrow bands rebuild every frame."""
    monkeypatch.setenv("FLOWTRACE_BAND_BINS", str(bins))
    rng = np.random.default_rng(bins * chunk)
    for f in (1, 2, 5, 6, 30):
        frames = rng.integers(0, 3, (2 * f + 9, 37)).astype(np.uint8)
        frames[f + 2:f + 5] = 255
        frames[-3:, ::2] = rng.integers(0, 256, (3, 19))
        for median, window in median_windows("band", f, frames, chunk):
            assert median.band.shape[1] == bins
            check_median_state(median, window)
        if f <= 6:  # three frames of 255 carry the median of up to 6 out of the band
            assert median.rebuilt > 0


def test_band_median_wide_counts():
    """F > 255: counts in uint16, band clamped at both ends of 0..255."""
    rng = np.random.default_rng(0)
    frames = rng.choice(np.array([0, 1, 254, 255], np.uint8), (270, 11))
    for median, window in median_windows("band", 260, frames, 4):
        assert median.band.dtype == np.uint16
        check_median_state(median, window)


def test_auto_median_choice():
    """Blocked sorted window, except uint8 frames over long windows (adaptive per block)."""
    short, long = config.get("median_band_min_f") - 1, config.get("median_band_min_f")
    u8, u16 = np.dtype(np.uint8), np.dtype(np.uint16)
    assert resolve_method("auto", short, u8) == resolve_method("auto", long, u16) == "blocked"
    assert resolve_method("auto", long, np.dtype(np.float32)) == "blocked"
    assert resolve_method("auto", long, np.dtype(np.int8)) == "blocked"
    assert resolve_method("auto", long, u8) == resolve_method("auto", 300, u8) == "adaptive"
    plan = TracePlan(long, (2, 3), np.uint8, TraceOptions(subtract_median=True))
    assert npj.make_projector(plan).median_state.method == "adaptive"
    for method in ("band", "adaptive"):
        with pytest.raises(ValueError, match=f"{method} median needs uint8"):
            make_median(method, 3, 6, u16, 4)
    for gone in ("histogram", "sorted", "nope"):
        with pytest.raises(ValueError, match="median must be"):
            resolve_method(gone, 3, u8)


@pytest.mark.parametrize("median", ["band", "blocked"])
def test_median_methods_on_the_real_recording(median, reference_frames):
    """Real particles and camera noise: the band is rebuilt often at small F."""
    for f in (4, 10, 40):
        plan = TracePlan(f, reference_frames.shape[1:], np.uint8,
                         TraceOptions(subtract_median=True))
        check_against_naive(plan, reference_frames, chunk=1000, median=median)
    if median == "band":
        proj = npj.make_projector(TracePlan(10, (150, 150), np.uint8,
                                            TraceOptions(subtract_median=True)), median="band")
        stream(proj, reference_frames, 10)
        assert proj.median.rebuilt > 0  # this test did exercise rebuilds


# --- the stretch -----------------------------------------------------------------


def test_float32_stretch_is_used_only_where_exact():
    """255/14 * 7 is 127.5 in float32 but 127.4999... in float64: that peak takes float64."""
    f32_exact = nproj.f32_stretch_exact
    assert f32_exact(0, 255, 0, 255.0, 1.0)
    assert not f32_exact(0, 255, 0, 255.0, 255.0 / 14)
    rng = np.random.default_rng(3)
    for peak in (14, 28, 255, 97):  # the first two fail the float32 check, the others pass
        frames = rng.integers(0, peak + 1, (12, 5, 7)).astype(np.uint8)
        frames[:, 0, 0] = peak
        frames[:, 1, :] = peak // 2  # the value whose byte differs
        for opts in (TraceOptions(), TraceOptions(invert_color=True),
                     TraceOptions(subtract_median=True),
                     TraceOptions(subtract_median=True, add_first_frame=True)):
            check_against_naive(TracePlan(4, (5, 7), np.uint8, opts), frames, chunk=8)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_half_projection_matches_float_projection(dtype):
    """project_sliding_half (integers, twice the value) == project_sliding, bit for bit.

    On arbitrary state (lo/hi need not be medians here): every extreme of the
    dtype, every option, both scale modes, with and without the float32 stretch.
    """
    info = np.iinfo(dtype)
    rng = np.random.default_rng(11)
    n, length, chunk = 37, 4, 5
    nchunks = -(-n // chunk)

    def draw(*shape):
        v = rng.integers(int(info.min), int(info.max) + 1, shape)
        v.flat[:4] = [info.min, info.max, info.min, info.max]  # the extremes
        return v.astype(dtype)

    buf, prefix, ring = draw(length, n), draw(n), draw(3, n)
    lo, hi = draw(n), draw(n)
    for flags in itertools.product([False, True], repeat=4):
        sub_first, sub_median, add_first, is_max = flags
        if not (sub_first or sub_median):
            continue
        offset = 255 if info.bits == 8 else int(info.max)
        for s1, mode, scale in ((2, 0, 1.0), (length, 0, 1.0), (1, 1, 0.37)):
            args = (buf, prefix, s1, ring, 1, lo, hi, *flags)
            ref = np.empty(n, np.uint8)
            nproj.project_sliding(*args, float(offset), np.empty(n), mode, scale,
                                  ref, np.empty(nchunks), chunk)
            half = np.empty(n, np.int16 if info.bits == 8 else np.int32)
            got = np.empty(n, np.uint8)
            # float64 only; float32 where exact for every value 8-bit frames can give
            for f32_range in ((1, 0), (-4096, 4096)) if info.bits == 8 else ((1, 0),):
                peaks = np.empty(nchunks)
                nproj.project_sliding_half(*args, offset, half, peaks, chunk)
                nproj.stretch_twice(half, peaks, mode, scale, got, chunk, *f32_range)
                np.testing.assert_array_equal(got, ref, err_msg=str((flags, s1, mode)))


# --- choosing the projector --------------------------------------------------------

T = TraceOptions
BAND_F = config.get("median_band_min_f")
RECORDS_F = config.get("color_records_min_f")
FIXED = {"scaling": "fixed", "peak": 97.5}
#: (F, dtype, options, plan extras, median method, the class choose_projector picks)
DECISIONS = [
    (4, np.uint8, T(), {}, "auto", npj.PlainProjector),
    (4, np.uint16, T(invert_color=True, add_first_frame=True), {}, "auto",
     npj.PlainProjector),
    # integer differences are exact: the shifts cancel, no median is kept
    (4, np.uint8, T(take_diff=True, subtract_median=True, subtract_first=True), {}, "auto",
     npj.PlainProjector),
    (5, np.float32, T(take_diff=True, diff_order=2, add_first_frame=True), FIXED, "auto",
     npj.PlainProjector),
    (4, np.uint16, T(take_diff=True, invert_color=True, normalize="none"), {}, "auto",
     npj.PlainProjector),
    (4, np.float32, T(subtract_median=True, invert_color=True), {}, "auto",
     npj.FloatShiftProjector),
    (4, np.uint32, T(subtract_first=True, add_first_frame=True), {}, "auto",
     npj.FloatShiftProjector),
    # raw output needs the float64 projection
    (4, np.uint8, T(subtract_median=True, normalize="none"), {}, "auto",
     npj.FloatShiftProjector),
    (4, np.uint16, T(subtract_first=True, normalize="global"), {}, "auto",  # the peak pass
     npj.FloatShiftProjector),
    (4, np.uint8, T(subtract_first=True, invert_color=True), {}, "auto",
     npj.HalfUnitProjector),
    (4, np.int8, T(subtract_median=True, add_first_frame=True), {}, "auto",
     npj.HalfUnitProjector),
    (BAND_F, np.uint8, T(subtract_median=True), {}, "auto", npj.FusedAdaptiveMedianProjector),
    (BAND_F, np.uint8, T(subtract_median=True, invert_color=True, subtract_first=True), FIXED,
     "adaptive", npj.FusedAdaptiveMedianProjector),
    (BAND_F, np.uint8, T(subtract_median=True, add_first_frame=True), {}, "auto",
     npj.HalfUnitProjector),
    (4, np.uint8, T(subtract_median=True, subtract_first=True), FIXED, "band",
     npj.HalfUnitProjector),
    (4, np.uint8, T(subtract_median=True, invert_color=True), {}, "auto",
     npj.FusedMedianProjector),
    (5, np.uint16, T(subtract_median=True, subtract_first=True), FIXED, "auto",
     npj.FusedMedianProjector),
    (4, np.int8, T(subtract_median=True), {}, "auto", npj.FusedMedianProjector),
    (BAND_F, np.uint8, T(subtract_median=True), {}, "blocked", npj.FusedMedianProjector),
    (5, np.float32, T(take_diff=True, subtract_first=True), {}, "auto",
     npj.PerWindowProjector),
    # uint32 differences are computed in float64: not exact after a shift
    (4, np.uint32, T(take_diff=True, subtract_median=True, invert_color=True), {}, "auto",
     npj.PerWindowProjector),
    # weights alone on unsigned frames: the certified float32 paths (records from F =
    # color_records_min_f for monotone ramps and fades, else brute force)
    (4, np.uint8, T(color_series=True), {}, "auto", npj.CertifiedColorProjector),
    (RECORDS_F, np.uint16, T(fade_tails=True), FIXED, "auto", npj.CertifiedColorProjector),
    (4, np.bool_, T(color_series=True, colormap="viridis"), {}, "auto",
     npj.CertifiedColorProjector),
    (RECORDS_F, np.uint8, T(color_series=True, fade_tails=True), {}, "auto",
     npj.CertifiedColorProjector),
    # steps before the weights, or signed frames, on gray integers of <= 16 bits: the
    # certified shifted path
    (4, np.uint16, T(fade_tails=True, invert_color=True, subtract_median=True), FIXED, "auto",
     npj.ShiftedColorProjector),
    (5, np.uint8, T(color_series=True, subtract_median=True, add_first_frame=True), {}, "auto",
     npj.ShiftedColorProjector),
    (4, np.int8, T(color_series=True), {}, "auto", npj.ShiftedColorProjector),
    (4, np.uint8, T(fade_tails=True, invert_color=True), {}, "auto",
     npj.ShiftedColorProjector),
    # float frames without a shift or a difference: their values are exact in float32
    (4, np.float32, T(color_series=True), {}, "auto", npj.ShiftedColorProjector),
    (5, np.float16, T(fade_tails=True, invert_color=True, add_first_frame=True), FIXED, "auto",
     npj.ShiftedColorProjector),
    # the exact float64 pass: floats after a shift or a difference, float64, 32-bit
    # integers, differences of order > 7, raw output
    (4, np.float32, T(color_series=True, take_diff=True, subtract_median=True), {}, "auto",
     npj.WeightedProjector),
    (4, np.uint8, T(color_series=True, take_diff=True, subtract_first=True), {}, "auto",
     npj.ShiftedColorProjector),
    (10, np.uint8, T(fade_tails=True, take_diff=True, diff_order=8), {}, "auto",
     npj.WeightedProjector),
    (4, np.float32, T(color_series=True, subtract_first=True), {}, "auto",
     npj.WeightedProjector),
    (4, np.int32, T(fade_tails=True, invert_color=True), {}, "auto", npj.WeightedProjector),
    (4, np.float64, T(color_series=True), {}, "auto", npj.WeightedProjector),
    (4, np.uint8, T(color_series=True, normalize="none"), {}, "auto", npj.WeightedProjector),
]


@pytest.mark.parametrize("f,dtype,opts,extra,median,expected", DECISIONS,
                         ids=lambda v: getattr(v, "__name__", None))
def test_choose_projector(f, dtype, opts, extra, median, expected):
    """The decision table, and each row's projector against naive.

    Rows of wide integers and float64 are not streamed: their paths are the
    float64 code float32 rows check, and would only add compiles.
    """
    rng = np.random.default_rng(f)
    for shape in ((3, 5), (2, 3, 3)):
        plan = TracePlan(f, shape, dtype, opts, **extra)
        assert npj.choose_projector(plan, median) is expected
        proj = npj.make_projector(plan, chunk=4, median=median)
        assert type(proj) is expected
        if np.dtype(dtype).itemsize <= 2 or np.dtype(dtype) == np.float32:
            check_projector(proj, make_frames(rng, 2 * f + 3, shape, dtype))


def test_fused_median_keeps_no_sliding_extreme():
    """subtract_median reads max/min and the median from the same sorted rows."""
    plan = TracePlan(4, (2, 3), np.uint8, TraceOptions(subtract_median=True))
    proj = npj.make_projector(plan, median="blocked")
    assert isinstance(proj, npj.FusedMedianProjector)
    assert proj.median.half is proj.half and not hasattr(proj, "buf")


def test_half_path_integer_types():
    opts = TraceOptions(subtract_first=True)
    assert npj.make_projector(TracePlan(3, (2, 2), np.uint8, opts)).half.dtype == np.int16
    assert npj.make_projector(TracePlan(3, (2, 2), np.int16, opts)).half.dtype == np.int32
    bits12 = TraceOptions(subtract_first=True, bit_depth=12)
    assert npj.half_dtype(TracePlan(3, (2, 2), np.uint16, bits12)) == np.int32
    assert npj.half_dtype(TracePlan(3, (2, 2), np.float32, opts)) is None
    raw = TraceOptions(subtract_first=True, normalize="none")
    assert npj.half_dtype(TracePlan(3, (2, 2), np.uint8, raw)) is None


# --- every projector against naive ---------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=6)),
                         ids=lambda fl: "".join("ITMFAC"[i] if v else "-" for i, v in enumerate(fl)))
def test_every_option_combination(dtype, flags):
    opts = TraceOptions(**dict(zip(FLAGS, flags)))
    rng = np.random.default_rng(sum(flags) + 7 * np.dtype(dtype).itemsize)
    for shape, f in (((3, 5), 4), ((2, 3, 3), 3)):
        plan = TracePlan(f, shape, dtype, opts)
        check_against_naive(plan, make_frames(rng, 3 * f + 2, shape, dtype), chunk=4)


@st.composite
def cases(draw):
    f = draw(st.integers(1, 6))
    flags = dict(zip(FLAGS, draw(st.tuples(*[st.booleans()] * 6))))
    if f == 1:
        flags["take_diff"] = False
    order = draw(st.integers(1, min(3, f - 1))) if flags["take_diff"] else 1
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32]))
    extra = {}
    if draw(st.booleans()):
        extra["fade_tails"] = True
    if flags["color_series"] and draw(st.booleans()):
        extra["colormap"] = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
    if dtype == np.uint16 and draw(st.booleans()):
        extra["bit_depth"] = 12
    normalize = draw(st.sampled_from(["frame", "frame", "global", "none"]))
    opts = TraceOptions(diff_order=order, normalize=normalize, **flags, **extra)
    h, w = draw(st.integers(1, 4)), draw(st.sampled_from([1, 2, 3, 5, 7]))
    shape = (h, w, 3) if draw(st.booleans()) else (h, w)
    scaling = {}
    if normalize == "global" and draw(st.booleans()):
        scaling = {"scaling": "fixed", "peak": draw(st.sampled_from([0.0, 1.0, 97.5, 3e4]))}
    n = f + draw(st.integers(0, 2 * f + 3))  # n == f: a single window
    style = draw(st.sampled_from(["full", "full", "narrow", "flat"]))
    chunk = draw(st.sampled_from([1, 2, 3, 5, 8192]))
    median = "auto"
    if opts.subtract_median:
        methods = ["band", "adaptive"] if np.dtype(dtype) == np.uint8 else []
        median = draw(st.sampled_from(methods + ["blocked", "auto"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return TracePlan(f, shape, dtype, opts, **scaling), n, style, chunk, median, seed


@SETTINGS
@given(cases())
def test_projector_matches_naive(case):
    plan, n, style, chunk, median, seed = case
    frames = make_frames(np.random.default_rng(seed), n, plan.frame_shape, plan.dtype, style)
    check_against_naive(plan, frames, chunk=chunk, median=median)


@pytest.mark.parametrize("dtype,flags", [
    # signed values through the integer paths (the table has int8's half and fused rows)
    (np.int8, (False,) * 6), (np.int8, (True, False, False, True, False, False)),
    # bool frames are stored as uint8: every path, no compile of their own
    *((np.bool_, fl) for fl in [(False,) * 6, (True, True, True, True, True, False),
                                (False, False, True, False, False, False),
                                (False, False, True, True, False, True)])])
def test_other_dtypes(dtype, flags):
    opts = TraceOptions(**dict(zip(FLAGS, flags)))
    rng = np.random.default_rng(3)
    plan = TracePlan(4, (3, 5), dtype, opts)
    check_against_naive(plan, make_frames(rng, 11, (3, 5), dtype), chunk=3)


def test_diff_order_two_with_shifts_is_exact():
    """take_diff + subtract_* on floats takes the per-window path, still exact."""
    opts = TraceOptions(take_diff=True, diff_order=2, subtract_median=True,
                        subtract_first=True)
    rng = np.random.default_rng(5)
    for dtype, cls in ((np.float32, npj.PerWindowProjector), (np.uint16, npj.PlainProjector)):
        plan = TracePlan(5, (4, 3), dtype, opts)
        proj = npj.make_projector(plan, chunk=2)
        assert type(proj) is cls
        check_projector(proj, make_frames(rng, 14, (4, 3), dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_weighted_pass_any_block_size(monkeypatch, dtype):
    """The weighted passes' blocks (numba_weight_block, numba_brute_block): any size, the
    same bytes (uint8: the certified float32 path; float32: the exact float64 pass)."""
    plan = TracePlan(3, (5, 7), dtype, TraceOptions(color_series=True))
    frames = make_frames(np.random.default_rng(4), 6, (5, 7), dtype)
    for block in (1, 3, 1024):
        for name in ("numba_weight_block", "numba_brute_block"):
            monkeypatch.setitem(config.SETTINGS, name, config.Setting(block, "test"))
        check_against_naive(plan, frames, chunk=8)


@settings(deadline=None)
@given(st.integers(1, 600), st.sampled_from([1, 2, 4]), st.sampled_from([64, 1024, 4096]),
       st.integers(2**10, 2**20))
def test_sorted_window_block_fits_its_budget(f, itemsize, block, budget):
    # Blocks of the sorted window shrink (by halves, to 1024 pixels at least)
    # until their sorted values fit in median_sorted_bytes.
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(config.SETTINGS, "median_block", config.Setting(block, "test"))
        mp.setitem(config.SETTINGS, "median_sorted_bytes", config.Setting(budget, "test"))
        got = sorted_block(f, itemsize)
        assert got <= block and block % got == 0
        floor = min(block, 1024)
        assert got >= floor
        assert got == floor or got * f * itemsize <= budget
        assert got == block or 2 * got * f * itemsize > budget  # the largest that fits
        state = BlockedMedian(f, 5000, np.dtype(f"u{itemsize}" if itemsize > 1 else "u1"),
                              chunk=2**20)
        assert state.srt.shape[2] == min(got, 2**20)


def test_project_needs_a_full_window_and_returns_fresh_images():
    plan = TracePlan(3, (2, 2), np.uint8)
    proj = npj.make_projector(plan)
    proj.push(np.ones((2, 2), np.uint8))
    with pytest.raises(RuntimeError):
        proj.project()
    proj.push(np.ones((2, 2), np.uint8))
    proj.push(np.full((2, 2), 9, np.uint8))
    first = proj.project()
    proj.push(np.zeros((2, 2), np.uint8))
    second = proj.project()
    assert first is not second and first[0, 0] == 255
    with pytest.raises(ValueError):
        proj.push(np.ones((3, 2), np.uint8))


def test_push_copies_the_frame():
    plan = TracePlan(2, (2, 2), np.uint8, TraceOptions(subtract_first=True))
    frames = make_frames(np.random.default_rng(0), 5, (2, 2), np.uint8)
    proj = npj.make_projector(plan)
    for frame in frames:
        mine = frame.copy()
        proj.push(mine)
        mine[...] = 77  # the caller reuses its buffer
    np.testing.assert_array_equal(proj.project(), naive_images(frames, plan)[-1])


# --- the backend -----------------------------------------------------------------


def test_backend_loads_and_configures():
    backend = nb.load()
    assert isinstance(backend, nb.NumbaBackend) and backend.name == "numba"
    assert backend.xp is np
    plan = TracePlan(3, (2, 2), np.uint8)
    assert isinstance(backend.projector(plan), npj.PlainProjector)
    before = numba.get_num_threads()
    try:
        backend.set_threads(1)
        assert numba.get_num_threads() == 1
        backend.set_threads(10 ** 6)
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_unsupported_plans_fall_back_to_the_reference():
    plan = TracePlan(2, (2, 2), np.longdouble)
    assert isinstance(nb.NumbaBackend().projector(plan), RingProjector)


def test_registry_finds_numba():
    from flowtrace_gpu.backends import get_backend

    assert get_backend("numba").name == "numba"


def test_load_without_numba_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    with pytest.raises(BackendUnavailable, match="pip install numba"):
        nb.load()
