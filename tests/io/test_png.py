"""The PNG writer's deflate choices, and the Huffman-only coder against zlib's inflater."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flowtrace_gpu import config
from flowtrace_gpu.io import huffman, png
from flowtrace_gpu.kernels.numba import huffman as numba_huffman


def _inflate(stream) -> bytes:
    return zlib.decompress(np.asarray(stream, np.uint8).tobytes())


def _kraft(lengths) -> float:
    used = np.asarray(lengths)[np.asarray(lengths) > 0]
    return float((2.0 ** -used.astype(np.float64)).sum())


@st.composite
def byte_strings(draw):
    """Bytes of every shape the coder meets: noise, few values, one value, skewed, odd sizes."""
    size = draw(st.integers(0, 5000))
    kind = draw(st.sampled_from(["noise", "few", "one", "geometric"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "noise":
        data = rng.integers(0, 256, size)
    elif kind == "few":
        data = rng.choice(rng.integers(0, 256, draw(st.integers(2, 5))), size)
    elif kind == "one":
        data = np.full(size, draw(st.integers(0, 255)))
    else:  # counts falling by half per value: a Huffman tree deeper than 15 bits
        data = np.minimum(rng.geometric(0.5, size) - 1, 255)
    return data.astype(np.uint8).tobytes()


@settings(max_examples=150, deadline=None)
@given(byte_strings())
def test_huffman_stream_inflates_to_the_data(data):
    hist = numba_huffman.histogram(np.frombuffer(data, np.uint8))
    np.testing.assert_array_equal(hist, np.bincount(np.frombuffer(data, np.uint8), minlength=256))
    block = huffman.HuffmanBlock(hist)
    stream = huffman.huffman_zlib(data)
    assert _inflate(stream) == data
    assert stream.size == block.stream_size()  # the size counted before coding is exact


def test_huffman_stream_with_limited_code_lengths_inflates():
    # Counts 1, 2, 4, ... make the optimal tree 20 deep; deflate allows 15.
    data = np.repeat(np.arange(20, dtype=np.uint8), 2 ** np.arange(20))
    np.random.default_rng(0).shuffle(data)
    hist = np.bincount(data, minlength=256)
    assert huffman.HuffmanBlock(hist).lengths.max() == 15
    assert _inflate(huffman.huffman_zlib(data.tobytes())) == data.tobytes()


def test_huffman_size_is_the_histograms_code():
    # Skewed noise: the stream is the header plus sum(count x length), and
    # close to the entropy (a Huffman code is within one bit a symbol of it).
    rng = np.random.default_rng(1)
    data = np.minimum(rng.exponential(20, 300_000), 255).astype(np.uint8)
    hist = np.bincount(data, minlength=256)
    stream = huffman.huffman_zlib(data.tobytes())
    p = hist[hist > 0] / data.size
    entropy_bytes = -(p * np.log2(p)).sum() * data.size / 8
    assert entropy_bytes <= stream.size <= entropy_bytes * 1.02 + 200
    header = huffman.HuffmanBlock(hist).stream_size() - huffman.literal_ratio(hist) * data.size
    assert 0 <= header < 400  # zlib header, the code, Adler-32: the rest is the data


@pytest.mark.parametrize("limit", [7, 15])
def test_code_lengths_are_limited_and_complete(limit):
    counts = np.zeros(286, np.int64)
    counts[:40] = [2 ** min(k, 40) for k in range(40)][::-1]  # a depth-39 optimal tree
    lengths = huffman.code_lengths(counts, limit)
    assert lengths.max() == limit
    assert (lengths[:40] > 0).all() and (lengths[40:] == 0).all()
    assert _kraft(lengths) == 1.0  # complete: no code is wasted, none is ambiguous
    order = np.argsort(-counts[:40], kind="stable")
    assert (np.diff(lengths[order]) >= 0).all()  # more frequent, never longer


def test_code_lengths_give_two_codes_at_least():
    assert (huffman.code_lengths(np.zeros(19), 7) > 0).sum() == 2
    lengths = huffman.code_lengths(np.eye(1, 257, 7)[0] * 10, 15)
    assert lengths[7] == 1 and (lengths > 0).sum() == 2 and _kraft(lengths) == 1.0


def test_canonical_codes_match_rfc1951_example():
    # RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give codes 010 011 100
    # 101 110 00 1110 1111 (here bit-reversed, as deflate packs them).
    codes = huffman.canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    expected = ["010", "011", "100", "101", "110", "00", "1110", "1111"]
    assert [int(e[::-1], 2) for e in expected] == codes.tolist()


def _tinted_noise():
    # color_series of a noisy movie: a skewed byte histogram and little for
    # LZ77 to match.
    from flowtrace_gpu import flowtrace_array
    from flowtrace_gpu.synthetic import synthetic_movie

    return flowtrace_array(synthetic_movie(31, (384, 384), seed=1), 30, windows="sliding",
                           color_series=True)[0]


@pytest.mark.parametrize("kind, expected", [
    ("uniform noise", "stored"), ("tinted noise", "huffman"), ("sparse", "lz77")])
def test_deflate_picks_store_huffman_or_lz77(kind, expected, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    if kind == "uniform noise":
        image = rng.integers(0, 256, (700, 800), dtype=np.uint8)
    elif kind == "tinted noise":
        image = _tinted_noise()
    else:
        image = np.zeros((700, 800), np.uint8)
        image[rng.integers(0, 700, 500), rng.integers(0, 800, 500)] = 255
    chosen = []
    monkeypatch.setattr(png, "stored_rows_zlib", _recording(png.stored_rows_zlib, chosen, "stored"))
    monkeypatch.setattr(huffman, "huffman_zlib", _recording(huffman.huffman_zlib, chosen,
                                                            "huffman"))
    data = png.encode_png(image, 1)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
    assert chosen == ([] if expected == "lz77" else [expected])
    if expected == "huffman":  # within a few percent of ISA-L's size
        isal = len(png.encode_png(image, compress=lambda rows: png._isal.compress(rows, 1)))
        assert len(data) <= 1.04 * isal


def _recording(fn, log, name):
    def wrapper(*args, **kwargs):
        log.append(name)
        return fn(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("within", [0.0, 10.0])
def test_huffman_choice_follows_its_setting(within, monkeypatch):
    image = _tinted_noise()
    chosen = []
    monkeypatch.setattr(huffman, "huffman_zlib", _recording(huffman.huffman_zlib, chosen, "h"))
    settings_ = {**config.DEFAULTS, "png_literal_within": within, "png_store_above": 1.0}
    monkeypatch.setattr(config, "get", settings_.__getitem__)
    png.encode_png(image, 1)
    rows = np.concatenate([np.zeros((384, 1), np.uint8), image.reshape(384, -1)], axis=1)
    probe = png._probe(memoryview(rows).cast("B"), config.get("png_probe_bytes"))
    literal = huffman.literal_ratio(np.bincount(np.frombuffer(probe, np.uint8), minlength=256))
    lz77 = len(png.isal_stream(probe, 1)) / len(probe)
    assert (chosen == ["h"]) == (literal <= lz77 * (1 + within))


def test_importing_the_package_loads_no_numba():
    # Numba takes ~0.3 s to import: the PNG writer loads it with the first
    # image large enough to probe, and the backends when they are picked.
    import subprocess
    import sys

    code = ("import sys, flowtrace_gpu, numpy as np\n"
            "from flowtrace_gpu.io.png import encode_png\n"
            "encode_png(np.zeros((64, 64), np.uint8))\n"
            "print(sorted(m for m in ('numba', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_outputs_of_two_runs_must_be_the_same_bytes_and_a_difference_is_explained(tmp_path):
    # conftest.assert_same_images, which the tests of resumed and batch runs use.
    from conftest import assert_same_images

    image = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    ours, pillows = png.encode_png(image), _pillow_png(image)
    assert ours != pillows
    assert_same_images({"a.png": ours}, {"a.png": ours}, tmp_path / "kept")
    assert not (tmp_path / "kept").exists()
    with pytest.raises(AssertionError, match=r"a.png \(same pixels\)"):
        assert_same_images({"a.png": ours}, {"a.png": pillows}, tmp_path / "kept")
    assert (tmp_path / "kept" / "got_a.png").read_bytes() == ours
    other = png.encode_png(image ^ np.uint8(1))
    with pytest.raises(AssertionError, match=r"a.png \(different pixels\)"):
        assert_same_images({"a.png": other}, {"a.png": ours}, tmp_path / "kept")
    with pytest.raises(AssertionError):
        assert_same_images({"b.png": ours}, {"a.png": ours}, tmp_path / "kept")


def _pillow_png(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


@settings(max_examples=40)
@given(data=st.binary(min_size=0, max_size=3000), level=st.integers(1, 3))
def test_isal_stream_inflates_to_its_data(data, level):
    stream = png.isal_stream(data, level)
    assert zlib.decompress(stream) == data


def _crc32c(value: int) -> int:
    """The ``crc32`` instruction on a 32-bit value from 0: ISA-L's hash."""
    crc = value
    for _ in range(32):
        crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc


