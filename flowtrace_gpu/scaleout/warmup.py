"""Fill Numba's cache for the common paths, in several processes at once (``flowtrace warmup``).

The CPU kernels compile on first use and Numba caches them on disk
(:mod:`flowtrace_gpu.kernels.numba.cache_place` says where); a path not
run before compiles on its first run, seconds to a minute. :func:`warmup`
runs each path once on a tiny synthetic movie, through
:func:`~flowtrace_gpu.flowtrace_array` as a user's run would, so every
kernel those runs call is compiled and cached. Paths: each option alone and
the common pairs (:data:`DEFAULT_OPTIONS`), on gray and RGB frames of each
dtype, at the window lengths asked for (:data:`DEFAULT_LENGTHS`: short
windows, and the adaptive median's from ``median_band_min_f``), each where
it changes the path: a length from ``color_records_min_f`` on (128) adds the
records color path of long windows.

A second warmup only loads the kernels: seconds.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

#: Option sets warmed by default: each step alone, the other scalings, and the
#: pairs users combine most.
DEFAULT_OPTIONS = (
    "", "subtract_first", "subtract_median", "take_diff", "add_first_frame", "invert_color",
    "color_series", "fade_tails", "normalize=global", "normalize=none", "saturate=0.5",
    "subtract_median+color_series", "subtract_first+color_series", "invert_color+color_series",
    "subtract_median+fade_tails", "subtract_median+invert_color", "take_diff+color_series",
)
DEFAULT_DTYPES = ("uint8", "uint16")
DEFAULT_CHANNELS = ("gray", "rgb")
#: Window lengths warmed by default: 10 (every path of short windows) and 40 (uint8
#: subtract_median takes the adaptive median from median_band_min_f = 40).
DEFAULT_LENGTHS = (10, 40)


def parse_options(text: str) -> dict:
    """``'subtract_median+normalize=global'`` -> keyword arguments of flowtrace_array.

    ``''`` (or ``'default'``) is the plain maximum. A name alone turns a flag
    on; ``name=value`` sets a value (numbers are parsed).
    """
    from ..errors import FlowtraceError
    from ..options import image_option_names

    known = set(image_option_names())
    kwargs = {}
    for part in filter(None, text.replace(" ", "").split("+")):
        if part == "default":
            continue
        name, _, value = part.partition("=")
        if name not in known:
            raise FlowtraceError(f"warmup: unknown option {name!r} in {text!r}; options are "
                                 f"{', '.join(sorted(known))}")
        if not value:
            kwargs[name] = True
            continue
        try:
            kwargs[name] = float(value) if "." in value else int(value)
        except ValueError:
            kwargs[name] = value
    return kwargs


def lengths_for(kwargs: dict, lengths=DEFAULT_LENGTHS) -> list[int]:
    """Of ``lengths``, those at which the path's kernels differ: the shortest, and for each
    switch of an 'auto' method with F (adaptive median, records color path) the
    shortest length past it that ``lengths`` holds."""
    from .. import config

    lengths = sorted({int(n) for n in lengths})
    chosen = {lengths[0]}
    switches = []
    if kwargs.get("subtract_median"):
        switches.append(int(config.get("median_band_min_f")))
    if kwargs.get("color_series") or kwargs.get("fade_tails"):
        switches.append(int(config.get("color_records_min_f")))
    for switch in switches:
        past = [n for n in lengths if n >= switch]
        if past:
            chosen.add(past[0])
    return sorted(chosen)


def tasks(options=DEFAULT_OPTIONS, dtypes=DEFAULT_DTYPES, channels=DEFAULT_CHANNELS,
          lengths=DEFAULT_LENGTHS) -> list:
    """Every (options text, dtype, channels, F) to run, the slowest-to-compile first."""
    out = []
    for text in options:
        kwargs = parse_options(text)
        for dtype in dtypes:
            for chan in channels:
                for f in lengths_for(kwargs, lengths):
                    out.append((text, dtype, chan, f))
    # color paths compile longest: start them first so the pool ends together
    return sorted(out, key=lambda t: ("color" not in t[0] and "fade" not in t[0], t[3] != 10))


def run_one(text: str, dtype: str, channels: str, f: int) -> tuple[int, float]:
    """Run one path on a tiny movie; return (functions Numba compiled, seconds)."""
    import numpy as np
    from numba.core import event

    from ..api import flowtrace_array
    from ..synthetic import synthetic_movie

    compiled = []

    class _Count(event.Listener):
        def on_start(self, ev):
            compiled.append(1)

        def on_end(self, ev):
            pass

    movie = synthetic_movie(f + 6, (16, 18), dtype=np.dtype(dtype))
    if channels == "rgb":
        movie = np.stack([movie, movie[:, ::-1], movie[:, :, ::-1]], axis=-1)
    start = time.perf_counter()
    with event.install_listener("numba:compile", _Count()):
        flowtrace_array(movie, f, backend="numba", progress=False, **parse_options(text))
    return len(compiled), time.perf_counter() - start


def _worker_init() -> None:
    # Each process compiles one path at a time; the kernels' threads only slow the others.
    import numba

    numba.set_num_threads(1)


def warmup(options=DEFAULT_OPTIONS, dtypes=DEFAULT_DTYPES, channels=DEFAULT_CHANNELS,
           jobs: int | None = None, progress: bool = True, lengths=DEFAULT_LENGTHS) -> dict:
    """Compile and cache the kernels of the given paths; return a summary.

    Parameters
    ----------
    options : sequence of str
        Option sets, each ``'+'``-joined (:func:`parse_options`); ``''`` is
        the plain maximum.
    dtypes : sequence of str
        Frame dtypes ('uint8', 'uint16', 'float32', ...).
    channels : sequence of {'gray', 'rgb'}
    jobs : int, optional
        Processes compiling at once; default the machine's cores.
    progress : bool
        A progress bar on stderr.
    lengths : sequence of int
        Window lengths (:func:`lengths_for` keeps those that change a path).

    Returns
    -------
    dict
        ``paths`` (count), ``compiled`` (functions compiled), ``seconds``,
        ``recompiled`` (functions a second, checking pass still compiled:
        entries two processes wrote to one cache index at the same moment)
        and ``cache`` (where the kernels are: ``(kind, folder)``).
    """
    import numpy as np
    from tqdm.auto import tqdm

    from ..errors import FlowtraceError

    for chan in channels:
        if chan not in ("gray", "rgb"):
            raise FlowtraceError(f"warmup: channels must be 'gray' or 'rgb', got {chan!r}")
    for dtype in dtypes:
        try:
            np.dtype(dtype)
        except TypeError:
            raise FlowtraceError(f"warmup: unknown dtype {dtype!r}; e.g. uint8, uint16, float32") from None
    if not lengths or min(int(n) for n in lengths) < 2:
        raise FlowtraceError(f"warmup: window lengths must be 2 or more, got {list(lengths)}")
    todo = tasks(options, dtypes, channels, lengths)
    jobs = max(1, int(jobs or os.cpu_count() or 1))
    start = time.perf_counter()
    totals = {"paths": len(todo), "compiled": 0, "recompiled": 0}
    import multiprocessing

    # spawn: a forked child would inherit Numba's threads and locks mid-state
    context = multiprocessing.get_context("spawn")
    # The check runs in fresh processes: the first ones hold their kernels in memory.
    for label, key in (("compiling kernels", "compiled"), ("checking the cache", "recompiled")):
        if key == "recompiled" and not totals["compiled"]:
            break  # all loaded from the cache: nothing written, nothing to check
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init) as pool:
            futures = [pool.submit(run_one, *task) for task in todo]
            with tqdm(total=len(todo), desc=label, unit="path", disable=not progress) as bar:
                for future in as_completed(futures):
                    totals[key] += future.result()[0]
                    bar.update()
    from ..kernels.numba import cache_place

    totals["cache"] = cache_place.PLACE
    totals["seconds"] = time.perf_counter() - start
    return totals
