"""Fuzz tier: seeded corruptions of small TIFF, PNG, JPEG, MP4, cine and MRAW files.

Each case corrupts one file of an intact seed recording (byte flips at random
offsets, a truncation, a 2- or 4-byte field set to an extreme; or a header
field the format documents set to 0, 1, the largest or a negative value) and
traces the result with :func:`flowtrace_gpu.flowtrace`. The case passes when
the run either completes or raises a one-line FlowtraceError naming a file of
the recording, within ``CASE_SECONDS``, having allocated no more than
``CASE_BYTES`` (tracemalloc sees NumPy's allocations, so a header that makes a
library reserve gigabytes fails here even where the allocation would succeed),
and with no library warning or log record escaping the readers' boundary.
Anything else that escapes fails the case with its traceback.

Every mutation is drawn from ``numpy.random.default_rng`` seeded by the case,
so a failure is reproduced by running its test id alone.
"""

import faulthandler
import io
import logging
import re
import struct
import time
import tracemalloc
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from flowtrace_gpu import FlowtraceError, flowtrace
from flowtrace_gpu.io import boundary
from flowtrace_gpu.io.png import encode_png

from camera_writers import pack_bits, write_cine

pytestmark = pytest.mark.fuzz

#: Wall-clock budget of one case: an intact one takes ~10-30 ms; the margin is for loaded CI machines.
CASE_SECONDS = 5.0
#: Most bytes a case may allocate (the seeds' frames are a few KB).
CASE_BYTES = 64 * 2**20
#: A case still running after this long is a hang: dump every thread and exit.
HANG_SECONDS = 120
H, W, N = 12, 10, 5
EXTREMES_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
EXTREMES_16 = (0, 1, 0x7FFF, 0x8000, 0xFFFF)


@dataclass
class Seed:
    """An intact recording: its files (relative path -> bytes) and what to trace."""

    files: dict
    target: str
    #: Field mutations the format documents: (label, file, offset or key, struct format or
    #: 'text', values[, True where tried first]).
    fields: list


def _movie(dtype=np.uint8, color=False, seed=0):
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 4095
    return rng.integers(0, top, (N, H, W) + ((3,) if color else ()), dtype=dtype)


def _tiff(frames, **kwargs) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, frames, **kwargs)
    return buffer.getvalue()


def _pillow(frame, fmt, mode=None) -> bytes:
    from PIL import Image

    im = Image.fromarray(frame)
    buffer = io.BytesIO()
    (im.convert(mode) if mode else im).save(buffer, fmt)
    return buffer.getvalue()


def _mp4(frames) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for frame in frames:
            rgb = av.VideoFrame.from_ndarray(np.repeat(frame[..., None], 3, axis=2), format="rgb24")
            for packet in stream.encode(rgb):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def _cine(tmp_path, frames, **kwargs) -> bytes:
    path = write_cine(tmp_path / "seed.cine", frames, **kwargs)
    data = path.read_bytes()
    path.unlink()
    return data


# ------------------------------------------------------------------ documented fields

#: TIFF tags whose values size a page: width, length, bits, strip offsets, samples,
#: rows per strip, strip byte counts. Their values on the first page come first.
SIZE_TAGS = (256, 257, 258, 273, 277, 278, 279)


def tiff_fields(data: bytes, name: str) -> list:
    """Type, count and value of every IFD entry of a little-endian classic TIFF;
    the values of the first page's size tags are tried first."""
    fields, offset, seen = [], struct.unpack_from("<I", data, 4)[0], set()
    while offset and offset not in seen and offset + 2 <= len(data):
        seen.add(offset)
        count = struct.unpack_from("<H", data, offset)[0]
        for k in range(count):
            entry = offset + 2 + 12 * k
            tag = struct.unpack_from("<H", data, entry)[0]
            first = len(seen) == 1 and tag in SIZE_TAGS
            fields += [(f"tag{tag}@{entry}.type", name, entry + 2, "<H", EXTREMES_16),
                       (f"tag{tag}@{entry}.count", name, entry + 4, "<I", EXTREMES_32),
                       (f"tag{tag}@{entry}.value", name, entry + 8, "<I", EXTREMES_32, first)]
        offset = struct.unpack_from("<I", data, offset + 2 + 12 * count)[0]
    return fields


