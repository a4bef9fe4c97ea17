"""Recording controls: frame range (start, stop), crop, window_step.

The property: ``flowtrace_array(m, F, start=a, stop=b, crop=(t, l, h, w),
window_step=s, **opts)`` equals the naive oracle of ``m[a:b, t:t+h, l:l+w]``,
every s-th image, on every backend (the cupy stand-in too); readers crop while
reading (only the rows needed are read), refusals come before anything is
written, and a resumed run with all three is bit-exact.
"""

import itertools

import numpy as np
import pytest
import tifffile
from hypothesis import given
from hypothesis import strategies as st

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array
from flowtrace_gpu.backends.cupy import backend as cb
from flowtrace_gpu.engine.plan import step_sequence
from flowtrace_gpu.io import mraw as mraw_module
from flowtrace_gpu.io import tiff_stack as tiff_module
from flowtrace_gpu.io.bayer import demosaic
from flowtrace_gpu.io.formats import open_source
from flowtrace_gpu.io.phantom_p10 import P10_TO_12BIT
from flowtrace_gpu.runs.manifest import read_manifest

from camera_writers import pack_bits, write_cine
from conftest import BACKENDS, REAL
from naive import naive_trace_ext
from strategies import small_movie, step_options

#: numpy, numba, and the cupy backend on NumPy, one frame at a time and batched.
ENGINES = list(BACKENDS) + ["standin", "standin-batched"]


def engine(name):
    if name == "standin":
        return cb.CupyBackend(xp=np, batch=1)
    if name == "standin-batched":
        return cb.CupyBackend(xp=np, batch=3)
    return name


def real(name):
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real camera file {name} not found in {REAL} (it lives in ../shared/real)")
    return path


# ------------------------------------------------------------ the property

@st.composite
def selections(draw):
    """A movie, F, skip, options, and a valid (start, stop, crop, window_step)."""
    movie = small_movie(draw, 14, 6, 7)
    n, h, w = movie.shape[:3]
    start = draw(st.integers(0, n - 1))
    stop = draw(st.one_of(st.none(), st.integers(start + 1, n + 3)))
    skip = draw(st.integers(1, 3))
    kept = len(range(start, min(n, stop or n), skip))
    f = draw(st.integers(1, kept))
    top, left = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
    crop = draw(st.one_of(st.none(), st.tuples(st.just(top), st.just(left),
                                               st.integers(1, h - top), st.integers(1, w - left))))
    step = draw(st.integers(1, 6))
    options = step_options(draw, f)
    return movie, f, skip, options, dict(start=start, stop=stop, crop=crop, window_step=step)


def _sliced(movie, start, stop, crop, **_):
    part = movie[start:stop]
    if crop is not None:
        t, left, h, w = crop
        part = part[:, t:t + h, left:left + w]
    return part


@pytest.mark.parametrize("backend", ENGINES)
@given(case=selections(), parallel=st.booleans())
def test_selection_equals_the_oracle_of_the_sliced_movie(backend, case, parallel):
    movie, f, skip, options, chosen = case
    expected = naive_trace_ext(_sliced(movie, **chosen), f, skip, **options)[::chosen["window_step"]]
    got = flowtrace_array(movie, f, skip, backend=engine(backend), use_parallel=parallel,
                          progress=False, **chosen, **options)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@st.composite
def other_options(draw):
    """The options the oracle above leaves out: raw values, saturate, colormaps, bit depth, luma."""
    options = {"normalize": draw(st.sampled_from(["frame", "global", "none"]))}
    if options["normalize"] != "none" and draw(st.booleans()):
        options["saturate"] = draw(st.sampled_from([0.5, 10.0]))
    if draw(st.booleans()):
        options["color_series"] = True
        if draw(st.booleans()):
            options["colormap"] = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
    options["fade_tails"] = draw(st.booleans())
    options["invert_color"] = draw(st.booleans())
    if draw(st.booleans()):
        options["bit_depth"] = 12
    options["grayscale"] = draw(st.booleans())
    return options


