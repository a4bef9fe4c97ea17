"""The CuPy backend's device: detection (fakes, never cupy) and, where a GPU is, the real thing.

Detection runs everywhere: fake cupy modules injected through the importer
or ``sys.modules`` stand for a missing, broken or device-less CuPy. Tests
marked ``gpu`` run on a CUDA device and skip, saying why, where there is none;
on a device every image equals the NumPy backend's, and the original's, exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import types

import numpy as np
import pytest

from flowtrace_gpu import FlowtraceError, flowtrace_array, get_backend
from flowtrace_gpu.backends import BackendUnavailable, clear_cache
from flowtrace_gpu.backends.cupy import backend as cb
from flowtrace_gpu.backends.cupy import device as dev
from flowtrace_gpu.engine.plan import TracePlan

from conftest import REFERENCE, read_png, reference_cases
from cupy_shared import ALL_OPTIONS, DTYPES, MEDIAN_CTYPES, NORMALIZE, trace

CASES = reference_cases()


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
    modules = ", ".join(f"flowtrace_gpu.backends.cupy.{m}" for m in
                        ("backend", "device", "memory", "kernels"))
    code = (f"import sys, flowtrace_gpu, {modules}; "
            "assert 'cupy' not in sys.modules and 'cupyx' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


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
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(
        images, flowtrace_array(reference_frames, spec["frames_to_merge"], spec["frames_to_skip"],
                                backend="numpy", windows="original", **spec["options"]))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(MEDIAN_CTYPES))
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
