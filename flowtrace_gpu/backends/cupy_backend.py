"""The CuPy backend: a resident ring of frames on one CUDA device.

Layout of one run (one :class:`CupyProjector`)::

    host frame --copy--> pinned[b] --H2D, copy stream--> staging[b]
        --D2D, compute stream--> ring[t % F] --kernels--> proj (float64)
        --stretch--> image[r] (uint8) --D2H, compute stream--> pinned result

* The ring is one preallocated ``(F, *frame_shape)`` device array written in
  place; nothing is allocated per frame except what CuPy's memory pool
  serves for reduction scratch (the peak, and ``median``'s sort), which it
  reuses without calling ``cudaMalloc`` again.
* Uploads run on their own stream into a staging buffer, so the upload of
  frame t+1 may run while frame t is being projected; events order every
  upload before the compute that reads it, and every reuse of a buffer
  after the work that last read it.
* The projection is two fused kernels (max/min, or the color / fade
  composite, then the 8-bit scaling): no (F, H, W, 3) float temporaries.

With ``xp=numpy`` (:class:`HostRuntime`) streams, events and pinned memory
are no-ops and the fused kernels are their NumPy twins, so every line of the
array code above runs -- and is tested -- on a machine without a GPU.
Nothing here imports CuPy or touches CUDA at import time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
from typing import NamedTuple

import numpy as np

from .. import config
from ..errors import FlowtraceError
from ..kernels.stretch import to_dtype
from . import BackendUnavailable
from .base import Backend

INSTALL_HINT = "install flowtrace-gpu[gpu] (CuPy for CUDA 12)"
OTHER_BACKENDS = "or use backend='numba' or backend='numpy'"


# --------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------

def _import_cupy():
    return importlib.import_module("cupy")


def _probe(import_cupy=None, device=None, smoke_test=True):
    """Find CuPy and a usable CUDA device, or say why not.

    Parameters
    ----------
    import_cupy : callable, optional
        Returns the ``cupy`` module; tests pass fakes. Default imports it.
    device : int, optional
        CUDA device ordinal; default ``FLOWTRACE_DEVICE`` (0).
    smoke_test : bool
        Run one tiny computation on the device, which catches installs that
        import but cannot compile or launch kernels.

    Returns
    -------
    (module, int, int)
        The cupy module, the device ordinal and the number of devices.

    Raises
    ------
    BackendUnavailable
        Never anything else: a missing or broken CuPy, a missing driver, no
        device or a bad ordinal all end up here, with what to do.
    """
    try:
        cp = (import_cupy or _import_cupy)()
    except ModuleNotFoundError as exc:
        if exc.name in (None, "cupy"):
            raise BackendUnavailable(f"CuPy is not installed; {INSTALL_HINT}") from None
        raise BackendUnavailable(_broken(exc)) from None
    except Exception as exc:  # noqa: BLE001 -- a broken install may raise anything
        raise BackendUnavailable(_broken(exc)) from None

    try:
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 -- CUDARuntimeError, or a driver/library error
        raise BackendUnavailable(
            f"CuPy is installed but no CUDA device was found: CUDA reported "
            f"{type(exc).__name__}: {exc}. Check the NVIDIA driver (nvidia-smi) "
            f"and that the CuPy package matches its CUDA version, {OTHER_BACKENDS}"
        ) from None
    if count < 1:
        raise BackendUnavailable(
            "CuPy is installed but no CUDA device was found (CUDA reports 0 devices; "
            f"check CUDA_VISIBLE_DEVICES and nvidia-smi), {OTHER_BACKENDS}"
        )

    try:
        ordinal = _device_ordinal(device, count)
    except FlowtraceError as exc:
        raise BackendUnavailable(str(exc)) from None

    if smoke_test:
        try:
            with cp.cuda.Device(ordinal):
                x = cp.arange(4, dtype="float64")
                ok = float((x * 2.0).sum()) == 12.0
        except Exception as exc:  # noqa: BLE001 -- NVRTC/driver mismatch, out of memory ...
            raise BackendUnavailable(
                f"CuPy found CUDA device {ordinal} but cannot run on it "
                f"({type(exc).__name__}: {exc}); reinstall flowtrace-gpu[gpu] with the "
                f"CuPy package for your CUDA version, {OTHER_BACKENDS}"
            ) from None
        if not ok:
            raise BackendUnavailable(
                f"CuPy computed a wrong result on CUDA device {ordinal}; "
                f"reinstall flowtrace-gpu[gpu], {OTHER_BACKENDS}"
            )
    return cp, ordinal, count


def _broken(exc: BaseException) -> str:
    return (f"CuPy is installed but failed to import ({type(exc).__name__}: {exc}); "
            f"reinstall it: {INSTALL_HINT}, matching your CUDA driver, {OTHER_BACKENDS}")


def _device_ordinal(device, count: int) -> int:
    """Validate a device ordinal (default: ``FLOWTRACE_DEVICE``) against ``count``."""
    if device is None:
        device = config.get("device")
        source = "FLOWTRACE_DEVICE"
    else:
        source = "device"
    try:
        ordinal = int(device)
    except (TypeError, ValueError):
        raise FlowtraceError(f"{source} must be a CUDA device number, got {device!r}") from None
    if not 0 <= ordinal < count:
        plural = "device" if count == 1 else "devices"
        raise FlowtraceError(
            f"{source}={ordinal} but CUDA found {count} {plural} "
            f"(ordinals 0..{count - 1}); set {source} to one of them"
        )
    return ordinal


def load(import_cupy=None) -> CupyBackend:
    """The registry's entry point: the CuPy backend, or :class:`BackendUnavailable`."""
    try:
        cp, ordinal, _ = _probe(import_cupy)
    except FlowtraceError as exc:  # e.g. FLOWTRACE_DEVICE=abc
        raise BackendUnavailable(str(exc)) from None
    return CupyBackend(xp=cp, device=ordinal)


