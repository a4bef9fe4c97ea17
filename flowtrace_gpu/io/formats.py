"""Which reader or writer a path gets: the one place formats are dispatched.

:func:`open_source` turns a folder or a recording file into a
:class:`~flowtrace_gpu.io.sources.FrameSource`; :func:`open_writer` turns an
output path into a writer. Format modules are imported only when used, so a
missing optional package matters only to the format that needs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from .sources import FrameSource, ImageFolderSource

#: Recording files :func:`open_source` reads, by suffix -> what they are.
SOURCE_SUFFIXES = {
    ".tif": "multi-page TIFF / ImageJ stack",
    ".tiff": "multi-page TIFF / ImageJ stack",
    ".mp4": "video", ".avi": "video", ".mov": "video", ".mkv": "video",
    ".mraw": "Photron MRAW", ".cih": "Photron MRAW", ".cihx": "Photron MRAW",
    ".cine": "Phantom cine",
}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
TIFF_SUFFIXES = (".tif", ".tiff")
#: Output kinds for ``open_writer(format=...)``.
WRITER_FORMATS = ("png", "tiff", "video")

_SUPPORTED_INPUTS = (
    "a folder of frames (.tif .png .jpg .bmp), a multi-page .tif/.tiff, "
    "a video (.mp4 .avi .mov .mkv), a Photron .mraw (+.cih/.cihx), a Phantom .cine "
    "or a zarr array (.zarr)"
)
_SUPPORTED_OUTPUTS = (
    "a folder (PNG images, or TIFF with format='tiff'), a .tif/.tiff file "
    "(one multi-page TIFF), a video file (.mp4 .avi .mov .mkv, H.264) or a .zarr array"
)


def require(module: str, pip_name: str, purpose: str):
    """Import an optional dependency or explain which package to install.

    Parameters
    ----------
    module : str
        Import name, e.g. ``'av'``.
    pip_name : str
        Package to ``pip install``, e.g. ``'av'``.
    purpose : str
        What it is needed for, e.g. ``'reading video'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlowtraceError(
            f"{purpose} needs the Python package {pip_name!r}, which is not importable "
            f"({exc}); install it with: pip install {pip_name}"
        ) from None


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only, for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------- sources

def frame_names(stem: str, count: int, skip: int) -> list[str]:
    """``<stem>_<raw index>`` for the frames kept, zero-padded to the count's width."""
    width = len(str(max(count - 1, 0)))
    return [f"{stem}_{i:0{width}d}" for i in range(0, count, skip)]



def open_source(path, frames_to_skip: int = 1, *, grayscale: bool = False,
                probe_workers: int = 1) -> FrameSource:
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
    p = Path(path)
    if not p.exists():
        raise FlowtraceError(f"input {str(p)!r} does not exist; give {_SUPPORTED_INPUTS}")
    from .zarr_store import ZarrSource, is_zarr_path

    if p.is_dir() and is_zarr_path(p):
        source = ZarrSource(p, frames_to_skip)
    elif p.is_dir():
        source = ImageFolderSource(p, frames_to_skip, probe_workers=probe_workers)
    elif p.is_file():
        source = _open_file(p, frames_to_skip)
    else:
        raise FlowtraceError(f"input {str(p)!r} is not a regular file or folder; give {_SUPPORTED_INPUTS}")
    return GrayscaleSource(source) if grayscale and len(source.frame_shape) == 3 else source


def _open_file(p: Path, skip: int) -> FrameSource:
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        from .tiff_stack import TiffStackSource
        return TiffStackSource(p, skip)
    if suffix in VIDEO_SUFFIXES:
        from .video import VideoSource
        return VideoSource(p, skip)
    if suffix in (".mraw", ".cih", ".cihx"):
        from .mraw import MrawSource
        return MrawSource(p, skip)
    if suffix == ".cine":
        from .cine import CineSource
        return CineSource(p, skip)
    raise FlowtraceError(
        f"input {str(p)!r}: files ending {suffix or '(no suffix)'!r} are not supported; "
        f"give {_SUPPORTED_INPUTS}"
    )


def luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, C) RGB(A) frame, in its dtype.

    Integer frames use Pillow's fixed-point weights (19595, 38470, 7471) / 2**16,
    so 8-bit results equal ``Image.convert('L')``; float frames use 0.299,
    0.587, 0.114.
    """
    rgb = frame[..., :3]
    if frame.dtype.kind in "ui" and frame.dtype.itemsize <= 2:
        # uint32 holds 65535 * 65536 + 2**15, the widest sum here.
        acc = rgb[..., 0].astype(np.uint32) * 19595
        acc += rgb[..., 1].astype(np.uint32) * 38470
        acc += rgb[..., 2].astype(np.uint32) * 7471
        acc += 1 << 15
        return (acc >> 16).astype(frame.dtype)
    weights = np.array([0.299, 0.587, 0.114])
    out = rgb @ weights
    return (np.rint(out) if frame.dtype.kind in "ui" else out).astype(frame.dtype)


class GrayscaleSource(FrameSource):
    """Another source's color frames as luma (see :func:`luma`)."""

    def __init__(self, source: FrameSource):
        if source.frame_shape[2] not in (3, 4):
            raise FlowtraceError(
                f"grayscale=True converts RGB or RGBA frames, but {source.description} has "
                f"{source.frame_shape[2]} channels (frame shape {source.frame_shape}); "
                "drop grayscale or convert the frames yourself"
            )
        self.source = source
        self.n_frames = source.n_frames
        self.frame_shape = tuple(source.frame_shape[:2])
        self.dtype = source.dtype
        self.names = source.names
        self.description = source.description
        self.fps = getattr(source, "fps", None)

    def frames(self, indices):
        for frame in self.source.frames(indices):
            yield luma(frame)


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
    suffix = p.suffix.lower()
    if suffix == ".zarr":
        if format is not None:
            raise FlowtraceError(
                f"format={format!r} contradicts the output {str(p)!r} (a zarr array); drop format")
        return "zarr"
    if p.is_dir() or (not p.exists() and suffix == ""):
        if format == "video":
            raise FlowtraceError(
                f"format='video' writes one file, but {str(p)!r} is a folder; "
                "give a path ending .mp4, .avi, .mov or .mkv"
            )
        return "tiff" if format == "tiff" else "png"
    if p.is_file() and suffix not in TIFF_SUFFIXES + VIDEO_SUFFIXES:
        raise FlowtraceError(
            f"output {str(p)!r} is a file, not a directory; give {_SUPPORTED_OUTPUTS}"
        )
    if suffix in TIFF_SUFFIXES:
        kind = "tiff-stack"
    elif suffix in VIDEO_SUFFIXES:
        kind = "video"
    else:
        raise FlowtraceError(
            f"output {str(p)!r}: cannot tell what to write for suffix {suffix!r}; give "
            f"{_SUPPORTED_OUTPUTS} (create the folder first if a folder is meant)"
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
