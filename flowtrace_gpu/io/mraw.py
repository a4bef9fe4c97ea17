"""Photron MRAW recordings (``.mraw`` + ``.cih``/``.cihx`` header), memory-mapped.

The header is parsed by pyMRAW (package ``pyMRAW``), which knows both the
text ``.cih`` and the XML ``.cihx``. The pixels are mapped here rather than
by ``pyMRAW.load_video`` so that 12-bit packed files are unpacked one frame
at a time instead of whole into memory. Monochrome 8-, 12- and 16-bit files
are read; values are returned as stored (12-bit data in the low bits of
uint16), in pyMRAW's byte order.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from .recording import RecordingSource, require
from .recording import first_line as _reason

_BIT_DEPTHS = (8, 12, 16)


def find_pair(path: Path) -> tuple[Path, Path]:
    """The ``(.mraw, .cih/.cihx)`` pair for either file of it."""
    mraw = path.with_suffix(".mraw") if path.suffix.lower() != ".mraw" else path
    if path.suffix.lower() in (".cih", ".cihx"):
        header = path
    else:
        candidates = [path.with_suffix(s) for s in (".cihx", ".cih", ".CIHX", ".CIH")]
        header = next((c for c in candidates if c.is_file()), None)
        if header is None:
            raise FlowtraceError(
                f"{path} needs its header {path.with_suffix('.cih').name} or "
                f"{path.with_suffix('.cihx').name} beside it; copy the header from the recording"
            )
    if not mraw.is_file():
        raise FlowtraceError(
            f"{header} describes {mraw.name}, which is not beside it; put the .mraw next to its header"
        )
    return mraw, header


def unpack_12bit(packed: np.ndarray, shape: tuple) -> np.ndarray:
    """Unpack big-endian 12-bit pairs (3 bytes -> 2 pixels) into uint16 of ``shape``."""
    b = packed.reshape(-1, 3).astype(np.uint16)
    out = np.empty((b.shape[0], 2), dtype=np.uint16)
    out[:, 0] = (b[:, 0] << 4) | (b[:, 1] >> 4)
    out[:, 1] = ((b[:, 1] & 0x0F) << 8) | b[:, 2]
    return out.reshape(shape)


class MrawSource(RecordingSource):
    """The frames of a Photron MRAW recording.

    Parameters
    ----------
    path : path-like
        The ``.mraw``, ``.cih`` or ``.cihx`` file (the other must lie beside it).
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.

    Attributes
    ----------
    fps : float or None
        ``Record Rate(fps)`` from the header.
    bit_depth : int
        8, 12 or 16 (bits stored per pixel).
    """

    def __init__(self, path, frames_to_skip: int = 1):
        pymraw = require("pyMRAW", "pyMRAW", "reading Photron .mraw files")
        mraw, self.header = find_pair(Path(path))
        super().__init__(mraw, frames_to_skip)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pyMRAW warns on every non-12-bit file
                cih = pymraw.get_cih(str(self.header))
                pymraw.check_exceptions(cih)
            n_raw = int(cih["Total Frame"])
            height, width = int(cih["Image Height"]), int(cih["Image Width"])
            bits = int(cih["Color Bit"])
        except Exception as exc:
            raise FlowtraceError(
                f"cannot read the MRAW header {self.header} ({_reason(exc)}); pyMRAW reads "
                f"monochrome {'/'.join(map(str, _BIT_DEPTHS))}-bit MRAW headers (.cih or .cihx)"
            ) from None
        if str(cih.get("File Format", "MRaw")).lower() != "mraw":
            raise FlowtraceError(
                f"{self.header} describes {cih['File Format']} files, not MRAW; "
                "open the exported image files as a folder instead"
            )
        rate = cih.get("Record Rate(fps)")
        self.fps = float(rate) if isinstance(rate, (int, float)) and rate > 0 else None
        self.bit_depth = bits
        self.frame_shape = (height, width)
        self.dtype = np.dtype(np.uint8 if bits == 8 else np.uint16)
        self._frame_bytes = height * width * bits // 8
        needed = n_raw * self._frame_bytes
        size = self.path.stat().st_size
        if n_raw < 1 or size < needed:
            raise FlowtraceError(
                f"{self.path} is {size} bytes, but its header {self.header.name} announces "
                f"{n_raw} frames of {width}x{height} at {bits} bits ({needed} bytes); "
                "the recording is truncated or the header belongs to another file"
            )
        self._set_count(n_raw)
        # Mapped, not read: pages are loaded as frames are asked for.
        per_frame = self._frame_bytes if bits == 12 else height * width
        self._map = np.memmap(self.path, dtype=np.uint8 if bits == 12 else self.dtype,
                              mode="r", shape=(n_raw, per_frame))

    def _read_raw(self, handle, raw):
        row = self._map[raw]
        if self.bit_depth == 12:
            return unpack_12bit(np.asarray(row), self.frame_shape)
        return np.array(row).reshape(self.frame_shape)
