"""The CuPy backend's NumPy stand-in: its array code, projectors, memory plan and batches.

``CupyBackend(xp=numpy)`` (``cupy_shared.STANDIN``) runs the GPU path's own
array code with the fused kernels replaced by their NumPy twins; here it is
checked against the original's outputs, the naive oracle and the NumPy
backend, the twins against independent NumPy expressions.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowtrace_gpu import FlowtraceError, flowtrace_array
from flowtrace_gpu.backends.cupy import backend as cb
from flowtrace_gpu.backends.cupy import kernels as ck
from flowtrace_gpu.backends.cupy import memory as mem
from flowtrace_gpu.engine import pipeline
from flowtrace_gpu.engine.plan import TracePlan
from flowtrace_gpu.kernels.colors import WeightMode
from flowtrace_gpu.kernels.window import prepare_stack, stack_shape, trace_window
from flowtrace_gpu.options import TraceOptions
from flowtrace_gpu.synthetic import synthetic_movie

from conftest import REFERENCE, read_png, reference_cases
from cupy_shared import (
    ALL_OPTIONS,
    STANDIN,
    STEP_NAMES,
    ListIndexWriter,
    movies,
    option_id,
    rings,
    trace,
)
from naive import naive_stretch, naive_trace, naive_trace_ext, naive_weights

CASES = reference_cases()


# --------------------------------------------------------------------------
# (a) The original's outputs, through the stand-in
# --------------------------------------------------------------------------

@pytest.mark.skipif(not CASES, reason=f"reference data not found at {REFERENCE} "
                                      "(it lives in ../shared)")
@pytest.mark.parametrize("case", sorted(CASES) or ["none"])
@pytest.mark.parametrize("batch", [1, 8])
def test_standin_matches_the_original(case, batch, reference_frames):
    spec = CASES[case]
    backend = cb.CupyBackend(xp=np, batch=batch)
    images = trace(reference_frames, spec["frames_to_merge"], backend, windows="original",
                   frames_to_skip=spec["frames_to_skip"], **spec["options"])
    expected = np.stack([read_png(p) for p in sorted((REFERENCE / "outputs" / case).glob("*.png"))])
    assert images.shape == expected.shape
    np.testing.assert_array_equal(images, expected)


# --------------------------------------------------------------------------
# (b) Properties: the stand-in equals the NumPy reference backend exactly
# --------------------------------------------------------------------------

@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movies())
def test_standin_equals_numpy_backend(movie):
    frames, f, options = movie
    expected = trace(frames, f, "numpy", **options)
    np.testing.assert_array_equal(trace(frames, f, STANDIN, **options), expected)


@pytest.mark.parametrize("options", ALL_OPTIONS,
                         ids=option_id)
def test_every_option_combination(options):
    # Hypothesis samples the space; this walks every corner of it once.
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (14, 3, 5), dtype=np.uint8)
    rgb = (rng.random((14, 2, 3, 3)) * 1000).astype(np.uint16)
    runs = ((gray, 1, "original", "frame"), (gray, 2, "sliding", "global"),
            (rgb, 3, "original", "none"), (rgb, 1, "sliding", "frame"))
    for frames, diff_order, windows, normalize in runs:
        kw = dict(options, windows=windows, diff_order=diff_order, normalize=normalize)
        np.testing.assert_array_equal(trace(frames, 5, STANDIN, **kw),
                                      trace(frames, 5, "numpy", **kw), err_msg=str(kw))


def test_projector_follows_the_ring_across_wraps():
    # Push one frame at a time past several wraps; every window against the oracle.
    plan = TracePlan(4, (3, 5), np.uint8, TraceOptions(subtract_median=True, color_series=True))
    frames = np.random.default_rng(1).integers(0, 256, (13, 3, 5), dtype=np.uint8)
    expected = naive_trace(frames, 4, subtract_median=True, color_series=True)
    proj = STANDIN.projector(plan)
    got = []
    for t, frame in enumerate(frames):
        proj.push(frame)
        if t + 1 >= plan.frames_to_merge:
            got.append(STANDIN.to_host(proj.project()))
    np.testing.assert_array_equal(np.stack(got), expected)


def test_buffers_are_preallocated_and_results_owned_by_the_caller():
    plan = TracePlan(3, (4, 4), np.uint16, TraceOptions(take_diff=True, add_first_frame=True))
    frames = np.random.default_rng(2).integers(0, 4000, (9, 4, 4), dtype=np.uint16)
    runtime = cb.HostRuntime()
    backend = cb.CupyBackend(runtime=runtime, batch=1)
    proj = backend.projector(plan)
    buffers = [proj.ring, proj.stack, proj.proj, proj.peak, *proj.staging]
    ids = [id(b) for b in buffers]
    made = len(runtime.allocations)
    images, hosts = [], []
    for t, frame in enumerate(frames):
        proj.push(frame)
        if t >= 2:
            images.append(proj.project())
            hosts.append(backend.to_host(images[-1]))
    assert [id(b) for b in buffers] == ids  # written in place, never replaced
    # After the projector is made, a projection allocates its image and nothing else.
    assert runtime.allocations[made:] == [images[0].nbytes] * len(images)
    # A new image each call (the protocol), and every host result is its own
    # array: later projections touch neither.
    assert len({id(i) for i in images}) == len(images)
    np.testing.assert_array_equal(np.stack(images), np.stack(hosts))
    again = trace(frames, 3, "numpy", take_diff=True, add_first_frame=True, windows="sliding")
    np.testing.assert_array_equal(np.stack(hosts), again)
    assert len({id(h) for h in hosts}) == len(hosts)


def test_big_endian_frames():
    frames = np.random.default_rng(3).integers(0, 60000, (6, 3, 3)).astype(">u2")
    np.testing.assert_array_equal(trace(frames, 3, STANDIN, subtract_first=True),
                                  trace(frames, 3, "numpy", subtract_first=True))


# --------------------------------------------------------------------------
# The reference's steps, run the CuPy way: on a ring, into a reused buffer
# --------------------------------------------------------------------------


@settings(deadline=None)
@given(rings(), st.integers(1, 3), st.data())
def test_prepare_stack_on_a_ring_into_a_reused_buffer(ring_start_window, diff_order, data):
    ring, start, window = ring_start_window
    f, shape, dtype = len(ring), ring.shape, ring.dtype
    steps = {name: data.draw(st.booleans(), label=name) for name in STEP_NAMES}
    if f <= diff_order:
        steps["take_diff"] = False
    plan = TracePlan(f, shape[1:], dtype, TraceOptions(diff_order=diff_order, **steps))
    expected = prepare_stack(window, plan, np)
    assert expected.shape == (plan.stack_length,) + shape[1:]
    buffer = np.full(stack_shape(plan), np.nan)  # stale contents must not leak through
    for _ in range(2):  # the same buffer twice, as the projector reuses it
        got = prepare_stack(ring, plan, np, start=start, out=buffer)
        assert np.shares_memory(got, buffer)
        np.testing.assert_array_equal(got, expected)
        buffer[...] = -1.0


# --------------------------------------------------------------------------
# The fused kernels: NumPy twins against the reference
# --------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite),
       st.one_of(st.none(), finite))
def test_stretch_twin_is_the_originals_stretch(proj, peak):
    # The oracle's floor(clip(v * 255 / M, 0, 255) + 0.5), written apart from the
    # package; M is the image's own peak ('frame') or any run peak ('global').
    expected = naive_stretch(proj, peak)
    peak = np.array([proj.max() if peak is None else peak])
    out = np.empty(proj.shape, np.uint8)
    with np.errstate(over="ignore", invalid="ignore"):  # a subnormal peak: 255 / peak overflows
        np.testing.assert_array_equal(ck.stretch_twin(proj, peak, out), expected)


@settings(deadline=None)
@given(rings(), st.booleans())
def test_weighted_and_extreme_twins_are_the_oracles_projection(ring_start_window, invert):
    ring, start, window = ring_start_window
    f, shape, dtype = len(ring), ring.shape, ring.dtype
    bits = 16 if dtype == np.uint16 else 8  # the invert offset: 2**16 - 1, else 255
    for color, fade in ((False, False), (True, False), (False, True), (True, True)):
        plan = TracePlan(f, shape[1:], dtype, TraceOptions(invert_color=invert, color_series=color,
                                                           fade_tails=fade))
        # The oracle's own weights (its ramp and fade), one window, unrounded.
        weights = naive_weights(f, color_series=color, fade_tails=fade)
        (expected,) = naive_trace_ext(
            window.astype(np.float64), f, normalize="none", invert_color=invert, bit_depth=bits,
            colors=weights if color else None, fade_tails=fade and not color)
        np.testing.assert_array_equal(trace_window(window, plan, np), expected)
        out = np.empty(plan.out_shape)
        mode = plan.weight_mode
        if mode != WeightMode.NONE:
            got = ck.weighted_twin(ring, plan.colors, start, f, mode, invert, plan.invert_offset, out)
        else:
            got = ck.extreme_twin(ring, f, invert, plan.invert_offset, out)
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------
# Memory plan
# --------------------------------------------------------------------------

MIB = 2**20
SHAPE = (100, 200)


def estimate(f=10, shape=SHAPE, dtype=np.uint16, **options):
    return mem.estimate_device_bytes(TracePlan(f, shape, dtype, TraceOptions(**options)))


@pytest.mark.parametrize("options", [{}, {"subtract_median": True}, {"take_diff": True},
                                     {"color_series": True, "add_first_frame": True},
                                     {"subtract_first": True, "normalize": "none"}],
                         ids=lambda o: "+".join(o) or "plain")
def test_memory_estimate_grows_with_the_window(options):
    frame = np.prod(SHAPE) * 2
    totals = [estimate(f, **options).total for f in (2, 3, 10, 11, 100)]
    assert totals == sorted(set(totals))  # strictly more for every longer window
    # Every frame more adds at least its ring slot, and the window's buffers scale with it.
    assert estimate(11, **options).total - estimate(10, **options).total >= frame
    assert estimate(100, **options).ring == 10 * estimate(10, **options).ring


def test_memory_estimate_grows_with_the_options():
    plain = estimate()
    plane64 = np.prod(SHAPE) * 8
    f = 10
    assert plain.work == plain.scratch == plain.weights == 0
    assert plain.ring == 2 * estimate(dtype=np.uint8).ring  # 16-bit frames, twice the bytes
    # Each ordered step needs the window as float64 (with floats, the median too) ...
    for step in STEP_NAMES:
        assert estimate(**{step: True}, dtype=np.float32).work >= f * plane64, step
        if step != "subtract_median":
            assert estimate(**{step: True}).work >= f * plane64, step
    # ... the difference a second buffer for its ping-pong, the median scratch for its sort.
    assert estimate(take_diff=True).work >= 2 * estimate(subtract_first=True).work - plane64
    # Integer frames: the selection kernel's plane (alone, max(frames) - median needs
    # no stack); float frames: cupy.median's sort.
    assert estimate(subtract_median=True).scratch == 0
    assert estimate(subtract_median=True).work == plane64
    assert (estimate(subtract_median=True, subtract_first=True).work
            == estimate(subtract_first=True).work + plane64)
    assert estimate(subtract_median=True, dtype=np.float32).scratch >= f * plane64
    assert estimate(take_diff=True, subtract_median=True).total > estimate(take_diff=True).total
    # Colors: weights on the device, and three channels out of gray frames.
    color = estimate(color_series=True)
    assert color.weights > 0 and color.work == 0
    assert color.output > 2.9 * plain.output
    # normalize='none': images in the input dtype, and to_dtype's temporaries.
    raw = estimate(normalize="none")
    assert raw.scratch > 0 and raw.output > plain.output
    # Options that do not change the buffers do not change the estimate.
    assert estimate(invert_color=True) == plain


def test_check_device_memory_refuses_what_does_not_fit(monkeypatch):
    monkeypatch.delenv("FLOWTRACE_GPU_HEADROOM_MIB", raising=False)
    plan = TracePlan(100, (1024, 1024), np.uint8, TraceOptions(subtract_median=True))
    need = mem.estimate_device_bytes(plan).total + 64 * MIB  # the default headroom
    assert mem.check_device_memory(plan, need, "CUDA device 0") == mem.estimate_device_bytes(plan)
    with pytest.raises(FlowtraceError) as info:
        mem.check_device_memory(plan, need - 1, "CUDA device 0 (Test GPU)")
    message = str(info.value)
    for part in ("frames_to_merge=100", "1024x1024 uint8 frames", "CUDA device 0 (Test GPU)",
                 "ring 100.0 MiB", "64.0 MiB headroom", "use a smaller frames_to_merge",
                 "backend='numba'"):
        assert part in message, part
    # The headroom is the gpu_headroom_mib setting.
    monkeypatch.setenv("FLOWTRACE_GPU_HEADROOM_MIB", "0")
    mem.check_device_memory(plan, need - 64 * MIB)
    with pytest.raises(FlowtraceError, match="0.0 MiB headroom"):
        mem.check_device_memory(plan, need - 64 * MIB - 1)


def test_too_little_free_memory_stops_the_run_before_it_starts():
    frames = np.zeros((120, 256, 256), np.uint8)
    tight = cb.CupyBackend(runtime=cb.HostRuntime(free_bytes=2**20))
    with pytest.raises(FlowtraceError, match="frames_to_merge=100 with 256x256 uint8 frames"):
        trace(frames, 100, tight)
    assert tight.runtime.allocations == []  # refused before allocating anything
    roomy = cb.CupyBackend(runtime=cb.HostRuntime(free_bytes=2**30))
    assert trace(frames[:12], 10, roomy).shape == (3, 256, 256)


PLANS = [
    (np.float32, (7, 9), TraceOptions()),
    (np.uint8, (7, 9), TraceOptions(color_series=True, subtract_first=True)),
    (np.uint16, (5, 6, 3), TraceOptions(take_diff=True, diff_order=2, add_first_frame=True,
                                        fade_tails=True)),
    (np.uint8, (7, 9), TraceOptions(subtract_median=True, invert_color=True, normalize="global")),
    (np.uint16, (7, 9), TraceOptions(take_diff=True, normalize="none")),
    (np.int16, (7, 9), TraceOptions(subtract_median=True, subtract_first=True)),
    (np.float32, (7, 9), TraceOptions(subtract_median=True)),
]


@pytest.mark.parametrize("dtype, options, stacked", [
    (np.uint8, {"subtract_median": True}, False),
    (np.uint16, {"subtract_median": True, "invert_color": True}, False),
    (np.uint8, {"subtract_median": True, "subtract_first": True}, True),
    (np.uint8, {"subtract_median": True, "color_series": True}, True),
    (np.float32, {"subtract_median": True}, True),
])
def test_median_alone_of_integer_frames_builds_no_stack(dtype, options, stacked):
    # max_j (x_j - m) = max_j x_j - m: the same pixels as the stack (the
    # property and option-combination tests compare them with the NumPy backend).
    proj = STANDIN.projector(TracePlan(5, (4, 6), dtype, TraceOptions(**options)))
    assert (proj.stack is not None) == stacked
    assert (proj.median is not None) == (dtype is not np.float32)
    frames = (np.random.default_rng(5).random((9, 4, 6)) * 250).astype(dtype)
    np.testing.assert_array_equal(trace(frames, 5, STANDIN, **options),
                                  trace(frames, 5, "numpy", **options))


@pytest.mark.parametrize("dtype, shape, options", PLANS)
def test_projector_allocates_what_the_estimate_plans(dtype, shape, options):
    # Measured: every device array the projector makes goes through the runtime.
    plan = TracePlan(6, shape, dtype, options)
    runtime = cb.HostRuntime()
    proj = cb.CupyBackend(runtime=runtime, batch=1).projector(plan)
    held = sum(runtime.allocations)
    for frame in np.ones((8,) + shape, dtype):
        proj.push(frame)
    assert sum(runtime.allocations) == held  # frames in allocate nothing
    proj.project()
    per_image = sum(runtime.allocations) - held
    # The pipeline holds two images: the one being made and the one being downloaded.
    measured = held + 2 * per_image
    est = mem.estimate_device_bytes(plan)
    assert measured <= est.total - est.scratch
    # Nor does the estimate pad the buffers it counts (images by to_dtype are
    # allocated by CuPy, not through the runtime: normalize='none' only).
    image = np.prod(plan.out_shape) * plan.out_dtype.itemsize
    unmeasured = 2 * image if plan.scaling == "none" else 0
    assert measured == est.total - est.scratch - unmeasured


# --------------------------------------------------------------------------
# Batches (gpu_batch > 1): frames up and images down several at a time
# --------------------------------------------------------------------------

@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movies(), st.integers(2, 6))
def test_batched_standin_equals_numpy_backend(movie, batch):
    frames, f, options = movie
    batched = cb.CupyBackend(xp=np, batch=batch)
    np.testing.assert_array_equal(trace(frames, f, batched, **options),
                                  trace(frames, f, "numpy", **options))


@pytest.mark.parametrize("options", ALL_OPTIONS[::5] + [ALL_OPTIONS[-1]],
                         ids=option_id)
@pytest.mark.parametrize("batch", [2, 3, 16])
def test_batches_of_every_kind_of_option(options, batch):
    # A movie of particles, windows that end at every place of a batch, and
    # both a pipeline with threads and one without.
    frames = synthetic_movie(23, (9, 11), seed=3)
    batched = cb.CupyBackend(xp=np, batch=batch)
    for windows, normalize, parallel in (("sliding", "frame", True), ("original", "global", False),
                                         ("sliding", "none", False)):
        kw = dict(options, windows=windows, normalize=normalize)
        got = flowtrace_array(frames, 5, backend=batched, use_parallel=parallel, **kw)
        np.testing.assert_array_equal(got, trace(frames, 5, "numpy", **kw), err_msg=str(kw))


@pytest.mark.parametrize("normalize", ["frame", "global"])
def test_batched_projector_under_saturate(normalize):
    # saturate wraps the projector and pushes one frame at a time: push/project of a batch.
    frames = synthetic_movie(25, (16, 16), seed=1)
    kw = dict(saturate=1.0, normalize=normalize)
    np.testing.assert_array_equal(trace(frames, 5, cb.CupyBackend(xp=np, batch=4), **kw),
                                  trace(frames, 5, "numpy", **kw))


@pytest.mark.parametrize("chunks", [[1] * 13, [4, 3, 3, 3], [4, 1, 2, 3, 3], [6, 3, 3, 1]])
def test_batched_ring_holds_every_window_across_wraps(chunks):
    # push_many / project_many directly: ring of R = F + batch - 1 = 6 frames, mirrored.
    f, batch = 4, 3
    plan = TracePlan(f, (3, 5), np.uint8, TraceOptions(subtract_median=True, color_series=True))
    frames = np.random.default_rng(1).integers(0, 256, (13, 3, 5), dtype=np.uint8)
    expected = naive_trace(frames, f, subtract_median=True, color_series=True)
    proj = cb.CupyBackend(xp=np, batch=batch).projector(plan)
    assert isinstance(proj, cb.BatchedCupyProjector) and proj.ring.shape[0] == 12
    got, pushed = [], 0
    for n in chunks:
        block = frames[pushed:pushed + n]
        proj.push_many(list(block))
        pushed += n
        ready = min(n, pushed - f + 1, batch)
        if ready > 0:
            images = proj.project_many(ready)
            assert images.shape == (ready,) + plan.out_shape
            got.extend(images)
    assert pushed == 13
    np.testing.assert_array_equal(np.stack(got), expected[-len(got):])
    with pytest.raises(RuntimeError, match="needs"):
        proj.project_many(batch + 1)


def test_batch_comes_from_the_setting_and_falls_back_when_it_does_not_fit(monkeypatch):
    plan = TracePlan(10, (256, 256), np.uint8)
    assert cb.CupyBackend(xp=np).projector(plan).batch == 8  # the default
    monkeypatch.setenv("FLOWTRACE_GPU_BATCH", "8")
    assert cb.CupyBackend(xp=np).projector(plan).batch == 8
    monkeypatch.setenv("FLOWTRACE_GPU_BATCH", "1")
    assert type(cb.CupyBackend(xp=np).projector(plan)) is cb.CupyProjector
    monkeypatch.setenv("FLOWTRACE_GPU_BATCH", "8")
    assert not hasattr(cb.CupyBackend(xp=np, batch=1).projector(plan), "batch")
    # Room for one frame at a time, not for a batch: one frame at a time.
    one = mem.estimate_device_bytes(plan).total + mem.headroom_bytes()
    assert mem.estimate_device_bytes(plan, 8).total + mem.headroom_bytes() > one
    tight = cb.CupyBackend(runtime=cb.HostRuntime(free_bytes=one))
    assert type(tight.projector(plan)) is cb.CupyProjector
    with pytest.raises(FlowtraceError, match="frames_to_merge=10"):
        cb.CupyBackend(runtime=cb.HostRuntime(free_bytes=one - 1)).projector(plan)


@pytest.mark.parametrize("batch", [2, 5])
def test_memory_estimate_of_a_batch(batch):
    f, frame = 10, np.prod(SHAPE) * 2
    one, more = estimate(f), mem.estimate_device_bytes(
        TracePlan(f, SHAPE, np.uint16, TraceOptions()), batch)
    assert more.ring == 2 * (f + batch - 1) * frame  # every window of a batch, mirrored
    assert more.staging == 0 and one.staging == mem.N_STAGING * frame
    image = np.prod(SHAPE)  # uint8
    # Two batches of images, and the batch's projections and peaks in float64
    # instead of the one projection (the fixed peak stays).
    assert more.output - one.output == 2 * (batch - 1) * image + (batch - 1) * (image + 1) * 8 + 8
    assert more.work == one.work == 0
    median = mem.estimate_device_bytes(
        TracePlan(f, SHAPE, np.uint16, TraceOptions(subtract_median=True)), batch)
    assert median.work == batch * np.prod(SHAPE) * 8  # a median plane per window


@pytest.mark.parametrize("dtype, shape, options", PLANS)
@pytest.mark.parametrize("batch", [2, 4])
def test_batched_projector_allocates_what_the_estimate_plans(dtype, shape, options, batch):
    plan = TracePlan(6, shape, dtype, options)
    runtime = cb.HostRuntime()
    proj = cb.CupyBackend(runtime=runtime, batch=batch).projector(plan)
    held = sum(runtime.allocations)
    proj.push_many(list(np.ones((6 + batch - 1,) + shape, dtype)))
    assert sum(runtime.allocations) == held  # frames in allocate nothing
    proj.project_many(batch)
    per_batch = sum(runtime.allocations) - held
    measured = held + 2 * per_batch  # the batch being made and the one being downloaded
    est = mem.estimate_device_bytes(plan, batch)
    # A batch's images, normalize='none' too, come from the runtime (to_dtype's
    # own image is a temporary copied into them, as its scratch is).
    assert measured == est.total - est.scratch


def test_batched_pipeline_writes_every_image_before_an_unreadable_frame():
    # The frames of a half-gathered batch before the bad one still make their images.
    movie = synthetic_movie(20, (6, 7), seed=4)

    def frames():
        yield from movie[:13]
        raise OSError("disk went away")

    plan = TracePlan(4, (6, 7), np.uint8)
    for batch in (1, 3, 8):
        writer = ListIndexWriter()
        with pytest.raises(pipeline.FrameReadError) as info:
            pipeline.run(frames(), plan, cb.CupyBackend(xp=np, batch=batch), writer, 17,
                         workers=2)
        assert info.value.position == 13
        got = writer.images
        assert sorted(got) == list(range(10)), batch  # windows ending at frames 3..12
        np.testing.assert_array_equal(np.stack([got[i] for i in range(10)]),
                                      trace(movie[:13], 4, "numpy", windows="sliding"))


def test_batched_pipeline_skips_images_not_kept_and_numbers_from_first_index():
    movie = synthetic_movie(30, (6, 7), seed=5)
    plan = TracePlan(5, (6, 7), np.uint8)
    expected = trace(movie, 5, "numpy", windows="sliding")
    keep = {12, 13, 14, 20, 33}
    writer = ListIndexWriter()
    pipeline.run(iter(movie), plan, cb.CupyBackend(xp=np, batch=4), writer, 26, workers=2,
                 first_index=10, keep=keep)
    assert sorted(writer.images) == sorted(keep)
    for index, image in writer.images.items():
        np.testing.assert_array_equal(image, expected[index - 10])


class StreamLog(cb.HostRuntime):
    """The stand-in, logging what each stream and event is asked to do, in order."""

    def __init__(self):
        super().__init__()
        self.log = []
        self.current = self._stream("current")

    def _stream(self, name):
        log = self.log

        class Stream(cb._NullStream):
            def wait_event(self, event):
                log.append(("wait", name, event))

        return Stream()

    def stream(self):
        return self._stream(f"stream {len(self.log)}")

    def current_stream(self):
        return self.current

    def event(self):
        log = self.log

        class Event(cb._NullEvent):
            def record(self, stream=None):
                log.append(("record", stream, self))

        return Event()


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("options", [{}, {"color_series": True}, {"subtract_median": True},
                                     {"subtract_first": True}])
def test_images_are_ready_on_the_callers_stream(batch, options):
    # The compute stream is non-blocking: whatever the caller then runs on
    # its current stream (saturate's reductions) must wait for the image.
    # On a GPU a missing wait made saturate's images come out wrong.
    runtime = StreamLog()
    backend = cb.CupyBackend(runtime=runtime, batch=batch)
    plan = TracePlan(4, (5, 6), np.uint8, TraceOptions(**options))
    projector = backend.projector(plan)
    compute, _ = backend.streams()
    for t, frame in enumerate(synthetic_movie(9, (5, 6), seed=2)):
        projector.push(frame)
        if t >= 3:
            runtime.log.clear()
            projector.project()
            (op, stream, event), last = runtime.log[-2:]
            assert (op, stream) == ("record", compute)
            assert last == ("wait", "current", event)
    if batch > 1:
        projector.push_many(list(synthetic_movie(3, (5, 6), seed=3)))
        runtime.log.clear()
        projector.project_many(3)
        assert runtime.log[-2][:2] == ("record", compute)
        assert runtime.log[-1] == ("wait", "current", runtime.log[-2][2])
