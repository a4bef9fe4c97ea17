"""Camera files: real Phantom and Photron recordings against independent decoders,
and small files written here for every storage the readers claim (packings, CFA
patterns, orientations, bit sides, upper-case suffixes, corrupt headers).

The real files live in ../shared/real (see its README.md); tests that need them
skip, with the reason, where that folder is absent.
"""

import shutil
import struct

import numpy as np
import pytest

from flowtrace_gpu import FlowtraceError
from flowtrace_gpu.io.bayer import demosaic
from flowtrace_gpu.io.formats import open_source
from flowtrace_gpu.io.grayscale import luma
from flowtrace_gpu.io.packed import unpack_10bit, unpack_12bit
from flowtrace_gpu.io.phantom_p10 import P10_TO_12BIT

from camera_writers import pack_bits, write_cine
from conftest import REAL

PATTERN_OF_CFA = {3: "GBRG", 4: "RGGB", 5: "GRBG", 6: "BGGR"}


def real(name):
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real camera file {name} not found in {REAL} (it lives in ../shared/real)")
    return path


def read_all(source):
    return np.stack(list(source.frames(range(source.n_frames))))


def bilinear_oracle(mosaic, pattern):
    """Bilinear demosaic as masked convolutions, mirrored borders, rounded half up."""
    try:
        from scipy.ndimage import convolve
    except ImportError:
        convolve = None
    h, w = mosaic.shape
    yy, xx = np.mgrid[0:h, 0:w]
    site = np.array(list(pattern)).reshape(2, 2)[yy % 2, xx % 2]
    green = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4
    red_blue = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
    out = np.empty((h, w, 3))
    for channel, color in enumerate("RGB"):
        samples = np.where(site == color, mosaic, 0).astype(np.float64)
        kernel = green if color == "G" else red_blue
        if convolve is not None:
            acc = convolve(samples, kernel, mode="mirror")
        else:
            padded = np.pad(samples, 1, mode="reflect")
            acc = sum(kernel[dy, dx] * padded[dy:dy + h, dx:dx + w]
                      for dy in range(3) for dx in range(3))
        out[..., channel] = np.floor(acc + 0.5)
    return out.astype(mosaic.dtype)


# ------------------------------------------------------------------ packed bits

@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 4096 + 3])
def test_unpack_matches_an_independent_bit_stream(count):
    rng = np.random.default_rng(count)
    values = rng.integers(0, 4096, count)
    np.testing.assert_array_equal(unpack_12bit(pack_bits(values, 12), (count,)), values)
    codes = values % 1024
    np.testing.assert_array_equal(unpack_10bit(pack_bits(codes, 10), (count,)), codes)
    np.testing.assert_array_equal(unpack_10bit(pack_bits(codes, 10), (count,), P10_TO_12BIT),
                                  P10_TO_12BIT[codes])


def test_p10_table_shape():
    assert P10_TO_12BIT.shape == (1024,) and P10_TO_12BIT.dtype == np.uint16
    assert (np.diff(P10_TO_12BIT.astype(int)) >= 0).all()
    assert (P10_TO_12BIT[0], P10_TO_12BIT[-1]) == (2, 4095)


# ------------------------------------------------------------------ demosaic

