"""File suffixes: the one table of what flowtrace_gpu reads and writes.

Dispatch (:func:`flowtrace_gpu.io.formats.open_source`,
:func:`~flowtrace_gpu.io.formats.output_kind`), folder listing and every
"give ..." error message are built from these tuples, so a format is added
or renamed in one place. Suffixes are compared lower-cased everywhere
(``SHOT.CIH`` and ``frame.TIF`` from Windows PCs count).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TIFF = (".tif", ".tiff")
VIDEO = (".mp4", ".avi", ".mov", ".mkv")
#: The Photron pair: pixels in ``.mraw``, header in ``.cih`` (text) or ``.cihx`` (XML).
MRAW = (".mraw", ".cih", ".cihx")
CINE = (".cine",)
#: A zarr array: a folder (read by :mod:`~flowtrace_gpu.io.zarr_store`, written one image per chunk).
ZARR = (".zarr",)
#: Single-frame images read from a folder (a multi-page TIFF there gives all its pages).
IMAGES = TIFF + (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Recording:
    """A kind of recording file: its suffixes, its reader and how messages name it."""

    suffixes: tuple[str, ...]
    #: Module under ``flowtrace_gpu.io`` and the FrameSource class in it.
    module: str
    reader: str
    label: str


RECORDINGS = (
    Recording(TIFF, "tiff_stack", "TiffStackSource", f"a multi-page {'/'.join(TIFF)}"),
    Recording(VIDEO, "video", "VideoSource", f"a video ({' '.join(VIDEO)})"),
    Recording(MRAW, "mraw", "MrawSource", f"a Photron {MRAW[0]} (+{'/'.join(MRAW[1:])})"),
    Recording(CINE, "cine", "CineSource", f"a Phantom {CINE[0]}"),
    Recording(ZARR, "zarr_store", "ZarrSource", f"a zarr array ({ZARR[0]})"),
)

#: Single-file outputs: writer kind -> suffixes.
OUTPUT_FILES = {"tiff-stack": TIFF, "video": VIDEO}
#: Output suffixes that mean one file (anything else is a folder).
SINGLE_FILE_SUFFIXES = TIFF + VIDEO
#: Outputs that are folders but one array: manifest and lock beside them, as for a file.
ARRAY_SUFFIXES = ZARR

#: The run's own files beside its images: the manifest and the lock of a
#: folder output (inside it), and the suffixes appended to a single-file or
#: array output's name for its manifest and lock (beside it).
FOLDER_MANIFEST = "flowtrace.json"
FOLDER_LOCK = "flowtrace.lock"
BESIDE_MANIFEST = ".flowtrace.json"
#: The time legend of a folder output, and the suffix of one beside a file output.
LEGEND_NAME = "legend.png"
BESIDE_LEGEND = ".legend.png"
BESIDE_LOCK = ".flowtrace.lock"
#: Appended to the manifest's name for the disk space set aside for its last update.
RESERVE = ".reserve"


def suffix(path) -> str:
    """The suffix of ``path``, lower-cased (``''`` if none)."""
    return Path(path).suffix.lower()


def spoken(group: tuple[str, ...]) -> str:
    """``'.mp4, .avi, .mov or .mkv'``: a suffix group for a sentence."""
    return group[0] if len(group) == 1 else f"{', '.join(group[:-1])} or {group[-1]}"


def recording_for(path) -> Recording | None:
    """The kind of recording ``path`` is by its suffix, or None."""
    found = suffix(path)
    return next((r for r in RECORDINGS if found in r.suffixes), None)


def output_kind_for(path) -> str | None:
    """``'tiff-stack'`` or ``'video'`` for a single-file output path, else None."""
    found = suffix(path)
    return next((kind for kind, group in OUTPUT_FILES.items() if found in group), None)


def supported_inputs() -> str:
    """Every input flowtrace_gpu reads, for error messages."""
    labels = [f"a folder of frames ({' '.join(IMAGES)})"] + [r.label for r in RECORDINGS]
    return f"{', '.join(labels[:-1])} or {labels[-1]}"


def supported_outputs() -> str:
    """Every output flowtrace_gpu writes, for error messages."""
    return (
        f"a folder (PNG images, or TIFF with format='tiff'), a {'/'.join(TIFF)} file "
        f"(one multi-page TIFF), a video file ({' '.join(VIDEO)}, H.264) or a zarr array "
        f"({ZARR[0]})"
    )