# --------------------------------------------------------------------------
# Memory plan
# --------------------------------------------------------------------------

def headroom_bytes() -> int:
    """Kept free beyond the estimate (CUB reduction scratch, the CUDA context's
    growth, fragmentation of the memory pool): the ``gpu_headroom_mib`` setting."""
    return int(config.get("gpu_headroom_mib")) * 2**20


def needs_stack(options) -> bool:
    """Whether the options need the window as an ordered float64 stack.

    Without them, max/min commute with the ring's slot order and run on the
    raw frames; color_series and fade_tails read the ring in window order.
    """
    return bool(options.subtract_first or options.subtract_median
                or options.take_diff or options.add_first_frame)


class MemoryEstimate(NamedTuple):
    """Device bytes a :class:`CupyProjector` will use, by purpose."""

    ring: int
    staging: int
    work: int
    scratch: int
    output: int

    @property
    def total(self) -> int:
        return self.ring + self.staging + self.work + self.scratch + self.output

    def describe(self) -> str:
        parts = ((name, getattr(self, name)) for name in self._fields)
        return ", ".join(f"{name} {_mib(n)}" for name, n in parts if n)


def estimate_device_bytes(plan) -> MemoryEstimate:
    """Device memory a run of ``plan`` needs, before allocating any of it.

    Parameters
    ----------
    plan : TracePlan

    Returns
    -------
    MemoryEstimate
        ``ring``: the F resident frames; ``staging``: two upload buffers;
        ``work``: float64 stacks (only for the order-dependent options);
        ``scratch``: what ``median`` and ``normalize='none'`` allocate from
        CuPy's pool; ``output``: the float64 projection and two images (the
        one being made and the one being downloaded).
    """
    opts = plan.options
    f = plan.frames_to_merge
    plane = math.prod(plan.frame_shape)
    frame = plane * plan.dtype.itemsize
    out = math.prod(plan.out_shape)
    work = scratch = 0
    if needs_stack(opts):
        work += (f + int(opts.add_first_frame)) * plane * 8
        if opts.take_diff:
            work += f * plane * 8  # the second buffer of the diff ping-pong
        if opts.subtract_median:
            scratch += 2 * f * plane * 8 + plane * 8  # median: a partitioned copy, transposed
    if plan.scaling == "none":
        scratch += 2 * out * 8  # to_dtype's clip and floor
    image = out * plan.out_dtype.itemsize
    return MemoryEstimate(ring=f * frame, staging=2 * frame, work=work, scratch=scratch,
                          output=out * 8 + 8 + 2 * image)


