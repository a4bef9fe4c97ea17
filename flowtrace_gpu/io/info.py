"""What a recording holds, before choosing F: :func:`recording_info` and ``flowtrace info``.

Only headers are read (a folder's file headers, a video's container and its
first frame), never the pixels of the whole recording.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import open_recording
from .sources import source_files

#: Source classes -> the format's name in words.
_FORMATS = {
    "ImageFolderSource": "folder of images",
    "TiffStackSource": "TIFF stack",
    "VideoSource": "video",
    "MrawSource": "Photron MRAW",
    "CineSource": "Phantom cine",
    "ZarrSource": "zarr array",
}


@dataclass(frozen=True)
class RecordingInfo:
    """What :func:`recording_info` tells about a recording (see its Returns)."""

    path: str
    format: str
    frames: int
    height: int
    width: int
    channels: int
    dtype: str
    bit_depth: int
    fps: float | None
    duration: float | None
    trigger: dict | None
    bayer_pattern: str | None
    bytes_on_disk: int

    def to_dict(self) -> dict:
        """The fields as a dict of JSON values (``flowtrace info --json`` prints it)."""
        return dataclasses.asdict(self)

    def to_text(self) -> str:
        """The fields as aligned lines for people."""
        channels = "1 channel" if self.channels == 1 else f"{self.channels} channels"
        rows = [
            ("source", self.path),
            ("format", self.format),
            ("frames", str(self.frames)),
            ("size", f"{self.height} x {self.width} (height x width), {channels}"),
            ("dtype", f"{self.dtype}, {self.bit_depth} bits used"),
            ("fps", "unknown" if self.fps is None else f"{self.fps:g}"),
            ("duration", "unknown" if self.duration is None else _seconds(self.duration)),
        ]
        if self.trigger is not None:
            when = f", at {self.trigger['time']}" if self.trigger.get("time") else ""
            frame = self.trigger["frame"]
            where = f"frame {frame} of the file" if 0 <= frame < self.frames else (
                f"{frame} frames after the first stored (not in the file)" if frame > 0 else
                f"{-frame} frames before the first stored (not in the file)")
            rows.append(("trigger", where + when))
        if self.bayer_pattern is not None:
            rows.append(("Bayer", f"{self.bayer_pattern} (frames are demosaiced to RGB)"))
        rows.append(("on disk", _size(self.bytes_on_disk)))
        return "\n".join(f"{key:<9} {value}" for key, value in rows)


def recording_info(source) -> RecordingInfo:
    """Frames, size, dtype, bit depth, frame rate, trigger and size on disk of a recording.

    Parameters
    ----------
    source : path-like
        Anything :func:`~flowtrace_gpu.flowtrace` reads: a folder of frames,
        a multi-page TIFF, a video, a Photron ``.mraw`` (or its
        ``.cih``/``.cihx``), a Phantom ``.cine`` or a zarr array.

    Returns
    -------
    RecordingInfo
        ``path``; ``format`` (e.g. ``'Phantom cine'``); ``frames``;
        ``height``, ``width`` and ``channels`` of the frames as traced (a raw
        Bayer cine: 3, demosaiced); ``dtype`` (e.g. ``'uint16'``);
        ``bit_depth`` (bits used: the file's, else the dtype's); ``fps`` and
        ``duration`` in s (None where the file does not say);
        ``trigger`` (cine: ``{'frame': index in the file of the trigger
        image (outside 0..frames-1 where the file holds only frames before
        or after it), 'first_image_no': number of the first image stored,
        counted from the trigger, 'time': ISO 8601 UTC}``, else None); ``bayer_pattern`` (raw Bayer cines,
        else None); ``bytes_on_disk`` (every file read). ``to_dict()`` gives
        them as JSON values.

    Raises
    ------
    FlowtraceError
        The source is missing, unsupported, truncated or corrupt.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), 'stack.tif')
    >>> tifffile.imwrite(path, np.zeros((5, 4, 6), np.uint16))
    >>> info = recording_info(path)
    >>> info.format, info.frames, info.height, info.width, info.dtype, info.fps
    ('TIFF stack', 5, 4, 6, 'uint16', None)
    """
    reader = open_recording(source)
    inner = getattr(reader, "source", reader)
    shape = tuple(reader.frame_shape)
    dtype = np.dtype(reader.dtype)
    fps = reader.fps
    frames = int(reader.n_frames)
    bits = reader.bit_depth or (dtype.itemsize * 8)
    return RecordingInfo(
        path=str(Path(source)),
        format=_FORMATS.get(type(inner).__name__, type(inner).__name__),
        frames=frames,
        height=int(shape[0]),
        width=int(shape[1]),
        channels=int(shape[2]) if len(shape) == 3 else 1,
        dtype=str(dtype),
        bit_depth=int(bits),
        fps=None if fps is None else float(fps),
        duration=None if not fps else frames / float(fps),
        trigger=_trigger(inner, frames),
        bayer_pattern=getattr(inner, "pattern", None),
        bytes_on_disk=_bytes(Path(source), source_files(reader)),
    )


def _trigger(source, frames: int) -> dict | None:
    first = getattr(source, "first_image_no", None)
    if first is None:
        return None
    seconds = getattr(source, "trigger_time", 0.0)
    when = None
    if seconds:
        when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()
    return {"frame": -first, "first_image_no": first, "time": when}


def _bytes(location: Path, files) -> int:
    """Bytes of the files read; a zarr array (a folder of chunks): every file under it."""
    if location.is_dir() and not files:
        return sum(entry.stat().st_size for entry in location.rglob("*") if entry.is_file())
    return sum(os.stat(f).st_size for f in files)


def _seconds(value: float) -> str:
    return f"{value * 1000:.4g} ms" if value < 1 else f"{value:.4g} s"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    value, units = n / 1000, ["kB", "MB", "GB", "TB"]
    while value >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.3g} {units[0]} ({n} bytes)"
