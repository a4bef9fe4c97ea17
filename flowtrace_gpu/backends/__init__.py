"""Backend selection (internal): which array library runs the kernels.

Backends load lazily, on first use, in the order of :data:`AUTO_ORDER`;
nothing here imports CuPy or probes CUDA at import time. Each backend module
has a ``load()`` that returns the backend or raises
:class:`BackendUnavailable` saying why and what to install.
"""

from __future__ import annotations

import importlib
import threading

from .. import config
from ..errors import FlowtraceError
from .base import Backend, BackendUnavailable

#: name -> module holding ``load()``
_MODULES = {
    "cupy": "flowtrace_gpu.backends.cupy.backend",
    "numba": "flowtrace_gpu.backends.numba.backend",
    "numpy": "flowtrace_gpu.backends.numpy_backend",
}

#: 'auto' takes the first of these that loads.
AUTO_ORDER = ("cupy", "numba", "numpy")

_cache: dict[str, Backend | BaseException] = {}
_lock = threading.Lock()


def _load(name: str) -> Backend:
    with _lock:
        if name not in _cache:
            try:
                module = importlib.import_module(_MODULES[name])
                _cache[name] = module.load()
            except BackendUnavailable as exc:
                _cache[name] = exc
            except ImportError as exc:  # the backend's own module is missing
                _cache[name] = BackendUnavailable(f"{name} backend is not installed ({exc})")
        result = _cache[name]
    if isinstance(result, BaseException):
        # A fresh exception each time: re-raising the cached one would chain
        # every raise's traceback onto it, and with them the callers' frames
        # (their frames and images), never freed.
        raise BackendUnavailable(*result.args)
    return result


def available_backends() -> list[str]:
    """Names of the backends that load on this machine, fastest first."""
    names = []
    for name in AUTO_ORDER:
        try:
            _load(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def get_backend(name: str | Backend = "auto", device: int | None = None) -> Backend:
    """Return the backend called ``name``.

    Parameters
    ----------
    name : {'auto', 'cupy', 'numba', 'numpy'} or Backend
        ``'auto'`` reads ``FLOWTRACE_BACKEND`` (default ``auto``) and then
        takes the first backend that loads, in the order cupy, numba, numpy.
        A backend object is returned as it is.
    device : int, optional
        CUDA device for the cupy backend; default ``FLOWTRACE_DEVICE`` (0).
        CPU backends ignore it.

    Raises
    ------
    FlowtraceError
        If the named backend does not exist or cannot run here; the message
        says what to install.
    """
    if isinstance(name, Backend):
        return name
    backend = _resolve(name)
    if device is not None and backend.name == "cupy" and device != getattr(backend, "device", None):
        from .cupy.backend import CupyBackend

        backend = CupyBackend(device=device)
    return backend


def _resolve(name) -> Backend:
    if not isinstance(name, str):
        raise FlowtraceError(f"backend must be a name such as 'auto' or 'numpy', got {name!r}")
    requested = name.strip().lower()
    if requested == "auto":
        requested = str(config.get("backend")).strip().lower()
    if requested == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            try:
                return _load(candidate)
            except BackendUnavailable as exc:
                reasons.append(f"{candidate}: {exc}")
        raise FlowtraceError("no backend can run here: " + "; ".join(reasons))
    if requested not in _MODULES:
        raise FlowtraceError(
            f"unknown backend {name!r}; choose one of 'auto', {', '.join(map(repr, _MODULES))}"
        )
    try:
        return _load(requested)
    except BackendUnavailable as exc:
        raise FlowtraceError(f"backend {requested!r} is unavailable: {exc}") from None


def clear_cache() -> None:
    """Forget loaded backends (tests use this after faking the environment)."""
    with _lock:
        _cache.clear()
