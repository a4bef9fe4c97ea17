"""recording_info and ``flowtrace info``, and the recording-control flags, through a subprocess."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, recording_info

from camera_writers import write_cine
from conftest import REAL, read_png
from naive import naive_trace_ext


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "flowtrace_gpu", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def real(name):
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real camera file {name} not found in {REAL} (it lives in ../shared/real)")
    return path


def test_info_of_a_tiff_stack(tmp_path):
    movie = np.zeros((7, 5, 6, 3), np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", movie, photometric="rgb")
    info = recording_info(tmp_path / "s.tif")
    assert (info.format, info.frames, info.height, info.width, info.channels) == \
        ("TIFF stack", 7, 5, 6, 3)
    assert (info.dtype, info.bit_depth, info.fps, info.duration, info.trigger) == \
        ("uint16", 16, None, None, None)
    assert info.bytes_on_disk == (tmp_path / "s.tif").stat().st_size


def test_info_of_a_written_cine_names_rate_bits_trigger_and_pattern(tmp_path):
    path = write_cine(tmp_path / "b.cine", np.zeros((4, 6, 8), np.uint16), fps=2500,
                      compression=2, cfa=4, real_bpp=12)
    info = recording_info(path)
    assert (info.format, info.frames, info.height, info.width, info.channels) == \
        ("Phantom cine", 4, 6, 8, 3)
    assert (info.fps, info.duration, info.bit_depth) == (2500.0, 4 / 2500, 12)
    assert info.bayer_pattern == "GBRG"  # RGGB stored bottom-up: the even flip swaps its rows
    assert info.trigger == {"frame": 0, "first_image_no": 0, "time": None}


def test_info_of_the_real_files():
    cine = recording_info(real("cine_781.cine"))
    assert (cine.frames, cine.height, cine.width, cine.dtype, cine.bit_depth, cine.fps) == \
        (15, 256, 256, "uint16", 12, 90000.0)
    assert cine.trigger["first_image_no"] == -cine.trigger["frame"]
    assert cine.trigger["time"].startswith("2019-")
    chart = recording_info(real("chart1.cine"))
    assert (chart.bayer_pattern, chart.channels, chart.bit_depth) == ("GBRG", 3, 12)
    mraw = recording_info(real("photron/ball_12bit.cihx"))
    assert (mraw.format, mraw.frames, mraw.height, mraw.width, mraw.bit_depth, mraw.fps) == \
        ("Photron MRAW", 15, 384, 384, 12, 30000.0)
    assert mraw.bytes_on_disk == sum(
        p.stat().st_size for p in (REAL / "photron").glob("ball_12bit.*"))


def test_info_refuses_a_missing_file(tmp_path):
    with pytest.raises(FlowtraceError, match="does not exist"):
        recording_info(tmp_path / "none.cine")


def test_flowtrace_info_prints_text_and_json(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((9, 4, 5), np.uint8))
    text = cli("info", tmp_path / "s.tif")
    assert text.returncode == 0 and text.stderr == ""
    assert "TIFF stack" in text.stdout and "4 x 5 (height x width)" in text.stdout
    data = json.loads(cli("info", tmp_path / "s.tif", "--json").stdout)
    assert {k: data[k] for k in ("frames", "height", "width", "dtype", "fps", "bit_depth")} == \
        {"frames": 9, "height": 4, "width": 5, "dtype": "uint8", "fps": None, "bit_depth": 8}


@pytest.mark.parametrize("make", ["missing", "truncated"])
def test_flowtrace_info_of_a_bad_file_is_one_line_and_exit_2(tmp_path, make):
    path = tmp_path / "x.cine"
    if make == "truncated":
        full = write_cine(tmp_path / "full.cine", np.zeros((3, 8, 8), np.uint16))
        path.write_bytes(full.read_bytes()[:200])
    done = cli("info", path, "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("flowtrace: error: ")
    assert "x.cine" in done.stderr and "Traceback" not in done.stderr


def test_cli_range_crop_step_and_legend_flags(tmp_path):
    movie = np.random.default_rng(3).integers(0, 256, (30, 12, 14), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    out = tmp_path / "out"
    done = cli("rec.tif", 4, out, "--start", 3, "--stop", 25, "--crop", "2,3,8,9",
               "--window-step", 5, "--color-series", "--legend", "--fps", 100, "--backend",
               "numpy", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = naive_trace_ext(movie[3:25, 2:10, 3:12], 4, color_series=True)[::5]
    names = [f"rec_{i:02d}_streamlines_frames4.png" for i in (3, 8, 13, 18)]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["flowtrace.json",
                                                                    "legend.png"])
    for name, image in zip(names, expected):
        np.testing.assert_array_equal(read_png(out / name), image)
    assert read_png(out / "legend.png").shape[2] == 3


@pytest.mark.parametrize("args, match", [
    (["--crop", "1,2,3"], "crop must be (top, left, height, width)"),
    (["--crop", "a,b,c,d"], "--crop takes TOP,LEFT,HEIGHT,WIDTH"),
    (["--start", "40"], "start=40 is past the end"),
    (["--window-step", "0"], "window_step must be >= 1, got 0"),
    (["--legend"], "legend=True draws the colors"),
])
def test_cli_refusals_are_one_line(tmp_path, args, match):
    tifffile.imwrite(tmp_path / "rec.tif", np.zeros((30, 6, 6), np.uint8))
    done = cli(tmp_path / "rec.tif", 4, tmp_path / "out", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # The message is the last line (argparse's own errors print the usage first).
    assert match in done.stderr.strip().splitlines()[-1]
    if "a,b,c,d" not in args:
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
