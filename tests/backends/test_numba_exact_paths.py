"""The Numba backend's exact fast paths: certified colors and the robust median, byte for byte.

Blocks and list capacities are shrunk so that a few pixels span many
blocks and candidate lists overflow; every image is compared byte for byte
with the NumPy reference (``RingProjector``, the backends' contract) and
with ``tests/naive.py``. Data: the synthetic particle movie, uniform noise,
few levels (ties), and steadily fading pixels (the records' worst case).
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flowtrace_gpu import config  # noqa: E402
from flowtrace_gpu.backends.base import RingProjector  # noqa: E402
from flowtrace_gpu.backends.numba import color_state as ncs  # noqa: E402
from flowtrace_gpu.backends.numba import projectors as npj  # noqa: E402
from flowtrace_gpu.engine.plan import TracePlan  # noqa: E402
from flowtrace_gpu.options import TraceOptions  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from naive import naive_trace_ext, naive_weights  # noqa: E402
from numba_shared import naive_images  # noqa: E402
from numba_shared import stream as stream_frames  # noqa: E402

STYLES = ("particles", "noise", "levels", "fading")


def make_movie(style, n, shape, dtype, seed):
    """(n, *shape) frames of ``dtype`` in one of :data:`STYLES`."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random((n,) + shape) < 0.3
    top = int(np.iinfo(dtype).max)
    if style == "particles":
        planes = [synthetic_movie(n, shape[:2], seed=seed + c, dtype=dtype)
                  for c in range(shape[2] if len(shape) == 3 else 1)]
        return np.stack(planes, axis=-1) if len(shape) == 3 else planes[0]
    if style == "noise":
        return rng.integers(0, top, (n,) + shape, endpoint=True).astype(dtype)
    if style == "levels":
        return rng.integers(0, 4, (n,) + shape).astype(dtype)
    # fading: every pixel darker than the frame before (a candidate per frame)
    start = rng.integers(top // 2, top, shape, endpoint=True)
    steps = rng.integers(1, max(2, top // (4 * n)), (n,) + shape)
    return np.clip(start - np.cumsum(steps, axis=0), 0, top).astype(dtype)


def stream(state, frames):
    """The images of every full window, from a certified color state (plan shape)."""
    plan = state.plan
    f = plan.frames_to_merge
    images = []
    for t, frame in enumerate(frames):
        state.push(np.ascontiguousarray(frame).reshape(-1).astype(state.xdtype, copy=False))
        if t >= f - 1:
            images.append(state.image().reshape(plan.out_shape))
    return images


def reference(plan, frames):
    ring = RingProjector(plan, np)
    images = []
    for t, frame in enumerate(frames):
        ring.push(frame)
        if t >= plan.frames_to_merge - 1:
            images.append(ring.project())
    return images


def check(state, frames):
    """Every image equals the NumPy reference byte for byte, and the naive oracle."""
    plan = state.plan
    opts = plan.options
    got = stream(state, frames)
    ref = reference(plan, frames)
    assert len(got) == len(ref) == len(frames) - plan.frames_to_merge + 1
    for i, (g, r) in enumerate(zip(got, ref)):
        assert g.tobytes() == r.tobytes(), f"window {i} of {plan}: {np.argwhere(g != r)[:5]}"
    if plan.scaling != "frame":
        return got
    # The oracle's own colors (a colormap name: matplotlib's values), times the fade:
    # one multiplier per frame and channel, as the package applies them.
    weights = naive_weights(plan.stack_length, color_series=opts.color_series,
                            colormap=opts.colormap, fade_tails=opts.fade_tails)
    colors = weights if weights is not None and weights.ndim == 2 else None
    naive = naive_trace_ext(frames, plan.frames_to_merge, colors=colors,
                            fade_tails=weights is not None and weights.ndim == 1)
    assert len(naive) == len(got)
    for i, (g, e) in enumerate(zip(got, naive)):
        assert g.tobytes() == e.tobytes(), f"window {i} of {plan}: {np.argwhere(g != e)[:5]}"
    return got


OPTIONS = [
    TraceOptions(color_series=True),
    TraceOptions(fade_tails=True),
    TraceOptions(color_series=True, fade_tails=True),
    TraceOptions(color_series=True, colormap=((0, 0, 255), (255, 128, 0))),
    TraceOptions(color_series=True, colormap=((0, 0, 255), (0, 255, 0), (255, 0, 0))),
]


@st.composite
def color_cases(draw):
    f = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.uint16, np.bool_]))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    shape = (h, w, 3) if draw(st.booleans()) else (h, w)
    opts = draw(st.sampled_from(OPTIONS))
    scaling = {}
    if draw(st.integers(0, 3)) == 0:
        scaling = {"scaling": "fixed", "peak": draw(st.sampled_from([0.0, 1.0, 97.5, 3e4]))}
    plan = TracePlan(f, shape, dtype, opts, **scaling)
    n = f + draw(st.integers(0, 2 * f + 4))
    style = draw(st.sampled_from(STYLES))
    method = draw(st.sampled_from(["brute", "records"] if ncs.records_plan(plan) else ["brute"]))
    block = draw(st.integers(1, 7))
    rows = draw(st.sampled_from([None, 1, 2, 3]))
    slack = draw(st.sampled_from([0.0, 0.0, 0.0, 1.0]))
    return plan, n, style, method, block, rows, slack, draw(st.integers(0, 2 ** 16))


