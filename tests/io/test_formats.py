"""Recording formats in, media out: every reader against a TIFF folder of the same frames.

Lossless formats (TIFF stacks, FFV1 video, MRAW, cine) must give the folder's
frames exactly; H.264 video is lossy, so it is compared within a stated
tolerance. All inputs are synthetic and made here.
"""

import sys

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace_array, get_backend
from flowtrace_gpu.engine import pipeline
from flowtrace_gpu.engine.plan import TracePlan, trace_sequence
from flowtrace_gpu.io.formats import open_source, open_writer
from flowtrace_gpu.io.grayscale import luma
from flowtrace_gpu.io.iterable import IterableSource
from flowtrace_gpu.io.writers import ListWriter
from flowtrace_gpu.options import TraceOptions  # noqa: E402

from camera_writers import pack_bits, write_cine, write_ffv1

av = pytest.importorskip("av", reason="video formats need PyAV (pip install av)")
pymraw = pytest.importorskip("pyMRAW", reason="MRAW needs pyMRAW (pip install pyMRAW)")

N, H, W, F = 12, 18, 22, 4
# H.264 (CRF 18, yuv420p) on these frames: mean |error| per pixel in 8-bit levels,
# for luma, and for RGB, where 4:2:0 chroma halves the color resolution of 2-pixel particles.
LOSSY_MEAN_TOLERANCE = 4.0
LOSSY_RGB_MEAN_TOLERANCE = 10.0


