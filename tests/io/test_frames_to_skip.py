"""frames_to_skip in every single-file reader: how many frames are kept, which, and their images.

N frames with a skip of s keep frames 0, s, 2s, ...: ceil(N / s) of them,
whether or not s divides N, and one frame when N <= s. Each case writes the
same movie in each format (tests/camera_writers.py: from the documented
layouts), opens it with the skip, and checks the count, the names, the
frames, and the images of a whole run against tests/naive.py.
"""

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace
from flowtrace_gpu.io.formats import open_source

from camera_writers import pack_bits, write_cine, write_ffv1
from conftest import read_png
from naive import naive_trace

H, W = 6, 7

# (N, frames_to_skip, frames_to_merge, windows)
CASES = [
    (11, 3, 2, "sliding"),   # N not a multiple of the skip: 0 3 6 9 kept, 10 not
    (11, 3, 3, "original"),
    (14, 5, 2, "sliding"),   # a skip larger than F, N not a multiple either
    (13, 4, 3, "original"),  # a skip larger than F
    (3, 5, 1, "sliding"),    # N smaller than the skip: the first frame only
    (10, 2, 3, "sliding"),   # a multiple, for contrast
]


def _movie(n, dtype=np.uint8, top=255, seed=0):
    """Noise frames, each also marked by its index so that a wrong frame cannot pass."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, top // 2, (n, H, W))
    frames[:, 0, 0] = np.arange(n) * (top // 2 // max(n, 1)) + top // 2  # distinct per frame
    return frames.astype(dtype)


def _tiff(path, movie):
    tifffile.imwrite(path / "rec.tif", movie, photometric="minisblack")
    return path / "rec.tif"


def _tiff_zlib(path, movie):
    # Compressed pages: decoded page by page instead of read from one offset.
    tifffile.imwrite(path / "rec.tif", movie, photometric="minisblack", compression="zlib")
    return path / "rec.tif"


def _cine(path, movie):
    return write_cine(path / "rec.cine", movie)  # bottom-up rows, as cameras store them


def _cine16_top_down(path, movie):
    return write_cine(path / "rec.cine", movie, bottom_up=False)


def _mraw8(path, movie):
    pymraw = pytest.importorskip("pyMRAW", reason="MRAW needs pyMRAW (pip install pyMRAW)")
    pymraw.save_mraw(movie, str(path / "rec.cih"), bit_depth=8)
    return path / "rec.mraw"


def _mraw12(path, movie):
    pytest.importorskip("pyMRAW", reason="MRAW needs pyMRAW (pip install pyMRAW)")
    (path / "rec.mraw").write_bytes(pack_bits(movie, 12))
    (path / "rec.cih").write_text(
        "#Camera Information Header\nRecord Rate(fps) : 2000\n"
        f"Total Frame : {len(movie)}\nOriginal Total Frame : {len(movie)}\n"
        f"Image Width : {W}\nImage Height : {H}\nColor Type : Mono\n"
        "Color Bit : 12\nFile Format : MRaw\nEffectiveBit Depth : 12\nEffectiveBit Side : Lower\n")
    return path / "rec.mraw"


def _video(path, movie):
    pytest.importorskip("av", reason="video formats need PyAV (pip install av)")
    return write_ffv1(path / "rec.mkv", movie)


def _tiff_folder(path, movie):
    # A folder of one file per frame (not a single file, but skipped the same way).
    folder = path / "rec"
    folder.mkdir()
    width = len(str(len(movie) - 1))
    for i, frame in enumerate(movie):
        tifffile.imwrite(folder / f"rec_{i:0{width}d}.tif", frame)
    return folder


def _zarr(path, movie):
    zarr = pytest.importorskip("zarr", minversion="3.1.3",
                               reason="zarr input needs the [dask] extra (zarr >= 3.1.3)")
    # Chunks of 4 frames: kept frames fall in different places of their chunks.
    zarr.create_array(str(path / "rec.zarr"), data=movie, chunks=(4, H, W))
    return path / "rec.zarr"


#: reader -> (writer, dtype, largest value)
READERS = {
    "tiff_stack": (_tiff, np.uint8, 255),
    "tiff_stack_zlib": (_tiff_zlib, np.uint16, 65535),
    "cine": (_cine, np.uint8, 255),
    "cine16_top_down": (_cine16_top_down, np.uint16, 4095),
    "mraw8": (_mraw8, np.uint8, 255),
    "mraw12": (_mraw12, np.uint16, 4095),
    "video": (_video, np.uint8, 255),
    "zarr": (_zarr, np.uint16, 65535),
    "tiff_folder": (_tiff_folder, np.uint8, 255),
}


@pytest.mark.parametrize("n, skip, f, windows", CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("reader", list(READERS))
def test_skip_keeps_every_skip_th_frame_and_traces_them(tmp_path, reader, n, skip, f, windows):
    write, dtype, top = READERS[reader]
    movie = _movie(n, dtype, top, seed=n * skip)
    path = write(tmp_path, movie)
    kept = list(range(0, n, skip))
    assert len(kept) == -(-n // skip)  # ceil(N / s), whether s divides N or not

    source = open_source(path, frames_to_skip=skip)
    assert source.n_frames == len(kept)
    assert source.names == [f"rec_{i:0{len(str(n - 1))}d}" for i in kept]
    frames = np.stack(list(source.frames(range(source.n_frames))))
    np.testing.assert_array_equal(frames, movie[kept])

    written = flowtrace(path, f, tmp_path / "out", frames_to_skip=skip, windows=windows,
                        backend="numpy", use_parallel=False, progress=False)
    expected = naive_trace(movie, f, skip, windows=windows)
    assert len(written) == len(expected) == (len(kept) - f + 1 if windows == "sliding"
                                             else max(len(kept) - f, 1))
    np.testing.assert_array_equal(np.stack([read_png(p) for p in written]), expected)


@pytest.mark.parametrize("reader", list(READERS))
def test_a_window_longer_than_the_kept_frames_is_refused(tmp_path, reader):
    write, dtype, top = READERS[reader]
    path = write(tmp_path, _movie(11, dtype, top))
    # 11 frames, every third: 4 kept (0, 3, 6, 9), so F = 5 cannot fit and F = 4 can.
    with pytest.raises(FlowtraceError, match="frames_to_merge=5 but only 4 frames remain after "
                                             "frames_to_skip=3; use at most 4"):
        flowtrace(path, 5, tmp_path / "out", frames_to_skip=3, backend="numpy", progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    written = flowtrace(path, 4, tmp_path / "out", frames_to_skip=3, backend="numpy",
                        progress=False)
    assert len(written) == 1