def check_device_memory(plan, free_bytes: int, device_label: str = "the GPU",
                        headroom: int | None = None) -> MemoryEstimate:
    """Raise :class:`FlowtraceError` if ``plan`` does not fit in ``free_bytes``.

    Returns the estimate when it fits.
    """
    est = estimate_device_bytes(plan)
    if headroom is None:
        headroom = headroom_bytes()
    if est.total + headroom > free_bytes:
        raise FlowtraceError(
            f"the cupy backend needs about {_mib(est.total + headroom)} of memory on "
            f"{device_label} for frames_to_merge={plan.frames_to_merge} with "
            f"{'x'.join(map(str, plan.frame_shape))} {plan.dtype} frames "
            f"({est.describe()}, {_mib(headroom)} headroom), but only {_mib(free_bytes)} "
            "is free; use a smaller frames_to_merge, free GPU memory held by other "
            "processes, or choose backend='numba' or backend='numpy'"
        )
    return est


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# --------------------------------------------------------------------------
# Fused kernels: CUDA source and its NumPy twin, side by side
# --------------------------------------------------------------------------
#
# Each kernel is written so that its twin, the function next to it, does the
# same IEEE operations in the same order: the twins run the NumPy stand-in,
# and tests check them against kernels.window / kernels.stretch bit for bit.
# __dmul_rn keeps NVRTC from fusing a product into an FMA, which would round
# differently from NumPy.

_STRETCH_SRC = """
const double p = peak[0];
const double scale = 255.0 / (p == 0.0 ? 255.0 : p);
double v = __dmul_rn(x, scale);
v = v < 0.0 ? 0.0 : (v > 255.0 ? 255.0 : v);
y = (unsigned char)(v + 0.5);
"""


@functools.cache
def _get_stretch_kernel():
    """float64 projection + its peak -> uint8 image (``stretch_to_uint8``)."""
    import cupy

    return cupy.ElementwiseKernel("float64 x, raw float64 peak", "uint8 y", _STRETCH_SRC,
                                  "flowtrace_stretch")


def stretch_twin(x, peak, out):
    """NumPy twin of the stretch kernel: ``out[i] = uint8(clip(x[i]*scale, 0, 255) + 0.5)``."""
    p = float(np.asarray(peak).reshape(-1)[0])
    scale = 255.0 / (255.0 if p == 0.0 else p)
    v = x * scale
    v = np.where(v < 0.0, 0.0, np.where(v > 255.0, 255.0, v))
    out[...] = v + 0.5  # the float -> uint8 assignment truncates, as the C cast
    return out


def _extreme_src(invert: bool) -> str:
    better, result = ("<", "offset - (double)m") if invert else (">", "(double)m")
    return f"""
T m = src[i];
for (int j = 1; j < count; ++j) {{
    const T v = src[(ptrdiff_t)j * plane + i];
    if (v {better} m) m = v;
}}
y = {result};
"""


@functools.cache
def _get_extreme_kernel(invert: bool):
    """Per-pixel max (or ``offset - min``) over ``count`` planes, in the input dtype.

    Max commutes with the exact, monotone cast to float64, so the ring's
    raw frames are reduced without a float copy and in any slot order.
    """
    import cupy

    return cupy.ElementwiseKernel(
        "raw T src, int64 plane, int32 count, float64 offset", "float64 y",
        _extreme_src(invert), "flowtrace_min" if invert else "flowtrace_max")


def extreme_twin(src, count, invert, offset, out):
    """NumPy twin of the extreme kernel over ``src[:count]`` (planes of ``out.size``)."""
    m = src[0]
    for j in range(1, count):
        v = src[j]
        m = np.where(v < m if invert else v > m, v, m)
    m = m.astype(np.float64)
    out[...] = offset - m if invert else m
    return out


