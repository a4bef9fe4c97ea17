"""Bad input: a FlowtraceError naming the problem and the fix, before any output."""


import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array
from flowtrace_gpu.cli import main


@pytest.fixture
def frames_dir(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        tifffile.imwrite(d / f"f{i:02d}.tif", rng.integers(0, 255, (8, 9), dtype=np.uint8))
    return d


def _no_outputs(*dirs):
    return all(not list(d.glob("*streamlines*")) for d in dirs if d.exists())


def check_both(args, kwargs, match, capsys, cli_args):
    """The API raises FlowtraceError; the CLI prints one line and exits 2."""
    with pytest.raises(FlowtraceError, match=match):
        flowtrace(*args, **kwargs)
    capsys.readouterr()
    assert main([str(a) for a in cli_args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("flowtrace: error: ")
    assert "Traceback" not in err


def test_error_is_a_value_error():
    assert issubclass(FlowtraceError, ValueError)


@pytest.mark.parametrize("given, named", [
    (np.zeros((40, 300, 300), np.uint8), "an array of shape (40, 300, 300)"),
    ([1, 2, 3], "a list")])
def test_image_dir_that_is_not_a_path_is_named_briefly(tmp_path, given, named):
    with pytest.raises(FlowtraceError) as info:
        flowtrace(given, 4, tmp_path / "out")
    message = str(info.value)
    assert named in message and "flowtrace_array" in message
    assert len(message) < 300  # the array's contents are not printed


def test_missing_image_dir(tmp_path, capsys):
    missing = tmp_path / "nope"
    check_both((missing, 3, tmp_path / "out"), {}, "does not exist", capsys,
               [missing, 3, tmp_path / "out"])
    assert not (tmp_path / "out").exists()


def test_source_of_unsupported_kind(frames_dir, capsys, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a movie")
    check_both((f, 3, tmp_path / "o"), {}, r"notes\.txt.*not supported.*a folder of frames",
               capsys, [f, 3, tmp_path / "o"])


def test_single_page_tiff_is_a_one_frame_stack(frames_dir, capsys, tmp_path):
    f = frames_dir / "f00.tif"
    check_both((f, 3, tmp_path / "o"), {}, "only 1 frames remain", capsys, [f, 3, tmp_path / "o"])


def test_image_dir_without_images(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    check_both((empty, 3), {}, "holds no images", capsys, [empty, 3])


@pytest.mark.parametrize("bad", [0, -2])
def test_frames_to_merge_below_one(frames_dir, capsys, bad, tmp_path):
    check_both((frames_dir, bad, tmp_path / "o"), {}, "frames_to_merge must be >= 1", capsys,
               [frames_dir, bad, tmp_path / "o"])


def test_frames_to_merge_too_long_after_skip(frames_dir, capsys, tmp_path):
    check_both((frames_dir, 4, tmp_path / "o"), {"frames_to_skip": 2},
               r"frames_to_merge=4 but only 3 frames remain after frames_to_skip=2; use at most 3",
               capsys, [frames_dir, 4, tmp_path / "o", "--frames-to-skip", 2])
    assert _no_outputs(tmp_path / "o")


@pytest.mark.parametrize("order,match", [(0, "diff_order must be >= 1"),
                                          (3, "diff_order=3 leaves no frames")])
def test_bad_diff_order(frames_dir, capsys, order, match, tmp_path):
    check_both((frames_dir, 3, tmp_path / "o"), {"take_diff": True, "diff_order": order}, match,
               capsys, [frames_dir, 3, tmp_path / "o", "--take-diff", "--diff-order", order])


def test_frame_of_another_shape_is_named(frames_dir, capsys, tmp_path):
    tifffile.imwrite(frames_dir / "f03.tif", np.zeros((8, 10), np.uint8))
    check_both((frames_dir, 2, tmp_path / "o"), {}, r"f03\.tif is \(8, 10\) uint8", capsys,
               [frames_dir, 2, tmp_path / "o"])
    assert _no_outputs(tmp_path / "o")


def test_frame_of_another_dtype_is_named(frames_dir, capsys, tmp_path):
    tifffile.imwrite(frames_dir / "f04.tif", np.zeros((8, 9), np.uint16))
    check_both((frames_dir, 2, tmp_path / "o"), {}, r"f04\.tif is \(8, 9\) uint16", capsys,
               [frames_dir, 2, tmp_path / "o"])


def test_undecodable_file_is_named(frames_dir, capsys, tmp_path):
    (frames_dir / "f02.tif").write_bytes(b"this is not a tiff")
    check_both((frames_dir, 2, tmp_path / "o"), {}, r"cannot decode image file .*f02\.tif", capsys,
               [frames_dir, 2, tmp_path / "o"])
    assert _no_outputs(tmp_path / "o")


def test_out_dir_not_writable(frames_dir, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "sub"
    check_both((frames_dir, 2, out), {}, "out_dir .* not writable", capsys, [frames_dir, 2, out])
    check_both((frames_dir, 2, blocker), {}, "is a file, not a directory", capsys,
               [frames_dir, 2, blocker])
    assert blocker.read_text() == "x"


def test_unknown_backend(frames_dir, tmp_path):
    with pytest.raises(FlowtraceError, match="unknown backend 'tpu'"):
        flowtrace(frames_dir, 2, tmp_path / "o", backend="tpu")


@pytest.mark.parametrize("kwargs,match", [
    ({"frames_to_skip": 0}, "frames_to_skip must be >= 1"),
    ({"max_cores": 0}, "max_cores must be >= 1"),
    ({"windows": "rolling"}, "windows must be one of"),
    ({"subtract_median": "yes"}, "subtract_median must be True or False"),
])
def test_bad_parameters(frames_dir, kwargs, match, tmp_path):
    with pytest.raises(FlowtraceError, match=match):
        flowtrace(frames_dir, 2, tmp_path / "o", **kwargs)


@pytest.mark.parametrize("frames,match", [
    (np.zeros((4, 5)), r"shaped \(N, H, W\) or \(N, H, W, C\)"),
    (np.zeros((4, 5, 5), dtype=complex), "integer or float dtype"),
    (np.zeros((0, 5, 5)), "no frames"),
])
def test_bad_arrays(frames, match):
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_array(frames, 1)


def test_color_series_needs_three_channels():
    with pytest.raises(FlowtraceError, match="color_series"):
        flowtrace_array(np.zeros((4, 3, 3, 4), np.uint8), 2, color_series=True)


@pytest.mark.parametrize("var,value", [("FLOWTRACE_PNG_LEVEL", "10"), ("FLOWTRACE_PREFETCH", "0"),
                                       ("FLOWTRACE_BACKEND", "gpu"), ("FLOWTRACE_NUMBA_CHUNK", "x")])
def test_bad_environment_variable_is_refused_before_any_output(tmp_path, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    movie = np.zeros((4, 3, 3), np.uint8)
    with pytest.raises(FlowtraceError, match=var):
        flowtrace_array(movie, 2)


# ------------------------------------------------------------------ corrupt files (readers)

def _set_tiff_tag(path, tag, value, page=0):
    """Make ``tag`` of ``page`` one LONG holding ``value`` (patched in place)."""
    import struct

    with tifffile.TiffFile(path) as tif:
        entry = tif.pages[page].tags[tag].offset
    data = bytearray(path.read_bytes())
    struct.pack_into("<HII", data, entry + 2, 4, 1, value)  # type LONG, count 1, value
    path.write_bytes(bytes(data))


def _cine(tmp_path, name="rec.cine", n=6):
    import struct

    from camera_writers import write_cine

    path = write_cine(tmp_path / name, np.arange(n * 8 * 10, dtype=np.uint16).reshape(n, 8, 10))
    table = 44 + 40 + 1024  # the image offset table follows the headers written there
    offsets = struct.unpack_from(f"<{n}q", path.read_bytes(), table)
    return path, table, offsets


def _patch(path, offset, fmt, value):
    import struct

    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


def test_cine_annotation_size_past_the_file_names_file_and_frame(tmp_path, capsys):
    path, _, offsets = _cine(tmp_path)
    _patch(path, offsets[0], "<I", 0xFFFFFFFF)  # image 0: found when the file is opened
    check_both((path, 2, tmp_path / "o"), {"backend": "numpy"},
               r"cannot read .*rec\.cine as a Phantom cine \(its image 0 size .* beyond the end",
               capsys, [path, 2, tmp_path / "o", "--backend", "numpy"])
    assert _no_outputs(tmp_path / "o")
    path, _, offsets = _cine(tmp_path)
    _patch(path, offsets[3], "<I", 0xFFFFFFFF)  # image 3: found when it is decoded
    with pytest.raises(FlowtraceError, match=r"cannot decode frame 3 of .*rec\.cine \(its image 3 "):
        flowtrace(path, 2, tmp_path / "p", backend="numpy")
    capsys.readouterr()
    assert main([str(path), "2", str(tmp_path / "q"), "--backend", "numpy"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "frame 3 of" in err and "Traceback" not in err


@pytest.mark.parametrize("offset", [-5, 2**63 - 1, 2**62])
def test_cine_image_offset_negative_or_huge_is_refused_at_open(tmp_path, capsys, offset):
    path, table, _ = _cine(tmp_path)
    _patch(path, table + 8 * 2, "<q", offset)
    check_both((path, 2, tmp_path / "o"), {}, rf"rec\.cine .*image 2 lies beyond the end .*{offset}",
               capsys, [path, 2, tmp_path / "o"])
    assert _no_outputs(tmp_path / "o")


def test_gray_alpha_pngs_are_traced_as_gray(tmp_path):
    from PIL import Image

    from conftest import read_png

    d = tmp_path / "la"
    d.mkdir()
    rng = np.random.default_rng(3)
    movie = rng.integers(0, 255, (4, 6, 7), dtype=np.uint8)
    for i, frame in enumerate(movie):
        alpha = rng.integers(0, 255, frame.shape, dtype=np.uint8)
        Image.fromarray(np.stack([frame, alpha], axis=-1), "LA").save(d / f"f{i}.png")
    written = flowtrace(d, 2, tmp_path / "o", backend="numpy")
    expected = flowtrace_array(movie, 2, backend="numpy")
    assert len(written) == 3
    np.testing.assert_array_equal(np.stack([read_png(p) for p in written]), expected)


def test_tiff_with_zero_rows_is_named(tmp_path, capsys):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.zeros((4, 6, 5), np.uint8), photometric="minisblack")
    _set_tiff_tag(path, 257, 0)  # ImageLength
    check_both((path, 2, tmp_path / "o"), {}, r"flat\.tif page 0 is 5x0 pixels .*an empty image",
               capsys, [path, 2, tmp_path / "o"])


# (An uncompressed stack's later pages are not parsed: its frames are read from the block
# the first page and the series describe.)
@pytest.mark.parametrize("compression, page", [(None, 0), ("zlib", 0), ("zlib", 2)])
def test_tiff_page_claiming_gigabytes_is_refused_without_allocating(tmp_path, compression, page):
    import tracemalloc

    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.ones((4, 6, 5), np.uint8), compression=compression,
                     photometric="minisblack")
    _set_tiff_tag(path, 257, 0xFFFFFFFF, page)  # ImageLength: a 20 GiB page in a ~1 KB file
    tracemalloc.start()
    try:
        with pytest.raises(FlowtraceError, match=rf"huge\.tif page {page} claims .* more than its "
                                                 r"\d+-byte file can hold"):
            flowtrace(path, 2, tmp_path / "o", backend="numpy", use_parallel=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_tiff_of_unknown_sample_type_is_refused_before_any_output(tmp_path, capsys):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros((3, 4, 5), np.float32), photometric="minisblack")
    _set_tiff_tag(path, 258, 8)  # 8-bit floating point: no such NumPy type
    check_both((path, 2, tmp_path / "o"), {},
               r"odd\.tif page 0 stores 8-bit samples of format 3, which no image type holds",
               capsys, [path, 2, tmp_path / "o"])
    assert not (tmp_path / "o").exists()


def test_tiff_stack_that_cannot_be_decoded_fails_at_open(tmp_path, capsys):
    path = tmp_path / "codec.tif"
    tifffile.imwrite(path, np.ones((4, 6, 5), np.uint8), compression="zlib",
                     photometric="minisblack")
    _set_tiff_tag(path, 259, 12345)  # Compression: no codec knows it
    check_both((path, 2, tmp_path / "o"), {}, r"cannot read .*codec\.tif as a TIFF stack \(12345 is not",
               capsys, [path, 2, tmp_path / "o"])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("offset, value, match", [
    (16, 10**6, r"f1\.png announces a 1000000x6 image .* which its \d+-byte file cannot hold"),
    (33, 0xFFFFFFFF, r"cannot decode image file .*f1\.png \(its b'IDAT' chunk at offset 33 "
                     r"announces 4294967295 bytes, past the end"),
])
def test_png_header_announcing_more_than_its_file_is_refused(tmp_path, capsys, offset, value,
                                                             match):
    import zlib

    from PIL import Image

    d = tmp_path / "png"
    d.mkdir()
    for i in range(3):
        Image.fromarray(np.full((6, 5), 9 * i, np.uint8)).save(d / f"f{i}.png")
    path = d / "f1.png"
    _patch(path, offset, ">I", value)  # IHDR width (CRC mended) or IDAT's length
    data = bytearray(path.read_bytes())
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    check_both((d, 2, tmp_path / "o"), {}, match, capsys, [d, 2, tmp_path / "o"])
    assert not (tmp_path / "o").exists()


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "flowtrace_gpu", *map(str, args), "-q",
                           "--backend", "numpy"], capture_output=True, text=True, timeout=300)


def test_library_warnings_are_not_printed_by_the_cli(tmp_path):
    from PIL import Image

    # tifffile logs an unreadable tag (Software, pointing past the end) and reads the rest.
    warned = tmp_path / "warned.tif"
    tifffile.imwrite(warned, np.arange(120, dtype=np.uint8).reshape(4, 6, 5), software="x" * 40,
                     compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(warned) as tif:
        value_at = tif.pages[0].tags[305].offset + 8
    _patch(warned, value_at, "<I", 10**6)
    done = _cli(warned, 2, tmp_path / "o1")
    assert done.returncode == 0 and done.stderr == "" and len(list((tmp_path / "o1").glob("*.png"))) == 3
    # The same file with a page that claims 20 GiB: tifffile logs three complaints, one line shows.
    _set_tiff_tag(warned, 257, 0xFFFFFFFF, page=1)
    failed = _cli(warned, 2, tmp_path / "o2")
    assert failed.returncode != 0
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("flowtrace: error: ")
    assert "warned.tif page 1 claims" in failed.stderr
    # Pillow warns while the reader thread converts a palette with transparency.
    d = tmp_path / "palette"
    d.mkdir()
    for i in range(3):
        im = Image.fromarray(np.full((6, 5), 40 * i, np.uint8)).convert("P")
        im.save(d / f"f{i}.png", transparency=bytes([0, 255, 128]))
    done = _cli(d, 2, tmp_path / "o3")
    assert done.returncode == 0 and done.stderr == ""


def test_library_messages_are_collected_per_thread():
    import logging
    import threading
    import warnings

    from flowtrace_gpu.io.boundary import collected_messages, reading

    tiff_log = logging.getLogger("tifffile")
    seen, ready = {}, threading.Barrier(2)

    def work(name):
        with collected_messages() as messages:
            ready.wait()
            tiff_log.warning("from %s", name)
            warnings.warn(f"warned by {name}", UserWarning, stacklevel=1)
            ready.wait()
        seen[name] = messages

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        warnings.warn("not collected", UserWarning, stacklevel=1)
    for name in ("a", "b"):
        assert seen[name] == [f"tifffile: from {name}", f"UserWarning: warned by {name}"]
    assert [str(w.message) for w in outside] == ["not collected"]
    with pytest.raises(FlowtraceError, match=r"cannot read x\.tif \(KeyError: 7; tifffile: said\); fix"):
        with reading("x.tif", "fix"):
            tiff_log.error("said")
            raise KeyError(7)
