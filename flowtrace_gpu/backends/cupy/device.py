"""Internal to the cupy backend: find CuPy and a CUDA device, or say why not.

Nothing here runs at import time; :func:`probe` imports CuPy and asks CUDA
only when called (by ``backend.load`` or ``CupyBackend()``).
"""

from __future__ import annotations

import importlib

from ... import config
from ...errors import FlowtraceError
from ..base import BackendUnavailable

INSTALL_HINT = "install flowtrace-gpu[gpu] (CuPy for CUDA 12)"
OTHER_BACKENDS = "or use backend='numba' or backend='numpy'"


def _import_cupy():
    """The ``cupy`` module (imported when first needed)."""
    return importlib.import_module("cupy")


def probe(import_cupy=None, device=None, smoke_test=True):
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
        ordinal = device_ordinal(device, count)
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


def device_ordinal(device, count: int) -> int:
    """Validate a device ordinal (default: ``FLOWTRACE_DEVICE``) against ``count``.

    Raises
    ------
    FlowtraceError
        If ``device`` is not a number or not one of CUDA's ``count`` devices.
    """
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
