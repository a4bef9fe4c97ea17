"""The CuPy backend: a resident ring of frames on one CUDA device.

Layout of one run (one :class:`CupyProjector`)::

    host frame --copy--> pinned[b] --H2D, copy stream--> staging[b]
        --D2D, compute stream--> ring[t % F] --kernels--> proj (float64)
        --stretch--> image (uint8) --D2H, compute stream--> pinned result

* The ring is one preallocated ``(F, *frame_shape)`` device array written in
  place; per frame nothing is allocated but the image, and what CuPy's
  memory pool serves for reduction scratch (the peak, and ``median``'s
  sort where the frames are floats; integer frames have a selection
  kernel), which the pool reuses without calling ``cudaMalloc`` again.
* Uploads run on their own stream into a staging buffer, so the upload of
  frame t+1 may run while frame t is being projected; events order every
  upload before the compute that reads it, and every reuse of a buffer
  after the work that last read it.
* The order-dependent steps are the reference's own
  (:func:`flowtrace_gpu.kernels.window.prepare_stack`), run in place in a
  preallocated float64 buffer; the projection is then two fused kernels
  (max/min, or the color / fade composite, then the 8-bit scaling): no
  (F, H, W, 3) float temporaries.
* ``subtract_median`` of integer frames: a radix-select kernel reads the
  ring and writes the median plane; alone of the ordered steps it needs no
  stack at all (``max(frames) - median``).
* With ``gpu_batch > 1`` (:class:`BatchedCupyProjector`, the default 8)
  frames go up and images come down ``batch`` at a time, and the kernels
  project a batch's windows in one launch: fewer CuPy calls per frame, the
  same kernels.
* A projection is handed back with the caller's current stream ordered
  after it (an event), so the caller may use it on its own stream.

The backend is split by job, as ``cupyx.scipy.ndimage`` is: ``device``
finds CuPy and a device, ``memory`` plans and checks device memory,
``kernels`` holds the CUDA sources, their memoized builders and their
NumPy twins; this module holds the runtimes, the projector and the backend.

With ``xp=numpy`` (:class:`HostRuntime`) streams, events and pinned memory
are no-ops and the fused kernels are their NumPy twins, so every line of the
array code above runs -- and is tested -- on a machine without a GPU.
Nothing here imports CuPy or touches CUDA at import time.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from ... import config
from ...errors import FlowtraceError
from ...kernels.colors import WeightMode
from ...kernels.stretch import to_dtype
from ...kernels.window import needs_stack, prepare_stack, stack_shape
from ..base import Backend, BackendUnavailable
from .device import device_ordinal, probe
from .kernels import CudaKernels, HostKernels
from .memory import N_STAGING, check_device_memory, median_without_stack, ring_slots, uses_median_kernel


def load(import_cupy=None) -> CupyBackend:
    """The registry's entry point: the CuPy backend, or :class:`BackendUnavailable`."""
    try:
        cp, ordinal, _ = probe(import_cupy)
    except FlowtraceError as exc:  # e.g. FLOWTRACE_DEVICE=abc
        raise BackendUnavailable(str(exc)) from None
    return CupyBackend(xp=cp, device=ordinal)


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

    Attributes
    ----------
    allocations : list of int
        Bytes of each "device" array made through :meth:`empty`, in order:
        what a projector allocates, for tests against the memory plan.
    """

    xp = np
    device_id = 0
    device_name = "host (NumPy stand-in)"
    kernels = HostKernels()

    def __init__(self, free_bytes: int | None = None):
        self._free = free_bytes
        self.allocations: list[int] = []

    def activate(self):
        return contextlib.nullcontext()

    def stream(self):
        return _NullStream()

    def event(self):
        return _NullEvent()

    def current_stream(self):
        return _NullStream()

    def empty(self, shape, dtype):
        array = np.empty(shape, dtype)
        self.allocations.append(array.nbytes)
        return array

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

    kernels = CudaKernels()

    def __init__(self, cp, device: int):
        self.xp = cp
        self.device_id = device

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

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

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
    Ring, staging, the stack buffer, weights and the float64 projection are
    allocated once (the buffers :func:`.memory.estimate_device_bytes`
    counts). :meth:`project` returns a new image each call, as the protocol
    asks, from CuPy's memory pool, which hands the block of an image already
    downloaded and dropped back to the next one: no ``cudaMalloc`` per frame.
    """

    def __init__(self, plan, runtime, compute_stream, copy_stream):
        self.plan = plan
        self.rt = runtime
        self.xp = xp = runtime.xp
        self.compute = compute_stream
        self.copy = copy_stream
        self.count = 0
        # Devices hold native byte order; np.copyto swaps big-endian frames.
        self.dtype = plan.dtype.newbyteorder("=")
        self.stacked = needs_stack(plan.options) and not median_without_stack(plan)
        self.mode = plan.weight_mode
        self.projected = runtime.event()  # recorded after each projection (_hand_back)
        empty = runtime.empty
        # On the compute stream: the fills and uploads below are ordered
        # before the kernels that read them (it does not wait on stream 0).
        with runtime.activate(), compute_stream:
            self._allocate_frames(empty)
            self._allocate_planes(empty)
            self.peak = empty((1,), np.float64)
            if plan.scaling == "fixed":
                self.peak[...] = plan.peak  # normalize='global': one peak for all
            self.weights = None
            if self.mode != WeightMode.NONE:
                self.weights = empty(plan.colors.shape, np.float64)
                self.weights[...] = xp.asarray(plan.colors)
            self.stack = empty(stack_shape(plan), np.float64) if self.stacked else None

    def _allocate_planes(self, empty) -> None:
        """The float64 projection and, for the median kernel, its output plane."""
        self.proj = empty(self.plan.out_shape, np.float64)
        # subtract_median of integer frames: a selection kernel over the ring
        # writes the median here (else prepare_stack sorts the stack).
        self.median = None
        if uses_median_kernel(self.plan):
            self.median = empty(self.plan.frame_shape, np.float64)

    def _allocate_frames(self, empty) -> None:
        """The ring of F frames and the upload buffers (pinned host, device staging)."""
        plan, rt = self.plan, self.rt
        self.ring = empty((plan.frames_to_merge,) + plan.frame_shape, self.dtype)
        self.pinned = [rt.empty_pinned(plan.frame_shape, self.dtype) for _ in range(N_STAGING)]
        self.staging = [empty(plan.frame_shape, self.dtype) for _ in range(N_STAGING)]
        self.uploaded = [rt.event() for _ in range(N_STAGING)]
        self.consumed = [rt.event() for _ in range(N_STAGING)]

    # -- frames in ----------------------------------------------------------
    def push(self, frame) -> None:
        """Queue the upload of ``frame`` into the ring; returns before it lands."""
        b = self.count % N_STAGING
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
        plan = self.plan
        if self.count < plan.frames_to_merge:
            raise RuntimeError("project() needs a full window of frames")
        with self.rt.activate(), self.compute:
            # The oldest frame sits in the slot that the next push overwrites.
            image = self._image(self.ring, self.count % plan.frames_to_merge)
        return self._hand_back(image)

    def _hand_back(self, result):
        """``result``, with the caller's current stream ordered after the kernels that make it.

        The compute stream is non-blocking: without this wait, work the
        caller queues on its own stream (the saturating stretch's reductions,
        say) could read the image before it is written.
        """
        with self.rt.activate():
            self.projected.record(self.compute)
            self.rt.current_stream().wait_event(self.projected)
        return result

    def _image(self, frames, start, out=None):
        """The image of the window ``frames`` (oldest at ``start``), into ``out`` if given."""
        plan, xp = self.plan, self.xp
        if plan.scaling == "float":  # the caller keeps the projection itself
            return self._project(self.rt.empty(plan.out_shape, np.float64) if out is None
                                 else out, frames, start)
        proj = self._project(self.proj, frames, start)
        if plan.scaling == "none":
            image = to_dtype(proj, plan.out_dtype, xp)
            if out is None:
                return image
            out[...] = image
            return out
        if plan.scaling == "frame":
            xp.max(proj, out=self.peak.reshape(()))
        image = self.rt.empty(plan.out_shape, np.uint8) if out is None else out
        return self.rt.kernels.stretch(proj, self.peak, image)

    def _project(self, out, frames, start):
        """The float64 projection of the F frames ``frames`` (a ring whose oldest is ``start``)."""
        plan, k = self.plan, self.rt.kernels
        invert = plan.options.invert_color
        median = None
        if self.median is not None:
            median = k.median(frames, plan.frames_to_merge, self.median)
        if median is not None and not self.stacked:
            # subtract_median alone: max_j (x_j - m) is max_j x_j - m, and
            # offset - min_j (x_j - m) is (offset - min_j x_j) + m, exactly as
            # the stack computes them (integers and half-integers in float64).
            k.extreme(frames, plan.frames_to_merge, invert, plan.invert_offset, out)
            return self.xp.add(out, median, out=out) if invert else \
                self.xp.subtract(out, median, out=out)
        if self.stacked:
            src = prepare_stack(frames, plan, self.xp, start=start, out=self.stack,
                                median=median)
            start = 0
        else:
            src = frames
        if self.mode != WeightMode.NONE:
            return k.weighted(src, self.weights, start, src.shape[0], self.mode, invert,
                              plan.invert_offset, out)
        return k.extreme(src, src.shape[0], invert, plan.invert_offset, out)


