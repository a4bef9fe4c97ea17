"""Photron MRAW recordings (``.mraw`` + ``.cih``/``.cihx`` header), read frame by frame.

The header is parsed by pyMRAW (package ``pyMRAW``), which knows both the
text ``.cih`` and the XML ``.cihx``. The pixels are read here, one frame at
a time from its offset, rather than by ``pyMRAW.load_video`` (which maps the
file and unpacks 12-bit files whole into memory). Read: monochrome 8-bit, packed
12-bit (:func:`~flowtrace_gpu.io.packed.unpack_12bit`) and 16-bit files;
anything else (color MRAW, other bit depths or packings) is refused.

``EffectiveBit Depth``/``EffectiveBit Side`` say which bits of each stored
value the camera used: with ``Higher`` the values are shifted down so that
an effective 12-bit image always holds 0..4095, and ``bit_depth`` is the
effective depth. Suffixes and the pairing of ``.mraw`` with its header are
case-insensitive (``SHOT.CIH`` + ``SHOT.MRAW`` from a Windows PC).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes
from .boundary import reading
from .packed import unpack_12bit
from .recording import RecordingSource, read_block, region_rows, require

_BIT_DEPTHS = (8, 12, 16)
#: Color types of monochrome data: the ``.cih`` says Mono; a ``.cihx`` of a mono camera says Raw.
_GRAY_TYPES = ("mono", "raw")
_SCOPE = (
    f"flowtrace reads monochrome {'/'.join(map(str, _BIT_DEPTHS))}-bit MRAW files "
    "(12-bit packed) with a .cih or .cihx header; export other recordings to TIFF in PFV"
)


def find_pair(path: Path) -> tuple[Path, Path]:
    """The ``(.mraw, .cih/.cihx)`` pair for either file of it, suffixes in any case.

    A ``.cihx`` is preferred to a ``.cih`` beside the same ``.mraw``.
    """
    given = suffixes.suffix(path)
    siblings: dict[str, Path] = {}
    for entry in sorted(path.parent.iterdir(), key=lambda p: p.stem != path.stem):
        kind = suffixes.suffix(entry)
        if entry.stem.lower() == path.stem.lower() and kind in suffixes.MRAW and entry.is_file():
            siblings.setdefault(kind, entry)
    siblings[given] = path
    header = path if given != ".mraw" else siblings.get(".cihx") or siblings.get(".cih")
    if header is None:
        raise FlowtraceError(
            f"{path} needs its header {path.stem}.cih or {path.stem}.cihx beside it; "
            "copy the header from the recording"
        )
    mraw = siblings.get(".mraw")
    if mraw is None:
        raise FlowtraceError(
            f"{header} describes {path.stem}.mraw, which is not beside it; "
            "put the .mraw next to its header"
        )
    return mraw, header


def read_header(header: Path) -> dict:
    """The header as pyMRAW parses it, plus ``'Color Type'`` from a ``.cihx``.

    pyMRAW recognizes only lower-case suffixes; an upper-case header is
    parsed from a lower-case copy in a temporary folder.
    """
    pymraw = require("pyMRAW", "pyMRAW", "reading Photron .mraw files")
    kind = suffixes.suffix(header)
    with tempfile.TemporaryDirectory() as tmp:
        parsed = header
        if header.suffix != kind:
            parsed = Path(tmp) / f"header{kind}"
            shutil.copyfile(header, parsed)
        cih = pymraw.get_cih(str(parsed))  # its warnings are collected by the caller's boundary
    if kind == ".cihx" and "Color Type" not in cih:
        text = header.read_text(encoding="utf-8", errors="ignore")
        found = re.search(r"<colorInfo>\s*<type>\s*([^<\s]+)\s*</type>", text)
        if found:
            cih["Color Type"] = found.group(1)
    return cih


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
        Effective bits per pixel (``EffectiveBit Depth``, else the stored 8, 12 or 16).
    """

    kind = "a Photron MRAW recording"
    fix = _SCOPE

    def __init__(self, path, frames_to_skip: int = 1):
        mraw, self.header = find_pair(Path(path))
        super().__init__(mraw, frames_to_skip)
        with reading(f"the MRAW header {self.header}", _SCOPE):
            cih = read_header(self.header)
            n_raw = int(cih["Total Frame"])
            height, width = int(cih["Image Height"]), int(cih["Image Width"])
            bits = int(cih["Color Bit"])
        with self._opening():
            self._parse(cih, n_raw, height, width, bits)

    def _parse(self, cih: dict, n_raw: int, height: int, width: int, bits: int) -> None:
        self._check_scope(cih, bits, height, width)
        rate = cih.get("Record Rate(fps)")
        self.fps = float(rate) if isinstance(rate, (int, float)) and rate > 0 else None
        depth, side = cih.get("EffectiveBit Depth", bits), str(cih.get("EffectiveBit Side", "Lower"))
        depth = int(depth) if isinstance(depth, (int, float)) and 1 <= depth <= bits else bits
        # "Higher": the image sits in the top bits of each stored value.
        self._shift = bits - depth if side.lower() == "higher" else 0
        self.bit_depth = depth
        self.frame_shape = (height, width)
        self.dtype = np.dtype(np.uint8 if bits == 8 else np.uint16)
        self._bits = bits
        frame_bytes = height * width * bits // 8
        needed = n_raw * frame_bytes
        size = self.path.stat().st_size
        if n_raw < 1 or height < 1 or width < 1 or size < needed:
            raise FlowtraceError(
                f"{self.path} is {size} bytes, but its header {self.header.name} announces "
                f"{n_raw} frames of {width}x{height} at {bits} bits ({needed} bytes); "
                "the recording is truncated or the header belongs to another file"
            )
        self._set_count(n_raw)
        self._frame_bytes = frame_bytes

    def _check_scope(self, cih: dict, bits: int, height: int, width: int) -> None:
        fmt = str(cih.get("File Format", "MRaw"))
        if fmt.lower() != "mraw":
            raise FlowtraceError(
                f"{self.header} describes {fmt} files, not MRAW; "
                "open the exported image files as a folder instead"
            )
        color = str(cih.get("Color Type", "Mono"))
        if color.lower() not in _GRAY_TYPES:
            raise FlowtraceError(
                f"{self.header} describes a color MRAW (Color Type {color!r}); {_SCOPE}"
            )
        side = str(cih.get("EffectiveBit Side", "Lower"))
        if bits not in _BIT_DEPTHS or side.lower() not in ("lower", "higher"):
            raise FlowtraceError(
                f"{self.header} describes {bits}-bit values (EffectiveBit Side {side!r}); {_SCOPE}"
            )
        if bits == 12 and (height * width) % 2:
            raise FlowtraceError(
                f"{self.header} describes packed 12-bit frames of {width}x{height}, an odd "
                f"number of pixels, which MRAW cannot pack; {_SCOPE}"
            )

    def _open_pass(self):
        return open(self.path, "rb", buffering=0)  # unbuffered: readinto fills the frame

    def _read_raw(self, handle, raw, region=None):
        # Only the rows a crop needs are read and unpacked.
        height, width = self.frame_shape
        first, stop = region_rows(region, height)
        start = raw * self._frame_bytes
        if self._bits == 12:
            # Packed pairs of pixels: start at the pair holding the first pixel needed.
            pixel = first * width
            pair = pixel - pixel % 2
            count = stop * width - pair
            block = read_block(handle, start + pair // 2 * 3, -(-count // 2) * 3)
            frame = unpack_12bit(block, (count,))[pixel - pair:].reshape(stop - first, width)
        else:
            # Photron writes 16-bit values little-endian, as pyMRAW reads them on x86.
            stored = np.dtype(np.uint8) if self._bits == 8 else np.dtype("<u2")
            row_bytes = width * stored.itemsize
            block = read_block(handle, start + first * row_bytes, (stop - first) * row_bytes)
            frame = block.view(stored).reshape(stop - first, width).astype(self.dtype, copy=False)
        if self._shift:
            frame >>= self._shift
        return frame