def test_isa_l_alone_depends_on_the_address_of_its_state():
    """Why png.isal_stream starts with history.

    ISA-L's level-1 matcher, starting without history, files the third byte
    under the hash of (address of its state >> 16) instead of the hash of
    its data. Here the bytes at 2..7 come back at 150: with the state at an
    address whose hash is the data's, the match is found; anywhere else it is
    not, and the stream differs. Started with a dictionary, the matcher never
    takes that path: the same stream at both addresses. Calls ISA-L's own
    ``isal_deflate`` (exported by python-isal's module) with the state placed
    in an anonymous mapping; only two 64 KiB slots of it are touched.
    """
    import ctypes
    import mmap

    if png._isal is None:
        pytest.skip("python-isal is not installed")
    lib = ctypes.CDLL(png._isal.__file__)
    if not hasattr(lib, "isal_deflate_set_dict"):
        pytest.skip("python-isal's module does not export ISA-L's functions")
    for name in ("isal_deflate_init", "isal_deflate", "isal_deflate_set_dict"):
        getattr(lib, name).restype = ctypes.c_int
    data = b"\x11\x22\x33\x44\x55\x66\x77\x88" + bytes(142) + b"\x33\x44\x55\x66\x77\x88" + bytes(44)
    mask = min(8191, (1 << (2 * len(data)).bit_length()) - 1)  # a one-shot stream's (igzip.c)
    positions = {_crc32c(int.from_bytes(data[p:p + 4], "little")) & mask
                 for p in range(len(data) - 3)}
    target = _crc32c(int.from_bytes(data[2:6], "little")) & mask
    slots = 4096
    arena = mmap.mmap(-1, (slots + 2) << 16)  # address space; pages are touched on use
    anchor = ctypes.c_char.from_buffer(arena)
    first_slot = (ctypes.addressof(anchor) >> 16) + 1
    by_hash = {}
    for k in range(slots):
        by_hash.setdefault(_crc32c((first_slot + k) & 0xFFFFFFFF) & mask, k)
    lucky = by_hash[target]
    unlucky = next(k for h, k in by_hash.items() if h not in positions)
    level_buf = ctypes.create_string_buffer(4 * 1024 + 2 * 8192 + 4 * 64 * 1024)
    source = ctypes.create_string_buffer(data, len(data))
    out = ctypes.create_string_buffer(1024)

    def deflate(k, dictionary):
        address = (first_slot + k) << 16
        field = {0: ctypes.c_uint64, 8: ctypes.c_uint32, 16: ctypes.c_uint64,
                 24: ctypes.c_uint32, 40: ctypes.c_uint32, 44: ctypes.c_uint32,
                 48: ctypes.c_uint64, 56: ctypes.c_uint16, 58: ctypes.c_uint16,
                 60: ctypes.c_uint16, 62: ctypes.c_uint16}  # struct isal_zstream (igzip_lib.h)

        def put(offset, value):
            field[offset].from_address(address + offset).value = value

        lib.isal_deflate_init(ctypes.c_void_p(address))
        put(40, 1)  # level
        put(44, len(level_buf))
        put(48, ctypes.addressof(level_buf))
        start = 0
        if dictionary:
            start = 1
            assert lib.isal_deflate_set_dict(ctypes.c_void_p(address), source, 1) == 0
        put(0, ctypes.addressof(source) + start)
        put(8, len(data) - start)
        put(16, ctypes.addressof(out))
        put(24, len(out))
        put(56, 1)  # end_of_stream
        put(58, 2)  # FULL_FLUSH
        assert lib.isal_deflate(ctypes.c_void_p(address)) == 0
        return out.raw[:ctypes.c_uint32.from_address(address + 28).value]

    try:
        found, missed = deflate(lucky, False), deflate(unlucky, False)
        with_history = deflate(lucky, True), deflate(unlucky, True)
    finally:
        del anchor
        arena.close()
    for stream in (found, missed):
        assert zlib.decompress(stream, -15) == data
    if found == missed:
        pytest.skip("this ISA-L no longer depends on the address of its state: "
                    "png.isal_stream's stored first byte may go")
    assert len(found) < len(missed)  # the lucky address found the match at 150
    assert with_history[0] == with_history[1]
    assert zlib.decompress(data[:1] and b"\x78\x5e\x00\x01\x00\xfe\xff" + data[:1]
                           + with_history[0] + struct.pack(">I", zlib.adler32(data))) == data


