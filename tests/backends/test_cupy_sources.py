"""The CUDA source of each fused kernel, built as C++ and run on the CPU.

Each kernel body becomes the inside of a loop over i, as CuPy's
ElementwiseKernel makes it, and is checked against its NumPy twin and the
twins against independent NumPy expressions (the oracle's stretch, a median
by sorting). The kernel builders are checked on a fake cupy that records
what they compile.
"""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flowtrace_gpu.backends.cupy import kernels as ck
from flowtrace_gpu.engine.plan import TracePlan
from flowtrace_gpu.kernels.colors import WeightMode
from flowtrace_gpu.options import TraceOptions

from cupy_shared import CTYPES, MEDIAN_CTYPES, WEIGHTED
from naive import naive_median, naive_stretch

# --------------------------------------------------------------------------
# The CUDA source, compiled as C++ and run on the CPU against its twin
# --------------------------------------------------------------------------

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
    for (dtype, ctype), invert in itertools.product(CTYPES.items(), (False, True)):
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
    for dtype, ctype in MEDIAN_CTYPES.items():
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
@given(st.sampled_from(list(CTYPES)), st.integers(1, 5), st.sampled_from(WEIGHTED),
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
    dtype = np.dtype(draw(st.sampled_from(list(MEDIAN_CTYPES))))
    info = np.iinfo(dtype)
    values = st.one_of(st.integers(int(info.min), int(info.max)),
                       st.sampled_from([int(info.min), int(info.max), 0, 1, int(info.max) - 1]))
    n = draw(st.integers(1, max_count))
    frames = draw(hnp.arrays(dtype, (n, 2, 3), elements=values))
    return frames, draw(st.integers(1, n))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(integer_windows())
def test_cuda_median_source_is_the_middle_of_the_sorted_values(cuda_source_on_cpu, window):
    frames, count = window
    twin = ck.median_twin(frames, count, np.empty(frames.shape[1:]))
    np.testing.assert_array_equal(twin, naive_median(frames[:count]))  # by sorting, not np.median
    cpu = np.full(frames.shape[1:], np.nan)  # every element must be written
    getattr(cuda_source_on_cpu, f"median_{frames.dtype.name}")(
        _ptr(frames), ctypes.c_longlong(frames[0].size), ctypes.c_int(count), _ptr(cpu),
        ctypes.c_longlong(frames[0].size))
    np.testing.assert_array_equal(cpu, twin)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(list(CTYPES)), st.integers(1, 5), st.integers(1, 4),
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
    median = {dtype: ck._get_median_kernel(np.dtype(dtype)) for dtype in MEDIAN_CTYPES}
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
# The stretch kernel on edge values
# --------------------------------------------------------------------------

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
def test_stretch_kernel_is_the_originals_stretch_on_edges(case, cuda_source_on_cpu):
    proj, peak = STRETCH_EDGES[case]
    proj = np.ascontiguousarray(proj)
    expected = naive_stretch(proj, peak)  # the oracle, apart from the package
    peak = np.array([proj.max() if peak is None else peak])
    np.testing.assert_array_equal(ck.stretch_twin(proj, peak, np.empty(proj.shape, np.uint8)),
                                  expected)
    cpu = np.empty(proj.shape, np.uint8)
    cuda_source_on_cpu.stretch(_ptr(proj), _ptr(peak), _ptr(cpu), ctypes.c_longlong(proj.size))
    np.testing.assert_array_equal(cpu, expected)