#: How per-frame weights meet a frame (see :func:`weight_mode`).
WEIGHT_MODES = ("tint", "channels", "scalar")


def weight_mode(plan) -> str | None:
    """How ``plan.colors`` weights the frames: None when it does not.

    ``'tint'``: gray frames times (K, 3) colors, an RGB image out;
    ``'channels'``: RGB frames times (K, 3) colors, channel by channel;
    ``'scalar'``: any frames times (K,) weights (``fade_tails`` alone).
    """
    opts = plan.options
    if opts.color_series:
        return "channels" if plan.is_color_input else "tint"
    return "scalar" if opts.fade_tails else None


def _weighted_src(mode: str, invert: bool) -> str:
    # Output element i is channel c of source element p: a gray pixel feeds
    # all three channels of its output pixel ('tint'); otherwise p == i.
    pixel = "i / 3" if mode == "tint" else "i"
    channel, nw = ("0", "1") if mode == "scalar" else ("(int)(i % 3)", "3")
    better, result = ("<", "offset - m") if invert else (">", "m")
    return f"""
const ptrdiff_t p = {pixel};
const int c = {channel};
int slot = start;
double m = __dmul_rn((double)src[(ptrdiff_t)slot * plane + p], w[c]);
for (int j = 1; j < count; ++j) {{
    slot = (slot + 1 == nslots) ? 0 : slot + 1;
    const double v = __dmul_rn((double)src[(ptrdiff_t)slot * plane + p], w[{nw} * j + c]);
    if (v {better} m) m = v;
}}
y = {result};
"""


@functools.cache
def _get_weighted_kernel(mode: str, invert: bool):
    """color_series / fade_tails: ``max_j frame_j * w[j]``, reading slots in window order.

    One pass over the frames: no (K, H, W, 3) float64 temporary.
    """
    import cupy

    return cupy.ElementwiseKernel(
        "raw T src, raw float64 w, int64 plane, int32 count, int32 start, int32 nslots, "
        "float64 offset", "float64 y", _weighted_src(mode, invert),
        f"flowtrace_weighted_{mode}_{'min' if invert else 'max'}")


def weighted_twin(src, w, start, count, mode, invert, offset, out):
    """NumPy twin of the weighted kernel: slots ``start, start+1, ...`` (mod ``len(src)``)."""
    nslots = src.shape[0]

    def weighted(slot, j):
        x = src[slot].astype(np.float64)
        return (x[..., None] if mode == "tint" else x) * w[j]

    slot = start
    m = weighted(slot, 0)
    for j in range(1, count):
        slot = 0 if slot + 1 == nslots else slot + 1
        v = weighted(slot, j)
        m = np.where(v < m if invert else v > m, v, m)
    out[...] = offset - m if invert else m
    return out


class CudaKernels:
    """The fused kernels on a CUDA device (flat views: linear indexing only)."""

    def __init__(self, cp):
        self.cp = cp

    def stretch(self, proj, peak, out):
        _get_stretch_kernel()(proj.reshape(-1), peak.reshape(-1), out.reshape(-1))
        return out

    def extreme(self, src, count, invert, offset, out):
        plane = out.size
        _get_extreme_kernel(bool(invert))(src.reshape(-1), plane, count, float(offset),
                                          out.reshape(-1))
        return out

    def weighted(self, src, w, start, count, mode, invert, offset, out):
        plane = math.prod(src.shape[1:])
        _get_weighted_kernel(mode, bool(invert))(
            src.reshape(-1), w.reshape(-1), plane, count, start, src.shape[0], float(offset),
            out.reshape(-1))
        return out


class HostKernels:
    """The same kernels as NumPy twins, for the stand-in."""

    @staticmethod
    def stretch(proj, peak, out):
        return stretch_twin(proj, peak, out)

    @staticmethod
    def extreme(src, count, invert, offset, out):
        return extreme_twin(src, count, invert, offset, out)

    @staticmethod
    def weighted(src, w, start, count, mode, invert, offset, out):
        return weighted_twin(src, w, start, count, mode, invert, offset, out)


