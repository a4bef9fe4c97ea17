"""Defaults and the environment variables that override them.

Every tunable lives in :data:`DEFAULTS`; the environment variables below are
read when a run starts (never at import), so a script may set them late.

=====================  ===========  ==========================================
variable               default      meaning
=====================  ===========  ==========================================
``FLOWTRACE_BACKEND``  ``auto``     backend when ``backend='auto'`` is passed:
                                    ``auto``, ``cupy``, ``numba`` or ``numpy``
``FLOWTRACE_DEVICE``   ``0``        CUDA device ordinal for the CuPy backend
``FLOWTRACE_PREFETCH`` ``8``        frames the reader thread decodes ahead
``FLOWTRACE_PNG_LEVEL````1``        deflate level of written PNGs (0-9);
                                    changes file size and speed, never pixels
=====================  ===========  ==========================================
"""

from __future__ import annotations

import os

DEFAULTS: dict[str, object] = {
    "backend": "auto",
    "device": 0,
    # Frames decoded ahead of the compute thread. Eight 1 MP 8-bit frames are
    # 8 MB: enough to ride out a slow file without making memory O(movie).
    "prefetch": 8,
    # Level 1 is ~4x faster than zlib's default 6 for ~10 % larger files on
    # particle movies (bench/bench_png.py); pixels are identical.
    "png_level": 1,
    # Outputs waiting for a writer thread, per writer.
    "write_queue_per_writer": 2,
}

_ENV = {
    "backend": ("FLOWTRACE_BACKEND", str),
    "device": ("FLOWTRACE_DEVICE", int),
    "prefetch": ("FLOWTRACE_PREFETCH", int),
    "png_level": ("FLOWTRACE_PNG_LEVEL", int),
}


def get(key: str):
    """Return the setting ``key``: its environment variable if set, else the default."""
    from .errors import FlowtraceError

    env = _ENV.get(key)
    if env is not None:
        name, cast = env
        raw = os.environ.get(name)
        if raw not in (None, ""):
            try:
                return cast(raw)
            except ValueError:
                raise FlowtraceError(
                    f"environment variable {name}={raw!r} is not a valid {cast.__name__}; "
                    f"unset it or give a value like {DEFAULTS[key]!r}"
                ) from None
    return DEFAULTS[key]