@given(color_cases())
def test_certified_color_matches_reference_and_oracle(case):
    plan, n, style, method, block, rows, slack, seed = case
    frames = make_movie(style, n, plan.frame_shape, plan.dtype, seed)
    if method == "records":
        state = ncs.RecordsColor(plan, block, rows=rows, slack=slack)
    else:
        state = ncs.BruteColor(plan, block, slack=slack)
    images = check(state, frames)
    if slack >= 1.0 and min(image.min() for image in images) < 255:
        assert state.exact > 0  # values off saturation went the exact way


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("f", [30, 70])
def test_records_on_larger_frames(style, f):
    """Realistic list lengths: default blocks and capacities, several blocks of F frames."""
    plan = TracePlan(f, (24, 40), np.uint8, TraceOptions(color_series=True))
    frames = make_movie(style, 2 * f + 7, plan.frame_shape, np.uint8, f)
    check(ncs.RecordsColor(plan, block=256), frames)
    check(ncs.BruteColor(plan, block=256), frames)


def test_fading_pixels_overflow_to_the_exact_path():
    plan = TracePlan(9, (4, 6), np.uint8, TraceOptions(color_series=True))
    frames = make_movie("fading", 30, plan.frame_shape, np.uint8, 3)
    state = ncs.RecordsColor(plan, block=5, rows=2)
    check(state, frames)
    assert state.overflows > 0 and state.exact > 0


def test_fit_weights_bounds_the_float32_formula():
    """The bound covers the formula as float32 evaluates it, for the ramp, fade and both."""
    for opts in OPTIONS[:4]:
        for k in (2, 3, 10, 57, 300):
            weights = ncs._weights(TracePlan(k, (2, 2), np.uint8, opts))
            for col in weights.T:
                fit = ncs.fit_weights(col)
                assert fit is not None
                coef, delta = fit
                a, b, c, d = coef
                pos = np.arange(k, dtype=np.float32)
                value = (a + b * pos) * (c + d * pos)  # float32, as the kernel
                assert value.dtype == np.float32
                assert np.abs(value.astype(np.float64) - col).max() <= delta
                assert delta <= 64 * ncs.U32 * col.max()