# --------------------------------------------------------------------------
# Runtimes: CUDA, and the no-op shim for the NumPy stand-in
# --------------------------------------------------------------------------

class _NullStream:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def wait_event(self, event) -> None:
        pass

    def synchronize(self) -> None:
        pass


class _NullEvent:
    def record(self, stream=None) -> None:
        pass

    def synchronize(self) -> None:
        pass


class HostRuntime:
    """Streams, events, pinned memory and device for ``xp=numpy``: all no-ops.

    Parameters
    ----------
    free_bytes : int, optional
        Pretend this much device memory is free (tests of the memory plan);
        default: no limit.
    """

    xp = np
    device_id = 0
    device_name = "host (NumPy stand-in)"

    def __init__(self, free_bytes: int | None = None):
        self._free = free_bytes
        self.kernels = HostKernels()

    def activate(self):
        return contextlib.nullcontext()

    def stream(self):
        return _NullStream()

    def event(self):
        return _NullEvent()

    def current_stream(self):
        return _NullStream()

    def empty_pinned(self, shape, dtype):
        return np.empty(shape, dtype)

    def upload(self, dst, src, stream) -> None:
        np.copyto(dst, src)

    def download(self, src, out, stream) -> None:
        np.copyto(out, src)

    def free_bytes(self) -> int | None:
        return self._free