class BatchedCupyProjector(CupyProjector):
    """A :class:`CupyProjector` that takes frames and gives images ``batch`` at a time.

    One frame at a time, a frame costs far more Python in some fifteen CuPy
    calls than kernel time (``python bench/bench_io_threads.py --profile cupy``).
    In batches, frames go up in one copy per batch and images come down in
    one: :meth:`push_many` and :meth:`project_many`, which the pipeline calls
    when ``batch > 1``. Without a stack (no ordered step but
    ``subtract_median`` of integer frames) each kernel is launched once per
    batch for all its windows (the kernels' ``*_windows`` calls) and the
    images' peaks are one reduction; with one, the kernels run per window.

    The ring holds every window a batch projects, ``R = F + batch - 1``
    frames, each in slot ``s`` and again in slot ``s + R``: the window that
    starts at slot ``s`` is then ``ring[s:s + F]``, contiguous and oldest
    first, whatever the wrap. Uploads, kernels and downloads all run on the
    compute stream, in order; a pinned buffer is refilled only after its
    last upload completed (its event), as one frame at a time.
    """

    def __init__(self, plan, runtime, compute_stream, copy_stream, batch: int):
        self.batch = int(batch)
        super().__init__(plan, runtime, compute_stream, copy_stream)

    def _allocate_planes(self, empty) -> None:
        self.projs = self.medians = self.peaks = None
        if self.stacked:  # kernels run window by window, on the base class's planes
            super()._allocate_planes(empty)
            return
        # Without a stack, a batch's windows are projected by one launch of
        # each kernel (the ``*_windows`` calls of the kernels) into these.
        plan, n = self.plan, self.batch
        self.proj = self.median = None
        self.projs = empty((n,) + plan.out_shape, np.float64)
        self.peaks = empty((n,), np.float64)
        if uses_median_kernel(plan):
            self.medians = empty((n,) + plan.frame_shape, np.float64)

    def _allocate_frames(self, empty) -> None:
        plan = self.plan
        self.slots = ring_slots(plan, self.batch) // 2  # R
        self.ring = empty((2 * self.slots,) + plan.frame_shape, self.dtype)
        self.pinned = [self.rt.empty_pinned((self.batch,) + plan.frame_shape, self.dtype)
                       for _ in range(N_STAGING)]
        self.staging = []
        self.uploaded = [self.rt.event() for _ in range(N_STAGING)]
        self.consumed = []
        self.uploads = 0

    def push(self, frame) -> None:
        self.push_many([frame])

    def push_many(self, frames) -> None:
        """Queue the upload of ``frames`` (any number, in order) into the ring."""
        for first in range(0, len(frames), self.batch):
            self._upload(frames[first:first + self.batch])

    def _upload(self, frames) -> None:
        b = self.uploads % N_STAGING
        n, r = len(frames), self.slots
        with self.rt.activate():
            self.uploaded[b].synchronize()  # pinned[b]'s last upload has landed
            staged = self.pinned[b]
            for i, frame in enumerate(frames):
                np.copyto(staged[i], frame)
            slot = self.count % r
            head = min(n, r - slot)  # frames before the ring wraps
            for dst, src in ((slot, staged[:head]), (0, staged[head:n])):
                if len(src):
                    self.rt.upload(self.ring[dst:dst + len(src)], src, self.compute)
                    self.rt.upload(self.ring[dst + r:dst + r + len(src)], src, self.compute)
            self.uploaded[b].record(self.compute)
        self.uploads += 1
        self.count += n

    def project(self):
        return self.project_many(1)[0]

    def project_many(self, n: int):
        """Queue the images of the windows that end at each of the last ``n`` frames.

        Returns one device array of shape ``(n, *plan.out_shape)``, new each
        call (the caller downloads it whole: one copy for ``n`` images).
        """
        plan = self.plan
        f = plan.frames_to_merge
        if not 1 <= n <= self.batch or self.count < f + n - 1:
            raise RuntimeError(f"project_many({n}) needs {f + n - 1} frames pushed and "
                               f"n <= batch ({self.batch})")
        dtype = np.float64 if plan.scaling == "float" else plan.out_dtype
        # Window i starts at slot first + i: no wrap, the ring being mirrored.
        first = (self.count - n - f + 1) % self.slots
        with self.rt.activate(), self.compute:
            if self.projs is not None:
                images = self._images(self.ring[first:], n)
            else:
                images = self.rt.empty((n,) + plan.out_shape, dtype)
                for i in range(n):
                    self._image(self.ring[first + i:first + i + f], 0, out=images[i])
        return self._hand_back(images)

    def _images(self, frames, n):
        """The images of the n windows ``frames[i:i + F]``, each kernel launched once."""
        plan, xp, rt = self.plan, self.xp, self.rt
        if plan.scaling == "float":
            return self._project_windows(rt.empty((n,) + plan.out_shape, np.float64), frames)
        projs = self._project_windows(self.projs[:n], frames)
        if plan.scaling == "none":
            return to_dtype(projs, plan.out_dtype, xp)
        images = rt.empty((n,) + plan.out_shape, np.uint8)
        if plan.scaling == "fixed":
            return rt.kernels.stretch(projs, self.peak, images)
        peaks = self.peaks[:n]
        xp.max(projs.reshape(n, -1), axis=1, out=peaks)
        return rt.kernels.stretch_windows(projs, peaks, images)

    def _project_windows(self, out, frames):
        """:meth:`_project` of n windows at once, for a plan without a stack."""
        plan, k = self.plan, self.rt.kernels
        f, n = plan.frames_to_merge, len(out)
        invert, offset = plan.options.invert_color, plan.invert_offset
        if self.medians is not None:  # subtract_median alone (median_without_stack)
            medians = k.median_windows(frames, f, self.medians[:n])
            k.extreme_windows(frames, f, invert, offset, out)
            return self.xp.add(out, medians, out=out) if invert else \
                self.xp.subtract(out, medians, out=out)
        if self.mode != WeightMode.NONE:
            return k.weighted_windows(frames, self.weights, f, self.mode, invert, offset, out)
        return k.extreme_windows(frames, f, invert, offset, out)


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
    batch : int, optional
        Frames per upload and images per download; default ``FLOWTRACE_GPU_BATCH``
        (8). Batches make fewer CuPy calls per frame
        (:class:`BatchedCupyProjector`); 1 projects one frame at a time
        (:class:`CupyProjector`, whose ring holds F frames, not twice F + 7).

    Examples
    --------
    >>> import numpy
    >>> from flowtrace_gpu import flowtrace_array
    >>> movie = numpy.zeros((12, 4, 4), numpy.uint8)
    >>> flowtrace_array(movie, 10, backend=CupyBackend(xp=numpy)).shape
    (3, 4, 4)
    """

    name = "cupy"

    def __init__(self, xp=None, device=None, *, runtime=None, batch=None):
        self.batch = None if batch is None else int(batch)
        if runtime is not None:
            self.runtime = runtime
        elif xp is np:
            self.runtime = HostRuntime()
        else:
            if xp is None:
                try:
                    xp, device, _ = probe(device=device)
                except BackendUnavailable as exc:
                    raise FlowtraceError(f"backend 'cupy' is unavailable: {exc}") from None
            else:
                device = device_ordinal(device, int(xp.cuda.runtime.getDeviceCount()))
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
        batch = int(config.get("gpu_batch")) if self.batch is None else self.batch
        with self.runtime.activate():
            free = self.runtime.free_bytes()
        if free is not None:
            label = f"CUDA device {self.device} ({self.device_name})"
            try:
                check_device_memory(plan, free, label, batch=batch)
            except FlowtraceError:
                if batch == 1:
                    raise
                batch = 1  # what does not fit in batches may fit one frame at a time
                check_device_memory(plan, free, label)
        compute, copy = self.streams()
        if batch > 1:
            return BatchedCupyProjector(plan, self.runtime, compute, copy, batch)
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
