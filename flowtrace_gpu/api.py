"""The public calls: the original's ``flowtrace`` and ``flowtrace_array``."""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from . import config
from ._version import __version__
from .backends import get_backend
from .engine import pipeline
from .engine.plan import plan_run
from .engine.saturation import LevelRecorder
from .errors import FlowtraceError
from .io.formats import open_source, open_writer, output_kind
from .io.grayscale import GrayscaleSource
from .io.iterable import IterableSource
from .io.own_files import output_names
from .io.selection import select
from .io.sources import ArraySource, default_probe_workers, source_files
from .io.writers import ArrayWriter, ListWriter
from .io.zarr_store import chunk_files, is_zarr_path
from .options import FLOWTRACE, FLOWTRACE_ARRAY, recorded_options, split
from .runs.legend import legend_path, write_legend
from .runs.manifest import Manifest, source_identity
from .runs.output_run import OutputRun, Segment, refuse_overwriting_input
from .runs.signals import stop_on_signals


def _start(kwargs: dict, call: str):
    """Check every option and setting of a call before any work: (TraceOptions, RunOptions, workers)."""
    config.validate()  # every FLOWTRACE_* variable
    options, run = split(kwargs, call)
    workers = max(1, min(run.max_cores, os.cpu_count() or 1)) if run.use_parallel else 0
    return options, run, workers


