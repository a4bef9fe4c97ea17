"""SIGINT and SIGTERM during a run: stop cleanly instead of dying mid-write.

While :func:`stop_on_signals` is active, the first SIGINT or SIGTERM raises
:class:`~flowtrace_gpu.errors.RunInterrupted` (a ``KeyboardInterrupt``) in
the main thread, so the run unwinds as after an error: writer threads finish
the images they are encoding, partial files are removed, the manifest
records what is complete and the lock is released. Further signals during
that cleanup are ignored (a third option, SIGKILL, is always there).

Handlers are installed only in the main thread (Python runs signal handlers
there, and a library call from a worker thread must not touch them), only
over the default dispositions (an ignored SIGINT, as in background jobs, or
an application's own handler is left alone) and only for the duration of
the run: the previous handlers are back afterwards.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from ..errors import RunInterrupted

#: The signals a run stops on.
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                     if s is not None)


@contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise RunInterrupted once (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if fired:
            return  # already stopping: let the cleanup finish
        fired.append(signum)
        raise RunInterrupted(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