def test_records_plan_and_method_choice():
    matplotlib = pytest.importorskip("matplotlib")  # noqa: F841
    low, high = config.get("color_records_min_f") - 1, config.get("color_records_min_f")

    def method(f, dtype=np.uint8, shape=(2, 3), **kw):
        return ncs.color_method(TracePlan(f, shape, dtype, TraceOptions(**kw)))

    assert method(high, color_series=True) == method(high, fade_tails=True) == "records"
    assert method(low, color_series=True) == method(low, fade_tails=True) == "brute"
    # blue * fade rises then falls; viridis is not monotone; RGB frames take colors per value
    assert method(high, color_series=True, fade_tails=True) == "brute"
    assert method(high, color_series=True, colormap="viridis") == "brute"
    assert method(high, shape=(2, 3, 3), color_series=True) == "brute"
    assert method(high, shape=(2, 3, 3), fade_tails=True) == "records"
    # a shift, differences, signed or float frames: the shifted brute force; floats after
    # a shift or a difference, float64, differences of order > 7: the exact pass
    assert method(high, color_series=True, subtract_median=True) == "shifted"
    assert method(high, color_series=True, invert_color=True) == "shifted"
    assert method(4, dtype=np.int16, fade_tails=True) == "shifted"
    assert method(4, color_series=True, subtract_first=True, take_diff=True) == "shifted"
    assert method(high, dtype=np.float32, color_series=True) == "shifted"
    assert method(high, dtype=np.float32, color_series=True, subtract_median=True) is None
    assert method(high, dtype=np.float64, color_series=True) is None
    assert method(10, color_series=True, take_diff=True, diff_order=8) is None
    assert method(high) is None
    plan = TracePlan(5, (2, 2), np.uint8, TraceOptions(color_series=True, subtract_first=True))
    assert ncs.color_method(plan, "brute") == "shifted"
    assert ncs.color_method(plan, "exact") is None
    with pytest.raises(ValueError, match="needs weights on integer frames"):
        ncs.color_method(plan, "records")
    with pytest.raises(ValueError, match="records path needs"):
        ncs.color_method(TracePlan(5, (2, 2), np.uint8, TraceOptions(
            color_series=True, colormap="viridis")), "records")
    with pytest.raises(ValueError, match="color method must be"):
        ncs.color_method(TracePlan(5, (2, 2), np.uint8, TraceOptions(color_series=True)), "x")


# --- the adaptive median -----------------------------------------------------------

from flowtrace_gpu.backends.numba.adaptive_median import AdaptiveMedian  # noqa: E402


def median_stream(med, frames):
    """(window, lo, hi) after every full window."""
    f = med.f
    ring = np.zeros((f, frames.shape[1]), np.uint8)
    for t, x in enumerate(frames):
        med.push(ring, t, x)
        ring[t % f] = x
        if t >= f - 1:
            yield frames[t - f + 1:t + 1], med.lo.copy(), med.hi.copy()