def test_deflate_starts_isa_l_streams_with_history():
    # A sparse image, large enough to be probed: ISA-L codes it (png.isal_stream).
    image = np.zeros((600, 599), np.uint8)
    image[::7, ::5] = 200
    stream = bytes(png.png_parts(image)[1])
    rows = _rows(image)
    assert stream[:7] == b"\x78\x5e\x00\x01\x00\xfe\xff" and stream[7] == rows.flat[0]
    assert zlib.decompress(stream) == rows.tobytes()


def test_the_probe_samples_the_whole_image(monkeypatch):
    # Noise with a band of zeros across its middle rows: stored is the best
    # choice for the image (the band is 6 % of it), though a probe taken from
    # the middle alone would see only zeros and send it to ISA-L.
    image = np.random.default_rng(3).integers(0, 256, (1000, 1000), dtype=np.uint8)
    image[470:530] = 0
    chosen = []
    monkeypatch.setattr(png, "stored_rows_zlib", _recording(png.stored_rows_zlib, chosen, "stored"))
    data = png.encode_png(image)
    assert chosen == ["stored"]
    assert len(data) < image.size * 1.01


def _rows(pixels):
    return np.concatenate([np.zeros((pixels.shape[0], 1), np.uint8), pixels], axis=1)


@pytest.mark.parametrize("height, width", [
    (1, 1), (63, 1024), (64, 1024), (126, 1024), (700, 800), (3, 65534), (2, 65535), (5, 70000),
    (0, 16)])
