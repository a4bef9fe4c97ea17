"""Every image mode has one meaning (io/images.py), in folders and in TIFF stacks.

All files are written here with Pillow or tifffile; the expected frames are
computed from what was written (the palette, the alpha-free channels...),
not by the reader's own code.
"""

import numpy as np
import pytest
import tifffile
from PIL import Image

from flowtrace_gpu import FlowtraceError
from flowtrace_gpu.io.formats import open_source
from flowtrace_gpu.io.png import encode_png

H, W = 12, 16


def _rng(seed=0):
    return np.random.default_rng(seed)


def _read_all(source):
    return np.stack(list(source.frames(range(source.n_frames))))


def _folder(tmp_path, images, suffix=".png", **save):
    """Write each (array or PIL image) as frame<i><suffix> and open the folder."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(images):
        image = image if isinstance(image, Image.Image) else Image.fromarray(image)
        image.save(folder / f"frame{i}{suffix}", **save)
    return open_source(folder)


def test_rgba_and_la_drop_alpha(tmp_path):
    rgba = _rng().integers(0, 256, (3, H, W, 4), dtype=np.uint8)
    source = _folder(tmp_path, rgba)
    assert (source.frame_shape, source.dtype) == ((H, W, 3), np.uint8)
    frames = _read_all(source)
    np.testing.assert_array_equal(frames, rgba[..., :3])
    assert next(source.frames([0])).flags.writeable
    la = _rng(1).integers(0, 256, (2, H, W, 2), dtype=np.uint8)
    (tmp_path / "la").mkdir()
    source = _folder(tmp_path / "la", [Image.fromarray(f, mode="LA") for f in la])
    assert source.frame_shape == (H, W)
    np.testing.assert_array_equal(_read_all(source), la[..., 0])


def test_palette_images_come_through_their_palette(tmp_path):
    palette = _rng(2).integers(0, 256, (256, 3), dtype=np.uint8)
    indices = _rng(3).integers(0, 256, (2, H, W), dtype=np.uint8)
    images = []
    for frame in indices:
        image = Image.fromarray(frame, mode="L").convert("P")
        image.putpalette(palette.reshape(-1).tolist())
        image.putdata(frame.reshape(-1).tolist())
        images.append(image)
    source = _folder(tmp_path, images)
    assert source.frame_shape == (H, W, 3)
    np.testing.assert_array_equal(_read_all(source), palette[indices])
    # The same in a TIFF stack: tifffile writes a 16-bit colormap; each entry's high byte is kept.
    colormap = palette.T.astype(np.uint16) * 257
    with tifffile.TiffWriter(tmp_path / "pal.tif") as tif:
        for frame in indices:
            tif.write(frame, photometric="palette", colormap=colormap)
    stack = open_source(tmp_path / "pal.tif")
    assert (stack.frame_shape, stack.dtype) == ((H, W, 3), np.uint8)
    np.testing.assert_array_equal(_read_all(stack), palette[indices])


def test_cmyk_jpeg_is_rgb(tmp_path):
    cmyk = {(0, 255, 255, 0): (255, 0, 0), (255, 0, 255, 0): (0, 255, 0),
            (0, 0, 0, 0): (255, 255, 255), (0, 0, 0, 255): (0, 0, 0)}
    images = [Image.new("CMYK", (W, H), color) for color in cmyk]
    source = _folder(tmp_path, images, suffix=".jpg", quality=100)
    assert (source.frame_shape, source.dtype) == ((H, W, 3), np.uint8)
    got = _read_all(source).astype(int)
    expected = np.array(list(cmyk.values()))[:, None, None, :]
    assert np.abs(got - expected).max() <= 3  # JPEG rounding on flat color


def test_one_bit_images_are_0_or_255_as_displayed(tmp_path):
    bits = _rng(4).integers(0, 2, (2, H, W)).astype(bool)
    source = _folder(tmp_path, [Image.fromarray(b) for b in bits])  # PNG, mode '1'
    assert (source.frame_shape, source.dtype) == ((H, W), np.uint8)
    np.testing.assert_array_equal(_read_all(source), bits * 255)
    # tifffile stores bool arrays min-is-white: True shows black.
    tifffile.imwrite(tmp_path / "bits.tif", bits)
    np.testing.assert_array_equal(_read_all(open_source(tmp_path / "bits.tif")), ~bits * 255)
    (tmp_path / "pil").mkdir()  # Pillow's bilevel TIFFs are min-is-black
    pil = _folder(tmp_path / "pil", [Image.fromarray(b) for b in bits], suffix=".tiff")
    np.testing.assert_array_equal(_read_all(pil), bits * 255)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_wide_gray_is_kept(tmp_path, dtype):
    frames = (_rng(5).random((3, H, W)) * 60000).astype(dtype)
    folder = tmp_path / "tifs"
    folder.mkdir()
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / f"f{i}.tif", frame)
    source = open_source(folder)
    assert (source.frame_shape, source.dtype) == ((H, W), np.dtype(dtype))
    np.testing.assert_array_equal(_read_all(source), frames)


def test_16bit_png_gray_and_rgb_are_kept(tmp_path):
    for shape in [(3, H, W), (3, H, W, 3)]:
        frames = _rng(6).integers(0, 65536, shape).astype(np.uint16)
        folder = tmp_path / f"png{len(shape)}"
        folder.mkdir()
        for i, frame in enumerate(frames):
            (folder / f"f{i}.png").write_bytes(encode_png(frame, 1))
        source = open_source(folder)
        assert (source.frame_shape, source.dtype) == (shape[1:], np.uint16)
        np.testing.assert_array_equal(_read_all(source), frames)


def test_planar_and_rgba_tiffs_are_rgb(tmp_path):
    rgb = _rng(7).integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    folder = tmp_path / "planar"
    folder.mkdir()
    for i, frame in enumerate(rgb):
        tifffile.imwrite(folder / f"f{i}.tif", np.moveaxis(frame, -1, 0), photometric="rgb",
                         planarconfig="separate")
    np.testing.assert_array_equal(_read_all(open_source(folder)), rgb)
    alpha = np.full(rgb.shape[:3] + (1,), 7, np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", np.concatenate([rgb, alpha], axis=-1), photometric="rgb",
                     extrasamples=["unassalpha"])
    stack = open_source(tmp_path / "rgba.tif")
    assert stack.frame_shape == (H, W, 3)
    np.testing.assert_array_equal(_read_all(stack), rgb)


def test_plain_4d_tiff_is_refused_with_the_way_to_save_a_series(tmp_path):
    with pytest.warns(DeprecationWarning):  # tifffile guesses planar RGB + alpha, and says so
        tifffile.imwrite(tmp_path / "four.tif", np.zeros((5, 4, 32, 32), np.uint8))
    with pytest.raises(FlowtraceError, match=r"four\.tif.*neither gray nor RGB.*tifffile\.imwrite.*'TYX'"):
        open_source(tmp_path / "four.tif")
    folder = tmp_path / "folder"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((4, 32, 32), np.uint8), photometric="minisblack",
                     planarconfig="separate")
    with pytest.raises(FlowtraceError, match=r"a\.tif.*neither gray nor RGB"):
        open_source(folder)


def test_folder_of_multipage_tiffs_reads_every_page_in_order(tmp_path):
    movie = _rng(8).integers(0, 256, (7, H, W), dtype=np.uint8)
    folder = tmp_path / "pages"
    folder.mkdir()
    # Natural order: part2 before part10.
    tifffile.imwrite(folder / "part2.tif", movie[:3], photometric="minisblack")
    tifffile.imwrite(folder / "part10.tif", movie[3:], photometric="minisblack")
    source = open_source(folder)
    assert source.n_frames == 7
    assert source.names == ["part2_0", "part2_1", "part2_2", "part10_0", "part10_1", "part10_2",
                            "part10_3"]
    np.testing.assert_array_equal(_read_all(source), movie)
    skipped = open_source(folder, frames_to_skip=3)
    assert skipped.names == ["part2_0", "part10_0", "part10_3"]
    np.testing.assert_array_equal(_read_all(skipped), movie[::3])


def test_multipage_tiff_with_an_odd_page_is_refused(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    with tifffile.TiffWriter(folder / "mixed.tif") as tif:
        tif.write(np.zeros((H, W), np.uint8))
        tif.write(np.zeros((H, W + 1), np.uint8))
    with pytest.raises(FlowtraceError, match=r"mixed\.tif page 1 is .* every frame must match"):
        open_source(folder)


def test_stack_of_pages_written_one_by_one(tmp_path):
    movie = _rng(9).integers(0, 65536, (4, H, W)).astype(np.uint16)
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for frame in movie:
            tif.write(frame)  # one series per page
    np.testing.assert_array_equal(_read_all(open_source(tmp_path / "pages.tif")), movie)
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tif:
        tif.write(movie[0])
        tif.write(movie[1, :, :-1])
    with pytest.raises(FlowtraceError, match=r"mixed\.tif holds 2 series whose pages differ"):
        open_source(tmp_path / "mixed.tif")