@pytest.mark.parametrize("backend", ENGINES)
@given(case=selections(), options=other_options())
def test_selection_equals_slicing_for_every_other_option(backend, case, options):
    movie, f, skip, _, chosen = case
    movie = movie.astype(np.uint16)  # bit_depth describes integer frames
    whole = flowtrace_array(_sliced(movie, **chosen), f, skip, backend=engine(backend),
                            progress=False, **options)
    got = flowtrace_array(movie, f, skip, backend=engine(backend), progress=False, **chosen,
                          **options)
    np.testing.assert_array_equal(got, whole[::chosen["window_step"]])


@pytest.mark.parametrize("step", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("windows", ["sliding", "original"])
def test_an_iterable_takes_the_same_selection(step, windows):
    movie = np.random.default_rng(4).integers(0, 256, (30, 6, 7), dtype=np.uint8)
    chosen = dict(start=3, stop=27, crop=(1, 2, 4, 5), window_step=step)
    got = flowtrace_array(iter(movie), 4, 2, windows=windows, backend="numpy", **chosen)
    expected = naive_trace_ext(_sliced(movie, **chosen), 4, 2, windows=windows)[::step]
    np.testing.assert_array_equal(got, expected)


def test_a_step_above_f_reads_only_the_kept_windows():
    assert step_sequence(list(range(20)), 3, 7) == ([0, 1, 2, 7, 8, 9, 14, 15, 16], 3)
    assert step_sequence(list(range(20)), 3, 2)[0] == list(range(19))  # up to the last kept
    movie = np.random.default_rng(5).integers(0, 256, (20, 4, 4), dtype=np.uint8)
    read = []

    class Recording:
        shape, dtype = movie.shape, movie.dtype

        def __getitem__(self, key):
            read.append(key[0] if isinstance(key, tuple) else key)
            return movie[key]

    images = flowtrace_array(Recording(), 3, window_step=7, backend="numpy", use_parallel=False)
    assert sorted(read) == [0, 1, 2, 7, 8, 9, 14, 15, 16]
    np.testing.assert_array_equal(images, naive_trace_ext(movie, 3)[::7])


# ------------------------------------------------------------ refusals

MOVIE = np.zeros((10, 8, 9), np.uint8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(crop=(0, 0, 9, 9)), r"crop=\(top=0, left=0, height=9, width=9\).*8x9"),
    (dict(crop=(7, 5, 2, 2)), r"reaches row 9 .*8x9"),
    (dict(crop=(0, 8, 1, 2)), r"column 10.*8x9"),
    (dict(crop=(0, 0, 0, 4)), r"crop height must be >= 1, got 0"),
    (dict(crop=(0, 0, 4)), r"crop must be \(top, left, height, width\)"),
    (dict(crop=(-1, 0, 4, 4)), r"crop top must be >= 0, got -1"),
    (dict(start=10), r"start=10 is past the end of .* holds 10 frames"),
    (dict(start=4, stop=4), r"stop=4 is not after start=4.*holds 10 frames"),
    (dict(start=-1), r"start must be >= 0, got -1"),
    (dict(window_step=0), r"window_step must be >= 1, got 0"),
    (dict(start=8), r"frames_to_merge=3 but only 2 frames remain \(frames 8 to 9 of 10\)"),
    (dict(start=2, stop=8, frames_to_skip=3),
     r"only 2 frames remain after frames_to_skip=3 \(frames 2 to 7 of 10\)"),
])
def test_bad_selections_are_refused_naming_value_and_size(kwargs, match):
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_array(MOVIE, 3, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(crop=(0, 0, 9, 9)), dict(start=10), dict(window_step=0),
                                    dict(start=9), dict(legend=True)])
def test_refusals_come_before_anything_is_written(tmp_path, kwargs):
    tifffile.imwrite(tmp_path / "in.tif", MOVIE)
    for out in (tmp_path / "pngs", tmp_path / "out.tif"):
        with pytest.raises(FlowtraceError):
            flowtrace(tmp_path / "in.tif", 3, out, progress=False, **kwargs)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


