"""The CuPy backend: its NumPy stand-in everywhere, the real thing where a GPU is.

``CupyBackend(xp=numpy)`` runs the same array code as on a GPU (resident
ring, staging buffers, stack preparation) with streams, events and pinned
memory as no-ops and the fused CUDA kernels replaced by their NumPy twins.
The twins are checked against the readable reference, and the CUDA source of
each kernel is compiled as C++ and run on the CPU against its twin, so every
piece of the GPU path but CuPy itself is exercised here. Tests marked
``gpu`` run on a CUDA device and skip, saying why, where there is none.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowtrace_gpu import FlowtraceError, flowtrace_array, get_backend
from flowtrace_gpu.backends import BackendUnavailable, clear_cache
from flowtrace_gpu.backends.cupy import backend as cb
from flowtrace_gpu.backends.cupy import device as dev
from flowtrace_gpu.backends.cupy import kernels as ck
from flowtrace_gpu.backends.cupy import memory as mem
from flowtrace_gpu.engine import pipeline
from flowtrace_gpu.engine.plan import TracePlan
from flowtrace_gpu.kernels.colors import WeightMode  # noqa: E402
from flowtrace_gpu.kernels.stretch import scale_to_uint8, stretch_to_uint8
from flowtrace_gpu.kernels.window import prepare_stack, stack_shape, trace_window
from flowtrace_gpu.options import TraceOptions  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie

from conftest import REFERENCE, read_png, reference_cases
from naive import naive_stretch, naive_trace

# One frame at a time (CupyProjector); the batched projector, the default
# since gpu_batch = 8, has its own tests ("Batches", below).
STANDIN = cb.CupyBackend(xp=np, batch=1)
CASES = reference_cases()
WEIGHTED = tuple(m for m in WeightMode if m != WeightMode.NONE)
OPTION_NAMES = ("invert_color", "take_diff", "subtract_median", "subtract_first",
                "add_first_frame", "color_series", "fade_tails")
NORMALIZE = ("frame", "global", "none")


def trace(frames, f, backend, **kw):
    return flowtrace_array(frames, f, backend=backend, use_parallel=False, **kw)


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
    assert np.abs(images.astype(int) - expected).max() <= 1


# --------------------------------------------------------------------------
# (b) Properties: the stand-in equals the NumPy reference backend exactly
# --------------------------------------------------------------------------

DTYPES = (np.uint8, np.uint16, np.float32)


@st.composite
def movies(draw):
    dtype = draw(st.sampled_from(DTYPES))
    rgb = draw(st.booleans())
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 7))
    n = draw(st.integers(1, 9))
    shape = (n, h, w) + ((3,) if rgb else ())
    if dtype is np.float32:
        elements = st.floats(-1e4, 1e4, width=32, allow_nan=False, allow_infinity=False)
    else:
        elements = st.integers(0, int(np.iinfo(dtype).max))
    frames = draw(hnp.arrays(dtype, shape, elements=elements))
    f = draw(st.integers(1, n))
    options = {name: draw(st.booleans()) for name in OPTION_NAMES}
    options["diff_order"] = draw(st.integers(1, 3))
    assume(not options["take_diff"] or options["diff_order"] < f)
    options["windows"] = draw(st.sampled_from(("original", "sliding")))
    options["normalize"] = draw(st.sampled_from(NORMALIZE))
    if dtype is not np.float32 and draw(st.booleans()):
        options["bit_depth"] = draw(st.integers(1, 8 * np.dtype(dtype).itemsize))
    if options["color_series"] and draw(st.booleans()):
        options["colormap"] = draw(st.lists(st.tuples(*[st.integers(0, 255)] * 3),
                                            min_size=2, max_size=4))
    return frames, f, options


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(movies())
def test_standin_equals_numpy_backend(movie):
    frames, f, options = movie
    expected = trace(frames, f, "numpy", **options)
    np.testing.assert_array_equal(trace(frames, f, STANDIN, **options), expected)


ALL_OPTIONS = [dict(zip(OPTION_NAMES, bits))
               for bits in itertools.product((False, True), repeat=len(OPTION_NAMES))]


@pytest.mark.parametrize("options", ALL_OPTIONS,
                         ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
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

STEP_NAMES = ("subtract_first", "subtract_median", "take_diff", "add_first_frame")


@st.composite
def rings(draw):
    """(ring, start, window): F frames in ring slots, the oldest at ``start``."""
    dtype = draw(st.sampled_from(DTYPES))
    f = draw(st.integers(1, 6))
    shape = (f, 2, 3) + ((3,) if draw(st.booleans()) else ())
    elements = (st.floats(-1e6, 1e6, width=32) if dtype is np.float32
                else st.integers(0, int(np.iinfo(dtype).max)))
    ring = draw(hnp.arrays(dtype, shape, elements=elements))
    start = draw(st.integers(0, f - 1))
    return ring, start, np.concatenate((ring[start:], ring[:start]))


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
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite))
def test_stretch_twin_is_stretch_to_uint8(proj):
    peak = np.array([proj.max()])
    out = np.empty(proj.shape, np.uint8)
    with np.errstate(over="ignore", invalid="ignore"):  # a subnormal peak: 255 / peak overflows
        np.testing.assert_array_equal(ck.stretch_twin(proj, peak, out), stretch_to_uint8(proj, np))


def _halves():
    k = np.arange(0.0, 256.0)
    return np.concatenate([k + 0.5, np.nextafter(k + 0.5, 0.0), [0.49999999999999994]])


#: (projection, peak): peak None is the image's own maximum (normalize='frame'),
#: a number is the run's one peak (normalize='global').
STRETCH_EDGES = {
    "peak 0": (np.zeros(5), None),
    "peak 0 with negatives": (np.array([-3.0, -0.0, 0.0, -1e-300, -255.0]), None),
    "negatives": (np.array([-5.0, -0.5, -0.0, 0.25, 2.0]), None),
    "all negative": (np.array([-4.0, -2.0, -3.0]), None),
    "values at .5 and just below": (_halves(), 255.0),
    "halves stretched": (np.array([0.5, 1.5, 127.5, 2.0]), None),
    "above the global peak": (np.array([0.0, 50.0, 100.0, 150.0, 1e300]), 100.0),
    "global peak 0": (np.array([-2.0, 0.5, 3.0, 300.0]), 0.0),
    "tiny peak": (np.array([1e-300, 2e-300, 5e-301, 0.0]), None),
}


@pytest.mark.parametrize("case", list(STRETCH_EDGES))
def test_stretch_kernel_is_the_reference_on_edges(case, request):
    proj, peak = STRETCH_EDGES[case]
    proj = np.ascontiguousarray(proj)
    own_peak = peak is None
    peak = np.array([proj.max() if own_peak else peak])
    expected = scale_to_uint8(proj, float(peak[0]), np)
    if own_peak:
        np.testing.assert_array_equal(expected, stretch_to_uint8(proj, np))
        np.testing.assert_array_equal(expected, naive_stretch(proj))  # the oracle
    np.testing.assert_array_equal(ck.stretch_twin(proj, peak, np.empty(proj.shape, np.uint8)),
                                  expected)
    lib = request.getfixturevalue("cuda_source_on_cpu")
    cpu = np.empty(proj.shape, np.uint8)
    lib.stretch(_ptr(proj), _ptr(peak), _ptr(cpu), ctypes.c_longlong(proj.size))
    np.testing.assert_array_equal(cpu, expected)


@settings(deadline=None)
@given(rings(), st.booleans())
def test_weighted_and_extreme_twins_are_trace_window(ring_start_window, invert):
    ring, start, window = ring_start_window
    f, shape, dtype = len(ring), ring.shape, ring.dtype
    for color, fade in ((False, False), (True, False), (False, True), (True, True)):
        plan = TracePlan(f, shape[1:], dtype, TraceOptions(invert_color=invert, color_series=color,
                                                           fade_tails=fade))
        expected = trace_window(window, plan, np)
        out = np.empty(plan.out_shape)
        mode = plan.weight_mode
        if mode != WeightMode.NONE:
            got = ck.weighted_twin(ring, plan.colors, start, f, mode, invert, plan.invert_offset, out)
        else:
            got = ck.extreme_twin(ring, f, invert, plan.invert_offset, out)
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------
# The CUDA source, compiled as C++ and run on the CPU against its twin
# --------------------------------------------------------------------------

_CTYPES = {np.uint8: "unsigned char", np.uint16: "unsigned short", np.float32: "float",
           np.float64: "double"}


_MEDIAN_CTYPES = {np.uint8: "unsigned char", np.uint16: "unsigned short", np.uint32: "unsigned int",
                  np.int8: "signed char", np.int16: "short", np.int32: "int"}


def _harness() -> str:
    # Each kernel body becomes the inside of a loop over i, as CuPy's
    # ElementwiseKernel makes it; raw arrays are plain pointers (flat views).
    lines = ["#include <cstddef>",
             "static inline double __dmul_rn(double a, double b) { return a * b; }",
             'extern "C" {',
             "void stretch(const double* xs, const double* peak, unsigned char* ys, long long n) {",
             "  for (ptrdiff_t i = 0; i < n; ++i) { const double x = xs[i]; unsigned char& y = ys[i];",
             ck._STRETCH_SRC, "} }"]
    # A batch: n output elements (several planes), one peak per image of ``size``.
    lines += ["void stretch_images(const double* xs, const double* peak, unsigned char* ys, "
              "long long n, long long size) {",
              "  for (ptrdiff_t i = 0; i < n; ++i) { const double x = xs[i]; unsigned char& y = ys[i];",
              ck._stretch_src(True), "} }"]
    for (dtype, ctype), invert in itertools.product(_CTYPES.items(), (False, True)):
        tag = f"{np.dtype(dtype).name}_{int(invert)}"
        lines += [f"void extreme_{tag}(const {ctype}* src, long long plane, int count, double offset,"
                  " double* ys, long long n) {", f"  typedef {ctype} T;",
                  "  for (ptrdiff_t i = 0; i < n; ++i) { double& y = ys[i];",
                  ck._extreme_src(invert), "} }"]
        for mode in WEIGHTED:
            lines += [f"void weighted_{tag}_{mode.name.lower()}(const {ctype}* src, const double* w, "
                      "long long plane, int count, int start, int nslots, double offset, "
                      "double* ys, long long n) {",
                      "  for (ptrdiff_t i = 0; i < n; ++i) { double& y = ys[i];",
                      ck._weighted_src(mode, invert), "} }"]
    for dtype, ctype in _MEDIAN_CTYPES.items():
        lines += [f"void median_{np.dtype(dtype).name}(const {ctype}* src, long long plane, int count,"
                  " double* ys, long long n) {",
                  "  for (ptrdiff_t i = 0; i < n; ++i) { double& y = ys[i];",
                  ck._median_src(dtype), "} }"]
    lines.append("}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def cuda_source_on_cpu(tmp_path_factory):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to run the CUDA kernel source on the CPU")
    folder = tmp_path_factory.mktemp("cuda_on_cpu")
    src, lib = folder / "kernels.cpp", folder / "kernels.so"
    src.write_text(_harness())
    # -ffp-contract=off: no FMA, as __dmul_rn promises on the GPU.
    subprocess.run([cxx, "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(src), "-o", str(lib)],
                   check=True, capture_output=True)
    return ctypes.CDLL(str(lib))


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(list(_CTYPES)), st.integers(1, 5), st.sampled_from(WEIGHTED),
       st.booleans(), st.booleans(), st.integers(0, 9), st.data())
def test_cuda_source_matches_its_twins(cuda_source_on_cpu, dtype, f, mode, gray, invert, start,
                                       data):
    lib = cuda_source_on_cpu
    gray = gray if mode == WeightMode.SCALAR else mode == WeightMode.TINT
    shape = (f, 3, 4) if gray else (f, 3, 4, 3)
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-1e5, 1e5, width=np.dtype(dtype).itemsize * 8, allow_nan=False)
    else:
        elements = st.integers(0, int(np.iinfo(dtype).max))
    src = np.ascontiguousarray(data.draw(hnp.arrays(dtype, shape, elements=elements)))
    start %= f
    tag = f"{np.dtype(dtype).name}_{int(invert)}"
    plane = int(np.prod(shape[1:]))
    offset = 255.0

    twin = ck.extreme_twin(src, f, invert, offset, np.empty(shape[1:]))
    cpu = np.empty(shape[1:])
    getattr(lib, f"extreme_{tag}")(_ptr(src), ctypes.c_longlong(plane), ctypes.c_int(f),
                                   ctypes.c_double(offset), _ptr(cpu), ctypes.c_longlong(plane))
    np.testing.assert_array_equal(cpu, twin)

    plan = TracePlan(f, (1, 1), np.uint8, TraceOptions(color_series=mode != WeightMode.SCALAR,
                                                       fade_tails=mode == WeightMode.SCALAR))
    w = np.ascontiguousarray(plan.colors)
    out_shape = shape[1:] + ((3,) if mode == WeightMode.TINT else ())
    twin = ck.weighted_twin(src, w, start, f, mode, invert, offset, np.empty(out_shape))
    cpu = np.empty(out_shape)
    getattr(lib, f"weighted_{tag}_{mode.name.lower()}")(
        _ptr(src), _ptr(w), ctypes.c_longlong(plane), ctypes.c_int(f), ctypes.c_int(start),
        ctypes.c_int(f), ctypes.c_double(offset), _ptr(cpu), ctypes.c_longlong(cpu.size))
    np.testing.assert_array_equal(cpu, twin)

    proj = np.ascontiguousarray(twin - twin.mean())  # negative values too
    peak = np.array([proj.max()])
    cpu = np.empty(proj.shape, np.uint8)
    lib.stretch(_ptr(proj), _ptr(peak), _ptr(cpu), ctypes.c_longlong(proj.size))
    np.testing.assert_array_equal(cpu, ck.stretch_twin(proj, peak, np.empty(proj.shape, np.uint8)))


@st.composite
def integer_windows(draw, max_count=12):
    """(frames, count): integer frames, extremes and ties likely, count <= len(frames)."""
    dtype = np.dtype(draw(st.sampled_from(list(_MEDIAN_CTYPES))))
    info = np.iinfo(dtype)
    values = st.one_of(st.integers(int(info.min), int(info.max)),
                       st.sampled_from([int(info.min), int(info.max), 0, 1, int(info.max) - 1]))
    n = draw(st.integers(1, max_count))
    frames = draw(hnp.arrays(dtype, (n, 2, 3), elements=values))
    return frames, draw(st.integers(1, n))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(integer_windows())
def test_cuda_median_source_matches_numpy(cuda_source_on_cpu, window):
    frames, count = window
    twin = ck.median_twin(frames, count, np.empty(frames.shape[1:]))
    np.testing.assert_array_equal(twin, np.median(frames[:count].astype(np.float64), axis=0))
    cpu = np.full(frames.shape[1:], np.nan)  # every element must be written
    getattr(cuda_source_on_cpu, f"median_{frames.dtype.name}")(
        _ptr(frames), ctypes.c_longlong(frames[0].size), ctypes.c_int(count), _ptr(cpu),
        ctypes.c_longlong(frames[0].size))
    np.testing.assert_array_equal(cpu, twin)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(list(_CTYPES)), st.integers(1, 5), st.integers(1, 4),
       st.sampled_from(WEIGHTED), st.booleans(), st.data())
def test_cuda_sources_project_a_batch_of_windows_in_one_launch(cuda_source_on_cpu, dtype, f, n,
                                                              mode, invert, data):
    # The *_windows launches: output plane b of one launch is window src[b:b + f].
    lib = cuda_source_on_cpu
    gray = mode == WeightMode.TINT or (mode == WeightMode.SCALAR and data.draw(st.booleans()))
    frame = (3, 4) if gray else (3, 4, 3)
    extra = data.draw(st.integers(0, 2))  # the ring holds more frames than the batch reads
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-1e5, 1e5, width=np.dtype(dtype).itemsize * 8, allow_nan=False)
    else:
        elements = st.integers(0, int(np.iinfo(dtype).max))
    src = np.ascontiguousarray(data.draw(hnp.arrays(dtype, (f + n - 1 + extra,) + frame,
                                                    elements=elements)))
    tag, plane, offset = f"{np.dtype(dtype).name}_{int(invert)}", int(np.prod(frame)), 255.0
    host = ck.HostKernels

    twin = host.extreme_windows(src, f, invert, offset, np.empty((n,) + frame))
    cpu = np.full((n,) + frame, np.nan)
    getattr(lib, f"extreme_{tag}")(_ptr(src), ctypes.c_longlong(plane), ctypes.c_int(f),
                                   ctypes.c_double(offset), _ptr(cpu), ctypes.c_longlong(cpu.size))
    np.testing.assert_array_equal(cpu, twin)
    for b in range(n):  # the twin is the one-window twin, window by window
        np.testing.assert_array_equal(
            twin[b], ck.extreme_twin(src[b:b + f], f, invert, offset, np.empty(frame)))

    plan = TracePlan(f, (1, 1), np.uint8, TraceOptions(color_series=mode != WeightMode.SCALAR,
                                                       fade_tails=mode == WeightMode.SCALAR))
    w = np.ascontiguousarray(plan.colors)
    out = (n,) + frame + ((3,) if mode == WeightMode.TINT else ())
    twin = host.weighted_windows(src, w, f, mode, invert, offset, np.empty(out))
    cpu = np.full(out, np.nan)
    getattr(lib, f"weighted_{tag}_{mode.name.lower()}")(
        _ptr(src), _ptr(w), ctypes.c_longlong(plane), ctypes.c_int(f), ctypes.c_int(0),
        ctypes.c_int(len(src)), ctypes.c_double(offset), _ptr(cpu), ctypes.c_longlong(cpu.size))
    np.testing.assert_array_equal(cpu, twin)

    proj = np.ascontiguousarray(twin - twin.mean())
    peaks = np.ascontiguousarray(proj.reshape(n, -1).max(axis=1))
    cpu = np.zeros(out, np.uint8)
    lib.stretch_images(_ptr(proj), _ptr(peaks), _ptr(cpu), ctypes.c_longlong(proj.size),
                       ctypes.c_longlong(proj[0].size))
    np.testing.assert_array_equal(cpu, host.stretch_windows(proj, peaks, np.empty(out, np.uint8)))

    if np.dtype(dtype).kind == "u":
        twin = host.median_windows(src, f, np.empty((n,) + frame))
        cpu = np.full((n,) + frame, np.nan)
        getattr(lib, f"median_{np.dtype(dtype).name}")(
            _ptr(src), ctypes.c_longlong(plane), ctypes.c_int(f), _ptr(cpu),
            ctypes.c_longlong(cpu.size))
        np.testing.assert_array_equal(cpu, twin)


def test_median_kernel_takes_integers_of_up_to_32_bits():
    assert [ck.has_median_kernel(d) for d in (np.uint8, ">u2", np.int32, np.uint32)] == [True] * 4
    assert not any(ck.has_median_kernel(d) for d in (np.uint64, np.int64, np.float32, np.float64))


# --------------------------------------------------------------------------
# Kernel builders: compiled once per specialization (a fake cupy records it)
# --------------------------------------------------------------------------

BUILDERS = (ck._get_stretch_kernel, ck._get_extreme_kernel, ck._get_weighted_kernel,
            ck._get_median_kernel)


@pytest.fixture
def kernel_builds(monkeypatch):
    """Every ``cupy.ElementwiseKernel`` the builders construct, on a fake cupy."""
    built = []

    class ElementwiseKernel:
        def __init__(self, in_params, out_params, operation, name):
            self.in_params, self.operation, self.name = in_params, operation, name
            built.append(self)

    module = types.ModuleType("cupy")
    module.ElementwiseKernel = ElementwiseKernel
    monkeypatch.setitem(sys.modules, "cupy", module)
    for builder in BUILDERS:
        builder.cache_clear()
    yield built
    for builder in BUILDERS:  # no fake kernel outlives the test
        builder.cache_clear()


def test_kernel_builders_compile_once_per_specialization(kernel_builds):
    weighted = {(mode, invert): ck._get_weighted_kernel(mode, invert)
                for mode in WEIGHTED for invert in (False, True)}
    extreme = {invert: ck._get_extreme_kernel(invert) for invert in (False, True)}
    stretch = ck._get_stretch_kernel()
    per_image = ck._get_stretch_kernel(True)
    median = {dtype: ck._get_median_kernel(np.dtype(dtype)) for dtype in _MEDIAN_CTYPES}
    assert len(kernel_builds) == len(weighted) + len(extreme) + 2 + len(median)
    assert "peak[i / size]" in per_image.operation and "size" in per_image.in_params
    assert len({k.name for k in kernel_builds}) == len(kernel_builds)
    with pytest.raises(ValueError, match="integers of up to 32 bits, not float32"):
        ck._get_median_kernel(np.dtype(np.float32))
    # The same specialization again: the same kernel, nothing compiled.
    for (mode, invert), kernel in weighted.items():
        assert ck._get_weighted_kernel(mode, invert) is kernel
        assert ck._get_weighted_kernel(int(mode), invert) is kernel  # the enum's value is the key
    for invert, kernel in extreme.items():
        assert ck._get_extreme_kernel(invert) is kernel
    assert ck._get_stretch_kernel() is stretch
    assert ck._get_stretch_kernel(True) is per_image
    for dtype, kernel in median.items():
        assert ck._get_median_kernel(np.dtype(dtype)) is kernel
    assert len(kernel_builds) == len(weighted) + len(extreme) + 2 + len(median)
    # Different specializations: different kernels, sources and names.
    kernels = [*weighted.values(), *extreme.values(), stretch, per_image]
    assert len({id(k) for k in kernels}) == len(kernels)
    assert len({k.operation for k in kernels}) == len(kernels)
    assert len({k.name for k in kernels}) == len(kernels)
    assert weighted[WeightMode.TINT, True].name == "flowtrace_weighted_tint_min"
    assert "i / 3" in weighted[WeightMode.TINT, False].operation
    assert "offset - m" in weighted[WeightMode.SCALAR, True].operation
    with pytest.raises(ValueError, match="NONE"):
        ck._get_weighted_kernel(WeightMode.NONE, False)


# --------------------------------------------------------------------------
# Detection: fakes injected through the importer or sys.modules, never cupy
# --------------------------------------------------------------------------

class FakeCUDARuntimeError(RuntimeError):
    pass


def fake_cupy(count=1, count_error=None, smoke_error=None):
    """A module that looks enough like cupy for detection (built on NumPy)."""
    module = types.ModuleType("cupy")

    def get_device_count():
        if count_error is not None:
            raise count_error
        return count

    def arange(*args, **kwargs):
        if smoke_error is not None:
            raise smoke_error
        return np.arange(*args, **kwargs)

    module.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count,
                                      CUDARuntimeError=FakeCUDARuntimeError),
        Device=lambda ordinal: contextlib.nullcontext())
    module.arange = arange
    return module


def importer(result=None, error=None):
    def import_cupy():
        if error is not None:
            raise error
        return result
    return import_cupy


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.delenv("FLOWTRACE_BACKEND", raising=False)
    monkeypatch.delenv("FLOWTRACE_DEVICE", raising=False)
    clear_cache()
    yield
    clear_cache()


def test_without_cupy_says_what_to_install():
    with pytest.raises(BackendUnavailable, match=r"CuPy is not installed; install "
                                                 r"flowtrace-gpu\[gpu\] \(CuPy for CUDA 12\)"):
        dev.probe(importer(error=ModuleNotFoundError("No module named 'cupy'", name="cupy")))


@pytest.mark.parametrize("error", [
    ImportError("libcudart.so.12: cannot open shared object file"),
    ModuleNotFoundError("No module named 'fastrlock'", name="fastrlock"),
    OSError("libnvrtc.so: undefined symbol"),
    AttributeError("module 'numpy' has no attribute 'bool8'"),
])
def test_a_broken_cupy_is_unavailable_not_a_crash(error):
    with pytest.raises(BackendUnavailable, match="failed to import.*flowtrace-gpu\\[gpu\\]") as info:
        dev.probe(importer(error=error))
    assert type(error).__name__ in str(info.value)


def test_no_driver_names_cuda():
    error = FakeCUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    with pytest.raises(BackendUnavailable, match="no CUDA device was found.*cudaErrorInsufficientDriver"):
        dev.probe(importer(fake_cupy(count_error=error)))


def test_zero_devices():
    with pytest.raises(BackendUnavailable, match=r"no CUDA device was found \(CUDA reports 0 devices"):
        dev.probe(importer(fake_cupy(count=0)))


def test_a_device_that_cannot_run_kernels():
    error = RuntimeError("nvrtc: error: invalid value for --gpu-architecture")
    with pytest.raises(BackendUnavailable, match="cannot run on it.*gpu-architecture"):
        dev.probe(importer(fake_cupy(smoke_error=error)))


def test_one_device_is_found():
    module = fake_cupy(count=1)
    assert dev.probe(importer(module)) == (module, 0, 1)
    backend = cb.load(importer(module))
    assert backend.name == "cupy" and backend.xp is module and backend.device == 0


def test_device_ordinal_beyond_the_count(monkeypatch):
    module = fake_cupy(count=2)
    assert dev.probe(importer(module), device=1)[1] == 1
    with pytest.raises(BackendUnavailable, match=r"device=2 but CUDA found 2 devices \(ordinals 0..1\)"):
        dev.probe(importer(module), device=2)
    monkeypatch.setenv("FLOWTRACE_DEVICE", "5")
    with pytest.raises(BackendUnavailable, match="FLOWTRACE_DEVICE=5 but CUDA found 2 devices"):
        cb.load(importer(module))
    monkeypatch.setenv("FLOWTRACE_DEVICE", "gpu0")
    with pytest.raises(BackendUnavailable, match="FLOWTRACE_DEVICE"):
        cb.load(importer(module))
    with pytest.raises(FlowtraceError, match="device=3 but CUDA found 1 device "):
        cb.CupyBackend(xp=fake_cupy(count=1), device=3)


def test_registry_without_cupy(monkeypatch, fresh_registry):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ModuleNotFoundError
    with pytest.raises(FlowtraceError, match=r"backend 'cupy' is unavailable: CuPy is not installed; "
                                             r"install flowtrace-gpu\[gpu\] \(CuPy for CUDA 12\)"):
        get_backend("cupy")
    assert get_backend("auto").name != "cupy"
    with pytest.raises(FlowtraceError, match="backend 'cupy' is unavailable"):
        cb.CupyBackend()


def test_registry_with_cupy_but_no_device(monkeypatch, fresh_registry):
    error = FakeCUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count_error=error))
    with pytest.raises(FlowtraceError, match="backend 'cupy' is unavailable: CuPy is installed but "
                                             "no CUDA device was found.*cudaErrorNoDevice"):
        get_backend("cupy")
    assert get_backend("auto").name != "cupy"


def test_auto_picks_cupy_when_a_device_is_found(monkeypatch, fresh_registry):
    module = fake_cupy(count=1)
    monkeypatch.setitem(sys.modules, "cupy", module)
    backend = get_backend("auto")
    assert backend.name == "cupy" and backend.xp is module
    assert get_backend("cupy") is backend


def test_importing_the_backend_neither_imports_cupy_nor_probes_cuda():
    modules = ", ".join(f"flowtrace_gpu.backends.{m}" for m in
                        ("cupy.backend", "cupy.device", "cupy.memory", "cupy.kernels"))
    code = (f"import sys, flowtrace_gpu, {modules}; "
            "assert 'cupy' not in sys.modules and 'cupyx' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


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
                         ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
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


class ListIndexWriter:
    parallel = True

    def __init__(self):
        self.images = {}

    def write(self, index, image):
        self.images[index] = np.array(image)

    def close(self):
        return None


# --------------------------------------------------------------------------
# On a real device (skips where there is none)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu_backend():
    try:
        dev.probe()
    except BackendUnavailable as exc:
        pytest.skip(f"no usable CUDA device: {exc}")
    return cb.CupyBackend()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_gpu_equals_numpy_backend(gpu_backend, dtype, rgb, normalize):
    rng = np.random.default_rng(11)
    shape = (16, 9, 13) + ((3,) if rgb else ())
    frames = (rng.random(shape) * (200 if dtype is np.uint8 else 3000)).astype(dtype)
    for options, windows, diff_order in itertools.product(ALL_OPTIONS, ("original", "sliding"), (1, 2)):
        kw = dict(options, windows=windows, diff_order=diff_order, normalize=normalize)
        np.testing.assert_array_equal(trace(frames, 6, gpu_backend, **kw),
                                      trace(frames, 6, "numpy", **kw), err_msg=str(kw))


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [2, 8])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_batches_equal_numpy_backend(gpu_backend, batch, dtype):
    batched = cb.CupyBackend(batch=batch)
    rng = np.random.default_rng(14)
    for shape in ((40, 9, 13), (33, 9, 13, 3)):
        frames = (rng.random(shape) * (200 if dtype is np.uint8 else 3000)).astype(dtype)
        for options, windows, normalize in itertools.product(
                ALL_OPTIONS[::9] + [ALL_OPTIONS[-1]], ("original", "sliding"), NORMALIZE):
            kw = dict(options, windows=windows, normalize=normalize)
            for parallel in (False, True):
                got = flowtrace_array(frames, 6, backend=batched, use_parallel=parallel, **kw)
                np.testing.assert_array_equal(got, trace(frames, 6, "numpy", **kw),
                                              err_msg=str(kw))
        for kw in ({"saturate": 1.0}, {"saturate": 1.0, "normalize": "global"}):  # 'float'
            np.testing.assert_array_equal(trace(frames, 6, batched, **kw),
                                          trace(frames, 6, "numpy", **kw), err_msg=str(kw))


@pytest.mark.gpu
def test_gpu_tiny_and_odd_shapes(gpu_backend):
    rng = np.random.default_rng(12)
    for shape, f in (((3, 1, 1), 1), ((7, 1, 5), 7), ((9, 3, 1, 3), 4), ((20, 33, 17), 12)):
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        for kw in ({}, {"color_series": True, "invert_color": True}, {"subtract_median": True}):
            np.testing.assert_array_equal(trace(frames, f, gpu_backend, **kw),
                                          trace(frames, f, "numpy", **kw))


@pytest.mark.gpu
@pytest.mark.skipif(not CASES, reason=f"reference data not found at {REFERENCE}")
@pytest.mark.parametrize("case", sorted(CASES) or ["none"])
def test_gpu_matches_the_original(gpu_backend, case, reference_frames):
    spec = CASES[case]
    images = flowtrace_array(reference_frames, spec["frames_to_merge"], spec["frames_to_skip"],
                             backend=gpu_backend, windows="original", **spec["options"])
    expected = np.stack([read_png(p) for p in sorted((REFERENCE / "outputs" / case).glob("*.png"))])
    assert np.abs(images.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(
        images, flowtrace_array(reference_frames, spec["frames_to_merge"], spec["frames_to_skip"],
                                backend="numpy", windows="original", **spec["options"]))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(_MEDIAN_CTYPES))
@pytest.mark.parametrize("count", [1, 2, 7, 64, 101])
def test_gpu_median_kernel_equals_numpy(gpu_backend, dtype, count):
    import cupy

    info = np.iinfo(dtype)
    rng = np.random.default_rng(count)
    frames = rng.integers(info.min, info.max, (count + 3, 61, 37), dtype=dtype, endpoint=True)
    frames[:, 0] = info.max  # ties at the extremes
    frames[:, 1, ::2] = info.min
    out = cupy.full(frames.shape[1:], cupy.nan)
    gpu_backend.runtime.kernels.median(cupy.asarray(frames), count, out)
    np.testing.assert_array_equal(out.get(), np.median(frames[:count].astype(np.float64), axis=0))


@pytest.mark.gpu
def test_gpu_to_host_returns_owned_host_arrays(gpu_backend):
    plan = TracePlan(3, (8, 8), np.uint8)
    proj = gpu_backend.projector(plan)
    frames = np.random.default_rng(13).integers(0, 256, (8, 8, 8), dtype=np.uint8)
    out = []
    for t, frame in enumerate(frames):
        proj.push(frame)
        if t >= 2:
            out.append(gpu_backend.to_host(proj.project()))
    assert all(type(o) is np.ndarray for o in out)
    np.testing.assert_array_equal(np.stack(out), trace(frames, 3, "numpy", windows="sliding"))


def test_device_option_selects_the_cuda_device(monkeypatch, fresh_registry):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=2))
    assert get_backend("cupy").device == 0
    assert get_backend("cupy", device=1).device == 1
    assert get_backend("auto", device=1).device == 1
    with pytest.raises(FlowtraceError, match="device=2 but CUDA found 2 devices"):
        get_backend("cupy", device=2)
    assert get_backend("numpy", device=1).name == "numpy"  # CPU backends ignore it
