"""The Numba kernels and projector against plain per-window NumPy.

Chunk sizes are shrunk so that frames of a few pixels span many parallel
chunks; streams run past several sliding blocks so every block position and
the suffix scans are exercised.
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
from flowtrace_gpu.backends import numba_backend as nb  # noqa: E402
from flowtrace_gpu.backends.base import RingProjector  # noqa: E402
from flowtrace_gpu.kernels import numba_median as nmed  # noqa: E402
from flowtrace_gpu.kernels import numba_project as nproj  # noqa: E402
from flowtrace_gpu.kernels import numba_sliding as nsl  # noqa: E402
from flowtrace_gpu.kernels.stretch import finalize  # noqa: E402
from flowtrace_gpu.kernels.window import trace_window  # noqa: E402
from flowtrace_gpu.plan import TraceOptions, TracePlan  # noqa: E402

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


def oracle(frames, plan):
    """Images of every full window by the per-window NumPy semantics."""
    f = plan.frames_to_merge
    return [finalize(trace_window(frames[i - f + 1:i + 1], plan, np), plan, np)
            for i in range(f - 1, len(frames))]


def stream(projector, frames, f):
    images = []
    for i, frame in enumerate(frames):
        projector.push(frame)
        if i >= f - 1:
            images.append(projector.project())
    return images


def check_against_reference(plan, frames, **kw):
    got = stream(nb.NumbaProjector(plan, **kw), frames, plan.frames_to_merge)
    ring = stream(RingProjector(plan, np), frames, plan.frames_to_merge)
    naive = oracle(frames, plan)
    for i, (g, r, o) in enumerate(zip(got, ring, naive)):
        np.testing.assert_array_equal(r, o)  # the reference is the oracle
        assert g.dtype == plan.out_dtype and g.shape == plan.out_shape
        assert g.tobytes() == r.tobytes(), f"window {i}, {plan}, {kw}:\n{g}\n!=\n{r}"


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
        if s == length - 1:
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
    out = np.empty(13, np.float64)
    nsl.diff_frame(frames[d], ring, slots, out, 4)
    expect = np.diff(frames.astype(np.float64), n=d, axis=0)[-1]
    assert out.tobytes() == expect.tobytes()  # bit for bit


def _median_stream(method, f, frames, chunk, layout="bin", bins=16):
    """Run the median kernels over ``frames``; yield (window, lo, hi)."""
    dtype = frames.dtype
    npix = frames.shape[1]
    k1, k2 = (f - 1) // 2, f // 2
    ring = np.empty((f, npix), dtype)
    if method == "band":
        off = 0
        nblocks = -(-npix // chunk)
        ct = np.uint8 if f <= 255 else np.uint16
        band = np.zeros((nblocks, bins, chunk), ct)
        base, below = np.zeros(npix, np.uint8), np.zeros(npix, ct)
        scratch = np.empty((nblocks, 5, chunk), np.uint8)
        csum = np.empty((nblocks, chunk), ct)
        bad = np.empty((nblocks, chunk), np.int64)
        lo, hi = np.empty(npix, dtype), np.empty(npix, dtype)
    elif method == "histogram":
        off = 128 if dtype.kind == "i" else 0
        hist = np.zeros((256, npix), np.uint8).T if layout == "bin" else np.zeros(
            (npix, 256), np.uint8)
        lo, blo = np.zeros(npix, np.uint8), np.zeros(npix, np.int32)
        hi, bhi = (np.zeros(npix, np.uint8), np.zeros(npix, np.int32)) if k1 != k2 else (lo, blo)
    elif method == "blocked":
        off = 0
        nblocks = -(-npix // chunk)
        srt = np.empty((nblocks, f, chunk), dtype)
        scratch = np.empty((nblocks, chunk), dtype)
        lo, hi = np.empty(npix, dtype), np.empty(npix, dtype)
    else:
        off = 0
        srt = np.empty((npix, f), dtype)
        lo, hi = np.empty(npix, dtype), np.empty(npix, dtype)
    for t, x in enumerate(frames):
        if method == "band":
            if t >= f - 1:
                nmed.band_update(ring, t % f, x, band, base, below, k1, k2, lo, hi, scratch,
                                 csum, bad, t == f - 1, ct)
                # the state counts the window exactly: below the band, and each bin
                window = np.concatenate([ring[:t % f], ring[t % f + 1:t + 1], x[None]])
                np.testing.assert_array_equal(below, (window < base).sum(0))
                counts = band.transpose(1, 0, 2).reshape(bins, -1)[:, :npix]
                for k in range(bins):
                    np.testing.assert_array_equal(counts[k], (window == base + k).sum(0))
        elif method == "histogram":
            if t < f:
                nmed.hist_add(x, hist, off, chunk)
                if t == f - 1:
                    nmed.hist_init(hist, k1, k2, lo, blo, hi, bhi, chunk)
            else:
                nmed.hist_update(ring[t % f], x, hist, off, k1, k2, lo, blo, hi, bhi, chunk)
        elif method == "blocked":
            if t < f:
                nmed.blocked_insert(x, srt, t)
                if t == f - 1:
                    nmed.blocked_stats(srt, k1, k2, lo, hi)
            else:
                nmed.blocked_update(ring[t % f], x, srt, k1, k2, lo, hi, scratch)
            # the whole window stays sorted, not just the middle rows
            if t >= f - 1:
                rows = srt.transpose(1, 0, 2).reshape(f, -1)[:, :npix]
                np.testing.assert_array_equal(rows, np.sort(frames[t - f + 1:t + 1], axis=0))
        else:
            if t < f:
                nmed.sorted_insert(x, srt, t, chunk)
                if t == f - 1:
                    nmed.sorted_stats(srt, k1, k2, lo, hi, chunk)
            else:
                nmed.sorted_update(ring[t % f], x, srt, k1, k2, lo, hi, chunk)
        ring[t % f] = x
        if t >= f - 1:
            yield (frames[t - f + 1:t + 1], lo.astype(np.float64) - off,
                   hi.astype(np.float64) - off)


@pytest.mark.parametrize("f", [1, 2, 3, 4, 9])
@pytest.mark.parametrize("method,dtype,layout", [
    ("histogram", np.uint8, "bin"), ("histogram", np.uint8, "pixel"),
    ("histogram", np.int8, "bin"), ("sorted", np.uint16, None),
    ("sorted", np.float32, None), ("sorted", np.uint8, None),
    ("blocked", np.uint8, None), ("blocked", np.int8, None), ("blocked", np.uint16, None),
    ("blocked", np.float32, None), ("blocked", np.float64, None), ("band", np.uint8, None)])
def test_median_kernels_order_statistics(f, method, dtype, layout):
    rng = np.random.default_rng(f)
    for style in ("full", "narrow"):
        frames = make_frames(rng, 3 * f + 6, (17,), dtype, style)
        for window, lo, hi in _median_stream(method, f, frames, 5, layout or "bin"):
            ordered = np.sort(window.astype(np.float64), axis=0)
            np.testing.assert_array_equal(lo, ordered[(f - 1) // 2])
            np.testing.assert_array_equal(hi, ordered[f // 2])
            mid = (lo.astype(np.float64) + hi) / 2.0
            np.testing.assert_array_equal(mid, np.median(window.astype(np.float64), axis=0))


@pytest.mark.parametrize("chunk", [1, 4, 17, 64])
def test_blocked_median_ties_and_partial_blocks(chunk):
    """Runs of equal values leave and enter at every rank; the last block is partial."""
    rng = np.random.default_rng(chunk)
    for f in (2, 5, 6, 30):
        frames = rng.integers(0, 3, (2 * f + 9, 37)).astype(np.uint8)
        frames[f + 2:f + 5] = 255  # a jump over the whole range, both ways
        for window, lo, hi in _median_stream("blocked", f, frames, chunk):
            ordered = np.sort(window, axis=0)
            np.testing.assert_array_equal(lo, ordered[(f - 1) // 2])
            np.testing.assert_array_equal(hi, ordered[f // 2])


@pytest.mark.parametrize("bins", [1, 2, 16])
@pytest.mark.parametrize("chunk", [1, 4, 17])
def test_band_median_leaves_and_rebuilds(bins, chunk):
    """Jumps across the whole range force rebuilds; narrow bands rebuild every frame."""
    rng = np.random.default_rng(bins * chunk)
    for f in (1, 2, 5, 6, 30):
        frames = rng.integers(0, 3, (2 * f + 9, 37)).astype(np.uint8)
        frames[f + 2:f + 5] = 255
        frames[-3:, ::2] = rng.integers(0, 256, (3, 19))
        for window, lo, hi in _median_stream("band", f, frames, chunk, bins=bins):
            ordered = np.sort(window, axis=0)
            np.testing.assert_array_equal(lo, ordered[(f - 1) // 2])
            np.testing.assert_array_equal(hi, ordered[f // 2])


def test_band_median_wide_counts():
    """F > 255: counts in uint16, band clamped at both ends of 0..255."""
    rng = np.random.default_rng(0)
    frames = rng.choice(np.array([0, 1, 254, 255], np.uint8), (270, 11))
    for window, lo, hi in _median_stream("band", 260, frames, 4):
        ordered = np.sort(window, axis=0)
        np.testing.assert_array_equal(lo, ordered[129])
        np.testing.assert_array_equal(hi, ordered[130])


@pytest.mark.parametrize("median", ["band", "blocked", "histogram"])
def test_median_methods_on_the_real_recording(median, reference_frames):
    """Real particles and camera noise: the band is rebuilt often at small F."""
    for f in (4, 10, 40):
        plan = TracePlan(f, reference_frames.shape[1:], np.uint8,
                         TraceOptions(subtract_median=True))
        check_against_reference(plan, reference_frames, chunk=1000, median=median)
    proj = nb.NumbaProjector(TracePlan(10, (150, 150), np.uint8,
                                       TraceOptions(subtract_median=True)), median="band")
    stream(proj, reference_frames, 10)
    assert proj.median.rebuilt > 0  # this test did exercise rebuilds


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("scaling", [{}, {"scaling": "fixed", "peak": 97.5}])
def test_median_projection_fused_into_the_sorted_window(dtype, invert, scaling):
    """subtract_median reads max/min and the median from the same sorted rows."""
    opts = TraceOptions(subtract_median=True, invert_color=invert)
    rng = np.random.default_rng(7)
    for f, shape, chunk in ((1, (3, 4), 5), (4, (5, 7), 4), (9, (6, 5), 8192)):
        plan = TracePlan(f, shape, dtype, opts, **scaling)
        proj = nb.NumbaProjector(plan, chunk=chunk, median="blocked")
        assert proj.fused and proj.buf is None  # no sliding extreme kept
        check_against_reference(plan, make_frames(rng, 3 * f + 4, shape, dtype), chunk=chunk,
                                median="blocked")
    # add_first_frame needs the raw first frame: not fused
    plan = TracePlan(4, (2, 3), dtype, TraceOptions(subtract_median=True, add_first_frame=True))
    assert not nb.NumbaProjector(plan, median="blocked").fused


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
                     TraceOptions(subtract_median=True)):
            check_against_reference(TracePlan(4, (5, 7), np.uint8, opts), frames, chunk=8,
                                    median="blocked")


def test_histogram_survives_large_jumps():
    """The median pointer crosses empty bins in one step (0 <-> 255)."""
    f = 4
    frames = np.array([[0], [255], [0], [255], [255], [255], [0], [0], [0], [128]], np.uint8)
    for window, lo, hi in _median_stream("histogram", f, frames, 1):
        ordered = np.sort(window, axis=0)
        assert lo[0] == ordered[1, 0] and hi[0] == ordered[2, 0]


# --- the projector ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=6)),
                         ids=lambda fl: "".join("ITMFAC"[i] if v else "-" for i, v in enumerate(fl)))
def test_every_option_combination(dtype, flags):
    opts = TraceOptions(**dict(zip(FLAGS, flags)))
    rng = np.random.default_rng(sum(flags) + 7 * np.dtype(dtype).itemsize)
    for shape, f in (((3, 5), 4), ((2, 3, 3), 3)):
        plan = TracePlan(f, shape, dtype, opts)
        check_against_reference(plan, make_frames(rng, 3 * f + 2, shape, dtype), chunk=4)


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
        methods = ["histogram", "band"] if np.dtype(dtype) == np.uint8 else []
        median = draw(st.sampled_from(methods + ["sorted", "blocked", "auto"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return TracePlan(f, shape, dtype, opts, **scaling), n, style, chunk, median, seed


@SETTINGS
@given(cases())
def test_projector_matches_reference(case):
    plan, n, style, chunk, median, seed = case
    frames = make_frames(np.random.default_rng(seed), n, plan.frame_shape, plan.dtype, style)
    check_against_reference(plan, frames, chunk=chunk, median=median)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.bool_, np.float64, np.uint32])
@pytest.mark.parametrize("flags", [(False,) * 6, (True, True, True, True, True, False),
                                   (False, True, True, False, True, False),
                                   (False, False, True, True, False, True)])
def test_other_dtypes(dtype, flags):
    opts = TraceOptions(**dict(zip(FLAGS, flags)))
    rng = np.random.default_rng(3)
    plan = TracePlan(4, (3, 5), dtype, opts)
    check_against_reference(plan, make_frames(rng, 11, (3, 5), dtype), chunk=3)


def test_diff_order_two_with_shifts_is_exact():
    """take_diff + subtract_* on floats takes the per-window path, still exact."""
    opts = TraceOptions(take_diff=True, diff_order=2, subtract_median=True,
                        subtract_first=True)
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.uint16):
        plan = TracePlan(5, (4, 3), dtype, opts)
        proj = nb.NumbaProjector(plan, chunk=2)
        assert proj.sliding == (dtype == np.uint16)
        check_against_reference(plan, make_frames(rng, 14, (4, 3), dtype), chunk=2)


def test_long_window_uses_wide_histogram_counts():
    plan = TracePlan(300, (2, 3), np.uint8, TraceOptions(subtract_median=True))
    proj = nb.NumbaProjector(plan, median="histogram")
    assert proj.median.method == "histogram" and proj.median.hist.dtype == np.uint16
    frames = make_frames(np.random.default_rng(1), 306, (2, 3), np.uint8, "narrow")
    check_against_reference(plan, frames, chunk=4, median="histogram")


def test_auto_median_choice():
    """Blocked sorted window, except uint8 frames over long windows (band)."""
    def method(f, dtype):
        plan = TracePlan(f, (2, 3), dtype, TraceOptions(subtract_median=True))
        return nb.NumbaProjector(plan).median.method

    short, long = config.get("median_band_min_f") - 1, config.get("median_band_min_f")
    assert method(short, np.uint8) == method(long, np.uint16) == "blocked"
    assert method(long, np.float32) == method(long, np.int8) == "blocked"
    assert method(long, np.uint8) == method(300, np.uint8) == "band"
    with pytest.raises(ValueError, match="band median needs uint8"):
        nb.NumbaProjector(TracePlan(3, (2, 3), np.uint16, TraceOptions(subtract_median=True)),
                          median="band")
    with pytest.raises(ValueError, match="median must be"):
        nb.NumbaProjector(TracePlan(3, (2, 3), np.uint8, TraceOptions(subtract_median=True)),
                          median="nope")


def test_project_needs_a_full_window_and_returns_fresh_images():
    plan = TracePlan(3, (2, 2), np.uint8)
    proj = nb.NumbaProjector(plan)
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
    proj = nb.NumbaProjector(plan)
    ref = RingProjector(plan, np)
    for frame in frames:
        mine = frame.copy()
        proj.push(mine)
        ref.push(frame)
        mine[...] = 77  # the caller reuses its buffer
    np.testing.assert_array_equal(proj.project(), ref.project())


# --- the backend -----------------------------------------------------------------


def test_backend_loads_and_configures():
    backend = nb.load()
    assert isinstance(backend, nb.NumbaBackend) and backend.name == "numba"
    assert backend.xp is np
    plan = TracePlan(3, (2, 2), np.uint8)
    assert isinstance(backend.projector(plan), nb.NumbaProjector)
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


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
def test_half_projection_matches_float_projection(dtype):
    """project_sliding_half (integers, twice the value) == project_sliding, bit for bit."""
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
            args = (buf, prefix, s1, ring, 1, lo, hi)
            opts = (sub_first, sub_median, add_first, is_max)
            ref = np.empty(n, np.uint8)
            nproj.project_sliding(*args, 0.0, *opts, float(offset), np.empty(n), mode, scale,
                                  ref, np.empty(nchunks), chunk)
            half = np.empty(n, np.int16 if info.bits == 8 else np.int32)
            got = np.empty(n, np.uint8)
            # float64 only; float32 where exact for every value 8-bit frames can give
            for f32_range in ((1, 0), (-4096, 4096)) if info.bits == 8 else ((1, 0),):
                nproj.project_sliding_half(*args, 0, *opts, offset, half, mode, scale, got,
                                           np.empty(nchunks), chunk, *f32_range)
                np.testing.assert_array_equal(got, ref, err_msg=str((flags, s1, mode)))


def test_projector_takes_the_half_path_for_small_integers():
    opts = TraceOptions(subtract_median=True)
    assert nb.NumbaProjector(TracePlan(3, (2, 2), np.uint8, opts)).half.dtype == np.int16
    assert nb.NumbaProjector(TracePlan(3, (2, 2), np.uint16, opts)).half.dtype == np.int32
    assert nb.NumbaProjector(TracePlan(3, (2, 2), np.float32, opts)).half is None
    plain = TraceOptions(subtract_median=True, normalize="none")
    assert nb.NumbaProjector(TracePlan(3, (2, 2), np.uint8, plain)).half is None
