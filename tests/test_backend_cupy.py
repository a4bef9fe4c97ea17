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
from flowtrace_gpu.backends import cupy_backend as cb
from flowtrace_gpu.backends.base import RingProjector
from flowtrace_gpu.kernels.stretch import stretch_to_uint8
from flowtrace_gpu.kernels.window import trace_window
from flowtrace_gpu.plan import TraceOptions, TracePlan

from conftest import REFERENCE, read_png, reference_cases

STANDIN = cb.CupyBackend(xp=np)
CASES = reference_cases()
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
def test_standin_matches_the_original(case, reference_frames):
    spec = CASES[case]
    images = trace(reference_frames, spec["frames_to_merge"], STANDIN,
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    # Push one frame at a time past several wraps and compare every window.
    plan = TracePlan(4, (3, 5), np.uint8, TraceOptions(subtract_median=True, color_series=True))
    frames = np.random.default_rng(1).integers(0, 256, (13, 3, 5), dtype=np.uint8)
    mine, ref = STANDIN.projector(plan), RingProjector(plan, np)
    for t, frame in enumerate(frames):
        mine.push(frame)
        ref.push(frame)
        if t + 1 >= plan.frames_to_merge:
            np.testing.assert_array_equal(STANDIN.to_host(mine.project()), ref.project())


def test_buffers_are_preallocated_and_results_owned_by_the_caller():
    plan = TracePlan(3, (4, 4), np.uint16, TraceOptions(take_diff=True, add_first_frame=True))
    frames = np.random.default_rng(2).integers(0, 4000, (9, 4, 4), dtype=np.uint16)
    proj = STANDIN.projector(plan)
    buffers = [proj.ring, proj.stack, proj.stack2, proj.proj, proj.peak, *proj.staging]
    ids = [id(b) for b in buffers]
    images, hosts = [], []
    for t, frame in enumerate(frames):
        proj.push(frame)
        if t >= 2:
            images.append(proj.project())
            hosts.append(STANDIN.to_host(images[-1]))
    assert [id(b) for b in buffers] == ids  # written in place, never replaced
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
# The fused kernels: NumPy twins against the reference
# --------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite))
def test_stretch_twin_is_stretch_to_uint8(proj):
    peak = np.array([proj.max()])
    out = np.empty(proj.shape, np.uint8)
    with np.errstate(over="ignore", invalid="ignore"):  # a subnormal peak: 255 / peak overflows
        np.testing.assert_array_equal(cb.stretch_twin(proj, peak, out), stretch_to_uint8(proj, np))


@pytest.mark.parametrize("proj", [np.zeros((2, 3)), -np.ones((2, 2)), np.array([[0.0, -0.0]]),
                                  np.array([1e-300, 255.0, 3e5])])
def test_stretch_twin_edges(proj):
    out = np.empty(proj.shape, np.uint8)
    np.testing.assert_array_equal(cb.stretch_twin(proj, np.array([proj.max()]), out),
                                  stretch_to_uint8(proj, np))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DTYPES), st.integers(1, 6), st.booleans(), st.booleans(),
       st.integers(0, 10), st.data())
def test_weighted_and_extreme_twins_are_trace_window(dtype, f, rgb, invert, start, data):
    shape = (f, 2, 3) + ((3,) if rgb else ())
    elements = (st.floats(-1e6, 1e6, width=32) if dtype is np.float32
                else st.integers(0, int(np.iinfo(dtype).max)))
    ring = data.draw(hnp.arrays(dtype, shape, elements=elements))
    start %= f
    window = np.concatenate((ring[start:], ring[:start]))
    for color, fade in ((False, False), (True, False), (False, True), (True, True)):
        plan = TracePlan(f, shape[1:], dtype, TraceOptions(invert_color=invert, color_series=color,
                                                           fade_tails=fade))
        expected = trace_window(window, plan, np)
        out = np.empty(plan.out_shape)
        mode = cb.weight_mode(plan)
        if mode:
            got = cb.weighted_twin(ring, plan.colors, start, f, mode, invert, plan.invert_offset, out)
        else:
            got = cb.extreme_twin(ring, f, invert, plan.invert_offset, out)
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------
# The CUDA source, compiled as C++ and run on the CPU against its twin
# --------------------------------------------------------------------------

_CTYPES = {np.uint8: "unsigned char", np.uint16: "unsigned short", np.float32: "float",
           np.float64: "double"}


