"""The public calls: the original's ``flowtrace`` and ``flowtrace_array``."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import numpy as np

from . import pipeline
from .backends import get_backend
from .errors import FlowtraceError
from .io.sources import ArraySource, ImageFolderSource, default_probe_workers
from .io.writers import ArrayWriter, PngFolderWriter, prepare_out_dir
from .plan import TraceOptions, TracePlan, _positive_int, check_window, trace_sequence


def _workers(use_parallel, max_cores) -> int:
    cores = _positive_int("max_cores", max_cores)
    if not use_parallel:
        return 0
    return max(1, min(cores, os.cpu_count() or 1))


def _plan(source, frames_to_merge, frames_to_skip, options) -> tuple[TracePlan, list[int]]:
    f = check_window(frames_to_merge, source.n_frames, frames_to_skip, options)
    plan = TracePlan(f, source.frame_shape, source.dtype, options)
    return plan, trace_sequence(source.n_frames, f, options.windows)


def _trace(source, sequence, plan, backend, writer, *, workers, progress):
    """Run the pipeline; with normalize='global', a measuring pass first."""
    n_out = len(sequence) - plan.frames_to_merge + 1
    if plan.scaling == "float":
        # One scale for the whole run needs the brightest value of every
        # image before the first is written: trace once without writing.
        peak = pipeline.run(source.frames(sequence), plan, backend, pipeline.PeakRecorder(),
                            n_out, workers=workers, progress=progress, desc="measuring")
        plan = replace(plan, scaling="fixed", peak=peak)
    return pipeline.run(source.frames(sequence), plan, backend, writer, n_out,
                        workers=workers, progress=progress)


def flowtrace(image_dir, frames_to_merge, out_dir="same", use_parallel=True, max_cores=8,
              frames_to_skip=1, *, invert_color=False, take_diff=False, diff_order=1,
              subtract_median=False, subtract_first=False, add_first_frame=False,
              color_series=False, windows="original", normalize="frame", bit_depth=None,
              colormap=None, fade_tails=False, backend="auto", progress=None):
    """Write one pathline image per window of frames, as the original flowtrace.

    Parameters
    ----------
    image_dir : path-like
        Folder of frames (``.tif``, ``.tiff``, ``.png``, ``.jpg``, ``.bmp``),
        read in natural order (``frame2`` before ``frame10``).
    frames_to_merge : int
        Frames per window, F.
    out_dir : path-like, default 'same'
        Folder for the images, created if missing; ``'same'`` writes beside
        the frames. Output i is ``<frame i stem>_streamlines_frames<F>.png``.
    use_parallel : bool, default True
        Read, compute and write on separate threads; False runs serially.
    max_cores : int, default 8
        Most threads to use (capped at the machine's cores).
    frames_to_skip : int, default 1
        Keep every ``frames_to_skip``-th frame, starting with the first.
    invert_color : bool
        Dark particles on a light background: ``255 - min`` instead of max
        (the dtype's maximum instead of 255 for 16-bit frames).
    take_diff : bool
        Trace the ``diff_order``-th difference of the frames in each window.
    diff_order : int, default 1
    subtract_median : bool
        Subtract each window's per-pixel median (removes the still background).
    subtract_first : bool
        Subtract each window's first frame.
    add_first_frame : bool
        Add the window's raw first frame back before projecting.
    color_series : bool
        Tint each frame by its time in the window (purple -> orange); RGB out.
    windows : {'original', 'sliding'}, default 'original'
        ``'original'`` reproduces the original's pixels, which never read
        frame F (the (F+1)-th): N-F images. ``'sliding'`` uses every
        window of F consecutive frames: N-F+1 images.
    normalize : {'frame', 'global', 'none'}, default 'frame'
        ``'frame'``: each image stretched so its brightest value is 255 (the
        original; a sequence flickers). ``'global'``: one scale for the whole
        run, from a first pass that measures the brightest value of every
        image (the frames are read twice). ``'none'``: the raw projection
        values in the input dtype (16-bit stays 16-bit), rounded and clipped.
    bit_depth : int, optional
        Bits actually used by integer frames (10 or 12 for many cameras that
        store 16 bits): ``invert_color`` then uses ``2**bit_depth - 1``.
    colormap : str or sequence of colors, optional
        With ``color_series``: a matplotlib colormap name, or two or more
        colors (RGB 0-255 or 0-1, or '#rrggbb') spaced evenly in time.
        Default: the original's purple -> orange ramp.
    fade_tails : bool
        Weight frame j of the window's K by j/(K-1), oldest frame black, as
        the MATLAB flowtrace's fade_tails.
    backend : {'auto', 'cupy', 'numba', 'numpy'}
        Array backend; ``'auto'`` honours ``FLOWTRACE_BACKEND``.
    progress : bool, optional
        Progress bar on stderr; default: only when stderr is a terminal.

    Returns
    -------
    list of pathlib.Path
        The images written, in order.

    Raises
    ------
    FlowtraceError
        For bad input, before any image is written.

    Examples
    --------
    >>> flowtrace('sample_data', 30, 'sample_output/', subtract_median=True)  # doctest: +SKIP
    """
    options = TraceOptions(invert_color, take_diff, diff_order, subtract_median,
                           subtract_first, add_first_frame, color_series, windows,
                           normalize, bit_depth, colormap, fade_tails)
    skip = _positive_int("frames_to_skip", frames_to_skip)
    workers = _workers(use_parallel, max_cores)
    source = ImageFolderSource(image_dir, skip, probe_workers=default_probe_workers() if workers else 1)
    plan, sequence = _plan(source, frames_to_merge, skip, options)
    if plan.image_dtype not in (np.uint8, np.uint16):
        raise FlowtraceError(
            f"normalize='none' keeps the frames' {plan.image_dtype} values, which PNG cannot "
            "hold (8- or 16-bit integers); use normalize='frame' or 'global'"
        )
    engine = get_backend(backend)
    target = prepare_out_dir(source.directory if _is_same(out_dir) else out_dir)
    n_out = len(sequence) - plan.frames_to_merge + 1
    suffix = f"_streamlines_frames{plan.frames_to_merge}.png"
    writer = PngFolderWriter(target, [source.names[i] + suffix for i in range(n_out)])
    if progress is None:
        progress = sys.stderr.isatty()
    return _trace(source, sequence, plan, engine, writer, workers=workers, progress=progress)


def _is_same(out_dir) -> bool:
    return isinstance(out_dir, str) and out_dir == "same"


def flowtrace_array(frames, frames_to_merge, frames_to_skip=1, *, invert_color=False,
                    take_diff=False, diff_order=1, subtract_median=False, subtract_first=False,
                    add_first_frame=False, color_series=False, windows="original",
                    normalize="frame", bit_depth=None, colormap=None, fade_tails=False,
                    backend="auto", use_parallel=True, max_cores=8, progress=False):
    """Pathline images of frames held in memory.

    Parameters
    ----------
    frames : array-like, shape (N, H, W) or (N, H, W, C)
        Any integer or float dtype; NumPy arrays and memmaps are read one
        frame at a time.
    frames_to_merge, frames_to_skip, invert_color, ..., backend
        As for :func:`flowtrace`.

    Returns
    -------
    numpy.ndarray, shape (M, H, W) or (M, H, W, 3)
        The images :func:`flowtrace` would write, in order: M = N-F with
        ``windows='original'`` (1 when N == F), N-F+1 with ``'sliding'``;
        uint8, or the input dtype with ``normalize='none'``.

    Examples
    --------
    >>> import numpy as np
    >>> movie = np.random.default_rng(0).integers(0, 255, (40, 64, 64), dtype=np.uint8)
    >>> flowtrace_array(movie, 10).shape
    (30, 64, 64)
    >>> flowtrace_array(movie, 10, windows='sliding', color_series=True).shape
    (31, 64, 64, 3)
    """
    options = TraceOptions(invert_color, take_diff, diff_order, subtract_median,
                           subtract_first, add_first_frame, color_series, windows,
                           normalize, bit_depth, colormap, fade_tails)
    skip = _positive_int("frames_to_skip", frames_to_skip)
    workers = _workers(use_parallel, max_cores)
    source = ArraySource(frames, skip)
    plan, sequence = _plan(source, frames_to_merge, skip, options)
    engine = get_backend(backend)
    n_out = len(sequence) - plan.frames_to_merge + 1
    out = np.empty((n_out,) + plan.out_shape, dtype=plan.image_dtype)
    return _trace(source, sequence, plan, engine, ArrayWriter(out), workers=workers,
                  progress=progress)