def test_stored_rows_stream_inflates_to_the_rows(height, width):
    pixels = np.random.default_rng(width).integers(0, 256, (height, width), dtype=np.uint8)
    stream = png.stored_rows_zlib(pixels)
    assert _inflate(stream) == _rows(pixels).tobytes()  # zlib checks the Adler-32 too
    if 0 < width + 1 <= 65535:  # whole rows per block, as many as fit
        blocks = max(1, -(-height // (65535 // (width + 1))))  # an empty stream: one block
        assert stream.size == 2 + 5 * blocks + height * (width + 1) + 4


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 90), nbytes=st.integers(4, 64))
def test_probe_of_the_pixels_is_the_probe_of_the_rows(height, width, nbytes):
    pixels = np.random.default_rng(height * 100 + width).integers(
        0, 256, (height, width), dtype=np.uint8)
    rows = _rows(pixels)
    assume(rows.size > 4 * nbytes)  # smaller rows are not probed
    expected = png._probe(memoryview(rows).cast("B"), nbytes)
    assert png._probe_rows(pixels, nbytes) == expected


@pytest.mark.parametrize("dtype, channels", [(np.uint8, 1), (np.uint8, 3), (np.uint16, 1),
                                             (np.uint16, 3)])
def test_noise_is_stored_from_its_pixels_and_reads_back(dtype, channels):
    from PIL import Image

    shape = (300, 400) if channels == 1 else (300, 400, channels)
    image = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    data = png.encode_png(image, 1)
    assert len(data) >= image.nbytes  # stored
    if dtype == np.uint8:
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
    else:  # Pillow reads 16-bit RGB as 8-bit: check the stream itself
        length = struct.unpack(">I", data[33:37])[0]
        rows = np.frombuffer(zlib.decompress(data[41:41 + length]), np.uint8)
        rows = rows.reshape(300, -1)
        assert (rows[:, 0] == 0).all()
        got = rows[:, 1:].copy().view(">u2").reshape(shape)
        np.testing.assert_array_equal(got, image)