# ------------------------------------------------------------ readers crop while reading

def _regions(h, w):
    """Every row span, with columns from the left edge, the middle and the right edge."""
    for top in range(h):
        for height in range(1, h - top + 1):
            for left, width in {(0, w), (min(1, w - 1), max(1, w - 2)), (w - 1, 1)}:
                yield top, left, height, width


def _assert_crops(source, frames):
    n = source.n_frames
    for region in _regions(*frames.shape[1:3]):
        t, left, h, w = region
        got = np.stack(list(source.frames(range(n), region)))
        np.testing.assert_array_equal(got, frames[:, t:t + h, left:left + w], err_msg=str(region))


@pytest.mark.parametrize("case", ["gray8", "gray16-be", "rgb", "planar-rgb", "compressed",
                                  "compressed-rgb", "zlib-16bit-predictor", "planar-compressed"])
def test_tiff_stack_crops(tmp_path, case):
    rng = np.random.default_rng(1)
    dtype = np.uint16 if case == "gray16-be" else np.uint8
    shape = (4, 7, 9, 3) if "rgb" in case or "planar" in case else (4, 7, 9)
    movie = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    if case == "zlib-16bit-predictor":
        dtype, shape = np.uint16, (4, 7, 9)
        movie = rng.integers(0, 65535, shape, dtype=dtype)
    kwargs = {"gray16-be": dict(byteorder=">"),
              "compressed": dict(compression="zlib", rowsperstrip=2),
              "compressed-rgb": dict(compression="zlib", rowsperstrip=3, photometric="rgb"),
              "zlib-16bit-predictor": dict(compression="zlib", predictor=True, rowsperstrip=1,
                                          byteorder=">"),
              "planar-compressed": dict(compression="zlib", photometric="rgb",
                                        planarconfig="separate", rowsperstrip=2),
              "planar-rgb": dict(photometric="rgb", planarconfig="separate"),
              "rgb": dict(photometric="rgb")}.get(case, {})
    stored = np.moveaxis(movie, -1, -3) if case.startswith("planar") else movie
    tifffile.imwrite(tmp_path / "s.tif", stored, **{"photometric": "minisblack", **kwargs})
    _assert_crops(open_source(tmp_path / "s.tif"), movie)