def png_fields(data: bytes, name: str) -> list:
    """IHDR's width, height, depth, color type and methods; every chunk's length."""
    fields = [(f"IHDR@{o}", name, o, fmt, EXTREMES_32 if fmt == ">I" else (0, 1, 3, 16, 255))
              for o, fmt in ((16, ">I"), (20, ">I"), (24, "B"), (25, "B"), (26, "B"),
                             (27, "B"), (28, "B"))]
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        fields.append((f"{kind.decode('latin-1')}@{pos}.length", name, pos, ">I", EXTREMES_32))
        pos += 12 + length
    return fields


_MP4_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf")
_MP4_TABLES = (b"stsz", b"stco", b"stts", b"stsc", b"stss", b"ctts", b"stsd", b"mvhd",
               b"tkhd", b"mdhd", b"elst")


def mp4_fields(data: bytes, name: str, start=0, end=None) -> list:
    """Every box's size; the counts and first entries of the sample tables and headers."""
    end = len(data) if end is None else end
    fields, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        label = kind.decode("latin-1")
        fields.append((f"{label}@{pos}.size", name, pos, ">I", EXTREMES_32))
        if kind in _MP4_TABLES:
            fields += [(f"{label}@{pos}+{k}", name, pos + k, ">I", EXTREMES_32) for k in (12, 16, 20)]
        if kind in _MP4_CONTAINERS:
            fields += mp4_fields(data, name, pos + 8, min(end, pos + size))
        if size < 8:
            break
        pos += size
    return fields


def cine_fields(data: bytes, name: str) -> list:
    """CINEFILEHEADER, BITMAPINFOHEADER, the SETUP fields read, the offset table, each
    image's annotation and image sizes."""
    offsets = list(range(2, 44, 2)) + list(range(44, 84, 4)) + [84 + 142, 84 + 768, 84 + 808,
                                                                84 + 896]
    count, table = struct.unpack_from("<I", data, 20)[0], struct.unpack_from("<I", data, 32)[0]
    images = struct.unpack_from(f"<{count}q", data, table)
    offsets += [table + 8 * k + half for k in range(count) for half in (0, 4)]
    for start in images:
        annotation = struct.unpack_from("<I", data, start)[0]
        offsets += [start, start + annotation - 4]
    return [(f"cine@{o}", name, o, "<I", EXTREMES_32) for o in offsets]


_CIH_KEYS = ("Record Rate(fps)", "Total Frame", "Image Width", "Image Height", "Color Type",
             "Color Bit", "File Format", "EffectiveBit Depth", "EffectiveBit Side")
_CIH_VALUES = ("0", "-1", "4294967295", "99999999999999999999", "nan", "inf", "", "x", "1.5")


def cih_fields(name: str) -> list:
    """Each value of the text header set to an extreme or not a number."""
    return [(f"cih.{key}", name, key, "text", _CIH_VALUES) for key in _CIH_KEYS]


# ------------------------------------------------------------------ seeds

