"""The public calls: the original's ``flowtrace`` and ``flowtrace_array``."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import config, pipeline
from .backends import get_backend
from .errors import FlowtraceError
from .io.formats import open_source, open_writer
from .io.grayscale import GrayscaleSource
from .io.iterable import IterableSource
from .io.sources import ArraySource, default_probe_workers
from .io.writers import ArrayWriter, ListWriter
from .io.zarr_store import is_zarr_path
from .options import FLOWTRACE, FLOWTRACE_ARRAY, split
from .plan import TracePlan, check_window, trace_sequence
from .saturation import LevelRecorder


def _start(kwargs: dict, call: str):
    """Check every option and setting of a call before any work: (TraceOptions, RunOptions, workers)."""
    config.validate()  # every FLOWTRACE_* variable
    options, run = split(kwargs, call)
    workers = max(1, min(run.max_cores, os.cpu_count() or 1)) if run.use_parallel else 0
    return options, run, workers


def _plan(source, frames_to_merge, frames_to_skip, options):
    """The plan, the frame indices windows slide over, and the number of images (or None)."""
    f = check_window(frames_to_merge, source.n_frames, frames_to_skip, options)
    if options.bit_depth is None and source.bit_depth is not None and source.dtype.itemsize > 1:
        options = replace(options, bit_depth=source.bit_depth)  # e.g. a 12-bit camera file
    plan = TracePlan(f, source.frame_shape, source.dtype, options)
    sequence = trace_sequence(source.n_frames, f, options.windows)
    n_out = None if source.n_frames is None else len(sequence) - f + 1
    return plan, sequence, n_out


def _trace(source, sequence, n_out, plan, backend, writer, *, workers, progress):
    """Run the pipeline; with normalize='global', a measuring pass first."""
    if plan.scaling == "float":
        if source.n_frames is None:
            raise FlowtraceError(
                "normalize='global' reads the frames twice, but an iterable of frames can be "
                "read once; pass an array or a file, or use normalize='frame' or 'none'"
            )
        # One scale for the whole run needs the brightest value of every
        # image before the first is written: trace once without writing.
        percent = plan.options.saturate
        recorder = (LevelRecorder(percent, backend.name) if percent else pipeline.PeakRecorder())
        peak = pipeline.run(source.frames(sequence), plan, backend, recorder,
                            n_out, workers=workers, progress=progress, desc="measuring")
        plan = replace(plan, scaling="fixed", peak=peak)
    result = pipeline.run(source.frames(sequence), plan, backend, writer, n_out,
                          workers=workers, progress=progress)
    if n_out is None and len(result) == 0:
        raise FlowtraceError(
            f"frames_to_merge={plan.frames_to_merge} but the iterable held fewer frames; "
            "give more frames or a shorter window"
        )
    return result


def flowtrace(image_dir, frames_to_merge, out_dir="same", use_parallel=True, max_cores=8,
              frames_to_skip=1, *, subtract_first=False, subtract_median=False, take_diff=False,
              diff_order=1, add_first_frame=False, color_series=False, colormap=None,
              fade_tails=False, invert_color=False, windows="sliding", normalize="frame",
              saturate=0.0, bit_depth=None, grayscale=False, format=None, fps=None, backend="auto",
              device=None, progress=None):
    """Write one pathline image per window of frames, as the original flowtrace.

    Parameters
    ----------
    image_dir : path-like
        The recording: a folder of frames (``.tif``, ``.tiff``, ``.png``,
        ``.jpg``, ``.bmp``, read in natural order, ``frame2`` before
        ``frame10``), a multi-page TIFF, a video (``.mp4``, ``.avi``,
        ``.mov``, ``.mkv``), a Photron ``.mraw`` or a Phantom ``.cine``.
    frames_to_merge : int
        Frames per window, F.
    out_dir : path-like, default 'same'
        A folder for one image per window (created if missing; ``'same'``:
        beside the recording), a ``.tif``/``.tiff`` file (one multi-page
        TIFF) or a video file (``.mp4``, ``.avi``, ``.mov``, ``.mkv``).
        Image i of a folder is ``<frame i's name>_streamlines_frames<F>.png``.
    use_parallel : bool, default True
        Read, compute and write on separate threads; False runs serially.
    max_cores : int, default 8
        Most threads to use (capped at the machine's cores).
    frames_to_skip : int, default 1
        Keep every ``frames_to_skip``-th frame, starting with the first.
    subtract_first : bool
        Subtract each window's first frame.
    subtract_median : bool
        Subtract each window's per-pixel median (removes the still background).
    take_diff : bool
        Trace the ``diff_order``-th difference of the frames in each window.
    diff_order : int, default 1
    add_first_frame : bool
        Add the window's raw first frame back before projecting.
    color_series : bool
        Tint each frame by its time in the window (purple -> orange); RGB out.
    colormap : str or sequence of colors, optional
        With ``color_series``: a matplotlib colormap name, or two or more
        colors (RGB 0-255 or 0-1, or '#rrggbb') spaced evenly in time.
        Default: the original's purple -> orange ramp.
    fade_tails : bool
        Weight frame j of the window's K by j/(K-1), oldest frame black, as
        the MATLAB flowtrace's fade_tails.
    invert_color : bool
        Dark particles on a light background: ``255 - min`` instead of max
        (the dtype's maximum instead of 255 for 16-bit frames).
    windows : {'sliding', 'original'}, default 'sliding'
        ``'sliding'``: every window of F consecutive frames, N-F+1 images.
        ``'original'`` reproduces the original's files, whose windows never
        read frame F (the (F+1)-th): N-F images.
    normalize : {'frame', 'global', 'none'}, default 'frame'
        ``'frame'``: each image stretched so its brightest value is 255 (the
        original; a sequence flickers). ``'global'``: one scale for the whole
        run, from a first pass that measures the brightest value of every
        image (the frames are read twice). ``'none'``: the raw projection
        values in the input dtype (16-bit stays 16-bit), rounded and clipped.
    saturate : float, default 0
        Percent of values allowed to saturate (ImageJ's auto-contrast uses
        0.35): the stretch maps the (100 - saturate)th percentile of each
        image (``normalize='frame'``) or of all images (``'global'``) to 255
        and clips above, so one bright reflection no longer darkens the
        particles. 0: the brightest value, as the original.
    bit_depth : int, optional
        Bits actually used by integer frames (10 or 12 for many cameras that
        store 16 bits): ``invert_color`` then uses ``2**bit_depth - 1``.
        Default: what the camera file says, if it does.
    grayscale : bool
        Trace the luma of color frames (BT.601) instead of each channel.
    format : {'png', 'tiff', 'video'}, optional
        Output kind; default from ``out_dir`` (a folder: PNG). ``'tiff'``
        with a folder writes one TIFF per window (16 bits kept).
    fps : float, optional
        Frame rate of a video output; default the recording's, else 30.
    backend : {'auto', 'cupy', 'numba', 'numpy'}
        Array backend; ``'auto'`` honours ``FLOWTRACE_BACKEND``.
    device : int, optional
        CUDA device of the cupy backend; default ``FLOWTRACE_DEVICE`` (0).
    progress : bool, optional
        Progress bar on stderr; default: only when stderr is a terminal.

    Returns
    -------
    list of pathlib.Path, or pathlib.Path
        The images written, in order; the file, for a TIFF stack or video.

    Raises
    ------
    FlowtraceError
        For bad input, before any image is written.

    Examples
    --------
    >>> flowtrace('sample_data', 30, 'sample_output/', subtract_median=True)  # doctest: +SKIP
    """
    options, run, workers = _start(locals(), FLOWTRACE)
    if not isinstance(image_dir, (str, os.PathLike)):
        raise FlowtraceError(f"image_dir must be a path to a folder or file, got {image_dir!r}")
    skip = run.frames_to_skip
    source = open_source(image_dir, skip, grayscale=options.grayscale,
                         probe_workers=default_probe_workers() if workers else 1)
    plan, sequence, n_out = _plan(source, frames_to_merge, skip, options)
    if plan.image_dtype not in (np.uint8, np.uint16):
        raise FlowtraceError(
            f"normalize='none' keeps the frames' {plan.image_dtype} values, which image files "
            "cannot hold (8- or 16-bit integers); use normalize='frame' or 'global'"
        )
    engine = get_backend(run.backend, run.device)
    if isinstance(out_dir, str) and out_dir == "same":
        location = Path(image_dir)
        # beside a recording file or a zarr array (itself a folder), in a folder of frames
        out_dir = location if location.is_dir() and not is_zarr_path(location) else location.parent
    suffix = f"_streamlines_frames{plan.frames_to_merge}"
    writer = open_writer(out_dir, [source.names[i] + suffix for i in range(n_out)],
                         format=run.format, fps=run.fps, source_fps=source.fps,
                         dtype=plan.image_dtype)
    return _trace(source, sequence, n_out, plan, engine, writer, workers=workers,
                  progress=_progress(run))


def flowtrace_array(frames, frames_to_merge, frames_to_skip=1, *, subtract_first=False,
                    subtract_median=False, take_diff=False, diff_order=1, add_first_frame=False,
                    color_series=False, colormap=None, fade_tails=False, invert_color=False,
                    windows="sliding", normalize="frame", saturate=0.0, bit_depth=None,
                    grayscale=False,
                    use_parallel=True, max_cores=8, backend="auto", device=None, progress=None):
    """Pathline images of frames in memory, in a memmap or zarr array, or from an iterable.

    Parameters
    ----------
    frames : array-like (N, H, W) or (N, H, W, C), or iterable of (H, W[, C]) frames
        Any integer or float dtype. Arrays, memmaps and zarr arrays are read
        one frame at a time; an iterable (e.g. a generator) is walked once.
    frames_to_merge, frames_to_skip
        As for :func:`flowtrace`.
    subtract_first, subtract_median, take_diff, diff_order, add_first_frame, \
color_series, colormap, fade_tails, invert_color, windows, normalize, saturate, bit_depth, \
grayscale
        As for :func:`flowtrace`: every option that shapes the images.
    use_parallel, max_cores, backend, device, progress
        As for :func:`flowtrace`.

    Returns
    -------
    numpy.ndarray, shape (M, H, W) or (M, H, W, 3)
        The images :func:`flowtrace` would write, in order: M = N-F+1
        (``windows='original'``: N-F, and 1 when N == F); uint8, or the
        input dtype with ``normalize='none'``.

    Examples
    --------
    >>> import numpy as np
    >>> movie = np.random.default_rng(0).integers(0, 255, (40, 64, 64), dtype=np.uint8)
    >>> flowtrace_array(movie, 10, progress=False).shape
    (31, 64, 64)
    >>> flowtrace_array(movie, 10, windows='original', color_series=True, progress=False).shape
    (30, 64, 64, 3)
    """
    options, run, workers = _start(locals(), FLOWTRACE_ARRAY)
    skip = run.frames_to_skip
    if (hasattr(frames, "shape") and hasattr(frames, "dtype")) or isinstance(frames, (list, tuple)):
        source = ArraySource(frames, skip)
    else:
        source = IterableSource(frames, skip)
    if options.grayscale and len(source.frame_shape) == 3:
        source = GrayscaleSource(source)
    plan, sequence, n_out = _plan(source, frames_to_merge, skip, options)
    engine = get_backend(run.backend, run.device)
    if n_out is None:
        writer = ListWriter()
    else:
        writer = ArrayWriter(np.empty((n_out,) + plan.out_shape, dtype=plan.image_dtype))
    return _trace(source, sequence, n_out, plan, engine, writer, workers=workers,
                  progress=_progress(run))


def _progress(run) -> bool:
    """The bar is shown when asked for, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if run.progress is None else run.progress