@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("shape", [(2, 2), (2, 5), (3, 3), (6, 8), (7, 9), (17, 30)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_demosaic_matches_masked_convolution(pattern, shape, dtype):
    top = np.iinfo(dtype).max
    mosaic = np.random.default_rng(sum(shape)).integers(0, top + 1, shape).astype(dtype)
    np.testing.assert_array_equal(demosaic(mosaic, pattern), bilinear_oracle(mosaic, pattern))


def test_demosaic_keeps_flat_color_and_refuses_bad_input():
    mosaic = np.tile(np.array([[100, 200], [200, 50]], np.uint16), (4, 4))  # RGGB of (100, 200, 50)
    np.testing.assert_array_equal(demosaic(mosaic, "RGGB"), np.full((8, 8, 3), [100, 200, 50]))
    with pytest.raises(FlowtraceError, match="pattern"):
        demosaic(mosaic, "RGBG")
    with pytest.raises(FlowtraceError, match="at least 2x2"):
        demosaic(mosaic[:1], "RGGB")


# ------------------------------------------------------------------ real Phantom files

def test_real_cine_781_equals_pims():
    source = open_source(real("cine_781.cine"))
    assert (source.n_frames, source.frame_shape, source.dtype) == (15, (256, 256), np.uint16)
    assert (source.bit_depth, source.fps) == (12, 90000.0)
    np.testing.assert_array_equal(read_all(source), np.load(real("cine_781.pims.npy")))


def test_real_p10_bayer_chart():
    source = open_source(real("chart1.cine"))
    assert (source.n_frames, source.frame_shape, source.dtype) == (1, (1080, 2048, 3), np.uint16)
    assert (source.bit_depth, source.pattern) == (12, "GBRG")
    mosaic = source.mosaic(0)
    np.testing.assert_array_equal(mosaic, np.load(real("chart1.mosaic.npy")))
    rgb = next(source.frames([0]))
    np.testing.assert_array_equal(rgb, bilinear_oracle(mosaic, "GBRG"))
    gray = next(open_source(real("chart1.cine"), grayscale=True).frames([0]))
    assert gray.shape == (1080, 2048)
    np.testing.assert_array_equal(gray, luma(rgb))


# ------------------------------------------------------------------ self-written cine files

def _bayer_scene(h, w, dtype, seed):
    top = 1023 if dtype == "p10" else (4095 if dtype == np.uint16 else 255)
    rng = np.random.default_rng(seed)
    return rng.integers(0, top + 1, (h, w, 3)).astype(np.uint16 if dtype == "p10" else dtype)


def _sample(scene, pattern, bottom_up):
    """The display-order mosaic a sensor with ``pattern`` on its first *stored* row records."""
    h, w = scene.shape[:2]
    stored_row = np.arange(h)[::-1] if bottom_up else np.arange(h)
    colors = np.array([["RGB".index(c) for c in pattern[:2]], ["RGB".index(c) for c in pattern[2:]]])
    channel = colors[stored_row[:, None] % 2, np.arange(w)[None, :] % 2]
    return np.take_along_axis(scene, channel[..., None], axis=2)[..., 0], channel


@pytest.mark.parametrize("cfa", [3, 4, 5, 6])
@pytest.mark.parametrize("bottom_up", [True, False])
@pytest.mark.parametrize("h, w", [(6, 8), (7, 9)])
def test_raw_bayer_cine_every_cfa_and_flip(tmp_path, cfa, bottom_up, h, w):
    pattern = PATTERN_OF_CFA[cfa]
    scenes = np.stack([_bayer_scene(h, w, np.uint16, seed) for seed in range(3)])
    sampled = [_sample(scene, pattern, bottom_up) for scene in scenes]
    path = write_cine(tmp_path / "raw.cine", np.stack([m for m, _ in sampled]), compression=2,
                      cfa=cfa, bottom_up=bottom_up)
    source = open_source(path)
    assert (source.frame_shape, source.dtype, source.bit_depth) == ((h, w, 3), np.uint16, 12)
    frames = read_all(source)
    for frame, (mosaic, channel) in zip(frames, sampled):
        # Each photosite's measured color lands in its own channel, whatever the flip did.
        measured = np.take_along_axis(frame, channel[..., None], axis=2)[..., 0]
        np.testing.assert_array_equal(measured, mosaic)
        np.testing.assert_array_equal(frame, bilinear_oracle(mosaic, source.pattern))
    np.testing.assert_array_equal(source.mosaic(1), sampled[1][0])


@pytest.mark.parametrize("cfa", [3, 6])
def test_raw_bayer_p10_cine(tmp_path, cfa):
    pattern = PATTERN_OF_CFA[cfa]
    codes = np.stack([_sample(_bayer_scene(6, 10, "p10", s), pattern, False)[0] for s in range(2)])
    path = write_cine(tmp_path / "p10.cine", codes, compression=2, cfa=cfa, bi_compression=256,
                      real_bpp=10)
    source = open_source(path)
    assert (source.bit_depth, source.pattern, source.frame_shape) == (12, pattern, (6, 10, 3))
    for i, frame in enumerate(read_all(source)):
        mosaic = P10_TO_12BIT[codes[i]]
        np.testing.assert_array_equal(source.mosaic(i), mosaic)
        np.testing.assert_array_equal(frame, bilinear_oracle(mosaic, pattern))


def test_packed_12l_cine_gray_and_bayer(tmp_path):
    values = np.random.default_rng(5).integers(0, 4096, (4, 5, 7)).astype(np.uint16)  # odd count
    gray = open_source(write_cine(tmp_path / "g.cine", values, bi_compression=1024))
    assert (gray.frame_shape, gray.bit_depth) == ((5, 7), 12)
    np.testing.assert_array_equal(read_all(gray), values)
    bayer = open_source(write_cine(tmp_path / "b.cine", values, bi_compression=1024,
                                   compression=2, cfa=4))
    assert bayer.pattern == "RGGB"
    np.testing.assert_array_equal(read_all(bayer)[2], bilinear_oracle(values[2], "RGGB"))


def test_packed_10bit_gray_cine_is_linearized(tmp_path):
    codes = np.random.default_rng(6).integers(0, 1024, (3, 4, 8)).astype(np.uint16)
    source = open_source(write_cine(tmp_path / "p.cine", codes, bi_compression=256, real_bpp=10))
    assert (source.frame_shape, source.bit_depth, source.pattern) == ((4, 8), 12, None)
    np.testing.assert_array_equal(read_all(source), P10_TO_12BIT[codes])
    with pytest.raises(FlowtraceError, match="not a raw Bayer cine"):
        source.mosaic(0)


def test_8bit_raw_bayer_cine(tmp_path):
    scene = _bayer_scene(4, 6, np.uint8, 7)
    mosaic, _ = _sample(scene, "GRBG", True)
    source = open_source(write_cine(tmp_path / "b8.cine", mosaic[None], compression=2, cfa=5))
    # Flipped with an even height: the CFA's second row (BG) comes out on top.
    assert source.dtype == np.uint8 and source.pattern == "BGGR"
    np.testing.assert_array_equal(read_all(source)[0], bilinear_oracle(mosaic, "BGGR"))


def _patch(path, offset, fmt, value):
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("offset, fmt, value, match", [
    (32, "<I", 10**9, "image offset table .* beyond the end"),        # OffImageOffsets
    (24, "<I", 10**9, "bitmap header .* beyond the end"),             # OffImageHeader
    (28, "<I", 10**9, "SETUP offset .* beyond the end"),              # OffSetup
    (44 + 4, "<i", 10**6, "image 0 lies beyond the end"),              # biWidth
    (44 + 40 + 1024, "<q", 10**12, "image 0 lies beyond the end"),     # first image offset
    (20, "<I", 2**31, "image offset table .* beyond the end"),        # ImageCount
])
def test_cine_header_offsets_are_checked_against_the_file(tmp_path, offset, fmt, value, match):
    path = write_cine(tmp_path / "bad.cine", np.zeros((2, 4, 6), np.uint16))
    _patch(path, offset, fmt, value)
    with pytest.raises(FlowtraceError, match=rf"bad\.cine.*{match}"):
        open_source(path)


def test_cine_image_sizes_are_checked_before_reading(tmp_path):
    movie = np.zeros((2, 4, 6), np.uint16)
    path = write_cine(tmp_path / "bad.cine", movie)
    first_image = 44 + 40 + 1024 + 2 * 8
    _patch(path, first_image + 4, "<I", 10**9)  # image 0's size, far past the end
    with pytest.raises(FlowtraceError, match=r"bad\.cine.*image 0 .* beyond the end"):
        list(open_source(path).frames([0]))
    path = write_cine(tmp_path / "bad.cine", movie)
    _patch(path, first_image, "<I", 10**9)  # image 0's annotation size
    with pytest.raises(FlowtraceError, match=r"bad\.cine.*image 0 size .* beyond the end"):
        list(open_source(path).frames([0]))


# ------------------------------------------------------------------ Photron

def _pymraw_frames(header):
    pymraw = pytest.importorskip("pyMRAW", reason="MRAW needs pyMRAW (pip install pyMRAW)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images, _ = pymraw.load_video(str(header))
    return np.asarray(images)


@pytest.mark.parametrize("header, shape, fps", [
    ("photron/ball_12bit.cihx", (15, 384, 384), 30000.0),
    ("photron/sample_60k_16bit.cih", (12, 368, 896), 60000.0),
])
def test_real_mraw_equals_pymraw(header, shape, fps):
    path = real(header)
    expected = _pymraw_frames(path)
    for given in (path, path.with_suffix(".mraw")):
        source = open_source(given)
        assert (source.n_frames,) + source.frame_shape == shape
        assert (source.bit_depth, source.fps, source.dtype) == (12, fps, np.uint16)
        np.testing.assert_array_equal(read_all(source), expected)


@pytest.mark.parametrize("header", ["photron/ball_12bit.cihx", "photron/sample_60k_16bit.cih"])
def test_real_mraw_with_upper_case_suffixes(tmp_path, header):
    path = real(header)
    upper = tmp_path / path.stem.upper()
    shutil.copyfile(path, upper.with_suffix(path.suffix.upper()))
    shutil.copyfile(path.with_suffix(".mraw"), upper.with_suffix(".MRAW"))
    expected = _pymraw_frames(path)
    for given in (upper.with_suffix(path.suffix.upper()), upper.with_suffix(".MRAW")):
        np.testing.assert_array_equal(read_all(open_source(given)), expected)


def _cih(path, bits=16, depth=12, side="Lower", color="Mono", n=3, h=4, w=6):
    path.with_suffix(".cih").write_text(
        "#Camera Information Header\nRecord Rate(fps) : 500\n"
        f"Total Frame : {n}\nImage Width : {w}\nImage Height : {h}\nColor Type : {color}\n"
        f"Color Bit : {bits}\nFile Format : MRaw\nEffectiveBit Depth : {depth}\n"
        f"EffectiveBit Side : {side}\n")
    return path.with_suffix(".cih")


def test_mraw_effective_bits_higher_and_lower(tmp_path):
    values = np.random.default_rng(3).integers(0, 4096, (3, 4, 6)).astype(np.uint16)
    (tmp_path / "hi.mraw").write_bytes((values << 4).astype("<u2").tobytes())
    hi = open_source(_cih(tmp_path / "hi", side="Higher"))
    assert hi.bit_depth == 12
    np.testing.assert_array_equal(read_all(hi), values)
    (tmp_path / "lo.mraw").write_bytes(values.astype("<u2").tobytes())
    np.testing.assert_array_equal(read_all(open_source(_cih(tmp_path / "lo"))), values)
    (tmp_path / "p.mraw").write_bytes(pack_bits(values >> 2 << 2, 12))  # 10 effective bits, high side
    packed = open_source(_cih(tmp_path / "p", bits=12, depth=10, side="Higher"))
    assert packed.bit_depth == 10
    np.testing.assert_array_equal(read_all(packed), values >> 2)


@pytest.mark.parametrize("fields, match", [
    (dict(color="Color"), "color MRAW"),
    (dict(bits=24), "24-bit"),
    (dict(bits=10), "10-bit"),
    (dict(side="Middle"), "Middle"),
])
def test_mraw_out_of_scope_is_refused(tmp_path, fields, match):
    (tmp_path / "rec.mraw").write_bytes(b"\0" * 1000)
    with pytest.raises(FlowtraceError, match=rf"rec\.cih.*{match}.*monochrome 8/12/16-bit"):
        open_source(_cih(tmp_path / "rec", **fields))


def test_color_cihx_is_refused(tmp_path):
    path = real("photron/ball_12bit.cihx")
    text = path.read_bytes().replace(b"<type>Raw</type>", b"<type>Color</type>", 1)
    (tmp_path / "c.cihx").write_bytes(text)
    (tmp_path / "c.mraw").write_bytes(b"")
    with pytest.raises(FlowtraceError, match=r"c\.cihx describes a color MRAW"):
        open_source(tmp_path / "c.cihx")