def test_folder_and_video_crop_after_decoding(tmp_path):
    from PIL import Image

    movie = np.random.default_rng(3).integers(0, 256, (5, 8, 10, 3), dtype=np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(movie):
        Image.fromarray(frame).save(folder / f"f{i}.png")
    _assert_crops(open_source(folder), movie)
    tifffile.imwrite(tmp_path / "s.tif", movie, photometric="rgb")
    flowtrace(tmp_path / "s.tif", 1, tmp_path / "v.mp4", normalize="none", progress=False)
    video = open_source(tmp_path / "v.mp4")
    _assert_crops(video, np.stack(list(video.frames(range(video.n_frames)))))


class _ByteCounter:
    """``read_block`` of a module, counting the bytes read."""

    def __init__(self, module, monkeypatch):
        self.bytes = 0
        original = module.read_block

        def counted(handle, offset, nbytes):
            self.bytes += nbytes
            return original(handle, offset, nbytes)

        monkeypatch.setattr(module, "read_block", counted)


def test_tiff_stack_reads_only_the_rows_of_the_crop(tmp_path, monkeypatch):
    movie = np.random.default_rng(2).integers(0, 65535, (5, 40, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", movie)
    source = open_source(tmp_path / "s.tif", crop=(10, 5, 8, 4))
    counter = _ByteCounter(tiff_module, monkeypatch)
    got = np.stack(list(source.frames(range(5))))
    np.testing.assert_array_equal(got, movie[:, 10:18, 5:9])
    assert counter.bytes == 5 * 8 * 30 * 2  # the 8 rows, whole, of each frame


def test_compressed_tiff_stack_decodes_only_the_strips_of_the_crop(tmp_path, monkeypatch):
    import tifffile as tf

    movie = np.random.default_rng(3).integers(0, 255, (3, 40, 12), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "z.tif", movie, compression="zlib", rowsperstrip=4,
                     photometric="minisblack")
    decoded = []
    cached = tf.TiffPage.__dict__["decode"]  # a cached property giving the page's decoder

    def decoder(self):
        inner = cached.func(self)

        def counting(data, index, **kwargs):
            decoded.append(index)
            return inner(data, index, **kwargs)

        return counting

    source = open_source(tmp_path / "z.tif", crop=(9, 2, 6, 5))  # rows 9-14: strips 2 and 3
    monkeypatch.setattr(tf.TiffPage, "decode", property(decoder))
    got = np.stack(list(source.frames(range(3))))
    np.testing.assert_array_equal(got, movie[:, 9:15, 2:7])
    assert decoded == [2, 3] * 3


def _mraw(tmp_path, values, bits):
    n, h, w = values.shape
    data = pack_bits(values, 12) if bits == 12 else values.astype(
        np.uint8 if bits == 8 else "<u2").tobytes()
    (tmp_path / "rec.mraw").write_bytes(data)
    (tmp_path / "rec.cih").write_text(
        "#Camera Information Header\nRecord Rate(fps) : 500\n"
        f"Total Frame : {n}\nImage Width : {w}\nImage Height : {h}\nColor Type : Mono\n"
        f"Color Bit : {bits}\nFile Format : MRaw\n")
    return tmp_path / "rec.cih"


@pytest.mark.parametrize("bits, w", [(8, 7), (16, 7), (12, 6), (12, 7)])
def test_mraw_crops_and_reads_only_the_rows(tmp_path, monkeypatch, bits, w):
    h = 6  # 12-bit: an even pixel count per frame; with w = 7 rows start mid-pair
    values = np.random.default_rng(bits).integers(0, 2 ** min(bits, 12), (3, h, w)).astype(
        np.uint8 if bits == 8 else np.uint16)
    path = _mraw(tmp_path, values, bits)
    _assert_crops(open_source(path), values)
    counter = _ByteCounter(mraw_module, monkeypatch)
    list(open_source(path, crop=(2, 0, 2, w)).frames(range(3)))
    assert counter.bytes <= 3 * (2 * w + 2) * bits // 8 + 3 * 3  # the rows (and a packed pair)


def _cine_cases():
    rng = np.random.default_rng(7)
    yield "gray16-bottom-up", dict(frames=rng.integers(0, 4096, (3, 7, 9)).astype(np.uint16))
    yield "gray8-top-down", dict(frames=rng.integers(0, 256, (3, 7, 9)).astype(np.uint8),
                                 bottom_up=False)
    yield "rgb24", dict(frames=rng.integers(0, 256, (2, 5, 6, 3)).astype(np.uint8))
    yield "padded-rows", dict(frames=rng.integers(0, 256, (2, 5, 7)).astype(np.uint8), row_align=4)
    yield "p10", dict(frames=rng.integers(0, 1024, (2, 5, 7)).astype(np.uint16),
                      bi_compression=256, real_bpp=10)
    yield "12l", dict(frames=rng.integers(0, 4096, (2, 5, 7)).astype(np.uint16),
                      bi_compression=1024)


@pytest.mark.parametrize("name, kwargs", list(_cine_cases()), ids=[n for n, _ in _cine_cases()])
def test_cine_crops(tmp_path, name, kwargs):
    path = write_cine(tmp_path / "c.cine", **kwargs)
    frames = kwargs["frames"]
    if name == "p10":
        frames = P10_TO_12BIT[frames]
    source = open_source(path)
    np.testing.assert_array_equal(np.stack(list(source.frames(range(len(frames))))), frames)
    _assert_crops(source, frames)


@pytest.mark.parametrize("cfa", [3, 4, 5, 6])
@pytest.mark.parametrize("packing", [0, 256, 1024])
@pytest.mark.parametrize("bottom_up, h, w", [(True, 8, 10), (True, 7, 9), (False, 7, 10)])
def test_bayer_cine_demosaics_only_the_crop_with_the_pattern_kept(tmp_path, cfa, packing,
                                                                  bottom_up, h, w):
    rng = np.random.default_rng(cfa)
    top = 1024 if packing == 256 else 4096
    codes = rng.integers(0, top, (2, h, w)).astype(np.uint16)
    path = write_cine(tmp_path / "b.cine", codes, compression=2, cfa=cfa,
                      bi_compression=packing, bottom_up=bottom_up and packing == 0)
    source = open_source(path)
    whole = np.stack(list(source.frames(range(2))))
    for i in range(2):  # the whole frames are the mosaic's demosaic
        np.testing.assert_array_equal(whole[i], demosaic(source.mosaic(i), source.pattern))
    for t, left in itertools.product(range(h), range(w)):
        for height, width in {(1, 1), (min(2, h - t), min(3, w - left)), (h - t, w - left),
                              (min(3, h - t), w - left)}:
            region = (t, left, height, width)
            got = np.stack(list(source.frames(range(2), region)))
            np.testing.assert_array_equal(got, whole[:, t:t + height, left:left + width],
                                          err_msg=str(region))


def test_zarr_crop_reads_only_the_chunks_it_covers(tmp_path):
    zarr = pytest.importorskip("zarr")
    movie = np.random.default_rng(8).integers(0, 256, (6, 16, 16), dtype=np.uint8)
    array = zarr.create_array(store=str(tmp_path / "m.zarr"), shape=movie.shape, chunks=(2, 8, 8),
                              dtype=movie.dtype)
    array[:] = movie
    for chunk in (tmp_path / "m.zarr" / "c").rglob("*"):  # break every chunk right of column 8
        if chunk.is_file() and chunk.parts[-1] == "1":
            chunk.write_bytes(b"not a chunk")
    source = open_source(tmp_path / "m.zarr", crop=(3, 1, 10, 6))
    np.testing.assert_array_equal(np.stack(list(source.frames(range(6)))), movie[:, 3:13, 1:7])
    with pytest.raises(FlowtraceError):
        list(open_source(tmp_path / "m.zarr").frames(range(1)))  # the whole frame needs them


# ------------------------------------------------------------ real camera files

@pytest.mark.parametrize("name, f", [("cine_781.cine", 4), ("photron/ball_12bit.cihx", 3),
                                     ("photron/sample_60k_16bit.cih", 3)])
def test_real_files_range_and_crop_equal_the_crops_of_the_full_run(tmp_path, name, f):
    path = real(name)
    options = dict(normalize="none", invert_color=True, progress=False, backend="numba")
    full = tifffile.imread(flowtrace(path, f, tmp_path / "full.tif", **options))
    start, stop, crop = 3, 12, (17, 29, 101, 77)
    part = tifffile.imread(flowtrace(path, f, tmp_path / "part.tif", start=start, stop=stop,
                                     crop=crop, **options))
    t, left, h, w = crop
    np.testing.assert_array_equal(part, full[start:stop - f + 1, t:t + h, left:left + w])
    assert part.shape[0] == stop - start - f + 1


def test_real_bayer_cine_crop_equals_the_crop_of_the_whole_frame():
    source = open_source(real("chart1.cine"))
    whole = next(source.frames([0]))
    for region in [(0, 0, 1, 1), (101, 333, 57, 91), (1079, 2047, 1, 1), (540, 3, 540, 2045)]:
        t, left, h, w = region
        np.testing.assert_array_equal(next(source.frames([0], region)),
                                      whole[t:t + h, left:left + w])


# ------------------------------------------------------------ runs

def test_names_are_those_of_each_images_first_frame(tmp_path):
    movie = np.random.default_rng(9).integers(0, 256, (20, 6, 6), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    paths = flowtrace(tmp_path / "rec.tif", 3, tmp_path / "out", start=4, stop=17, window_step=4,
                      progress=False)
    assert [p.name for p in paths] == [f"rec_{i:02d}_streamlines_frames3.png" for i in (4, 8, 12)]


def test_resumed_run_with_range_crop_and_step_is_bit_exact(tmp_path, monkeypatch):
    from flowtrace_gpu import IncompleteRunError
    from flowtrace_gpu.io import writers

    movie = np.random.default_rng(10).integers(0, 4096, (60, 24, 32), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    chosen = dict(start=5, stop=57, crop=(3, 4, 15, 20), window_step=3, frames_to_skip=1,
                  subtract_median=True, normalize="global", progress=False)
    reference = flowtrace(tmp_path / "rec.tif", 6, tmp_path / "ref", **chosen)
    assert len(reference) == len(range(0, 52 - 6 + 1, 3))
    original = writers.PngFolderWriter.write
    calls = []

    def full_disk(self, index, image):
        calls.append(index)
        if len(calls) > 7:
            raise OSError(28, "No space left on device")
        return original(self, index, image)

    monkeypatch.setattr(writers.PngFolderWriter, "write", full_disk)
    out = tmp_path / "out"
    with pytest.raises(IncompleteRunError):
        flowtrace(tmp_path / "rec.tif", 6, out, use_parallel=False, **chosen)
    monkeypatch.undo()
    manifest = read_manifest(out)
    assert not manifest.is_complete and manifest.options["crop"] == [3, 4, 15, 20]
    with pytest.raises(FlowtraceError, match="window_step"):
        flowtrace(tmp_path / "rec.tif", 6, out, resume=True, **{**chosen, "window_step": 2})
    result = flowtrace(tmp_path / "rec.tif", 6, out, resume=True, **chosen)
    assert [p.name for p in result] == [p.name for p in reference]
    assert [p.read_bytes() for p in result] == [p.read_bytes() for p in reference]


# ------------------------------------------------------------ scale out

def test_flowtrace_dask_takes_the_same_selection():
    pytest.importorskip("dask")
    import dask.array as da

    from flowtrace_gpu import flowtrace_dask

    movie = np.random.default_rng(11).integers(0, 256, (40, 9, 11), dtype=np.uint8)
    for options in (dict(), dict(normalize="global", subtract_median=True),
                    dict(windows="original", frames_to_skip=2)):
        chosen = dict(start=4, stop=37, crop=(1, 2, 7, 8), window_step=3)
        got = flowtrace_dask(da.from_array(movie, chunks=10), 4, block=6, **chosen,
                             **options).compute()
        expected = flowtrace_array(movie, 4, backend="numpy", **chosen, **options)
        np.testing.assert_array_equal(got, expected)


def test_flowtrace_batch_checks_and_passes_the_controls():
    from flowtrace_gpu.scaleout.batch import check_options

    chosen = dict(start=2, stop=20, crop=(0, 0, 4, 4), window_step=2, legend=True,
                  color_series=True)
    assert check_options(chosen) == chosen
    with pytest.raises(FlowtraceError, match="window_step"):
        check_options({"window_step": 0})


def test_a_manifest_without_the_controls_resumes_as_their_defaults(tmp_path):
    import json

    movie = np.random.default_rng(12).integers(0, 256, (12, 5, 5), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    out = tmp_path / "out"
    paths = flowtrace(tmp_path / "rec.tif", 3, out, progress=False)
    manifest = json.loads((out / "flowtrace.json").read_text())
    for name in ("start", "stop", "crop", "window_step"):  # as an earlier version wrote it
        del manifest["options"][name]
    manifest["complete"] = [[0, 5]]
    (out / "flowtrace.json").write_text(json.dumps(manifest))
    paths[7].unlink()
    assert flowtrace(tmp_path / "rec.tif", 3, out, resume=True, progress=False) == paths
    with pytest.raises(FlowtraceError, match="start"):
        flowtrace(tmp_path / "rec.tif", 3, out, resume=True, start=1, progress=False)
