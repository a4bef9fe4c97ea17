"""Faults injected where the operating system would raise them (a full disk, a failing call)."""

from __future__ import annotations

import errno
import os
import threading

#: What a full disk raises.
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_at(original, at: int, exc: BaseException, persist: bool = False):
    """``original`` whose ``at``-th call (0-based) raises ``exc`` (and, if ``persist``,
    every later one: a disk that stays full). A plain function, so it binds as a method."""
    calls = []
    lock = threading.Lock()

    def wrapper(*args, **kwargs):
        with lock:
            n = len(calls)
            calls.append(n)
        if n == at or (persist and n > at):
            raise exc
        return original(*args, **kwargs)

    return wrapper