def _movie(dtype=np.uint8, color=False, n=N, seed=0):
    """Smooth background with bright moving particles, like a flow recording."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:H, 0:W]
    frames = []
    for t in range(n):
        frame = (0.15 + 0.1 * np.sin(x / 4 + t / 3) * np.cos(y / 5)) * top
        for k in range(4):  # particles drifting right
            cy, cx = 3 + 4 * k, (2 + 2 * t + 5 * k) % W
            frame[max(cy - 1, 0):cy + 1, max(cx - 1, 0):cx + 1] = top * (0.8 + 0.05 * k)
        frames.append(frame)
    movie = np.stack(frames).astype(dtype)
    if color:
        movie = np.stack([movie, np.roll(movie, 2, axis=2), movie // 2], axis=-1)
    return movie + rng.integers(0, 2, movie.shape).astype(dtype)


def _folder_frames(tmp_path, movie):
    """The same frames through a TIFF folder, the baseline every format must match."""
    d = tmp_path / "folder"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"frame{i}.tif", frame, photometric="rgb" if frame.ndim == 3 else None)
    return _read_all(open_source(d))


def _read_all(source):
    return np.stack(list(source.frames(range(source.n_frames))))


def _trace(frames):
    return flowtrace_array(frames, F, backend="numpy", use_parallel=False)


# ------------------------------------------------------------------ TIFF folders


@pytest.mark.parametrize("dtype,byteorder", [(np.uint8, "<"), (np.uint16, ">"),
                                             (np.float32, "<")])
def test_tiff_folder_reads_lookalike_files_plainly(tmp_path, dtype, byteorder):
    """Files laid out like the first are read without tifffile; odd ones still decode."""
    from flowtrace_gpu.io.images import TiffTemplate

    movie = _movie(np.uint16)[:6].astype(dtype)
    d = tmp_path / "folder"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"f{i}.tif", frame, byteorder=byteorder)
    # Same size, other header: a different description. Compressed: other size.
    tifffile.imwrite(d / "f2.tif", movie[2], byteorder=byteorder, description="x" * 5)
    tifffile.imwrite(d / "f4.tif", movie[4], byteorder=byteorder, compression="zlib")
    template = TiffTemplate.from_file(d / "f0.tif")
    assert template is not None
    plain = [template.read(d / f"f{i}.tif") is not None for i in range(6)]
    assert plain == [True, True, False, True, False, True]
    frames = _read_all(open_source(d))
    assert frames.dtype == np.dtype(dtype) and frames.dtype.isnative
    np.testing.assert_array_equal(frames, movie)
    assert frames.flags.writeable


def test_tiff_folder_probe_still_refuses_an_odd_file(tmp_path):
    """A transposed frame has the same file size but not the same header."""
    movie = _movie()[:4]
    d = tmp_path / "folder"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"f{i}.tif", frame if i != 2 else frame.T.copy())
    assert (d / "f2.tif").stat().st_size == (d / "f0.tif").stat().st_size
    with pytest.raises(FlowtraceError, match="f2.tif is .* every frame must match the first"):
        open_source(d)


def test_tiff_template_refuses_what_it_cannot_read_plainly(tmp_path):
    from flowtrace_gpu.io.images import TiffTemplate

    frame = _movie()[0]
    tifffile.imwrite(tmp_path / "zlib.tif", frame, compression="zlib")
    tifffile.imwrite(tmp_path / "tiled.tif", np.tile(frame, (3, 3)), tile=(16, 16))
    tifffile.imwrite(tmp_path / "plain.tif", frame)
    assert TiffTemplate.from_file(tmp_path / "zlib.tif") is None
    assert TiffTemplate.from_file(tmp_path / "tiled.tif") is None
    assert TiffTemplate.from_file(tmp_path / "missing.tif") is None
    template = TiffTemplate.from_file(tmp_path / "plain.tif")
    (tmp_path / "short.tif").write_bytes((tmp_path / "plain.tif").read_bytes()[:-1])
    assert template.read(tmp_path / "short.tif") is None


# ------------------------------------------------------------------ TIFF stacks

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_stack_memmapped_matches_folder(tmp_path, dtype):
    movie = _movie(dtype)
    path = tmp_path / "rec.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    source = open_source(path)
    assert source._block is not None  # read from its offset, not decoded
    assert (source.n_frames, source.frame_shape, source.dtype) == (N, (H, W), np.dtype(dtype))
    assert source.names[:2] == ["rec_00", "rec_01"] and source.names[-1] == "rec_11"
    got = _read_all(source)
    np.testing.assert_array_equal(got, _folder_frames(tmp_path, movie))


def test_tiff_stack_compressed_rgb_page_by_page(tmp_path):
    movie = _movie(color=True)
    path = tmp_path / "rec.tiff"
    tifffile.imwrite(path, movie, photometric="rgb", compression="zlib")
    source = open_source(path)
    assert source._block is None and source.frame_shape == (H, W, 3)
    np.testing.assert_array_equal(_read_all(source), _folder_frames(tmp_path, movie))


def test_tiff_stack_skip_names_and_frames(tmp_path):
    movie = _movie()
    tifffile.imwrite(tmp_path / "s.tif", movie)
    source = open_source(tmp_path / "s.tif", frames_to_skip=3)
    assert source.n_frames == 4 and source.names == ["s_00", "s_03", "s_06", "s_09"]
    np.testing.assert_array_equal(_read_all(source), movie[::3])


def test_tiff_big_endian_stack_reads_native(tmp_path):
    movie = _movie(np.uint16)
    tifffile.imwrite(tmp_path / "be.tif", movie, byteorder=">")
    got = _read_all(open_source(tmp_path / "be.tif"))
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, movie)


def test_tiff_hyperstack_with_two_long_axes_is_refused(tmp_path):
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, np.zeros((3, 2, H, W), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(FlowtraceError, match=r"hyper\.tif.*ambiguous"):
        open_source(path)


# ------------------------------------------------------------------ video

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_gray_video_matches_folder(tmp_path, dtype):
    movie = _movie(dtype)
    path = tmp_path / "rec.mkv"  # MKV keeps no frame count: packets are counted
    write_ffv1(path, movie)
    source = open_source(path)
    assert (source.n_frames, source.frame_shape, source.dtype) == (N, (H, W), np.dtype(dtype))
    assert source.fps == 25.0 and source.names[0] == "rec_00"
    got = _read_all(source)
    np.testing.assert_array_equal(got, _folder_frames(tmp_path, movie))


def test_lossless_color_video_is_rgb(tmp_path):
    movie = _movie(color=True)
    write_ffv1(tmp_path / "rec.mkv", movie)
    source = open_source(tmp_path / "rec.mkv")
    assert source.frame_shape == (H, W, 3) and source.dtype == np.uint8
    np.testing.assert_array_equal(_read_all(source), _folder_frames(tmp_path, movie))
    gray = open_source(tmp_path / "rec.mkv", grayscale=True)
    assert gray.frame_shape == (H, W)
    np.testing.assert_array_equal(_read_all(gray), luma(movie))


def test_video_seeks_back_and_skips(tmp_path):
    movie = _movie()
    write_ffv1(tmp_path / "rec.mkv", movie)
    source = open_source(tmp_path / "rec.mkv", frames_to_skip=2)
    got = list(source.frames([0, 3, 1, 5]))  # backwards restarts the decoder
    np.testing.assert_array_equal(np.stack(got), movie[[0, 6, 2, 10]])


def test_video_reads_a_frame_again_and_the_one_before(tmp_path):
    # Going back by one frame (or to the same one) restarts the decoder too.
    movie = _movie()
    write_ffv1(tmp_path / "rec.mkv", movie)
    got = list(open_source(tmp_path / "rec.mkv").frames([4, 4, 3, 9, 8]))
    np.testing.assert_array_equal(np.stack(got), movie[[4, 4, 3, 9, 8]])


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi"])
def test_h264_roundtrip_within_tolerance(tmp_path, suffix):
    movie = _movie(color=True)
    writer = open_writer(tmp_path / f"out{suffix}", [f"n{i}" for i in range(N)], source_fps=50)
    assert writer.parallel is False
    for i, frame in enumerate(movie):
        writer.write(i, frame)
    path = writer.close()
    assert path == tmp_path / f"out{suffix}" and not list(tmp_path.glob(".*part*"))
    source = open_source(path)
    assert source.n_frames == N and source.frame_shape == (H, W, 3) and source.fps == 50.0
    reference = _folder_frames(tmp_path, movie).astype(int)
    assert np.abs(_read_all(source) - reference).mean() < LOSSY_RGB_MEAN_TOLERANCE
    gray = _read_all(open_source(path, grayscale=True))
    assert np.abs(gray - luma(movie).astype(int)).mean() < LOSSY_MEAN_TOLERANCE


def test_gray_h264_odd_size_is_padded_and_read_back_gray(tmp_path):
    movie = _movie()[:, :-1, :-1]  # odd height and width
    writer = open_writer(tmp_path / "g.mp4", [str(i) for i in range(N)], fps=12.5)
    for i, frame in enumerate(movie):
        writer.write(i, frame)
    source = open_source(writer.close(), grayscale=True)
    assert source.frame_shape == (H, W) and source.fps == 12.5
    got = _read_all(source)[:, :H - 1, :W - 1]
    assert np.abs(got.astype(int) - movie).mean() < LOSSY_MEAN_TOLERANCE


def test_trace_to_mp4_through_the_pipeline(tmp_path):
    """Stack in, video out, with the serial writer in the threaded pipeline."""
    movie = _movie()
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    source = open_source(tmp_path / "rec.tif")
    plan = TracePlan(F, source.frame_shape, source.dtype, TraceOptions())
    sequence = trace_sequence(source.n_frames, F)
    n_out = len(sequence) - F + 1
    writer = open_writer(tmp_path / "out" / "paths.mp4", source.names[:n_out],
                         source_fps=getattr(source, "fps", None))
    path = pipeline.run(source.frames(sequence), plan, get_backend("numpy"), writer, n_out, workers=2)
    out = open_source(path, grayscale=True)
    assert out.n_frames == n_out == N - F + 1 and out.fps == 30.0
    err = np.abs(_read_all(out).astype(int) - _trace(movie))
    assert err.mean() < LOSSY_MEAN_TOLERANCE


# ------------------------------------------------------------------ Photron MRAW

def _write_mraw_12bit(path, movie):
    path.with_suffix(".mraw").write_bytes(pack_bits(movie, 12))
    path.with_suffix(".cih").write_text(
        "#Camera Information Header\nRecord Rate(fps) : 2000\n"
        f"Total Frame : {len(movie)}\nOriginal Total Frame : {len(movie)}\n"
        f"Image Width : {W}\nImage Height : {H}\nColor Type : Mono\n"
        "Color Bit : 12\nFile Format : MRaw\nEffectiveBit Depth : 12\nEffectiveBit Side : Lower\n")


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_mraw_matches_folder(tmp_path, bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    movie = _movie(dtype) >> (4 if bits == 12 else 0)
    if bits == 12:
        _write_mraw_12bit(tmp_path / "rec.mraw", movie)
    else:
        pymraw.save_mraw(movie, str(tmp_path / "rec.cih"), bit_depth=bits,
                         info_dict={"EffectiveBit Depth": bits})
    for name in ("rec.mraw", "rec.cih"):  # either file of the pair opens it
        source = open_source(tmp_path / name)
        assert (source.n_frames, source.frame_shape, source.dtype) == (N, (H, W), np.dtype(dtype))
        assert source.names[0] == "rec_00" and source.bit_depth == bits
    got = _read_all(source)
    np.testing.assert_array_equal(got, _folder_frames(tmp_path, movie))


def test_mraw_without_header_or_truncated(tmp_path):
    movie = _movie()
    pymraw.save_mraw(movie, str(tmp_path / "rec.cih"), bit_depth=8)
    (tmp_path / "lone.mraw").write_bytes(b"\0" * 100)
    with pytest.raises(FlowtraceError, match=r"lone\.mraw needs its header"):
        open_source(tmp_path / "lone.mraw")
    data = (tmp_path / "rec.mraw").read_bytes()
    (tmp_path / "rec.mraw").write_bytes(data[: len(data) // 2])
    with pytest.raises(FlowtraceError, match=r"rec\.mraw is \d+ bytes.*truncated"):
        open_source(tmp_path / "rec.mraw")


# ------------------------------------------------------------------ Phantom cine

@pytest.mark.parametrize("dtype, color, layout", [
    (np.uint8, False, dict(row_align=4, annotation=b"note")),
    (np.uint16, False, dict(bottom_up=False)),
    (np.uint8, True, {}),
    (np.uint16, True, {}),
])
def test_cine_matches_folder(tmp_path, dtype, color, layout):
    movie = _movie(dtype, color) >> (4 if dtype == np.uint16 else 0)
    write_cine(tmp_path / "rec.cine", movie, **layout)
    source = open_source(tmp_path / "rec.cine")
    assert source.n_frames == N and source.frame_shape == movie.shape[1:] and source.fps == 1000.0
    got = _read_all(source)
    np.testing.assert_array_equal(got, _folder_frames(tmp_path, movie))


@pytest.mark.parametrize("kwargs, match", [
    (dict(compression=1), "JPEG-compressed"),
    (dict(bi_compression=512), "biCompression 512"),
    (dict(compression=2, cfa=1), "CFA code is 1"),
    (dict(compression=2, cfa=0x80000003), "gray sensor areas"),
])
def test_cine_out_of_scope_is_refused(tmp_path, kwargs, match):
    write_cine(tmp_path / "raw.cine", _movie(np.uint16), **kwargs)
    with pytest.raises(FlowtraceError, match=rf"raw\.cine.*{match}.*export"):
        open_source(tmp_path / "raw.cine")


def test_truncated_cine(tmp_path):
    write_cine(tmp_path / "cut.cine", _movie())
    data = (tmp_path / "cut.cine").read_bytes()
    (tmp_path / "cut.cine").write_bytes(data[:-50])
    with pytest.raises(FlowtraceError, match=r"cut\.cine.*truncated"):
        open_source(tmp_path / "cut.cine")


# ------------------------------------------------------------------ iterables

def test_iterable_source_is_lazy_and_traces_like_the_array(tmp_path):
    movie = _movie()
    pulled = []

    def generate():
        for i, frame in enumerate(movie):
            pulled.append(i)
            yield frame

    source = IterableSource(generate())
    assert (source.n_frames, source.frame_shape, source.dtype) == (None, (H, W), np.uint8)
    assert pulled == [0]  # only the first frame, to learn shape and dtype
    frames = source.frames(range(3))
    next(frames), next(frames)
    assert pulled == [0, 1]  # one frame pulled per frame asked for
    plan = TracePlan(F, source.frame_shape, source.dtype, TraceOptions(windows="sliding"))
    images = pipeline.run(IterableSource(iter(movie)).frames(range(10**9)), plan,
                          get_backend("numpy"), ListWriter(), 0, workers=2)
    np.testing.assert_array_equal(images, flowtrace_array(movie, F, windows="sliding", backend="numpy"))


def test_iterable_source_reads_once_and_forwards(tmp_path):
    source = IterableSource(iter(_movie()), frames_to_skip=5)
    assert [int(f[0, 0] == m[0, 0]) for f, m in zip(source.frames([0, 1, 2]), _movie()[::5])] == [1, 1, 1]
    with pytest.raises(FlowtraceError, match="already read"):
        list(source.frames([0]))
    with pytest.raises(FlowtraceError, match="forwards only"):
        list(IterableSource(iter(_movie())).frames([2, 1]))
    with pytest.raises(FlowtraceError, match="empty"):
        IterableSource(iter([]))


# ------------------------------------------------------------------ writers

def test_writer_kinds_by_path(tmp_path):
    images = _movie(np.uint16)[:3]
    names = ["a", "b", "c"]
    png = open_writer(tmp_path / "pngs", names, dtype=np.uint16)
    tif = open_writer(tmp_path / "tifs", names, format="tiff", dtype=np.uint16)
    stack = open_writer(tmp_path / "deep" / "stack.tif", names, dtype=np.uint16)
    assert (png.parallel, tif.parallel, stack.parallel) == (True, True, False)
    for writer in (png, tif, stack):
        for i, image in enumerate(images):
            writer.write(i, image)
    assert [p.name for p in png.close()] == ["a.png", "b.png", "c.png"]
    tif_files = tif.close()
    assert [p.name for p in tif_files] == ["a.tif", "b.tif", "c.tif"]
    np.testing.assert_array_equal(tifffile.imread(tif_files[1]), images[1])  # uint16 kept
    path = stack.close()
    with tifffile.TiffFile(path) as t:
        assert len(t.pages) == 3 and t.series[0].dtype == np.uint16
    np.testing.assert_array_equal(_read_all(open_source(path)), images)


def test_writer_refusals_before_anything_is_written(tmp_path):
    with pytest.raises(FlowtraceError, match="video holds 8-bit; use normalize='frame'/'global' or a .tif"):
        open_writer(tmp_path / "v.mp4", ["a"], dtype=np.uint16)
    with pytest.raises(FlowtraceError, match=r"out\.gif.*suffix '\.gif'"):
        open_writer(tmp_path / "out.gif", ["a"])
    with pytest.raises(FlowtraceError, match="contradicts"):
        open_writer(tmp_path / "x.tif", ["a"], format="video")
    with pytest.raises(FlowtraceError, match="format='video' writes one file"):
        open_writer(tmp_path, ["a"], format="video")
    (tmp_path / "file").write_text("")
    with pytest.raises(FlowtraceError, match=r"cannot write .*file.*x\.mp4"):
        open_writer(tmp_path / "file" / "x.mp4", ["a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("name", ["v.mp4", "s.tif"])
def test_single_file_writers_leave_nothing_on_error(tmp_path, name):
    writer = open_writer(tmp_path / name, ["a", "b"])
    writer.write(0, _movie()[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    writer = open_writer(tmp_path / name, ["a", "b"])
    writer.write(0, _movie()[0])
    with pytest.raises(FlowtraceError, match="1 of 2 images"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
    writer = open_writer(tmp_path / name, ["a", "b"])
    writer.write(0, _movie()[0])
    del writer  # never closed: the temporary file goes with the writer
    assert list(tmp_path.iterdir()) == []


def test_video_writer_refuses_uint16_images(tmp_path):
    writer = open_writer(tmp_path / "v.mp4", ["a"])
    with pytest.raises(FlowtraceError, match="video holds 8-bit"):
        writer.write(0, _movie(np.uint16)[0])
    writer.abort()


# ------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize("name, content, match", [
    ("clip.gif", b"GIF89a", r"clip\.gif.*'\.gif' are not supported.*Phantom \.cine"),
    ("broken.mp4", b"\0\1\2 not a video" * 50, r"broken\.mp4 as a video"),
    ("broken.tif", b"II*\0garbage" * 10, r"broken\.tif as a TIFF stack"),
    ("broken.cine", b"XX" + b"\0" * 200, r"broken\.cine.*'CI' signature"),
    ("broken.cih", b"garbage", r"broken\.cih describes broken\.mraw"),
])
def test_unsupported_or_corrupt_input_names_the_file(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FlowtraceError, match=match):
        open_source(tmp_path / name)


def test_corrupt_cih_header(tmp_path):
    (tmp_path / "rec.mraw").write_bytes(b"\0" * 64)
    (tmp_path / "rec.cih").write_text("#Camera Information Header\nImage Width : 4\n")
    with pytest.raises(FlowtraceError, match=r"MRAW header .*rec\.cih"):
        open_source(tmp_path / "rec.mraw")


def test_missing_input():
    with pytest.raises(FlowtraceError, match="nowhere.mp4.*does not exist"):
        open_source("nowhere.mp4")


def test_missing_optional_dependency_names_the_package(tmp_path, monkeypatch):
    write_ffv1(tmp_path / "rec.mkv", _movie())
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(FlowtraceError, match="pip install av"):
        open_source(tmp_path / "rec.mkv")
    (tmp_path / "m.mraw").write_bytes(b"\0" * 16)
    (tmp_path / "m.cih").write_text("Total Frame : 1\n")
    monkeypatch.setitem(sys.modules, "pyMRAW", None)
    with pytest.raises(FlowtraceError, match="pip install pyMRAW"):
        open_source(tmp_path / "m.mraw")


def test_grayscale_luma_matches_pillow():
    from PIL import Image

    rgb = _movie(color=True)[0]
    np.testing.assert_array_equal(luma(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_grayscale_keeps_the_source_bit_depth_and_rate(tmp_path):
    movie = _movie(np.uint16, color=True) >> 4  # 12-bit values, RealBPP 12 in write_cine
    write_cine(tmp_path / "rgb.cine", movie)
    gray = open_source(tmp_path / "rgb.cine", grayscale=True)
    assert (gray.bit_depth, gray.fps, gray.frame_shape) == (12, 1000.0, (H, W))
    np.testing.assert_array_equal(_read_all(gray), luma(movie))


def test_suffixes_are_case_insensitive(tmp_path):
    movie = _movie()
    tifffile.imwrite(tmp_path / "REC.TIF", movie)
    np.testing.assert_array_equal(_read_all(open_source(tmp_path / "REC.TIF")), movie)
    writer = open_writer(tmp_path / "OUT.TIFF", ["a"])
    assert type(writer).__name__ == "TiffStackWriter"