class _Stepped:
    """A writer taking the image at every ``stride``-th window, as image ``index // stride``."""

    def __init__(self, writer, stride: int):
        self.writer, self.stride = writer, stride
        self.parallel = writer.parallel

    def write(self, index, image) -> None:
        if index % self.stride == 0:
            self.writer.write(index // self.stride, image)

    def close(self):
        return self.writer.close()

    def abort(self) -> None:
        abort = getattr(self.writer, "abort", None)
        if abort is not None:
            abort()


class _Multiples:
    """The window indices ``0, stride, 2 stride...``: the pipeline's ``keep``."""

    def __init__(self, stride: int):
        self.stride = stride

    def __contains__(self, index) -> bool:
        return index % self.stride == 0


def _windows(n_out, stride):
    """Windows a pass pushes for ``n_out`` images (None when unknown)."""
    return None if n_out is None else (n_out - 1) * stride + 1


def _frames(source, indices):
    """The source's frames at ``indices``; float frames checked for inf and nan."""
    frames = source.frames(indices)
    if np.dtype(source.dtype).kind != "f":
        return frames
    return _finite(frames, source, indices)


def _finite(frames, source, indices):
    # One inf makes the peak inf, so every image holding it (with
    # normalize='global': every image) would be black: refuse it, naming the frame.
    labels = indices if isinstance(indices, (list, range)) else itertools.count()
    label = getattr(source, "_label", lambda i: f"frame {i}")
    for frame, i in zip(frames, labels):
        bad = frame.size - int(np.count_nonzero(np.isfinite(frame)))
        if bad:
            raise FlowtraceError(
                f"{label(i)} holds {bad} non-finite values (inf or nan), which would make every "
                "image holding them meaningless; replace them first (e.g. numpy.nan_to_num)")
        yield frame


def _pass(source, indices, plan, backend, writer, n_out, *, first=0, keep=None, stride=1,
          **kwargs):
    """One pipeline pass over ``indices``; a frame that fails to read gets its raw index.

    ``n_out`` images, one per ``stride`` windows from window ``first * stride``;
    ``keep`` holds the indices of the images to write (default: all).
    """
    if stride > 1:
        writer = _Stepped(writer, stride)
        keep = _Multiples(stride) if keep is None else {k * stride for k in keep}
    try:
        return pipeline.run(_frames(source, indices), plan, backend, writer,
                            _windows(n_out, stride), first_index=first * stride,
                            keep=keep, **kwargs)
    except pipeline.FrameReadError as exc:
        if isinstance(indices, (list, range)):
            exc.frame = source.raw_index(indices[exc.position])  # as counted in the recording
        raise


def _trace(source, sequence, n_out, plan, backend, writer, *, workers, progress, stride=1,
           every=None):
    """Run the pipeline for flowtrace_array; with normalize='global', a measuring pass first."""
    if plan.scaling == "float":
        if source.n_frames is None:
            raise FlowtraceError(
                "normalize='global' reads the frames twice, but an iterable of frames can be "
                "read once; pass an array or a file, or use normalize='frame' or 'none'"
            )
    kwargs = dict(workers=workers, progress=progress)
    try:
        if plan.scaling == "float":  # the scale of every window, whichever are kept
            plan = replace(plan, scaling="fixed",
                           peak=_measure(source, *(every or (sequence, n_out)), plan, backend,
                                         **kwargs))
        result = _pass(source, sequence, plan, backend, writer, n_out, stride=stride, **kwargs)
    except pipeline.FrameReadError as exc:
        raise exc.cause from None  # no files: the reader's own message says it all
    if n_out is None and len(result) == 0:
        raise FlowtraceError(
            f"frames_to_merge={plan.frames_to_merge} but the iterable held fewer frames; "
            "give more frames or a shorter window"
        )
    return result


def _measure(source, sequence, n_out, plan, backend, **kwargs) -> float:
    """The global peak: one pass that traces without writing (normalize='global')."""
    percent = plan.options.saturate
    recorder = LevelRecorder(percent, backend) if percent else pipeline.PeakRecorder()
    return _pass(source, sequence, plan, backend, recorder, n_out, desc="measuring", **kwargs)


def flowtrace(image_dir, frames_to_merge, out_dir="same", use_parallel=True, max_cores=8,
              frames_to_skip=1, *, subtract_first=False, subtract_median=False, take_diff=False,
              diff_order=1, add_first_frame=False, color_series=False, colormap=None,
              fade_tails=False, invert_color=False, windows="sliding", normalize="frame",
              saturate=0.0, bit_depth=None, grayscale=False, start=0, stop=None, crop=None,
              window_step=1, format=None, fps=None, backend="auto", device=None, progress=None,
              legend=False, resume=False):
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
        Keep every ``frames_to_skip``-th frame, starting with the first
        (with ``start``: with frame ``start``).
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
    start, stop : int, default 0 and None
        Trace the frames ``[start, stop)`` of the recording (``stop`` None
        or past the end: to the end), taken before ``frames_to_skip`` and
        windowing. Images
        keep the names of their windows' first frames.
    crop : (top, left, height, width), optional
        Trace only this region, in pixels of the frame as displayed. It is
        applied while reading: TIFF stacks, MRAW, cine and zarr read and
        unpack only the rows (zarr: the chunks) it needs; raw Bayer cines
        demosaic only those rows and columns plus a one-pixel margin.
    window_step : int, default 1
        An image for every ``window_step``-th window only: image k covers the
        window starting at ``k * window_step`` (``windows='original'``: every
        n-th of the original's windows). ``window_step=frames_to_merge``
        gives non-overlapping groups, as Fiji's grouped Z projection; a
        step above F reads only the frames of the windows kept.
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
    legend : bool, default False
        With ``color_series`` or ``fade_tails``: also write the time legend
        (:func:`~flowtrace_gpu.runs.legend.time_legend`), ``legend.png`` in a
        folder output, ``<out>.legend.png`` beside a file output; ticks in
        ms or s when the frame rate is known (``fps`` or the recording's).
    resume : bool, default False
        Finish an output that an earlier run with the same options and
        source left incomplete (killed, interrupted, disk full): its
        complete images are kept untouched and only the missing ones are
        computed, equal bit for bit to an uninterrupted run's. Refused,
        saying what differs, if the options or the source changed. A
        single-file output (TIFF stack, video) is started over. See
        docs/guide/long-runs.md.

    Returns
    -------
    list of pathlib.Path, or pathlib.Path
        Every image of the output, in order; the file, for a TIFF stack or video.

    Raises
    ------
    FlowtraceError
        Bad input, or an output that is in use or would overwrite the
        input: raised before anything is written.
    IncompleteRunError
        (a FlowtraceError) A frame could not be read or an image not
        written mid-run: says which, how many images are complete and how
        to continue.
    RunInterrupted
        (a KeyboardInterrupt) SIGINT or SIGTERM stopped the run, after
        in-flight images were finished and the manifest updated.

    Notes
    -----
    The output holds a manifest (``flowtrace.json`` in a folder,
    ``<file>.flowtrace.json`` beside a file) and, while the run lasts, a
    lock; see :mod:`flowtrace_gpu.runs.manifest`.

    Examples
    --------
    >>> flowtrace('sample_data', 30, 'sample_output/', subtract_median=True)  # doctest: +SKIP
    """
    options, run, workers = _start(locals(), FLOWTRACE)
    if not isinstance(image_dir, (str, os.PathLike)):
        shape = getattr(image_dir, "shape", None)
        got = (f"an array of shape {tuple(shape)}" if shape is not None
               else f"a {type(image_dir).__name__}")
        raise FlowtraceError(
            f"image_dir must be a path to a folder or file, got {got}; for frames in memory "
            "use flowtrace_array(frames, frames_to_merge, ...), which returns the images "
            "(flowtrace_dask for a dask array)")
    skip = run.frames_to_skip
    if run.legend and not (options.color_series or options.fade_tails):
        raise FlowtraceError(
            "legend=True draws the colors of a window's frames, but neither color_series nor "
            "fade_tails colors them; pass color_series=True or fade_tails=True, or drop legend")
    source = open_source(image_dir, skip, grayscale=options.grayscale,
                         probe_workers=default_probe_workers() if workers else 1,
                         start=run.start, stop=run.stop, crop=run.crop)
    plan, sequence, stride, n_out, every = plan_run(source, frames_to_merge, skip, options,
                                                    run.window_step)
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
    out = Path(out_dir)
    kind = output_kind(out, run.format)
    firsts = range(0, n_out * run.window_step, run.window_step)  # each image's first window
    stems = output_names([source.names[i] for i in firsts],
                         f"_streamlines_frames{plan.frames_to_merge}", _extensions(source, firsts))
    read = source_files(source)
    if kind == "zarr":  # resumed image by image: one chunk file each
        image_paths = chunk_files(out, n_out, 1 + len(plan.out_shape))
    else:
        image_paths = None if kind in ("tiff-stack", "video") else \
            [out / (stem + (".tif" if kind == "tiff" else ".png")) for stem in stems]
    refuse_overwriting_input(out, image_paths, read)
    rate = (run.fps or source.fps or 30.0) if kind == "video" else None
    writer = open_writer(out, stems, format=run.format, fps=rate, dtype=plan.image_dtype)
    expected = Manifest(
        output={"path": str(out.resolve()), "kind": kind},
        source=source_identity(image_dir, read, source.n_frames),
        frames_to_merge=plan.frames_to_merge,
        options={**asdict(plan.options), **recorded_options(run), "fps": rate},
        n_images=n_out, package_version=__version__)
    with stop_on_signals(), OutputRun(out, kind, expected, resume=run.resume,
                                      image_paths=image_paths) as job:
        if job.todo:
            _write_missing(job, source, sequence, n_out, plan, engine, writer, every=every,
                           workers=workers, progress=_progress(run), stride=stride)
        if run.legend:
            write_legend(legend_path(out, kind), plan, fps=run.fps or source.fps,
                         frames_to_skip=skip)
        return job.result()


def _write_missing(job, source, sequence, n_out, plan, engine, writer, *, stride=1, every=None,
                   **kwargs):
    """Write the images ``job`` still needs: each stretch of them from F-1 frames before it."""
    if plan.scaling == "float":
        if job.peak is None:  # else resumed: the recorded peak keeps the bytes equal
            job.set_peak(_measure(source, *(every or (sequence, n_out)), plan, engine, **kwargs))
        plan = replace(plan, scaling="fixed", peak=job.peak)
    recording = job.wrap(writer)
    todo = set(job.todo)
    window = plan.frames_to_merge
    # Image k starts at frame position k * stride of the sequence.
    for first, last in job.segments(-(-window // stride)):
        _pass(source, sequence[first * stride:last * stride + window], plan, engine,
              Segment(recording), last - first + 1, first=first, keep=todo, stride=stride,
              **kwargs)
    try:
        recording.close()
    except BaseException:
        recording.abort()  # e.g. a stack that could not be moved into place
        raise


def _extensions(source, firsts):
    """The file extension of each output's frame, where frames are files (to tell apart f1.tif and f1.png)."""
    files = source_files(source) if hasattr(getattr(source, "source", source), "files") else None
    return None if files is None else [files[i].suffix for i in firsts]


def flowtrace_array(frames, frames_to_merge, frames_to_skip=1, *, subtract_first=False,
                    subtract_median=False, take_diff=False, diff_order=1, add_first_frame=False,
                    color_series=False, colormap=None, fade_tails=False, invert_color=False,
                    windows="sliding", normalize="frame", saturate=0.0, bit_depth=None,
                    grayscale=False, start=0, stop=None, crop=None, window_step=1,
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
    start, stop, crop, window_step
        As for :func:`flowtrace`: ``flowtrace_array(m, F, start=a, stop=b,
        crop=(t, l, h, w), window_step=s)`` equals
        ``flowtrace_array(m[a:b, t:t+h, l:l+w], F)[::s]``; a crop of an
        array, memmap or zarr array reads only the region.
    use_parallel, max_cores, backend, device, progress
        As for :func:`flowtrace`.

    Returns
    -------
    numpy.ndarray, shape (M, H, W) or (M, H, W, 3)
        The images :func:`flowtrace` would write, in order: M = N-F+1
        (``windows='original'``: N-F, and 1 when N == F), of them every
        ``window_step``-th; uint8, or the input dtype with ``normalize='none'``.

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
        source = ArraySource(frames)
    else:
        source = IterableSource(frames)
    source = select(source, run.start, run.stop, skip, run.crop)
    if options.grayscale and len(source.frame_shape) == 3:
        source = GrayscaleSource(source)
    plan, sequence, stride, n_out, every = plan_run(source, frames_to_merge, skip, options,
                                                    run.window_step)
    engine = get_backend(run.backend, run.device)
    if n_out is None:
        writer = ListWriter()
    else:
        writer = ArrayWriter(np.empty((n_out,) + plan.out_shape, dtype=plan.image_dtype))
    return _trace(source, sequence, n_out, plan, engine, writer, workers=workers,
                  progress=_progress(run), stride=stride, every=every)


def _progress(run) -> bool:
    """The bar is shown when asked for, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if run.progress is None else run.progress