def _seed(kind: str, tmp_path) -> Seed:
    """The intact recording ``kind`` (built small, in memory)."""
    if kind == "tiff_stack":  # uncompressed: frames read from their offsets
        data = _tiff(_movie(), photometric="minisblack")
        return Seed({"s.tif": data}, "s.tif", tiff_fields(data, "s.tif"))
    if kind == "tiff_zlib_rgb16":  # compressed 16-bit RGB: decoded page by page
        data = _tiff(_movie(np.uint16, color=True), photometric="rgb", compression="zlib")
        return Seed({"s.tif": data}, "s.tif", tiff_fields(data, "s.tif"))
    if kind == "tiff_folder":  # single-page files read through the layout template
        files = {f"d/f{i}.tif": _tiff(frame) for i, frame in enumerate(_movie()[:3])}
        return Seed(files, "d", tiff_fields(files["d/f0.tif"], "d/f0.tif")
                    + tiff_fields(files["d/f1.tif"], "d/f1.tif"))
    if kind == "png_folder":  # gray and gray + alpha (alpha dropped)
        movie = _movie()
        files = {f"d/f{i}.png": _pillow(movie[i], "PNG", mode) for i, mode in
                 enumerate(("L", "LA", "L"))}
        return Seed(files, "d", png_fields(files["d/f0.png"], "d/f0.png")
                    + png_fields(files["d/f1.png"], "d/f1.png"))
    if kind == "png16_folder":  # 16-bit RGB, decoded by PyAV
        files = {f"d/f{i}.png": encode_png(frame) for i, frame in
                 enumerate(_movie(np.uint16, color=True)[:3])}
        return Seed(files, "d", png_fields(files["d/f1.png"], "d/f1.png"))
    if kind == "jpeg_folder":
        files = {f"d/f{i}.jpg": _pillow(frame, "JPEG") for i, frame in enumerate(_movie()[:3])}
        return Seed(files, "d", [])
    if kind == "mp4":
        data = _mp4(_movie())
        return Seed({"s.mp4": data}, "s.mp4", mp4_fields(data, "s.mp4"))
    if kind == "cine":  # 16-bit, 12 significant bits, bottom-up
        data = _cine(tmp_path, _movie(np.uint16))
        return Seed({"s.cine": data}, "s.cine", cine_fields(data, "s.cine"))
    if kind == "cine_p10_bayer":  # packed 10-bit raw Bayer: unpacked, linearized, demosaiced
        data = _cine(tmp_path, _movie(np.uint16) % 1024, compression=2, bi_compression=256,
                     cfa=3)
        return Seed({"s.cine": data}, "s.cine", cine_fields(data, "s.cine"))
    if kind == "mraw12":  # packed 12-bit pixels, text header
        header = ("#Camera Information Header\nRecord Rate(fps) : 2000\n"
                  f"Total Frame : {N}\nOriginal Total Frame : {N}\nImage Width : {W}\n"
                  f"Image Height : {H}\nColor Type : Mono\nColor Bit : 12\nFile Format : MRaw\n"
                  "EffectiveBit Depth : 12\nEffectiveBit Side : Lower\n")
        files = {"s.mraw": pack_bits(_movie(np.uint16), 12), "s.cih": header.encode()}
        return Seed(files, "s.mraw", cih_fields("s.cih"))
    raise KeyError(kind)


#: Random and field cases per seed; a few hundred in all.
KINDS = {"tiff_stack": (16, 48), "tiff_zlib_rgb16": (16, 48), "tiff_folder": (16, 48),
         "png_folder": (16, 24), "png16_folder": (12, 12), "jpeg_folder": (16, 0),
         "mp4": (16, 30), "cine": (16, 40), "cine_p10_bayer": (12, 24), "mraw12": (16, 30)}