class CudaRuntime:
    """CUDA for the projectors: one device, its streams, events and pinned memory."""

    def __init__(self, cp, device: int):
        self.xp = cp
        self.device_id = device
        self.kernels = CudaKernels(cp)

    @functools.cached_property
    def device_name(self) -> str:
        name = self.xp.cuda.runtime.getDeviceProperties(self.device_id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def activate(self):
        return self.xp.cuda.Device(self.device_id)

    def stream(self):
        return self.xp.cuda.Stream(non_blocking=True)

    def event(self):
        return self.xp.cuda.Event(block=False, disable_timing=True)

    def current_stream(self):
        return self.xp.cuda.get_current_stream()

    def empty_pinned(self, shape, dtype):
        # From CuPy's pinned memory pool: a block freed by the caller is
        # reused by a later call, so steady state does no cudaHostAlloc.
        import cupyx

        return cupyx.empty_pinned(shape, dtype)

    def upload(self, dst, src, stream) -> None:
        dst.set(src, stream=stream)  # asynchronous: src is pinned

    def download(self, src, out, stream) -> None:
        src.get(stream=stream, out=out)  # blocking: returns when out is filled

    def free_bytes(self) -> int:
        free, _total = self.xp.cuda.Device(self.device_id).mem_info
        # Blocks cached by CuPy's pool are free for us too.
        return int(free) + int(self.xp.get_default_memory_pool().free_bytes())


# --------------------------------------------------------------------------
# Projector and backend
# --------------------------------------------------------------------------

class CupyProjector:
    """A resident ring of the last F frames and the kernels that project it.

    Parameters
    ----------
    plan : TracePlan
    runtime : CudaRuntime or HostRuntime
    compute_stream, copy_stream : stream objects of ``runtime``
        Shared with the backend, whose :meth:`CupyBackend.to_host` downloads
        on ``compute_stream``.

    Notes
    -----
    Ring, staging, stacks and the float64 projection are allocated once.
    :meth:`project` returns a new image each call, as the protocol asks,
    from CuPy's memory pool, which hands the block of an image already
    downloaded and dropped back to the next one: no ``cudaMalloc`` per frame.
    """

    N_STAGING = 2

    def __init__(self, plan, runtime, compute_stream, copy_stream):
        self.plan = plan
        self.rt = runtime
        self.xp = xp = runtime.xp
        self.compute = compute_stream
        self.copy = copy_stream
        opts = plan.options
        f = plan.frames_to_merge
        self.count = 0
        # Devices hold native byte order; np.copyto swaps big-endian frames.
        self.dtype = plan.dtype.newbyteorder("=")
        self.stacked = needs_stack(opts)
        self.mode = weight_mode(plan)
        # On the compute stream: the fills and uploads below are ordered
        # before the kernels that read them (it does not wait on stream 0).
        with runtime.activate(), compute_stream:
            self.ring = xp.empty((f,) + plan.frame_shape, dtype=self.dtype)
            self.pinned = [runtime.empty_pinned(plan.frame_shape, self.dtype)
                           for _ in range(self.N_STAGING)]
            self.staging = [xp.empty(plan.frame_shape, dtype=self.dtype)
                            for _ in range(self.N_STAGING)]
            self.uploaded = [runtime.event() for _ in range(self.N_STAGING)]
            self.consumed = [runtime.event() for _ in range(self.N_STAGING)]
            self.proj = xp.empty(plan.out_shape, dtype=xp.float64)
            self.peak = xp.empty((1,), dtype=xp.float64)
            if plan.scaling == "fixed":
                self.peak[...] = plan.peak  # normalize='global': one peak for all
            self.weights = xp.asarray(plan.colors) if self.mode else None
            if self.stacked:
                self.stack = xp.empty((f + int(opts.add_first_frame),) + plan.frame_shape,
                                      dtype=xp.float64)
                # f rows, not f - 1: add_first_frame may append to it.
                self.stack2 = (xp.empty((f,) + plan.frame_shape, dtype=xp.float64)
                               if opts.take_diff else None)

    # -- frames in ----------------------------------------------------------
    def push(self, frame) -> None:
        """Queue the upload of ``frame`` into the ring; returns before it lands."""
        b = self.count % self.N_STAGING
        slot = self.count % self.plan.frames_to_merge
        with self.rt.activate():
            # pinned[b] may still be in flight from two pushes ago.
            self.uploaded[b].synchronize()
            np.copyto(self.pinned[b], frame)
            # staging[b] must have been copied into the ring before it is refilled.
            self.copy.wait_event(self.consumed[b])
            self.rt.upload(self.staging[b], self.pinned[b], self.copy)
            self.uploaded[b].record(self.copy)
            # The ring slot is overwritten on the compute stream, after the
            # projection that still reads it: the upload itself overlapped it.
            self.compute.wait_event(self.uploaded[b])
            with self.compute:
                self.ring[slot] = self.staging[b]
            self.consumed[b].record(self.compute)
        self.count += 1

    # -- image out ----------------------------------------------------------
    def project(self):
        """Queue the projection of the last F frames; returns a new device image.

        ``plan.out_shape`` and ``plan.out_dtype``, scaled as ``plan.scaling``
        says (as :func:`flowtrace_gpu.kernels.stretch.finalize` does).
        """
        plan, xp = self.plan, self.xp
        if self.count < plan.frames_to_merge:
            raise RuntimeError("project() needs a full window of frames")
        with self.rt.activate(), self.compute:
            if plan.scaling == "float":  # the caller keeps the projection itself
                return self._project(xp.empty(plan.out_shape, dtype=xp.float64))
            proj = self._project(self.proj)
            if plan.scaling == "none":
                return to_dtype(proj, plan.out_dtype, xp)
            if plan.scaling == "frame":
                xp.max(proj, out=self.peak.reshape(()))
            image = xp.empty(plan.out_shape, dtype=xp.uint8)
            return self.rt.kernels.stretch(proj, self.peak, image)

    def _project(self, out):
        plan, opts, k = self.plan, self.plan.options, self.rt.kernels
        if self.stacked:
            src, start = self._prepare_stack(), 0
        else:
            # The oldest frame sits in the slot that the next push overwrites.
            src, start = self.ring, self.count % plan.frames_to_merge
        if self.mode:
            return k.weighted(src, self.weights, start, src.shape[0], self.mode,
                              opts.invert_color, plan.invert_offset, out)
        return k.extreme(src, src.shape[0], opts.invert_color, plan.invert_offset, out)

    def _prepare_stack(self):
        """The window as float64, in order, after the order-dependent steps."""
        xp, opts = self.xp, self.plan.options
        f = self.plan.frames_to_merge
        start = self.count % f
        a = self.stack
        # Unroll the ring into window order, casting on the way: two copies.
        a[: f - start] = self.ring[start:]
        a[f - start: f] = self.ring[:start]
        n = f
        if opts.subtract_first:
            # Not a[:n] -= a[0]: a broadcast in place over its own operand is
            # a race on the GPU. Row 0 last, so the other rows see it intact.
            a[1:n] -= a[0]
            a[0] -= a[0]
        if opts.subtract_median:
            a[:n] -= xp.median(a[:n], axis=0)
        if opts.take_diff:
            b = self.stack2
            for _ in range(opts.diff_order):
                # Ping-pong: an in-place diff would read rows being written.
                xp.subtract(a[1:n], a[: n - 1], out=b[: n - 1])
                a, b, n = b, a, n - 1
        if opts.add_first_frame:
            a[n] = self.ring[start]
            n += 1
        return a[:n]


class CupyBackend(Backend):
    """CuPy on one CUDA device, or the NumPy stand-in of the same code.

    Parameters
    ----------
    xp : module, optional
        ``None`` imports CuPy (raising :class:`FlowtraceError` if it cannot
        run here); ``numpy`` gives the stand-in, where streams, events and
        pinned memory are no-ops and the fused kernels run as NumPy twins.
    device : int, optional
        CUDA device ordinal; default ``FLOWTRACE_DEVICE`` (0). Ignored by
        the stand-in.
    runtime : HostRuntime, optional
        For tests: a stand-in runtime, e.g. ``HostRuntime(free_bytes=...)``.

    Examples
    --------
    >>> import numpy
    >>> from flowtrace_gpu import flowtrace_array
    >>> movie = numpy.zeros((12, 4, 4), numpy.uint8)
    >>> flowtrace_array(movie, 10, backend=CupyBackend(xp=numpy)).shape
    (3, 4, 4)
    """

    name = "cupy"

    def __init__(self, xp=None, device=None, *, runtime=None):
        if runtime is not None:
            self.runtime = runtime
        elif xp is np:
            self.runtime = HostRuntime()
        else:
            if xp is None:
                try:
                    xp, device, _ = _probe(device=device)
                except BackendUnavailable as exc:
                    raise FlowtraceError(f"backend 'cupy' is unavailable: {exc}") from None
            else:
                device = _device_ordinal(device, int(xp.cuda.runtime.getDeviceCount()))
            self.runtime = CudaRuntime(xp, device)
        self.xp = self.runtime.xp
        self._streams = None
        self._order_event = None

    @property
    def device(self) -> int:
        return self.runtime.device_id

    @property
    def device_name(self) -> str:
        return self.runtime.device_name

    def streams(self):
        """(compute, copy) streams of this backend, created on first use."""
        if self._streams is None:
            with self.runtime.activate():
                self._streams = (self.runtime.stream(), self.runtime.stream())
        return self._streams

    def projector(self, plan) -> CupyProjector:
        """A resident-ring projector for ``plan``, after checking it fits in memory.

        Raises
        ------
        FlowtraceError
            If the ring and work buffers need more than the device has free.
        """
        with self.runtime.activate():
            free = self.runtime.free_bytes()
        if free is not None:
            check_device_memory(plan, free, f"CUDA device {self.device} ({self.device_name})")
        compute, copy = self.streams()
        return CupyProjector(plan, self.runtime, compute, copy)

    def to_host(self, array) -> np.ndarray:
        """Download ``array`` into a fresh host array that the caller owns.

        On CUDA the array comes from CuPy's pinned memory pool (DMA without a
        bounce buffer); when the caller drops it the block returns to the pool
        for a later image, so the writers' backlog is never overwritten.
        """
        if isinstance(array, np.ndarray) and self.xp is not np:
            return array.copy()
        rt = self.runtime
        compute, _ = self.streams()
        with rt.activate():
            # Also order after whatever stream produced the array (ours, or
            # the caller's current stream).
            if self._order_event is None:
                self._order_event = rt.event()
            self._order_event.record(rt.current_stream())
            compute.wait_event(self._order_event)
            host = rt.empty_pinned(array.shape, array.dtype)
            rt.download(array, host, compute)
        return host

    def __repr__(self) -> str:
        return f"<flowtrace_gpu backend 'cupy' on {self.device_name}>"