def median_movie(style, n, npix, seed):
    rng = np.random.default_rng(seed)
    if style == "noise":
        return rng.integers(0, 256, (n, npix), dtype=np.uint8)
    if style == "levels":
        return rng.integers(0, 3, (n, npix), dtype=np.uint8)
    if style == "still":  # a still background and camera noise
        return (rng.integers(10, 30, npix) + rng.integers(-4, 5, (n, npix))).astype(np.uint8)
    side = int(np.ceil(np.sqrt(npix)))
    movie = synthetic_movie(n, (side, side), seed=seed).reshape(n, -1)[:, :npix].copy()
    if style == "mixed":  # noise over part of the image from the middle of the movie on
        movie[n // 2:, : npix // 2] = rng.integers(0, 256, (n - n // 2, npix // 2))
    return movie


@given(f=st.integers(1, 40),
       style=st.sampled_from(["particles", "noise", "levels", "mixed", "still"]),
       npix=st.integers(1, 40), block=st.integers(1, 7),
       start=st.sampled_from(["band", "sorted"]), bins=st.sampled_from([None, 1, 2, 8, 16]),
       tolerance=st.sampled_from([1.0, 1.3]), seed=st.integers(0, 2 ** 16))
def test_adaptive_median_is_exact(f, style, npix, block, start, bins, tolerance, seed):
    """lo/hi are the window's middle order statistics whatever each block runs."""
    frames = median_movie(style, f + 3 * f // 2 + 12, npix, seed)
    med = AdaptiveMedian(f, npix, block=block, bins=bins, start=start)
    med.costs[5] = tolerance  # 1.0: switch at the slightest advantage
    for window, lo, hi in median_stream(med, frames):
        ordered = np.sort(window, axis=0)
        np.testing.assert_array_equal(lo, ordered[(f - 1) // 2])
        np.testing.assert_array_equal(hi, ordered[f // 2])
        np.testing.assert_array_equal((lo.astype(np.float64) + hi) / 2, np.median(window, axis=0))


def test_adaptive_median_switches_to_the_cheaper_method():
    """Noise sends band blocks to the sorted window; a still background brings them back."""
    f, npix = 70, 600
    noise = median_movie("noise", 3 * f, npix, 1)
    med = AdaptiveMedian(f, npix, block=100, start="band")
    for _ in median_stream(med, noise):
        pass
    assert (med.mode == 1).all() and med.switches == 6
    still = median_movie("still", 4 * f, npix, 2)
    med = AdaptiveMedian(f, npix, block=100, start="sorted")
    for _ in median_stream(med, still):
        pass
    assert (med.mode == 0).all()
    # every block ends on the method the model prefers, within the tolerance
    from flowtrace_gpu.kernels.numba import median_adaptive as nma

    for mode, rate in zip(med.mode, med.rate):
        band = nma.band_cost(rate, f, med.costs)
        other = nma.sorted_cost(f, med.costs)
        assert (band <= med.costs[5] * other) if mode == 0 else (other <= med.costs[5] * band)


def test_adaptive_median_refuses_an_unknown_start():
    with pytest.raises(ValueError, match="start must be"):
        AdaptiveMedian(5, 10, start="histogram")


# --- subtract_median fused into the adaptive median -----------------------------------


@given(f=st.integers(1, 24),
       style=st.sampled_from(["particles", "noise", "levels", "mixed", "still"]),
       side=st.integers(1, 7), chunk=st.integers(1, 9),
       start=st.sampled_from(["band", "sorted"]), tolerance=st.sampled_from([1.0, 1.3]),
       invert=st.booleans(), first=st.booleans(), fixed=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_fused_adaptive_median_matches_naive(f, style, side, chunk, start, tolerance, invert,
                                             first, fixed, seed):
    """Every image of the fused path equals naive's, whichever method each block runs.

    Small chunks give many blocks; tolerance 1.0 switches blocks at the slightest
    advantage, so band and sorted blocks (and their sliding extremes) alternate.
    """

    npix = side * side
    frames = median_movie(style, f + 3 * f // 2 + 12, npix, seed).reshape(-1, side, side)
    opts = TraceOptions(subtract_median=True, invert_color=invert, subtract_first=first)
    extra = {"scaling": "fixed", "peak": 97.5} if fixed else {}
    plan = TracePlan(f, (side, side), np.uint8, opts, **extra)
    proj = npj.make_projector(plan, chunk=chunk, median="adaptive")
    assert isinstance(proj, npj.FusedAdaptiveMedianProjector)
    proj.median_state = AdaptiveMedian(f, npix, block=proj.median_state.srt.shape[2],
                                       start=start)
    proj.median_state.costs[5] = tolerance
    expected = naive_images(frames, plan)
    for t, frame in enumerate(frames):
        proj.push(frame)
        if t >= f - 1:
            got = proj.project()
            assert got.tobytes() == expected[t - f + 1].tobytes(), f"window {t - f + 1}"


# --- weights after a shift: the certified shifted path ----------------------------

SHIFTS = [
    dict(subtract_median=True),
    dict(subtract_first=True),
    dict(subtract_median=True, subtract_first=True),
    dict(invert_color=True),
    dict(subtract_median=True, invert_color=True),
    dict(add_first_frame=True),
    dict(subtract_first=True, add_first_frame=True, invert_color=True),
    dict(subtract_median=True, add_first_frame=True),
    dict(),  # signed frames alone leave the unsigned paths
]
WEIGHTS = [
    dict(color_series=True),
    dict(fade_tails=True),
    dict(color_series=True, fade_tails=True),
    dict(color_series=True, colormap=((0, 0, 255), (255, 128, 0))),
]


def signed_movie(style, n, shape, dtype, seed):
    """make_movie's frames moved to straddle 0 for signed dtypes (as they are otherwise);
    float frames also scaled, down to values whose weighted products are subnormal."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        # finite values only (the API refuses inf and nan): float16 ends at 65504
        scales = [1.0, 1e-3, 1e3, 1e-36, 1e-42] if dtype.itemsize == 4 else [1.0, 1e-3, 100.0]
        frames = make_movie(style, n, shape, np.uint8, seed).astype(np.float64) - 128
        return (frames * scales[seed % len(scales)]).astype(dtype)
    if dtype.kind != "i":
        return make_movie(style, n, shape, dtype, seed)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    frames = make_movie(style, n, shape, unsigned, seed).astype(np.int64)
    return (frames - (int(np.iinfo(unsigned).max) + 1) // 2).astype(dtype)


@st.composite
def shifted_cases(draw):
    diff = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    f = draw(st.integers(diff + 1, 12))
    shift = dict(draw(st.sampled_from(SHIFTS)))
    if diff:
        shift.update(take_diff=True, diff_order=diff)
    kinds = [np.int8, np.int16] if not shift else [np.uint8, np.uint8, np.uint16, np.int8,
                                                  np.int16, np.bool_]
    if not (diff or shift.get("subtract_first") or shift.get("subtract_median")):
        kinds += [np.float32, np.float16]  # floats without a shift or a difference
    dtype = draw(st.sampled_from(kinds))
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 9)))
    shape += (3,) if draw(st.booleans()) else ()  # RGB frames take colors per value
    opts = TraceOptions(**shift, **draw(st.sampled_from(WEIGHTS)))
    scaling = {}
    if draw(st.integers(0, 3)) == 0:
        peaks = [0.0, 1.0, 97.5, 3e4, -2.5]  # signed frames can make every value negative
        scaling = {"scaling": "fixed", "peak": draw(st.sampled_from(peaks))}
    plan = TracePlan(f, shape, dtype, opts, **scaling)
    n = f + draw(st.integers(0, 2 * f + 4))
    style = draw(st.sampled_from(STYLES))
    chunk = draw(st.integers(1, 7))
    slack = draw(st.sampled_from([0.0, 0.0, 0.0, 1.0]))
    return plan, n, style, chunk, slack, draw(st.integers(0, 2 ** 16))


@given(shifted_cases())
def test_shifted_color_matches_naive(case):
    """Every image equals naive's byte for byte: signed and unsigned frames, every shift,
    differences, float frames where they apply, tiny blocks; slack 1 sends every value to
    the exact path."""
    plan, n, style, chunk, slack, seed = case
    frames = signed_movie(style, n, plan.frame_shape, plan.dtype, seed)
    proj = npj.make_projector(plan, chunk=chunk)
    assert isinstance(proj, npj.ShiftedColorProjector)
    proj.state.slack = slack
    images = stream_frames(proj, frames, proj.plan.frames_to_merge)
    expected = naive_images(frames, plan)
    assert len(images) == len(expected)
    for i, (g, e) in enumerate(zip(images, expected)):
        assert g.tobytes() == e.tobytes(), f"window {i} of {plan}: {np.argwhere(g != e)[:5]}"
    if slack >= 1.0 and min(image.min() for image in images) < 255:
        assert proj.state.exact > 0


@pytest.mark.parametrize("style", ["particles", "noise"])
@pytest.mark.parametrize("shift", SHIFTS[:5] + [dict(take_diff=True, subtract_median=True)])
def test_shifted_color_on_larger_frames(style, shift):
    """Default blocks, F = 30: naive's bytes, and only a few values go the exact way
    (margins that sent most of them there would be slow, not wrong)."""
    plan = TracePlan(30, (40, 56), np.uint8, TraceOptions(color_series=True, **shift))
    frames = make_movie(style, 40, plan.frame_shape, np.uint8, 7)
    proj = npj.make_projector(plan)
    assert isinstance(proj, npj.ShiftedColorProjector)
    images = stream_frames(proj, frames, proj.plan.frames_to_merge)
    expected = naive_images(frames, plan)
    for i, (g, e) in enumerate(zip(images, expected)):
        assert g.tobytes() == e.tobytes(), f"window {i}: {np.argwhere(g != e)[:5]}"
    values = sum(image.size for image in images)
    # A flagged pixel recomputes its 3 values; values exactly halfway between two levels
    # (common with integer differences: y = 255 * d / d_peak) always go the exact way.
    assert proj.state.exact <= values // (20 if shift.get("take_diff") else 200)
    # the peak comes from a few values near the float32 top (none with invert's
    # all-zero blue column), not from the whole image
    assert proj.state.peak_candidates <= 3 * len(images) * 16


def test_shifted_peak_ties_are_recomputed():
    """Many values tied at the top: each is recomputed, and the peak is exact."""
    plan = TracePlan(3, (8, 8), np.uint8,
                     TraceOptions(color_series=True, subtract_first=True))
    frames = np.zeros((6, 8, 8), np.uint8)
    frames[1:] = 200  # every pixel's top value is 200 * the ramp at the same frame
    proj = npj.make_projector(plan)
    images = stream_frames(proj, frames, proj.plan.frames_to_merge)
    for g, e in zip(images, naive_images(frames, plan)):
        assert g.tobytes() == e.tobytes()
    assert proj.state.peak_candidates >= 64


# Two weights whose products float32 orders the other way round: 1991 * W1 is
# 1000.0000000000002 in float64 but 999.99994 in float32, under 1000 * 1.0.
W1 = 0.5022601707684582


@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_color_peak_that_float32_misorders(dtype):
    """The image's peak is a product that float32 ranks below another: the exact peak must
    still be found (uint16: the plain path, int16: the shifted one), since a value at a
    rounding boundary (100 * 255 / peak, 25.5 against 1000 but just under it against the
    exact peak) takes its byte from it."""
    colormap = [(1.0, 1.0, 1.0), (W1, W1, W1)]
    plan = TracePlan(2, (4, 4), dtype, TraceOptions(color_series=True, colormap=colormap))
    frames = np.zeros((3, 4, 4), dtype)
    frames[:, 0, 0] = [1000, 0, 0]  # 1000 * 1.0: float32's top
    frames[:, 1, 1] = [0, 1991, 0]  # 1991 * W1: the exact top
    frames[:, 2, 2] = [100, 0, 0]   # at the boundary
    proj = npj.make_projector(plan, chunk=4)
    assert isinstance(proj, npj.ShiftedColorProjector) == (dtype == np.int16)
    images = stream_frames(proj, frames, 2)
    expected = naive_images(frames, plan)
    assert images[0].tobytes() == expected[0].tobytes()
    assert images[0].reshape(4, 4, 3)[2, 2, 0] == 25  # 26 with 1000 as the peak


def test_shifted_peak_of_negative_images():
    """Every value negative, in several blocks: each block's largest must be its largest
    (float32 bits order negative floats backwards), or a block holding the peak is
    skipped."""
    colormap = [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5)]
    plan = TracePlan(2, (2, 8), np.int16, TraceOptions(color_series=True, colormap=colormap))
    frames = np.empty((3, 2, 8), np.int16)
    frames[:] = -5
    frames[:, 1, :4] = -100  # the second block: the image's top and its bottom
    frames[:, 1, 5] = -1
    proj = npj.make_projector(plan, chunk=8)
    assert proj.state.block == 8
    images = stream_frames(proj, frames, 2)
    for g, e in zip(images, naive_images(frames, plan)):
        assert g.tobytes() == e.tobytes()


@pytest.mark.parametrize("f", [1, 2, 3, 5, 6, 7])
def test_shifted_color_of_negative_values(f):
    """Every product negative (signed frames below 0): the rows that pad the window to a
    multiple of four must not add a product of 0 (the output scale is negative here)."""
    plan = TracePlan(f, (5, 6), np.int16, TraceOptions(color_series=True),
                     scaling="fixed", peak=-2.5)
    rng = np.random.default_rng(f)
    frames = -rng.integers(1, 30000, (f + 4, 5, 6)).astype(np.int16)
    proj = npj.make_projector(plan)
    assert isinstance(proj, npj.ShiftedColorProjector)
    images = stream_frames(proj, frames, proj.plan.frames_to_merge)
    for i, (g, e) in enumerate(zip(images, naive_images(frames, plan))):
        assert g.tobytes() == e.tobytes(), f"window {i}"
    assert max(image.max() for image in images) > 0


@pytest.mark.parametrize("scale", [1e-36, 1e-42, 1.0])
def test_float_frames_with_subnormal_products(scale):
    """Float32 frames so small that their weighted products are subnormal in float32
    (errors absolute, not relative, and 255 / peak beyond float32's range): every value
    is decided in float64, and the bytes are naive's; at ordinary scales none is."""
    plan = TracePlan(4, (16, 16), np.float32, TraceOptions(color_series=True))
    frames = (np.random.default_rng(0).random((8, 16, 16)) * scale).astype(np.float32)
    proj = npj.make_projector(plan, chunk=64)
    assert isinstance(proj, npj.ShiftedColorProjector)
    images = stream_frames(proj, frames, 4)
    for i, (g, e) in enumerate(zip(images, naive_images(frames, plan))):
        assert g.tobytes() == e.tobytes(), f"window {i}"
    values = sum(image.size for image in images)
    tiny = scale < 1e-30
    assert proj.state._bounds()[2] == tiny  # the subnormal decision itself
    assert proj.state.exact == values if tiny else proj.state.exact < values // 100


@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 3)])
@pytest.mark.parametrize("f", [2, 3, 4, 6, 7, 8])
def test_shifted_color_of_negative_differences(f, shape):
    """Frames that fall every frame: every first difference (formed as the rows are read)
    is negative, and the rows padding the F - 1 differences to a multiple of four must
    repeat a difference, not add a product of 0 (a fixed negative peak: the ramp's blue
    ends at weight 0, which makes a stretched image's peak 0)."""
    plan = TracePlan(f, shape, np.uint8, TraceOptions(color_series=True, take_diff=True),
                     scaling="fixed", peak=-2.5)
    rng = np.random.default_rng(f)
    steps = 3 + rng.integers(0, 3, (f + 4,) + shape)
    frames = (250 - np.cumsum(steps, axis=0)).astype(np.uint8)
    proj = npj.make_projector(plan)
    assert isinstance(proj, npj.ShiftedColorProjector)
    images = stream_frames(proj, frames, f)
    for i, (g, e) in enumerate(zip(images, naive_images(frames, plan))):
        assert g.tobytes() == e.tobytes(), f"window {i}"
    assert max(image.max() for image in images) > 0


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 3)])
@pytest.mark.parametrize("shift", SHIFTS + [dict(take_diff=True, diff_order=2, add_first_frame=True)])
def test_shifted_exact_path_alone(shift, shape):
    """Slack 1 sends every value to the float64 recomputation: it alone must give naive's
    bytes, for every shift, even windows (the median is then a mean of two values) and odd."""
    for f, dtype in ((4, np.uint8), (5, np.int16)):
        plan = TracePlan(f, shape, dtype, TraceOptions(color_series=True, **shift))
        frames = signed_movie("noise", f + 5, shape, dtype, f)
        proj = npj.make_projector(plan, chunk=4)
        proj.state.slack = 1.0
        images = stream_frames(proj, frames, f)
        for i, (g, e) in enumerate(zip(images, naive_images(frames, plan))):
            assert g.tobytes() == e.tobytes(), f"F={f} {dtype.__name__} window {i}"
        assert proj.state.exact > 0
