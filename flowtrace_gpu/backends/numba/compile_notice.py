"""Say so while the CPU kernels compile: one log record per run that compiles.

A first run on a machine (or after an upgrade) compiles the kernels its
path needs, seconds to a minute, then Numba caches them on disk
(:mod:`flowtrace_gpu.kernels.numba.cache_place`). Numba announces each real
compile -- never a load from its cache -- with a ``numba:compile`` event; the
listener here turns the first one of a flowtrace kernel after
:func:`expect` into one INFO record on the ``flowtrace_gpu`` logger, which
the command line prints on stderr ("flowtrace: compiling CPU kernels for
color_series: first use on this machine, cached for later runs").
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_state = {"label": None, "said": True, "installed": False}


def describe(plan) -> str:
    """The path a plan takes, in the user's words: its steps, dtype and channels."""
    import dataclasses

    opts = plan.options
    # the on/off steps that are on (options.step_flags, without importing the registry here)
    steps = [f.name for f in dataclasses.fields(opts)
             if f.name != "grayscale" and getattr(opts, f.name) is True]
    if opts.normalize != "frame":
        steps.append(f"normalize={opts.normalize}")
    if getattr(opts, "saturate", 0):
        steps.append("saturate")
    what = " + ".join(steps) if steps else "the plain maximum"
    kind = "RGB " if plan.is_color_input else ""
    return f"{what} ({kind}{plan.dtype} frames)"


def expect(plan) -> None:
    """A run of ``plan`` starts: its first kernel compile is announced."""
    with _lock:
        _state["label"], _state["said"] = describe(plan), False


def _announce() -> None:
    with _lock:
        if _state["said"] or _state["label"] is None:
            return
        _state["said"] = True
        label = _state["label"]
    from ...kernels.numba.cache_place import PLACE

    where = {"temp": f"cached in {PLACE[1]} until it is cleared",
             "none": "not cached"}.get(PLACE[0], "cached for later runs")
    logging.getLogger("flowtrace_gpu").info(
        "compiling CPU kernels for %s: first use on this machine, %s", label, where)


def install() -> None:
    """Listen to Numba's compile events (once per process)."""
    with _lock:
        if _state["installed"]:
            return
        _state["installed"] = True
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev):
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            if getattr(func, "__module__", "").startswith("flowtrace_gpu."):
                _announce()

        def on_end(self, ev):
            pass

    event.register("numba:compile", _Listener())
