"""Which reader or writer a path gets: the one place formats are dispatched.

:func:`open_source` turns a folder or a recording file into a
:class:`~flowtrace_gpu.io.sources.FrameSource`; :func:`open_writer` turns an
output path into a writer. Which suffix means what lives in
:mod:`~flowtrace_gpu.io.suffixes`. Format modules are imported only when
used, so a missing optional package matters only to the format that needs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes
from .grayscale import GrayscaleSource
from .selection import select
from .sources import FrameSource, ImageFolderSource
from .zarr_store import ZarrSource, is_zarr_path

#: Output kinds for ``open_writer(format=...)``.
WRITER_FORMATS = ("png", "tiff", "video")


def open_source(path, frames_to_skip: int = 1, *, grayscale: bool = False,
                probe_workers: int = 1, start: int = 0, stop: int | None = None,
                crop=None) -> FrameSource:
    """Open a folder of frames or a recording file as a frame source.

    Parameters
    ----------
    path : path-like
        A folder of single-frame images, or one file: ``.tif``/``.tiff``
        (multi-page or ImageJ stack), ``.mp4``/``.avi``/``.mov``/``.mkv``,
        ``.mraw`` (or its ``.cih``/``.cihx``), ``.cine``.
    frames_to_skip : int, default 1
        Keep every ``frames_to_skip``-th frame, starting with the first.
    grayscale : bool, default False
        Turn color frames into luma, ``Y = 0.299 R + 0.587 G + 0.114 B``
        (ITU-R BT.601, as Pillow's ``'L'`` mode), rounded, in the frames'
        dtype; an alpha channel is dropped. Gray frames pass unchanged.
    probe_workers : int, default 1
        Threads reading image headers up front (folders only).
    start, stop, crop
        The frames ``[start, stop)`` only, each cropped to ``crop`` =
        ``(top, left, height, width)`` while read (see
        :class:`~flowtrace_gpu.io.selection.Selection`, which also applies
        ``frames_to_skip`` then).

    Returns
    -------
    FrameSource
        With ``n_frames``, ``frame_shape``, ``dtype``, ``names`` and, for
        recordings that store it, ``fps``.

    Raises
    ------
    FlowtraceError
        The path is missing, of an unsupported kind or unreadable, or the
        package its format needs is not installed.
    """
    source = select(open_recording(path, probe_workers=probe_workers), start, stop,
                    frames_to_skip, crop)
    return GrayscaleSource(source) if grayscale and len(source.frame_shape) == 3 else source


def open_recording(path, *, probe_workers: int = 1) -> FrameSource:
    """The reader of a folder of frames or a recording file, every frame (no selection)."""
    p = Path(path)
    if not p.exists():
        raise FlowtraceError(f"input {str(p)!r} does not exist; give {suffixes.supported_inputs()}")
    if p.is_dir() and is_zarr_path(p):  # a zarr array is a folder too
        return ZarrSource(p)
    if p.is_dir():
        return ImageFolderSource(p, probe_workers=probe_workers)
    if p.is_file():
        return _open_file(p, 1)
    raise FlowtraceError(
        f"input {str(p)!r} is not a regular file or folder; give {suffixes.supported_inputs()}"
    )


def _open_file(p: Path, skip: int) -> FrameSource:
    kind = suffixes.recording_for(p)
    if kind is None:
        raise FlowtraceError(
            f"input {str(p)!r}: files ending {suffixes.suffix(p) or '(no suffix)'!r} are not supported; "
            f"give {suffixes.supported_inputs()}"
        )
    module = importlib.import_module(f".{kind.module}", __package__)
    return getattr(module, kind.reader)(p, skip)


# --------------------------------------------------------------------- writers

def output_kind(out, format: str | None = None) -> str:
    """``'png'``, ``'tiff'`` (folders), ``'tiff-stack'``, ``'video'`` or ``'zarr'`` for ``out``.

    A path with a known file suffix is a file; an existing folder or a path
    without a suffix is a folder. Raises FlowtraceError for anything else.
    """
    p = Path(out)
    if format is not None and format not in WRITER_FORMATS:
        raise FlowtraceError(
            f"format must be one of {', '.join(map(repr, WRITER_FORMATS))} or None, got {format!r}"
        )
    suffix = suffixes.suffix(p)
    if suffix in suffixes.ZARR:  # a folder, but one array
        if format is not None:
            raise FlowtraceError(
                f"format={format!r} contradicts the output {str(p)!r} (a zarr array); drop format")
        return "zarr"
    if p.is_dir() or (not p.exists() and suffix == ""):
        if format == "video":
            raise FlowtraceError(
                f"format='video' writes one file, but {str(p)!r} is a folder; "
                f"give a path ending {suffixes.spoken(suffixes.VIDEO)}"
            )
        return "tiff" if format == "tiff" else "png"
    kind = suffixes.output_kind_for(p)
    if p.is_file() and kind is None:
        raise FlowtraceError(
            f"output {str(p)!r} is a file, not a directory; give {suffixes.supported_outputs()}"
        )
    if kind is None:
        raise FlowtraceError(
            f"output {str(p)!r}: cannot tell what to write for suffix {suffix!r}; give "
            f"{suffixes.supported_outputs()} (create the folder first if a folder is meant)"
        )
    wanted = {"tiff-stack": "tiff", "video": "video"}[kind]
    if format is not None and format != wanted:
        raise FlowtraceError(
            f"format={format!r} contradicts the output {str(p)!r} (a {wanted} file); "
            "drop format or change the suffix"
        )
    return kind


def open_writer(out, names, *, format: str | None = None, fps: float | None = None,
                source_fps: float | None = None, dtype=np.uint8):
    """The writer for output path ``out``, its location prepared and checked.

    Parameters
    ----------
    out : path-like
        A folder (PNG images, or TIFF images with ``format='tiff'``), a
        ``.tif``/``.tiff`` file (one multi-page TIFF) or a ``.mp4``, ``.avi``,
        ``.mov`` or ``.mkv`` file (H.264 video).
    names : sequence of str
        One name per output image, without a file suffix: folder writers
        write ``<name>.png`` / ``<name>.tif``; file writers only count them.
    format : {'png', 'tiff', 'video'}, optional
        Default from ``out``: its suffix, else PNG for a folder.
    fps : float, optional
        Video frame rate; default ``source_fps``, else 30.
    source_fps : float, optional
        The recording's frame rate, where known.
    dtype : numpy dtype, default uint8
        Dtype of the images to come: uint8, or uint16 for PNG and TIFF.

    Returns
    -------
    writer
        ``parallel``, ``write(index, image)``, ``close()`` (returns the list
        of files for folders, the file's path for single files) and
        ``abort()`` (removes a partial single file).

    Raises
    ------
    FlowtraceError
        Before anything is written: unknown suffix or format, a location that
        cannot be written, a dtype the format cannot hold.
    """
    from .writers import PngFolderWriter, prepare_out_dir, prepare_out_file

    kind = output_kind(out, format)
    dtype = np.dtype(dtype)
    names = list(names)
    if dtype not in (np.uint8, np.uint16):
        raise FlowtraceError(f"images must be uint8 or uint16 to be written, got {dtype}")
    if kind == "video":
        from .video import VideoWriter, check_video_dtype
        check_video_dtype(dtype, out)
        rate = fps if fps is not None else (source_fps or 30.0)
        if not rate or rate <= 0:
            raise FlowtraceError(f"fps must be > 0, got {rate!r}")
        return VideoWriter(prepare_out_file(out), len(names), rate)
    if kind == "zarr":
        from .zarr_store import ZarrWriter, prepare_zarr_out
        return ZarrWriter(prepare_zarr_out(out), len(names), dtype)
    if kind == "tiff-stack":
        from .tiff_stack import TiffStackWriter
        return TiffStackWriter(prepare_out_file(out), len(names))
    folder = prepare_out_dir(out)
    if kind == "tiff":
        from .tiff_stack import TiffFolderWriter
        return TiffFolderWriter(folder, [n + ".tif" for n in names])
    return PngFolderWriter(folder, [n + ".png" for n in names])