CASES = [(kind, "random", i) for kind, (n, _) in KINDS.items() for i in range(n)] + [
    (kind, "field", i) for kind, (_, n) in KINDS.items() for i in range(n)]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Seeds by kind, built on first use; each must trace intact before it is corrupted."""
    built = {}

    def get(kind):
        if kind not in built:
            where = tmp_path_factory.mktemp(kind)
            seed = _seed(kind, where)
            _write(where, seed.files)
            flowtrace(where / seed.target, 2, where / "out", backend="numpy", progress=False)
            built[kind] = seed
        return built[kind]

    return get


def _write(root, files: dict) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


# ------------------------------------------------------------------ mutations

def _random_mutation(seed: Seed, rng) -> tuple[str, bytes]:
    """One file of the seed with a byte-level corruption."""
    name = sorted(seed.files)[rng.integers(len(seed.files))]
    data = bytearray(seed.files[name])
    how = int(rng.integers(4))
    if how == 0:  # flip 1-4 bits anywhere
        for _ in range(int(rng.integers(1, 5))):
            data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    elif how == 1:  # truncate
        data = data[:int(rng.integers(len(data)))]
    else:  # an extreme 4- or 2-byte value somewhere in the first KB (the headers)
        fmt, values = ("<I", EXTREMES_32) if how == 2 else ("<H", EXTREMES_16)
        size = struct.calcsize(fmt)
        at = int(rng.integers(max(1, min(len(data), 1024) - size)))
        struct.pack_into(fmt, data, at, values[int(rng.integers(len(values)))])
    return name, bytes(data)


def _field_mutation(seed: Seed, index: int) -> tuple[str, bytes]:
    """A documented field of the seed set to one of its extremes: the fields marked
    first in order, then the others spread at random."""
    first = [(f, v) for f in seed.fields if f[5:] == (True,) for v in f[4]]
    others = [(f, v) for f in seed.fields if f[5:] != (True,) for v in f[4]]
    order = np.random.default_rng(len(others)).permutation(len(others))
    cases = first + [others[k] for k in order]
    (_, name, where, fmt, *_), value = cases[index % len(cases)]
    data = seed.files[name]
    if fmt == "text":
        text = re.sub(rf"^{re.escape(where)} : .*$", f"{where} : {value}", data.decode(),
                      flags=re.M)
        return name, text.encode()
    data = bytearray(data)
    struct.pack_into(fmt, data, where, value)
    return name, bytes(data)


class _LeakedRecords(logging.Handler):
    """Library log records emitted where no reader boundary collects them."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.leaked = []

    def emit(self, record):
        if not getattr(boundary._local, "stack", None):
            self.leaked.append(record.getMessage())


@pytest.mark.parametrize("kind, how, index", CASES, ids=[f"{k}-{h}-{i}" for k, h, i in CASES])
def test_corrupt_file_traces_or_fails_cleanly(seeds, tmp_path, kind, how, index):
    seed = seeds(kind)
    if how == "random":
        name, data = _random_mutation(seed, np.random.default_rng([index, len(kind)]))
    else:
        name, data = _field_mutation(seed, index)
    _write(tmp_path, {**seed.files, name: data})
    leaks = _LeakedRecords()
    loggers = [logging.getLogger(n) for n in boundary.LIBRARY_LOGGERS]
    for logger in loggers:
        logger.addHandler(leaks)
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    tracemalloc.start()
    start = time.perf_counter()
    error = None
    try:
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            try:
                flowtrace(tmp_path / seed.target, 2, tmp_path / "out", backend="numpy",
                          use_parallel=index % 4 == 0, progress=False)
            except FlowtraceError as exc:
                error = exc
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        faulthandler.cancel_dump_traceback_later()
        for logger in loggers:
            logger.removeHandler(leaks)
    what = f"{name} corrupted ({how} {index})"
    assert elapsed < CASE_SECONDS, f"{what}: took {elapsed:.1f} s"
    assert peak < CASE_BYTES, f"{what}: allocated {peak / 2**20:.0f} MiB"
    assert not [str(w.message) for w in shown], f"{what}: warnings escaped"
    assert not leaks.leaked, f"{what}: library log records escaped"
    if error is not None:
        message = str(error)
        assert "\n" not in message, message
        named = any(part.split("/")[-1] in message for part in seed.files)
        assert named or message.startswith("frames_to_merge="), message
        # Header sizes are checked before allocating: no refusal may come from Python's or
        # NumPy's allocator (FFmpeg's own cap on one allocation, av's ENOMEM, is its check).
        cause = error.__cause__
        assert not (isinstance(cause, MemoryError) and not type(cause).__module__.startswith("av")), \
            message