def _harness() -> str:
    # Each kernel body becomes the inside of a loop over i, as CuPy's
    # ElementwiseKernel makes it; raw arrays are plain pointers (flat views).
    lines = ["#include <cstddef>",
             "static inline double __dmul_rn(double a, double b) { return a * b; }",
             'extern "C" {',
             "void stretch(const double* xs, const double* peak, unsigned char* ys, long long n) {",
             "  for (ptrdiff_t i = 0; i < n; ++i) { const double x = xs[i]; unsigned char& y = ys[i];",
             cb._STRETCH_SRC, "} }"]
    for (dtype, ctype), invert in itertools.product(_CTYPES.items(), (False, True)):
        tag = f"{np.dtype(dtype).name}_{int(invert)}"
        lines += [f"void extreme_{tag}(const {ctype}* src, long long plane, int count, double offset,"
                  " double* ys) {", f"  typedef {ctype} T;",
                  "  for (ptrdiff_t i = 0; i < plane; ++i) { double& y = ys[i];",
                  cb._extreme_src(invert), "} }"]
        for mode in cb.WEIGHT_MODES:
            lines += [f"void weighted_{tag}_{mode}(const {ctype}* src, const double* w, "
                      "long long plane, int count, int start, int nslots, double offset, "
                      "double* ys, long long n) {",
                      "  for (ptrdiff_t i = 0; i < n; ++i) { double& y = ys[i];",
                      cb._weighted_src(mode, invert), "} }"]
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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(list(_CTYPES)), st.integers(1, 5), st.sampled_from(cb.WEIGHT_MODES),
       st.booleans(), st.booleans(), st.integers(0, 9), st.data())
def test_cuda_source_matches_its_twins(cuda_source_on_cpu, dtype, f, mode, gray, invert, start,
                                       data):
    lib = cuda_source_on_cpu
    gray = gray if mode == "scalar" else mode == "tint"
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

    twin = cb.extreme_twin(src, f, invert, offset, np.empty(shape[1:]))
    cpu = np.empty(shape[1:])
    getattr(lib, f"extreme_{tag}")(_ptr(src), ctypes.c_longlong(plane), ctypes.c_int(f),
                                   ctypes.c_double(offset), _ptr(cpu))
    np.testing.assert_array_equal(cpu, twin)

    plan = TracePlan(f, (1, 1), np.uint8, TraceOptions(color_series=mode != "scalar",
                                                       fade_tails=mode == "scalar"))
    w = np.ascontiguousarray(plan.colors)
    out_shape = shape[1:] + ((3,) if mode == "tint" else ())
    twin = cb.weighted_twin(src, w, start, f, mode, invert, offset, np.empty(out_shape))
    cpu = np.empty(out_shape)
    getattr(lib, f"weighted_{tag}_{mode}")(
        _ptr(src), _ptr(w), ctypes.c_longlong(plane), ctypes.c_int(f), ctypes.c_int(start),
        ctypes.c_int(f), ctypes.c_double(offset), _ptr(cpu), ctypes.c_longlong(cpu.size))
    np.testing.assert_array_equal(cpu, twin)

    proj = np.ascontiguousarray(twin - twin.mean())  # negative values too
    peak = np.array([proj.max()])
    cpu = np.empty(proj.shape, np.uint8)
    lib.stretch(_ptr(proj), _ptr(peak), _ptr(cpu), ctypes.c_longlong(proj.size))
    np.testing.assert_array_equal(cpu, cb.stretch_twin(proj, peak, np.empty(proj.shape, np.uint8)))


def test_kernel_builders_are_memoized_by_hashable_arguments():
    for builder in (cb._get_stretch_kernel, cb._get_extreme_kernel, cb._get_weighted_kernel):
        assert hasattr(builder, "cache_info")


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
        cb._probe(importer(error=ModuleNotFoundError("No module named 'cupy'", name="cupy")))


@pytest.mark.parametrize("error", [
    ImportError("libcudart.so.12: cannot open shared object file"),
    ModuleNotFoundError("No module named 'fastrlock'", name="fastrlock"),
    OSError("libnvrtc.so: undefined symbol"),
    AttributeError("module 'numpy' has no attribute 'bool8'"),
])
def test_a_broken_cupy_is_unavailable_not_a_crash(error):
    with pytest.raises(BackendUnavailable, match="failed to import.*flowtrace-gpu\\[gpu\\]") as info:
        cb._probe(importer(error=error))
    assert type(error).__name__ in str(info.value)


def test_no_driver_names_cuda():
    error = FakeCUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
    with pytest.raises(BackendUnavailable, match="no CUDA device was found.*cudaErrorInsufficientDriver"):
        cb._probe(importer(fake_cupy(count_error=error)))


def test_zero_devices():
    with pytest.raises(BackendUnavailable, match=r"no CUDA device was found \(CUDA reports 0 devices"):
        cb._probe(importer(fake_cupy(count=0)))


def test_a_device_that_cannot_run_kernels():
    error = RuntimeError("nvrtc: error: invalid value for --gpu-architecture")
    with pytest.raises(BackendUnavailable, match="cannot run on it.*gpu-architecture"):
        cb._probe(importer(fake_cupy(smoke_error=error)))


def test_one_device_is_found():
    module = fake_cupy(count=1)
    assert cb._probe(importer(module)) == (module, 0, 1)
    backend = cb.load(importer(module))
    assert backend.name == "cupy" and backend.xp is module and backend.device == 0


def test_device_ordinal_beyond_the_count(monkeypatch):
    module = fake_cupy(count=2)
    assert cb._probe(importer(module), device=1)[1] == 1
    with pytest.raises(BackendUnavailable, match=r"device=2 but CUDA found 2 devices \(ordinals 0..1\)"):
        cb._probe(importer(module), device=2)
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
    code = ("import sys, flowtrace_gpu, flowtrace_gpu.backends.cupy_backend; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------
# Memory plan
# --------------------------------------------------------------------------

def test_memory_estimate_counts_every_buffer():
    plan = TracePlan(10, (100, 200), np.uint16, TraceOptions(take_diff=True, add_first_frame=True,
                                                             subtract_median=True))
    est = cb.estimate_device_bytes(plan)
    plane = 100 * 200
    assert est.ring == 10 * plane * 2
    assert est.staging == 2 * plane * 2
    assert est.work == (11 + 10) * plane * 8
    assert est.output == plane * 8 + 8 + 2 * plane
    assert est.total == sum(est)
    raw = cb.estimate_device_bytes(TracePlan(10, (100, 200), np.uint16,
                                             TraceOptions(normalize="none")))
    assert raw.output == plane * 8 + 8 + 2 * plane * 2 and raw.scratch == 2 * plane * 8
    plain = cb.estimate_device_bytes(TracePlan(10, (100, 200), np.uint16))
    assert plain.work == plain.scratch == 0


@pytest.mark.parametrize("options", [TraceOptions(), TraceOptions(color_series=True, subtract_first=True),
                                     TraceOptions(take_diff=True, diff_order=2, add_first_frame=True)])
def test_memory_estimate_covers_what_the_projector_allocates(options):
    plan = TracePlan(6, (7, 9), np.float32, options)
    proj = STANDIN.projector(plan)
    for frame in np.ones((6, 7, 9), np.float32):
        proj.push(frame)
    arrays = [proj.ring, proj.proj, proj.peak, proj.project(), *proj.staging,
              getattr(proj, "stack", None), getattr(proj, "stack2", None)]
    held = sum(a.nbytes for a in arrays if a is not None)
    est = cb.estimate_device_bytes(plan)
    assert est.ring + est.staging + est.work + est.output - held == proj.project().nbytes


def test_too_little_free_memory_is_a_clear_error():
    plan = TracePlan(100, (1024, 1024), np.uint8)
    with pytest.raises(FlowtraceError, match=r"needs about 1[0-9]{2}\.\d MiB .* but only 50\.0 MiB "
                                             r"is free; use a smaller frames_to_merge"):
        cb.check_device_memory(plan, 50 * 2**20, "CUDA device 0")
    assert cb.check_device_memory(plan, 2**40).total == cb.estimate_device_bytes(plan).total

    tight = cb.CupyBackend(xp=np, runtime=cb.HostRuntime(free_bytes=2**20))
    frames = np.zeros((120, 256, 256), np.uint8)
    with pytest.raises(FlowtraceError, match="frames_to_merge=100 with 256x256 uint8 frames"):
        trace(frames, 100, tight)
    roomy = cb.CupyBackend(xp=np, runtime=cb.HostRuntime(free_bytes=2**30))
    assert trace(frames[:12], 10, roomy).shape == (2, 256, 256)


# --------------------------------------------------------------------------
# On a real device (skips where there is none)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu_backend():
    try:
        cb._probe()
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
                             backend=gpu_backend, **spec["options"])
    expected = np.stack([read_png(p) for p in sorted((REFERENCE / "outputs" / case).glob("*.png"))])
    assert np.abs(images.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(
        images, flowtrace_array(reference_frames, spec["frames_to_merge"], spec["frames_to_skip"],
                                backend="numpy", **spec["options"]))


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
